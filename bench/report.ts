// Writes the results: raw JSON, a Markdown report (the real-protocol section is
// report-roundtrips.ts), and an SVG chart (hand-rolled: bars of each system's ratio to the
// HAProxy pair).
import * as fs from "node:fs";
import * as path from "node:path";
import { RoundRun, SystemSummary, TargetCheck, Stat, PERCENTILES, WorkloadGroup } from "./summary";
import { ProtocolName, RoundTripDurations } from "./roundtrip-kinds";
import { SystemName, LABELS, isPlaintextClient, primaryOurs } from "./systems";
import { TopologyName } from "./topology";
import { Durations } from "./workloads";
import { ControlPlaneResult, ControlPlaneProfile } from "./controlplane";
import { ProfileSummary } from "./profile";
import { renderRoundTrips, num, cell, ratio } from "./report-roundtrips";

export interface BenchResults {
  meta: {
    date: string;
    mode: string;
    rounds: number;
    topologies: TopologyName[];
    systems: SystemName[];
    /** Which groups ran, and which protocol servers (the installed ones). */
    workloads?: WorkloadGroup[];
    protocols?: ProtocolName[];
    durations: Durations;
    roundTripDurations?: RoundTripDurations;
    baselineProxy?: string;
    seconds: number;
    versions: Record<string, string>;
    root: boolean;
    command: string;
  };
  runs: RoundRun[];
  summaries: Record<string, Record<string, SystemSummary>>;
  targets: Record<string, TargetCheck[]>;
  controlPlane: ControlPlaneResult[];
  controlPlaneProfile?: ControlPlaneProfile;
  profile?: ProfileSummary;
}

interface Row {
  label: string;
  get: (s: SystemSummary) => Stat | undefined;
  digits?: number;
  /** Show "× HAProxy" for this row. */
  vsHaproxy?: boolean;
}

function resultRows(rates: number[]): Row[] {
  return [
    { label: "keep-alive req/s (wrk)", get: (s) => s.keepAliveRps, vsHaproxy: true },
    { label: "proxy CPU-ms per 1k requests (both sides)", get: (s) => s.keepAliveCpuMsPer1k, vsHaproxy: true },
    { label: "new connection per request, conn/s", get: (s) => s.churnConnPerS, vsHaproxy: true },
    { label: "proxy CPU-ms per new connection", get: (s) => s.churnCpuMsPerConn, vsHaproxy: true },
    { label: "bulk single stream MB/s", get: (s) => s.bulkMBps, vsHaproxy: true },
    { label: "proxy CPU-s per GB (both sides)", get: (s) => s.bulkCpuSPerGB, vsHaproxy: true },
    { label: "idle RSS MB, client side", get: (s) => s.idleRssClientMB, vsHaproxy: true },
    { label: "idle RSS MB, server side", get: (s) => s.idleRssServerMB, vsHaproxy: true },
    { label: "KB per open connection (larger side)", get: (s) => s.perConnectionKB, vsHaproxy: true },
    ...rates.flatMap((rate) =>
      PERCENTILES.map((p) => ({
        label: `added ${p} @${rate}/s, ms`,
        get: (s: SystemSummary) => s.addedMs[rate]?.[p],
        digits: 3,
        vsHaproxy: p === "p99",
      })),
    ),
    ...rates.map((rate) => ({ label: `direct-inclusive p99 @${rate}/s, ms`, get: (s: SystemSummary) => s.latencyMs[rate]?.p99, digits: 3 })),
  ];
}

