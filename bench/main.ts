// `npm run bench` (full) / `npm run bench -- --quick` (about 6 minutes): the side-by-side
// benchmark of this project's proxy against HAProxy, nginx stream, stunnel, socat and a bare Node
// relay (and no proxy), with HTTP load and with real request-response protocols (Redis,
// PostgreSQL, MariaDB). Systems are interleaved (A B C D E, then B C D E A, …) so drift on the
// machine hits all of them alike and no system is always first.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { spawnSync } from "node:child_process";
import { Command } from "commander";
import { list, UsageError } from "./cli";
import { freePorts, killAllNow, lastLines, stop, stopAll } from "./processes";
import { createTopology, deleteAllNamespaces, isRoot, Topology, TopologyName } from "./topology";
import { writePki, BenchPki } from "./pki";
import { startBackend } from "./backend";
import { startSystem, ALL_SYSTEMS, DEFAULT_SYSTEMS, SystemName, LABELS, isOurs, isPlaintextClient, primaryOurs, oursVariant, roundOrder } from "./systems";
import { oursAvailable, OursOptions, OursPlan } from "./ours";
import { measure, Durations } from "./workloads";
import { probeTls } from "./tlsprobe";
import { RoundRun, summarize, checkTargets, WorkloadGroup } from "./summary";
import { PROTOCOLS, PROTOCOL_LABELS, ProtocolName, RoundTripDurations } from "./roundtrip-kinds";
import { missingBinaries, startProtocolServer, ProtocolServer } from "./protocols";
import { measureRoundTrips } from "./protocol-round";
import { warmUp } from "./roundtrips";
import { runControlPlane, ControlPlaneResult, controlPlaneMissed, profileControlPlane, ControlPlaneProfile } from "./controlplane";
import { profileOurs, ProfileSummary } from "./profile";
import { writeReport, BenchResults } from "./report";

type Mode = "full" | "quick" | "tiny";

const DURATIONS: Record<Mode, Durations & { rounds: number; topologies: TopologyName[]; controlPlane: number[]; roundTrips: RoundTripDurations }> = {
  full: {
    rounds: 5, topologies: ["loopback", "netns"], controlPlane: [10, 100, 1000],
    roundTrips: { redisRequests: 50_000, pgbenchSeconds: 5, mariadbInserts: 10_000, setupConnections: 50 },
    rates: [500, 1000, 2000], latencySeconds: 6, latencyWarmupSeconds: 1, latencyConnections: 16, warmupLoadSeconds: 2,
    saturationSeconds: 6, saturationConnections: 32, churnSeconds: 6, churnConnections: 32, bulkSeconds: 4, idleConnections: 1000,
  },
  quick: {
    rounds: 2, topologies: ["loopback"], controlPlane: [10, 100],
    roundTrips: { redisRequests: 20_000, pgbenchSeconds: 3, mariadbInserts: 2_000, setupConnections: 20 },
    rates: [500, 1000, 2000], latencySeconds: 1, latencyWarmupSeconds: 0.3, latencyConnections: 16, warmupLoadSeconds: 1,
    saturationSeconds: 2, saturationConnections: 32, churnSeconds: 1, churnConnections: 32, bulkSeconds: 1, idleConnections: 1000,
  },
  // For the harness smoke test: proves every step runs, measures nothing worth reading.
  tiny: {
    rounds: 1, topologies: ["loopback"], controlPlane: [10],
    roundTrips: { redisRequests: 500, pgbenchSeconds: 1, mariadbInserts: 100, setupConnections: 3 },
    rates: [500], latencySeconds: 0.5, latencyWarmupSeconds: 0.1, latencyConnections: 4, warmupLoadSeconds: 0,
    saturationSeconds: 1, saturationConnections: 8, churnSeconds: 1, churnConnections: 4, bulkSeconds: 1, idleConnections: 50,
  },
};

const REPO = path.resolve(__dirname, "../..");
const NODE_VERSION = "process.version + ' (OpenSSL ' + process.versions.openssl + ')'";

