// e2e traffic matrix: mesh mode (disabled / permissive / audit / strict) × client meshed / not meshed ×
// authorization allowed / denied, on test/e2e/programs/matrix (the quickstart's cast plus "open",
// a server no policy targets — the only way a plaintext client can be "allowed"). Each mode's
// traffic is captured on the node bridge: meshed clients must show TLS only, the others
// plaintext. Modes change by re-rendering and swapping ConfigMaps, with no restart; audit serves
// everyone and must count and log what strict refuses, and the flip audit → strict then refuses
// it. Root only.
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import { skipUnlessRoot } from "./harness/cluster";
import { REPO_ROOT } from "./harness/images";
import { wireReport } from "./harness/wire";
import { Client, expectedToSucceed, MeshRun, Server } from "./mesh-run";
import { MODES, Mode } from "../../proxy/wellknown";

const PROGRAM = path.join(REPO_ROOT, "dist", "test", "e2e", "programs", "matrix", "index.js");
const api: Server = { label: "shop/api", namespace: "shop", service: "api", port: 8080, text: "hello from api" };
const open: Server = { label: "shop/open", namespace: "shop", service: "open", port: 8080, text: "hello from open" };
const client = (workload: string, namespace: string, meshed: boolean, allowed: boolean): Client => ({
  label: `${namespace}/${workload}`,
  namespace,
  workload,
  container: workload,
  meshed,
  allowed,
});

/** Every cell: which client calls which server, and what the policy says about it. */
const CELLS: { name: string; client: Client; server: Server }[] = [
  { name: "meshed, allowed by policy", client: client("web", "shop", true, true), server: api },
  { name: "meshed, denied by policy", client: client("reports", "shop", true, false), server: api },
  { name: "meshed, no policy (allowed)", client: client("web", "shop", true, true), server: open },
  { name: "not meshed, denied (policy needs an identity)", client: client("legacy-client", "legacy", false, false), server: api },
  { name: "not meshed, no policy (allowed)", client: client("legacy-client", "legacy", false, true), server: open },
];

/**
 * Registers the suite's hooks: the matrix program up before its tests (skipped when not root),
 * torn down after them, leaving nothing behind. Returns the run for the tests.
 */
function bringUp(opts: { mode: Mode; config?: Record<string, string> }): () => MeshRun {
  let run: MeshRun | undefined;
  before(async function () {
    skipUnlessRoot(this);
    run = await MeshRun.up({ program: PROGRAM, ...opts });
  });
  after(async () => {
    if (!run) return;
    const left = await run.down();
    assert.deepEqual(left, { namespaces: [], processes: [] });
  });
  return () => run!;
}

/**
 * Audit served what strict refuses; each such connection must show up in the server proxy's
 * counter (port and reason labels) and as a log line naming the reason and the peer.
 */
async function auditEvidence(run: MeshRun): Promise<string[]> {
  const problems: string[] = [];
  const expected = [
    { pod: run.cluster.pod("shop", "api"), reason: "plaintext_on_strict", peer: '"peer":"plaintext"' },
    { pod: run.cluster.pod("shop", "api"), reason: "authorization_denied", peer: '"peer":"spiffe://cluster.local/ns/shop/sa/reports"' },
    { pod: run.cluster.pod("shop", "open"), reason: "plaintext_on_strict", peer: '"peer":"plaintext"' },
  ];
  for (const { pod, reason, peer } of expected) {
    const count = (await run.metric(pod, "mesh_proxy_audit_refusals_total"))('port="8080"', `reason="${reason}"`);
    if (count < 1) problems.push(`${pod.namespace}/${pod.name}: mesh_proxy_audit_refusals_total{port="8080",reason="${reason}"} is ${count}`);
    const log = fs.readFileSync(pod.containers.get("mesh-proxy")!.logFile, "utf8").split("\n");
    if (!log.some((line) => line.includes("audit: strict would refuse") && line.includes(`"reason":"${reason}"`) && line.includes(peer))) {
      problems.push(`${pod.namespace}/${pod.name}: no "audit: strict would refuse" log line with reason ${reason} and ${peer}`);
    }
  }
  return problems;
}

describe("e2e traffic matrix: mode × meshed × authorization", function () {
  this.timeout(120_000);
  const matrixRun = bringUp({ mode: MODES[0] });

  for (const mode of MODES) {
    it(`${mode}: every cell has the expected outcome, and the wire shows ${mode === "disabled" ? "plaintext only" : "TLS for meshed clients, plaintext for the others"}`, async () => {
      const run = matrixRun();
      if (run.mode !== mode) {
        const pids = run.cluster.pids();
        const report = await run.setMode(mode);
        // A NetworkPolicy enforces only where the mode does, so a flip out of or into "disabled" updates it too.
        const config = (k: string) => k.startsWith("ConfigMap/") || k.startsWith("NetworkPolicy/");
        assert.deepEqual(report.changed.filter((k) => !config(k)), [], "a mode flip changes ConfigMaps (and NetworkPolicies) only");
        assert.deepEqual(report.templatesChanged, []);
        assert.deepEqual(run.cluster.pids(), pids, "a mode flip restarts nothing");
      }
      const capture = await run.cluster.capture(`matrix-${mode}`);
      const failures: string[] = [];
      for (const cell of CELLS) {
        const outcome = await run.curl(cell.client, cell.server);
        const expected = expectedToSucceed(mode, cell.client);
        if (outcome.ok !== expected) failures.push(`${cell.name}: ${cell.client.label} → ${cell.server.label} expected ${expected ? "success" : "refusal"}, got ${outcome.detail}`);
      }
      const streams = await capture.stop();
      if (mode === "audit") failures.push(...(await auditEvidence(run)));
      for (const c of [...new Map(CELLS.map((cell) => [cell.client.label, cell.client])).values()]) {
        const wire = wireReport(streams, run.cluster.pod(c.namespace, c.workload).ip, ["GET / HTTP/1.1", api.text, open.text]);
        const tls = c.meshed && mode !== "disabled";
        if (tls ? !(wire.allTls && Object.values(wire.plaintextHits).every((n) => n === 0)) : wire.verdict !== "plaintext") {
          failures.push(`${c.label}: expected ${tls ? "TLS only" : "plaintext"} on the wire, got ${JSON.stringify(wire)}`);
        }
      }
      assert.deepEqual(failures, []);
    });
  }
});

describe("e2e proxyTransport tcp: the Mesh option reaches every sidecar and the matrix still holds", function () {
  this.timeout(120_000);
  const matrixRun = bringUp({ mode: "strict", config: { proxyTransport: "tcp" } });

  it("strict: every cell has the expected outcome, and web's proxy dialed one mTLS connection per request, never the h2 pool", async () => {
    const run = matrixRun();
    const failures: string[] = [];
    for (const cell of CELLS) {
      const outcome = await run.curl(cell.client, cell.server);
      if (outcome.ok !== expectedToSucceed("strict", cell.client)) failures.push(`${cell.name}: ${cell.client.label} → ${cell.server.label}: ${outcome.detail}`);
    }
    assert.deepEqual(failures, []);
    const outbound = await run.metric(run.cluster.pod("shop", "web"), "mesh_proxy_connections_total");
    // web called api and open once each (the CELLS above).
    assert.equal(outbound('direction="outbound"', 'mode="mtls-tcp"', 'outcome="forwarded"'), 2);
    assert.equal(outbound('direction="outbound"', 'mode="mtls-h2"'), 0);
  });
});