export function renderMarkdown(r: BenchResults, chartFile: string): string {
  const out: string[] = [];
  const m = r.meta;
  out.push(`# mesh-proxy side-by-side benchmark`, ``);
  out.push(`${m.date} · ${m.mode} run (${m.rounds} round${m.rounds > 1 ? "s" : ""}, ${m.topologies.join(" + ")}) · ${m.seconds} s · \`npm run bench -- ${m.command}\``, ``);
  out.push(`Machine: ${m.versions.cpu}, Linux ${m.versions.kernel}. ${m.versions.haproxy}; ${m.versions.nginx}; ${m.versions.stunnel}; ${m.versions.openssl}; ${m.versions.wrk}; our proxy on Node ${m.versions.oursNode}${m.versions.altNode ? ` (ours-alt-node: Node ${m.versions.altNode})` : ""}${m.baselineProxy ? ` (ours-base: ${m.baselineProxy})` : ""}.${extraVersions(m.versions)}`, ``);
  out.push(`Cells are medians over rounds with (min–max). Ratios are against the HAProxy pair in the same run. A verdict is **inconclusive** when the rounds disagree about it (the figure is within the run-to-run noise) or an added time came out ≤ 0 (direct measured slower).`, ``);

  for (const t of m.topologies) {
    const checks = r.targets[t];
    if (checks?.length) {
      out.push(`## Targets, ${t} (${LABELS[primaryOurs(m.systems)!]} vs the HAProxy pair)`, ``);
      out.push(`| target | ours | HAProxy | ours / HAProxy | verdict |`, `|---|---|---|---|---|`);
      for (const c of checks) {
        const ref = c.target.includes("HAProxy") ? num(c.reference, 3) : `limit ${num(c.reference, 3)}`;
        const verdict = c.verdict === "not measured" ? "–" : `**${c.verdict}**`;
        out.push(`| ${c.target} | ${num(c.value, 3)} ${c.unit} | ${ref} | ${c.ratio !== undefined ? c.ratio.toFixed(2) + "×" : "–"} | ${verdict}: ${c.gap} |`);
      }
      out.push(``);
    }
  }
  const cp = controlPlaneTarget(r.controlPlane);
  if (cp) out.push(`Control plane: ${cp}`, ``);
  out.push(`![ratios against HAProxy](${chartFile})`, ``);

  for (const t of m.topologies) {
    const sums = r.summaries[t];
    out.push(...renderRoundTrips(t, sums, m.systems, m.roundTripDurations));
    if (m.workloads && !m.workloads.includes("http")) continue;
    const systems = m.systems.filter((s) => sums[s] && !isPlaintextClient(s));
    const rates = m.durations.rates;
    const mine = primaryOurs(m.systems);
    out.push(`## Results, ${t}`, ``);
    out.push(`| metric | ${systems.map((s) => LABELS[s]).join(" | ")} | ours / HAProxy |`);
    out.push(`|---|${systems.map(() => "---").join("|")}|---|`);
    for (const row of resultRows(rates)) {
      const values = systems.map((s) => (s === "direct" && row.label.startsWith("added") ? "(reference)" : cell(row.get(sums[s]), row.digits)));
      if (values.every((v) => v === "–" || v === "(reference)")) continue;
      const rel = row.vsHaproxy && mine && sums[mine] && sums.haproxy ? ratio(row.get(sums[mine]), row.get(sums.haproxy)) : "";
      out.push(`| ${row.label} | ${values.join(" | ")} | ${rel} |`);
    }
    out.push(``);
    const errors = systems.flatMap((s) => sums[s].errors.map((e) => `- ${LABELS[s]} ${e}`));
    if (errors.length) out.push(`Failures:`, ``, ...errors, ``);
  }

  out.push(`## Negotiated TLS (openssl s_client against each server side, offering TLS 1.2+1.3 and all default suites)`, ``);
  out.push(`| topology | system | protocol | cipher suite | server chain verified |`, `|---|---|---|---|---|`);
  const seen = new Set<string>();
  for (const run of r.runs) {
    if (!run.tls || seen.has(`${run.topology}/${run.system}`)) continue;
    seen.add(`${run.topology}/${run.system}`);
    out.push(`| ${run.topology} | ${LABELS[run.system]} | ${run.tls.protocol} | ${run.tls.cipher} | ${run.tls.peerVerified ? "yes" : "no"} |`);
  }
  out.push(``);

  if (r.controlPlane.length) {
    out.push(`## Control plane (MeshedWorkloads under the Pulumi mock runtime, one child process per size)`, ``);
    out.push(`| workloads | seconds | ms per workload | peak RSS MB | heap used MB | resources (all) | resources per workload | note |`, `|---|---|---|---|---|---|---|---|`);
    for (const c of r.controlPlane) {
      const per = c.workloadResources !== undefined ? num(c.workloadResources / c.workloads) : "–";
      out.push(`| ${c.workloads} | ${num(c.seconds)} | ${num(c.seconds * 1000 / c.workloads)} | ${num(c.maxRssMB)} | ${num(c.heapUsedMB)} | ${c.resources ?? "–"} | ${per} | ${c.error ?? ""} |`);
    }
    out.push(``);
  }

  if (r.controlPlaneProfile) {
    const p = r.controlPlaneProfile;
    out.push(`Where the control plane's time goes (${p.workloads} workloads under \`node --cpu-prof\`, ${p.totalMs} ms of samples, self time):`, ``);
    out.push(`By area: ${p.byArea.map((a) => `${a.area} ${a.selfPercent}%`).join(", ")}.`, ``);
    out.push(`| self % | function | where |`, `|---|---|---|`);
    for (const e of p.top) out.push(`| ${e.selfPercent} | \`${e.function}\` | ${e.location} |`);
    out.push(``);
  }

  if (r.profile) {
    out.push(
      `## CPU profile of our proxy under load`,
      ``,
      `Load: ${r.profile.load}. Self time, idle excluded. Reading it: \`writeBuffer\` is the native socket write, which for a TLS socket includes encrypting the record (and, during a handshake, the handshake crypto); \`(program)\` is native time outside any JS frame (libuv, OpenSSL reads and decryption, nghttp2 framing); \`dist/proxy\` is the proxy's own JavaScript.`,
      ``,
    );
    const loads = r.profile.sides[0]?.loads.map((l) => l.load) ?? [];
    loads.forEach((load, li) => {
      out.push(`### ${load}`, ``);
      for (const s of r.profile!.sides) {
        const p = s.loads[li];
        out.push(`${s.side} side, ${p.totalMs} ms of CPU. By area: ${p.byArea.map((a) => `${a.area} ${a.selfPercent}%`).join(", ")}.`, ``, `| self % | function | where |`, `|---|---|---|`);
        for (const e of p.top) out.push(`| ${e.selfPercent} | \`${e.function}\` | ${e.location} |`);
        out.push(``);
      }
    });
  }

  out.push(`## Method`, ``);
  const d = m.durations;
  out.push(
    `- Systems run one at a time, interleaved (${m.systems.join(", ")}; each round starts one system further along the list) and restarted each round; every proxy pair does mTLS with the same ECDSA P-256 certificates (SPIFFE URI SANs), TLS 1.3 and TLS_AES_128_GCM_SHA256 only, one worker each (HAProxy nbthread 1, nginx one worker process, stunnel one process with its thread per connection, our proxy one Node process).`,
    `- Backend: one nginx worker, \`return 200\` with a 1 KB body; \`/bulk\` is a 64 MB file. Server-side proxies reach it on loopback; "direct" reaches it without any proxy.`,
    `- Latency: own open-loop generator (bench/openloop.ts, a separate Node process) at ${d.rates.join("/")} req/s over ${d.latencyConnections} keep-alive connections for ${d.latencySeconds} s after ${d.latencyWarmupSeconds} s warm-up, measured from each request's intended send time; "added" = system minus direct in the same round.`,
    `- Saturation: wrk -t1 -c${d.saturationConnections} keep-alive ${d.saturationSeconds} s; churn: wrk -t1 -c${d.churnConnections} with \`Connection: close\` ${d.churnSeconds} s; bulk: wrk -t1 -c1 on /bulk ${d.bulkSeconds} s (MB = 10^6 bytes). CPU: utime+stime of both proxy processes from /proc/<pid>/stat around each run.`,
    `- Memory: VmRSS after start (idle) and after opening ${d.idleConnections} keep-alive connections with one completed request each; per-connection = RSS growth / connections.`,
    ...(m.protocols?.length ? [
      `- Real protocols (${m.protocols.map((p) => p).join(", ")}): each server runs once per topology in the server namespace; per round every system gets a fresh pair per server, whose server side forwards to that server on loopback. Redis: no persistence; PostgreSQL: fsync and synchronous_commit off, trust auth; MariaDB: binlog off, innodb_flush_log_at_trx_commit=0. Clients: redis-benchmark, pgbench, the mariadb client (INSERTs timed between two marker SELECTs, so client start-up and login are left out). Setup time: a separate Node process opens fresh connections one at a time and times connect() to the server's first byte (MariaDB's greeting, PostgreSQL's answer to an SSLRequest, Redis's +PONG).`,
    ] : []),
    `- The machine's other load is not controlled by the harness: run the full mode on an idle machine for numbers to quote.`,
  );
  return out.join("\n") + "\n";
}

