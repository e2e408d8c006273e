// `npm run demo`: the quickstart mesh as pods on this machine. Renders examples/quickstart with
// the engine stand-in, runs every workload as real processes in network namespaces, then walks
// the mesh through disabled → permissive → strict (the documented migration: only ConfigMaps
// change, no pod restarts) and sends each client's request to api in each mode, capturing the
// wire. Before any traffic in each mode it prints the reachability matrix the render predicts
// (the Mesh's ConfigMap, what `pulumi preview --diff` shows), then checks every cell of the
// observed table against it. Prints a table and a one-line verdict; exits non-zero on any mismatch.
import { spawnSync } from "node:child_process";
import * as path from "node:path";
import { Command } from "commander";
import { rootProblem } from "./harness/cluster";
import { REPO_ROOT } from "./harness/images";
import { sweepStale } from "./harness/teardown";
import { wireReport } from "./harness/wire";
import { MeshRun, QUICKSTART } from "./mesh-run";
import { edgeLine } from "../../components/reachability";
import { MODES, Mode } from "../../proxy/wellknown";

interface Row {
  client: string;
  server: string;
  mode: Mode;
  meshed: boolean;
  allowed: boolean;
  /** The matrix line the preview showed for this edge, before any traffic. */
  predicted: string;
  expected: "reaches api" | "refused";
  outcome: string;
  /** A WireVerdict, or "TLS 1.3 (reused conn.)". */
  wire: string;
  /** For --json: what the capture showed for this client. */
  capture: { streams: number; tls13Handshake: boolean; allTls: boolean; plaintextHits: Record<string, number> };
  pass: boolean;
}

/** The documented migration; audit is one --modes away. */
const DEMO_MODES: Mode[] = ["disabled", "permissive", "strict"];

const program = new Command()
  .name("npm run demo --")
  .description(
    "Runs the quickstart mesh (examples/quickstart) as pods in Linux network namespaces on this machine and shows, " +
      "for every client and mesh mode, whether the request reaches api and what crossed the wire. Needs root.",
  )
  .option("--keep", "leave the mesh running afterwards (prints how to poke it and how to tear it down)")
  .option("--json", "print the result as JSON on stdout (progress still goes to stderr)")
  .option("--modes <list>", `modes to walk through, in order (${MODES.join(", ")})`, DEMO_MODES.join(","))
  .option("--cleanup", "only remove leftovers of earlier runs (namespaces, processes) and exit")
  .addHelpText("after", "\nExamples:\n  sudo npm run demo\n  sudo npm run demo -- --keep\n  sudo npm run demo -- --json --modes strict");

function progress(line: string): void {
  process.stderr.write(`• ${line}\n`);
}