function versions(oursNode: string, altNode: string | undefined, systems: SystemName[], protocols: ProtocolName[]): Record<string, string> {
  const line = (cmd: string, args: string[], pattern = /./) => {
    const r = spawnSync(cmd, args, { encoding: "utf8" });
    const lines = ((r.stdout || "") + (r.stderr || "")).trim().split("\n");
    return (lines.find((l) => pattern.test(l)) ?? lines[0] ?? "").trim();
  };
  const first = line;
  return {
    haproxy: first("haproxy", ["-v"]).split(" - ")[0],
    nginx: first("nginx", ["-v"]),
    stunnel: line("stunnel4", ["-version"], /stunnel \d/).replace(/^\[.\]\s*/, "").split(" on ")[0],
    wrk: line("wrk", ["-v"]).split(" [")[0].replace("debian/", ""),
    openssl: first("openssl", ["version"]),
    benchNode: process.version,
    oursNode: first(oursNode, ["-p", NODE_VERSION]),
    ...(altNode ? { altNode: first(altNode, ["-p", NODE_VERSION]) } : {}),
    ...(systems.includes("socat") ? { socat: line("socat", ["-V"], /socat version/).split(" on ")[0] } : {}),
    ...(protocols.includes("redis") ? { redis: line("redis-server", ["--version"]).split(" sha=")[0] } : {}),
    ...(protocols.includes("postgres") ? { postgres: first("pgbench", ["--version"]) } : {}),
    ...(protocols.includes("mariadb") ? { mariadb: first("mariadbd", ["--version"]).split(" for ")[0] } : {}),
    kernel: os.release(),
    cpu: `${os.cpus().length} × ${os.cpus()[0]?.model ?? "unknown"}`,
  };
}

