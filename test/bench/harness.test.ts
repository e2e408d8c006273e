// Runs the benchmark harness once with tiny durations, only to prove that it works end to end
// (packages, PKI, pairs, every workload, report). No timing assertions: the numbers of a run this
// short on a shared machine mean nothing.
import { strict as assert } from "node:assert";
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

const MAIN = path.resolve(__dirname, "../../bench/main.js");

function runBench(args: string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [MAIN, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (c: Buffer) => (output += c.toString()));
    child.stderr.on("data", (c: Buffer) => (output += c.toString()));
    child.on("exit", (code) => resolve({ code, output }));
  });
}

describe("bench harness", function () {
  this.timeout(90_000);
  let out: string;

  before(function () {
    if (process.getuid?.() !== 0) this.skip(); // installs Debian packages and uses a network namespace
    out = fs.mkdtempSync(path.join(os.tmpdir(), "bench-smoke-"));
  });
  after(() => out && fs.rmSync(out, { recursive: true, force: true }));

  it("runs every workload against direct, our proxy and HAProxy and writes the report", async () => {
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
    }
    assert.equal(results.targets.loopback.length, 6);
    assert.ok(results.controlPlane[0].workloads === 10 && !results.controlPlane[0].error, JSON.stringify(results.controlPlane));
    const report = fs.readFileSync(path.join(out, "report.md"), "utf8");
    assert.match(report, /## Targets, loopback/);
    assert.match(fs.readFileSync(path.join(out, "chart.svg"), "utf8"), /^<svg/);
  });

  it("refuses unknown systems with a clean message", async () => {
    const { code, output } = await runBench(["--tiny", "--systems", "envoy", "--no-install", "--out", out]);
    assert.equal(code, 2);
    assert.match(output, /unknown system "envoy"/);
    assert.doesNotMatch(output, /at .*\.js:\d+/); // no stack trace
  });
});
