// Runs the benchmark harness with tiny durations, only to prove that it works end to end
// (packages, PKI, pairs, every HTTP workload, the real-protocol servers and clients, report). No
// timing assertions: the numbers of a run this short on a shared machine mean nothing.
import { strict as assert } from "node:assert";
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

const MAIN = path.resolve(__dirname, "../../bench/main.js");
const PINGPONG = path.resolve(__dirname, "../../bench/pingpong.js");
const PROXY_CLI = path.resolve(__dirname, "../../proxy/cli.js");
const ROUND_TRIP_IDS = ["redis-get-c1", "redis-get-c50", "pgbench-select", "pgbench-tpcb", "mariadb-insert"];

/** Every protocol row of one run was measured, with a setup time per protocol. */
function assertRoundTrips(run: { system: string; roundTrips?: { workloads: Record<string, { opsPerSecond: number }>; setup: Record<string, { medianMs: number }>; errors: string[] } }): void {
  const rt = run.roundTrips;
  assert.ok(rt, `${run.system}: no protocol rows`);
  assert.deepEqual(rt.errors, [], run.system);
  for (const id of ROUND_TRIP_IDS) assert.ok(rt.workloads[id]?.opsPerSecond > 0, `${run.system} ${id}: ${JSON.stringify(rt.workloads[id])}`);
  for (const p of ["redis", "postgres", "mariadb"]) assert.ok(rt.setup[p]?.medianMs > 0, `${run.system} ${p} setup`);
}

function runBench(args: string[]): Promise<{ code: number | null; output: string }> {
  return runNode(MAIN, args);
}

function runNode(script: string, args: string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [script, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (c: Buffer) => (output += c.toString()));
    child.stderr.on("data", (c: Buffer) => (output += c.toString()));
    child.on("exit", (code) => resolve({ code, output }));
  });
}