async function main(): Promise<void> {
  const program = new Command()
    .name("bench")
    .description("Side-by-side benchmark: mesh-proxy vs HAProxy, nginx stream, stunnel (mTLS pairs)")
    .option("--quick", "about 6 minutes: loopback, 2 rounds, short runs")
    .option("--tiny", "a few seconds, only to check the harness works (no meaningful numbers)")
    .option("--topology <list>", "loopback,netns")
    .option("--workloads <list>", "http (wrk, open loop, memory), protocols (Redis, PostgreSQL, MariaDB round trips), or both", "http,protocols")
    .option("--systems <list>", `any of ${ALL_SYSTEMS.join(",")} (default ${DEFAULT_SYSTEMS.join(",")})`)
    .option("--rounds <n>", "rounds (each system once per round)")
    .option("--control-plane <sizes>", "MeshedWorkload counts to evaluate, or 'none'")
    .option("--profile <when>", "CPU profile of our proxy under load: auto (when a target is missed), always, never", "auto")
    .option("--node <path>", "Node binary that runs our proxy (try a newer runtime)", process.execPath)
    .option("--alt-node <path>", "a second Node binary for the ours-alt-node system (compare runtimes in one run)")
    .option("--baseline-proxy <path>", "another build's dist/proxy/cli.js for the ours-base system (before vs after in one run)")
    .option("--out <dir>", "where results go", path.join(REPO, "bench/results"))
    .option("--no-install", "do not install missing Debian packages");
  program.parse();
  const o = program.opts();
  const mode: Mode = o.tiny ? "tiny" : o.quick ? "quick" : "full";
  const preset = DURATIONS[mode];
  const topologies = o.topology ? list<TopologyName>(o.topology, ["loopback", "netns"], "topology") : preset.topologies;
  const groups = list<WorkloadGroup>(o.workloads, ["http", "protocols"], "workload group");
  if (!groups.length) throw new UsageError("--workloads needs http, protocols or both");
  let systems = o.systems ? list<SystemName>(o.systems, ALL_SYSTEMS, "system") : DEFAULT_SYSTEMS;
  if (!o.systems && o.baselineProxy) systems = [...systems, "ours-base"];
  if (systems.includes("ours-alt-node") && !o.altNode) throw new UsageError("--systems ours-alt-node needs --alt-node <path>");
  if (systems.includes("ours-base") && !o.baselineProxy) throw new UsageError("--systems ours-base needs --baseline-proxy <path to dist/proxy/cli.js>");
  if (o.baselineProxy && !fs.existsSync(o.baselineProxy)) throw new UsageError(`--baseline-proxy ${o.baselineProxy}: no such file`);
  const rounds = o.rounds ? Number(o.rounds) : preset.rounds;
  if (!Number.isInteger(rounds) || rounds < 1) throw new UsageError("--rounds must be a positive integer");
  const cpSizes = o.controlPlane === "none" ? [] : o.controlPlane ? o.controlPlane.split(",").map(Number) : preset.controlPlane;
  if (cpSizes.some((n: number) => !Number.isInteger(n) || n < 1)) throw new UsageError("--control-plane takes sizes like 10,100,1000 or 'none'");
  if (!["auto", "always", "never"].includes(o.profile)) throw new UsageError("--profile is auto, always or never");
  for (const [flag, file] of [["--node", o.node], ["--alt-node", o.altNode]] as const) {
    if (file !== undefined && spawnSync(file, ["--version"]).status !== 0) throw new UsageError(`${flag} ${file}: not a runnable Node binary`);
  }

  if (topologies.includes("netns") && !isRoot()) {
    throw new UsageError("the netns topology needs root (network namespaces); run as root, or pass --topology loopback");
  }
  if (o.install) {
    const r = spawnSync("bash", [path.join(REPO, "bench/install-packages.sh")], { stdio: "inherit" });
    if (r.status !== 0) throw new UsageError("missing packages (see above)");
  }
  if (systems.some(isOurs) && !oursAvailable()) {
    console.error("bench: our proxy is not built (dist/proxy/cli.js missing; run `npm run build`); skipping it");
    systems = systems.filter((s) => !isOurs(s));
  }
  if (!systems.includes("direct")) systems = ["direct", ...systems]; // added latency is measured against it
  const protocols: ProtocolName[] = [];
  if (groups.includes("protocols")) {
    for (const p of PROTOCOLS) {
      const missing = missingBinaries(p);
      if (missing) console.error(`bench: skipping the ${PROTOCOL_LABELS[p]} rows: ${missing} (bench/install-packages.sh installs them)`);
      else protocols.push(p);
    }
  }
  if (!groups.includes("http") && !protocols.length) throw new UsageError("--workloads protocols: none of the protocol servers is installed (see above)");
  // The server-first setup time in permissive mode is a target: measured whenever the protocol rows are.
  if (!o.systems && protocols.length && systems.some(isOurs)) systems = [...systems, "ours-permissive", "ours-permissive-sniffed"];
  if (!protocols.length && systems.some(isPlaintextClient)) {
    throw new UsageError(`--systems ${systems.filter(isPlaintextClient).join(",")}: measured on the real-protocol rows only (--workloads protocols)`);
  }

  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  const outDir = path.resolve(o.out);
  const rawDir = path.join(outDir, `raw-${stamp}`);
  try {
    fs.mkdirSync(rawDir, { recursive: true });
  } catch (error) {
    throw new UsageError(`--out ${outDir}: cannot create ${rawDir} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
  const started = Date.now();
  const progress = (line: string) => console.log(`[bench ${((Date.now() - started) / 1000).toFixed(0).padStart(4)}s] ${line}`);
  const d: Durations = preset;
  const ours: OursOptions = { node: o.node, altNode: o.altNode, baselineCli: o.baselineProxy && path.resolve(o.baselineProxy), nodeFlags: [] };
  const http = groups.includes("http");
  progress(`${mode} run: ${systems.join(", ")}; ${http ? "HTTP" : ""}${http && protocols.length ? " + " : ""}${protocols.join(", ")}; ${topologies.join(" + ")}; ${rounds} round(s); raw files in ${rawDir}`);

  const pki: BenchPki = await writePki(path.join(rawDir, "pki"));
  const runs: RoundRun[] = [];
  for (const topologyName of topologies) {
    const topo: Topology = createTopology(topologyName);
    try {
      // Per system: 4 ports for its HTTP pair, then 4 per protocol pair.
      const perSystem = 4 + 4 * protocols.length;
      const [backendPort, ...more] = await freePorts(1 + protocols.length + perSystem * systems.length);
      const serverPorts = more.slice(0, protocols.length);
      const ports = more.slice(protocols.length);
      const backend = http ? await startBackend(path.join(rawDir, "backend"), backendPort, topo.serverAddr, topo.serverNs) : undefined;
      const servers: ProtocolServer[] = [];
      for (const [j, protocol] of protocols.entries()) {
        try {
          const dir = path.join(rawDir, topologyName, "servers");
          const server = await startProtocolServer(protocol, { dir, port: serverPorts[j], serverAddr: topo.serverAddr, netns: topo.serverNs });
          try {
            await warmUp(protocol, { host: topo.serverAddr, port: serverPorts[j], netns: topo.clientNs });
          } catch (err) {
            await server.stop();
            throw err;
          }
          servers.push(server);
          progress(`${topologyName}: ${PROTOCOL_LABELS[protocol]} server listening on port ${serverPorts[j]} (warmed up)`);
        } catch (err) {
          progress(`${topologyName}: ${PROTOCOL_LABELS[protocol]} server did not start, skipping its rows: ${(err as Error).message}`);
        }
      }
      for (let round = 1; round <= rounds; round++) {
        for (const system of roundOrder(systems, round)) {
          const i = systems.indexOf(system);
          const tag = `${topologyName} round ${round}/${rounds} ${LABELS[system]}`;
          const mine = ports.slice(perSystem * i, perSystem * (i + 1));
          const base = { pki, dir: path.join(rawDir, topologyName), clientNs: topo.clientNs, serverNs: topo.serverNs, clientAddr: topo.clientAddr, serverAddr: topo.serverAddr };
          const run: RoundRun = { round, topology: topologyName, system };
          runs.push(run);
          if (http && !isPlaintextClient(system)) await measureHttp(run, system, { ...base, clientPort: mine[0], serverPort: mine[1], backendPort, adminPorts: [mine[2], mine[3]] }, tag);
          if (servers.length) {
            const { m, tls } = await measureRoundTrips({
              system, servers, plan: base, ports: mine.slice(4), ours, d: preset.roundTrips, round, probe: !run.tls, progress: (l) => progress(`${tag}: ${l}`),
            });
            run.roundTrips = m;
            if (tls) {
              run.tls = tls;
              progress(`${tag}: server side negotiates ${tls.protocol} ${tls.cipher}${tls.peerVerified ? ", server certificate verified" : ""}`);
            }
          }
        }
      }
      await Promise.all(servers.map((s) => s.stop()));
      if (backend) await stop(backend.proc);
    } finally {
      await stopAll();
      topo.teardown();
    }
  }

  async function measureHttp(run: RoundRun, system: SystemName, plan: OursPlan, tag: string): Promise<void> {
    let sys;
    try {
      sys = await startSystem(system, plan, ours);
      progress(`${tag}: started`);
      run.measurements = await measure({ sys, clientNs: plan.clientNs, d, progress: (l) => progress(`${tag}: ${l}`) });
      // Checked after the workloads: a probe that upsets a proxy must not cost the measurements.
      if (system !== "direct") {
        run.tls = await probeTls(pki, plan.serverAddr, plan.serverPort, plan.clientNs);
        progress(`${tag}: server side negotiates ${run.tls.protocol} ${run.tls.cipher}${run.tls.peerVerified ? ", server certificate verified" : ""}`);
      }
    } catch (err) {
      run.error = (err as Error).message;
      for (const p of sys?.proxies ?? []) {
        if (p.proc.exitStatus !== undefined) run.error += `\n${p.proc.name} exited (${p.proc.exitStatus}): ${lastLines(p.proc, 6)}`;
      }
      progress(`${tag}: FAILED: ${run.error}`);
    } finally {
      await sys?.stop();
    }
  }

  const summaries = Object.fromEntries(
    topologies.map((t) => [t, Object.fromEntries(systems.map((s) => [s, summarize(runs, t, s)]))]),
  );
  const oursMain = primaryOurs(systems);
  const targets = oursMain && systems.includes("haproxy")
    ? Object.fromEntries(topologies.map((t) => [t, checkTargets(summaries[t][oursMain], summaries[t].haproxy, protocols.length ? groups : groups.filter((g) => g !== "protocols"), summaries[t]["ours-permissive"])]))
    : {};

  let profile: ProfileSummary | undefined;
  const missed = Object.values(targets).flat().some((t) => t.met === false);
  if (oursMain && http && (o.profile === "always" || (o.profile === "auto" && missed))) {
    progress("profiling our proxy under keep-alive, churn and bulk load (node --cpu-prof)");
    try {
      profile = await profileOurs({ pki, rawDir, ours: oursVariant(oursMain, ours), seconds: Math.max(2, Math.min(5, d.saturationSeconds)), progress });
    } catch (err) {
      progress(`profile FAILED: ${(err as Error).message}`);
    }
  }

  let controlPlane: ControlPlaneResult[] = [];
  if (cpSizes.length) {
    progress(`control plane: ${cpSizes.join(" / ")} MeshedWorkloads under the Pulumi mock runtime`);
    controlPlane = await runControlPlane(cpSizes, progress);
  }
  let controlPlaneProfile: ControlPlaneProfile | undefined;
  if (cpSizes.length && (o.profile === "always" || (o.profile === "auto" && controlPlaneMissed(controlPlane)))) {
    const n = Math.min(100, Math.max(...cpSizes));
    progress(`profiling the control plane with ${n} workloads (node --cpu-prof)`);
    try {
      controlPlaneProfile = await profileControlPlane(n, rawDir);
    } catch (err) {
      progress(`control-plane profile FAILED: ${(err as Error).message}`);
    }
  }

  const results: BenchResults = {
    meta: {
      date: new Date().toISOString(), mode, rounds, topologies, systems, workloads: groups, protocols, durations: d, roundTripDurations: preset.roundTrips,
      seconds: Math.round((Date.now() - started) / 1000), versions: versions(ours.node, ours.altNode, systems, protocols),
      baselineProxy: ours.baselineCli, root: isRoot(), command: process.argv.slice(2).join(" "),
    },
    runs, summaries, targets, controlPlane, controlPlaneProfile, profile,
  };
  const written = writeReport(results, outDir);
  progress(`done in ${results.meta.seconds}s: ${written.join(", ")}`);
}

function cleanup(): void {
  killAllNow();
  deleteAllNamespaces();
}
process.on("exit", cleanup);
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.on(sig, () => {
    console.error(`\nbench: ${sig}, stopping everything`);
    cleanup();
    process.exit(130);
  });
}

main().then(
  () => process.exit(0),
  (err: Error) => {
    console.error(err instanceof UsageError ? `bench: ${err.message}` : `bench failed: ${err.stack ?? err.message}`);
    process.exit(err instanceof UsageError ? 2 : 1);
  },
);