function extraVersions(v: Record<string, string>): string {
  const extra = ["socat", "redis", "postgres", "mariadb"].filter((k) => v[k]).map((k) => v[k]);
  return extra.length ? ` Also: ${extra.join("; ")}.` : "";
}

function controlPlaneTarget(cp: ControlPlaneResult[]): string | undefined {
  const big = cp.find((c) => c.workloads === 1000 && !c.error);
  const mid = cp.find((c) => c.workloads === 100 && !c.error);
  if (!big) return undefined;
  const met = big.seconds <= 30;
  const growth = mid ? (big.seconds / big.workloads) / (mid.seconds / mid.workloads) : undefined;
  return `1,000 workloads in ${num(big.seconds)} s (target ≤ 30 s: **${met ? "met" : "missed"}**)` +
    (growth !== undefined ? `; time per workload at 1,000 is ${growth.toFixed(2)}× that at 100 (linear ≈ 1×: **${growth <= 1.5 ? "met" : "missed"}**).` : ".");
}

/** Grouped bars: each system's ratio to HAProxy (higher is better) per metric, one panel per topology. */
export function renderSvg(r: BenchResults): string {
  type Metric = { label: string; get: (s: SystemSummary) => Stat | undefined; lowerIsBetter?: boolean; target?: number };
  const all: Metric[] = [
    { label: "keep-alive req/s", get: (s) => s.keepAliveRps, target: 1 },
    { label: "new conn/s", get: (s) => s.churnConnPerS, target: 3 },
    { label: "bulk MB/s", get: (s) => s.bulkMBps, target: 0.8 },
    { label: "CPU per 1k req (inv.)", get: (s) => s.keepAliveCpuMsPer1k, lowerIsBetter: true },
    { label: "idle RSS (inv.)", get: (s) => s.idleRssMB, lowerIsBetter: true },
    { label: "redis -c 1 GET/s", get: (s) => s.roundTrips?.throughput["redis-get-c1"], target: 1 },
    { label: "pgbench -S tx/s", get: (s) => s.roundTrips?.throughput["pgbench-select"], target: 1 },
    { label: "INSERT/s", get: (s) => s.roundTrips?.throughput["mariadb-insert"] },
  ];
  const metrics = all.filter((mt) => r.meta.topologies.some((t) => r.summaries[t]?.haproxy && mt.get(r.summaries[t].haproxy)));
  const systems = r.meta.systems.filter((s) => s !== "direct" && s !== "haproxy" && !isPlaintextClient(s));
  const colors: Record<string, string> = {
    ours: "#2b7bb9", "ours-h2": "#6fa8d6", "ours-tcp": "#1d4f7a", "ours-alt-node": "#7a4fb9", "ours-base": "#9aa9b8",
    nginx: "#3a9a4a", stunnel: "#c0782b", socat: "#b94f7a", "node-relay": "#555555",
  };
  const W = 860, panelH = 260, top = 40, left = 50, groupW = (W - left - 20) / metrics.length;
  const panels = r.meta.topologies.filter((t) => r.summaries[t]?.haproxy);
  const H = top + panels.length * (panelH + 80) + 30;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${left}" y="22" font-size="15" font-weight="bold">Ratio to the HAProxy pair (higher is better; dashed = HAProxy; red = our target)</text>`,
  ];
  panels.forEach((t, pi) => {
    const sums = r.summaries[t];
    const y0 = top + pi * (panelH + 80) + 20;
    const ratios = metrics.map((mt) =>
      systems.map((s) => {
        const a = mt.get(sums[s])?.median, h = mt.get(sums.haproxy)?.median;
        if (a === undefined || h === undefined || !a || !h) return NaN;
        return mt.lowerIsBetter ? h / a : a / h;
      }),
    );
    const max = Math.max(1.2, 3.2, ...ratios.flat().filter(Number.isFinite)) * 1.05;
    const y = (v: number) => y0 + panelH - (v / max) * panelH;
    parts.push(`<text x="${left}" y="${y0 - 6}" font-weight="bold">${t}</text>`);
    parts.push(`<line x1="${left}" y1="${y0 + panelH}" x2="${W - 10}" y2="${y0 + panelH}" stroke="#333"/>`);
    for (let v = 0; v <= max; v += max > 6 ? 2 : 1) {
      parts.push(`<text x="${left - 8}" y="${y(v) + 4}" text-anchor="end" fill="#666">${v}×</text>`);
    }
    parts.push(`<line x1="${left}" y1="${y(1)}" x2="${W - 10}" y2="${y(1)}" stroke="#999" stroke-dasharray="5,4"/>`);
    metrics.forEach((mt, mi) => {
      const gx = left + mi * groupW;
      const barW = (groupW - 20) / systems.length;
      systems.forEach((s, si) => {
        const v = ratios[mi][si];
        if (!Number.isFinite(v)) return;
        const x = gx + 10 + si * barW;
        parts.push(`<rect x="${x.toFixed(1)}" y="${y(v).toFixed(1)}" width="${(barW - 3).toFixed(1)}" height="${(y0 + panelH - y(v)).toFixed(1)}" fill="${colors[s] ?? "#888"}"/>`);
        parts.push(`<text x="${(x + barW / 2).toFixed(1)}" y="${(y(v) - 3).toFixed(1)}" text-anchor="middle" font-size="10">${v.toFixed(2)}</text>`);
      });
      if (mt.target !== undefined) {
        parts.push(`<line x1="${gx + 6}" y1="${y(mt.target)}" x2="${gx + groupW - 6}" y2="${y(mt.target)}" stroke="#d22" stroke-width="2"/>`);
      }
      parts.push(`<text x="${gx + groupW / 2}" y="${y0 + panelH + 16}" text-anchor="middle">${mt.label}</text>`);
    });
    let lx = left;
    systems.forEach((s) => {
      parts.push(`<rect x="${lx}" y="${y0 + panelH + 28}" width="12" height="12" fill="${colors[s] ?? "#888"}"/>`);
      parts.push(`<text x="${lx + 16}" y="${y0 + panelH + 38}">${LABELS[s]}</text>`);
      lx += 40 + LABELS[s].length * 7;
    });
  });
  parts.push(`</svg>`);
  return parts.join("\n") + "\n";
}

export function writeReport(r: BenchResults, outDir: string): string[] {
  fs.mkdirSync(outDir, { recursive: true });
  const json = path.join(outDir, "results.json");
  const md = path.join(outDir, "report.md");
  const svg = path.join(outDir, "chart.svg");
  fs.writeFileSync(json, JSON.stringify(r, null, 1) + "\n");
  fs.writeFileSync(svg, renderSvg(r));
  fs.writeFileSync(md, renderMarkdown(r, path.basename(svg)));
  return [md, svg, json];
}