describe("bench harness", function () {
  this.timeout(150_000);
  let out: string;

  before(function () {
    if (process.getuid?.() !== 0) this.skip(); // installs Debian packages and uses a network namespace
    out = fs.mkdtempSync(path.join(os.tmpdir(), "bench-smoke-"));
  });
  after(() => out && fs.rmSync(out, { recursive: true, force: true }));

  it("runs every workload (HTTP and real protocols) against direct, our proxy and HAProxy and writes the report", async () => {
    const { code, output } = await runBench([
      "--tiny", "--topology", "loopback", "--systems", "direct,ours,haproxy", "--control-plane", "10", "--profile", "never", "--out", out,
    ]);
    assert.equal(code, 0, output);
    const results = JSON.parse(fs.readFileSync(path.join(out, "results.json"), "utf8"));
    assert.deepEqual(results.meta.systems, ["direct", "ours", "haproxy"]);
    for (const run of results.runs) {
      assert.equal(run.error, undefined, `${run.system}: ${run.error}`);
      const m = run.measurements;
      assert.ok(m.latency[0].completed > 0 && m.saturation.requests > 0 && m.churn.requests > 0 && m.bulk.bytes > 0, run.system);
      if (run.system !== "direct") {
        assert.deepEqual([run.tls.protocol, run.tls.cipher], ["TLSv1.3", "TLS_AES_128_GCM_SHA256"], run.system);
        assert.ok(m.memory.open > 0, `${run.system} held no idle connections`);
      }
      assertRoundTrips(run);
    }
    // 6 HTTP targets, 3 protocol throughputs, 4 added round-trip times, 2 permissive setup times
    // (not measured: no ours-permissive in --systems); each with a verdict.
    assert.equal(results.targets.loopback.length, 15);
    for (const t of results.targets.loopback) assert.ok(["met", "missed", "inconclusive", "not measured"].includes(t.verdict), `${t.target}: ${t.verdict}`);
    // Tiny runs no 1k req/s rate; everything else is measured.
    for (const t of results.targets.loopback.filter((t: { target: string }) => !t.target.includes("@1k") && !t.target.startsWith("permissive"))) assert.notEqual(t.verdict, "not measured", t.target);
    assert.ok(results.controlPlane[0].workloads === 10 && !results.controlPlane[0].error, JSON.stringify(results.controlPlane));
    const report = fs.readFileSync(path.join(out, "report.md"), "utf8");
    assert.match(report, /## Targets, loopback/);
    assert.match(report, /## Real protocols \(round trips\), loopback/);
    assert.match(report, /## Results, loopback/);
    assert.match(fs.readFileSync(path.join(out, "chart.svg"), "utf8"), /^<svg/);
  });

  it("runs only the protocol rows through socat, the Node relay, a baseline build and our permissive server side alone", async () => {
    const dir = path.join(out, "protocols");
    const { code, output } = await runBench([
      "--tiny", "--workloads", "protocols", "--systems", "direct,ours-tcp,haproxy,socat,node-relay,ours-base,ours-permissive,ours-permissive-sniffed",
      "--baseline-proxy", PROXY_CLI, "--control-plane", "none", "--profile", "never", "--no-install", "--out", dir,
    ]);
    assert.equal(code, 0, output);
    const results = JSON.parse(fs.readFileSync(path.join(dir, "results.json"), "utf8"));
    assert.equal(results.runs.length, 8);
    for (const run of results.runs) {
      assert.equal(run.measurements, undefined, `${run.system} ran HTTP workloads`);
      assertRoundTrips(run);
      const pair = run.system !== "direct" && !run.system.startsWith("ours-permissive");
      if (pair) assert.deepEqual([run.tls.protocol, run.tls.cipher], ["TLSv1.3", "TLS_AES_128_GCM_SHA256"], run.system);
      else assert.equal(run.tls, undefined, `${run.system} has no TLS to probe`);
    }
    // A plaintext MariaDB client waits the sniff window (200 ms) on a detected port, not on an opaque one.
    const setup = (system: string) => results.runs.find((r: { system: string }) => r.system === system).roundTrips.setup.mariadb.medianMs;
    assert.ok(setup("ours-permissive-sniffed") >= 200, `detected port: ${setup("ours-permissive-sniffed")} ms`);
    assert.ok(setup("ours-permissive") < 100, `opaque port: ${setup("ours-permissive")} ms`);
    assert.equal(results.targets.loopback.length, 9, "only the protocol targets");
    for (const t of results.targets.loopback) assert.notEqual(t.verdict, "not measured", t.target);
    const report = fs.readFileSync(path.join(dir, "report.md"), "utf8");
    assert.match(report, /## Real protocols \(round trips\), loopback/);
    assert.doesNotMatch(report, /## Results, loopback/);
  });

  it("profiles small round trips: µs, CPU and syscalls per round trip through our pair and the Node relay", async () => {
    const dir = path.join(out, "pingpong");
    const { code, output } = await runNode(PINGPONG, ["--rounds", "1", "--round-trips", "600", "--systems", "direct,ours-tcp,node-relay", "--strace", "--no-install", "--out", dir]);
    assert.equal(code, 0, output);
    const results = JSON.parse(fs.readFileSync(path.join(dir, "pingpong.json"), "utf8"));
    for (const row of results.rows) assert.ok(row.usPerRoundTrip > 0, `${row.system}: ${JSON.stringify(row)}`);
    const tcp = results.rows.find((r: { system: string }) => r.system === "ours-tcp");
    assert.ok(tcp.cpuClientUs > 0 && tcp.cpuServerUs > 0, JSON.stringify(tcp));
    // Each proxy reads one message from one socket and writes it to the other, both ways (a
    // round trip may straddle strace's attach or detach: 1.99 is 2).
    for (const side of ["client", "server"]) assert.ok(tcp.syscalls[side].read >= 1.9 && tcp.syscalls[side].write >= 1.9, JSON.stringify(tcp.syscalls));
    assert.match(fs.readFileSync(path.join(dir, "pingpong.md"), "utf8"), /\| mesh-proxy, tcp per conn \| \d/);
  });

  it("refuses unknown systems with a clean message", async () => {
    const { code, output } = await runBench(["--tiny", "--systems", "envoy", "--no-install", "--out", out]);
    assert.equal(code, 2);
    assert.match(output, /unknown system "envoy"/);
    assert.doesNotMatch(output, /at .*\.js:\d+/); // no stack trace
  });
});