function table(rows: Row[]): string {
  const head = ["client → server", "mode", "meshed", "predicted", "outcome", "on the wire", ""];
  const body = rows.map((r) => [
    `${r.client} → ${r.server}`,
    r.mode,
    r.meshed ? "yes" : "no",
    r.expected === "reaches api" ? `allow, ${r.predicted.split(", ")[1]}` : `deny, ${r.predicted.split(", ")[1]}`,
    r.outcome,
    r.wire,
    r.pass ? "✓" : "✗ UNEXPECTED",
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd();
  return [line(head), widths.map((w) => "─".repeat(w)).join("  "), ...body.map(line)].join("\n");
}

function parseModes(list: string): Mode[] {
  const modes = list.split(",").map((m) => m.trim());
  const bad = modes.filter((m) => !(MODES as readonly string[]).includes(m));
  if (bad.length || modes.length === 0) {
    process.stderr.write(`demo: --modes takes a comma-separated list of ${MODES.join(", ")}; got ${JSON.stringify(list)}\n`);
    process.exit(2);
  }
  return modes as Mode[];
}

async function main(): Promise<number> {
  program.parse();
  const opts = program.opts<{ keep?: boolean; json?: boolean; modes: string; cleanup?: boolean }>();
  const problem = rootProblem();
  if (problem) {
    process.stderr.write(`demo: ${problem}.\nRun it as root, e.g.: sudo npm run demo\n`);
    return 1;
  }
  if (opts.cleanup) {
    const swept = sweepStale();
    progress(swept.length ? `removed leftovers of runs ${swept.join(", ")}` : "nothing to clean up");
    return 0;
  }
  const modes = parseModes(opts.modes);
  progress("checking host packages (iptables, iproute2, tcpdump, openssl, util-linux, curl)");
  const setup = spawnSync("bash", [path.join(REPO_ROOT, "test", "setup", "host-packages.sh")], { stdio: ["ignore", "inherit", "inherit"] });
  if (setup.status !== 0) {
    process.stderr.write("demo: installing the host packages failed (see above)\n");
    return 1;
  }

  const started = Date.now();
  const run = await MeshRun.up({ mode: modes[0], log: progress });
  const rows: Row[] = [];
  // Clients whose proxy was seen negotiating TLS 1.3 with api: later captures may only show
  // records on that reused (pooled) connection, with no new handshake.
  const handshakeSeen = new Set<string>();
  const flips: { mode: Mode; changed: string[]; templatesChanged: string[]; restarted: string[] }[] = [];
  try {
    for (const [i, mode] of modes.entries()) {
      if (i > 0) {
        const pidsBefore = run.cluster.pids();
        const report = await run.setMode(mode);
        const pidsAfter = run.cluster.pids();
        const restarted = Object.keys(pidsBefore).filter((k) => pidsBefore[k] !== pidsAfter[k]);
        flips.push({ mode, changed: report.changed, templatesChanged: report.templatesChanged, restarted });
        const kinds = [...new Set(report.changed.map((k) => k.split("/")[0]))];
        progress(
          `mode → ${mode}: re-rendered; changed ${report.changed.length} objects (kinds: ${kinds.join(", ") || "none"}); ` +
            `${report.volumesUpdated.length} mounted volumes swapped; pod templates changed: ${report.templatesChanged.length}; ` +
            `containers restarted: ${restarted.length}; proxies reloaded`,
        );
      }
      // What the preview shows for this mode (the matrix ConfigMap of the render), before any traffic.
      const matrix = run.predictedMatrix();
      progress(`${mode}: predicted reachability (ConfigMap mesh-system/mesh-reachability):\n${matrix.map((e) => `    ${edgeLine(e)}`).join("\n")}`);
      for (const client of QUICKSTART.clients) {
        const server = QUICKSTART.server;
        const predicted = matrix.find((e) => e.server === `${server.namespace}/${server.service}:${server.port}` && e.client === client.matrixKey);
        if (!predicted) throw new Error(`the matrix has no edge ${server.namespace}/${server.service}:${server.port} from ${client.matrixKey}`);
        const capture = await run.cluster.capture(`${mode}-${client.workload}`);
        const outcome = await run.curl(client, server);
        const streams = await capture.stop();
        const wire = wireReport(streams, run.cluster.pod(client.namespace, client.workload).ip, ["GET / HTTP/1.1", server.text]);
        if (wire.tls13Handshake) handshakeSeen.add(client.label);
        const verdict: string = wire.verdict === "TLS (pooled conn.)" && handshakeSeen.has(client.label) ? "TLS 1.3 (reused conn.)" : wire.verdict;
        // The wire must do exactly what the preview predicted: reach or not, mTLS or plaintext.
        const expectOk = predicted.allowed;
        const expectTls = predicted.transport === "mtls";
        rows.push({
          client: client.label,
          server: server.label,
          mode,
          meshed: client.meshed,
          allowed: client.allowed,
          predicted: edgeLine(predicted),
          expected: expectOk ? "reaches api" : "refused",
          outcome: outcome.detail,
          wire: verdict,
          capture: { streams: wire.streams, tls13Handshake: wire.tls13Handshake, allTls: wire.allTls, plaintextHits: wire.plaintextHits },
          pass: outcome.ok === expectOk && (expectTls ? verdict.startsWith("TLS 1.3") : verdict === "plaintext"),
        });
        progress(`${mode}: ${client.label} → ${server.label}: ${outcome.detail} (${outcome.ms} ms), wire: ${verdict}`);
      }
    }
  } catch (err) {
    await run.down();
    throw err;
  }

  const failures = rows.filter((r) => !r.pass).length + flips.filter((f) => f.restarted.length || f.templatesChanged.length).length;
  const verdict =
    failures === 0
      ? `PASS: all ${rows.length} cells as the preview's matrix predicted` +
        (modes.some((m) => m !== "disabled") ? "; meshed traffic was TLS 1.3 only" : "; plaintext everywhere, as disabled mode promises") +
        (flips.length ? `; ${flips.length} mode flip(s) restarted no container` : "") +
        ` (${((Date.now() - started) / 1000).toFixed(1)} s)`
      : `FAIL: ${failures} result(s) differ from the preview's matrix (or a flip restarted something) — see the ✗ rows above`;
  if (opts.json) {
    process.stdout.write(JSON.stringify({ verdict: failures === 0 ? "pass" : "fail", summary: verdict, rows, flips, runId: run.cluster.names.id }, null, 2) + "\n");
  } else {
    const notes = [
      "outcome: what `curl http://api.shop.svc.cluster.local:8080/` printed inside the client pod (as its container's UID)",
      "predicted: the edge's line in the reachability ConfigMap (mesh-system/mesh-reachability) rendered before any traffic; ✓ = the wire did exactly that",
      "on the wire: a tcpdump on the node bridge during that request; plaintext = the request line or api's answer seen in clear",
      "legacy-client is refused in permissive mode too: api has an AuthorizationPolicy, and a plaintext peer has no identity",
    ];
    process.stdout.write(`\n${table(rows)}\n\n${notes.map((n) => `  ${n}`).join("\n")}\n\n${verdict}\n`);
  }

  if (opts.keep) {
    keepInstructions(run);
    // Child processes are unref'd, so hold the event loop open until Ctrl-C / SIGTERM, whose hooks
    // (installed by the cluster) tear the run down and exit.
    setInterval(() => {}, 1 << 30);
    await new Promise(() => {});
  }
  const left = await run.down();
  if (left.namespaces.length || left.processes.length) {
    process.stderr.write(`demo: teardown left ${JSON.stringify(left)}\n`);
    return 1;
  }
  progress("torn down: no namespace, process or rule left");
  return failures === 0 ? 0 : 1;
}

function keepInstructions(run: MeshRun): void {
  const c = run.cluster;
  const web = c.pod("shop", "web");
  const legacy = c.pod("legacy", "legacy-client");
  const api = c.pod("shop", "api");
  const as = (pod: typeof web, container: string) => {
    const id = pod.containers.get(container)!.identity;
    return `ip netns exec ${pod.ns} setpriv --reuid=${id.uid} --regid=${id.gid} --clear-groups`;
  };
  process.stderr.write(
    [
      "",
      `The mesh keeps running (run ${c.names.id}, mode ${run.mode}). Try:`,
      `  # as web (meshed, allowed):`,
      `  ${as(web, "web")} curl -sS http://api.shop.svc.cluster.local:8080/`,
      `  # as legacy-client (not meshed):`,
      `  ${as(legacy, "legacy-client")} curl -sS http://api.shop.svc.cluster.local:8080/`,
      `  # what api's proxy presents (from the node; refused without a client certificate):`,
      `  ip netns exec ${c.names.nodeNs} openssl s_client -connect ${api.ip}:8080 -tls1_3 -alpn mesh-h2 </dev/null | openssl x509 -noout -subject -ext subjectAltName`,
      `  # proxy metrics and logs:`,
      `  ip netns exec ${c.names.nodeNs} curl -s http://${api.ip}:15021/metrics | grep mesh_proxy_`,
      `  tail -f ${path.join(api.dir, "logs", "mesh-proxy.log")}`,
      `  # watch the wire:`,
      `  ip netns exec ${c.names.nodeNs} tcpdump -i ${c.names.bridge} -n -A tcp port 8080`,
      `Tear down: Ctrl-C here (or, if this process was killed: npm run demo -- --cleanup).`,
      "",
    ].join("\n"),
  );
}

main().then(
  (code) => process.exit(code),
  (err: Error) => {
    process.stderr.write(`demo: ${err.message}\n`);
    process.exit(1);
  },
);
