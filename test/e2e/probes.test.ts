// e2e probes in strict mode (issue 12, item 6): a gRPC health server as the app, with a `grpc:`
// readiness probe and a `tcpSocket` liveness probe on its redirected port. The kubelet stand-in
// runs the probes as the pod spec says, from the node; it has no mesh certificate, so the pod only
// becomes Ready if the probes were rewritten to the proxy's admin port, and the proxy's gRPC health
// check must report the app's own answer: NOT_SERVING takes the pod out of service. An unmeshed
// copy of the app is the control for the kubelet stand-in's own gRPC probe. Root only.
import { strict as assert } from "node:assert";
import * as path from "node:path";
import { skipUnlessRoot } from "./harness/cluster";
import { httpGet } from "./harness/dialer";
import { REPO_ROOT } from "./harness/images";
import type { Pod } from "./harness/pod";
import { MeshRun } from "./mesh-run";

const PROGRAM = path.join(REPO_ROOT, "dist", "test", "e2e", "programs", "probes", "index.js");

async function waitFor(what: string, condition: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe("e2e probes: grpc and tcpSocket probes of a strict workload", function () {
  this.timeout(120_000);
  let run: MeshRun | undefined;
  let pod: Pod;

  before(async function () {
    skipUnlessRoot(this);
    // Cluster.up waits for every pod's readiness: it throws if the gRPC probe never passes.
    run = await MeshRun.up({ program: PROGRAM, mode: "strict" });
    pod = run.cluster.pod("shop", "health");
  });

  after(async () => {
    if (!run) return;
    const left = await run.down();
    assert.deepEqual(left, { namespaces: [], processes: [] });
  });

  it("control: the kubelet stand-in runs a gRPC probe itself, and an unmeshed gRPC server passes it", async () => {
    const plain = run!.cluster.pod("legacy", "plain-health");
    assert.equal(plain.ready, true);
    assert.deepEqual(await plain.probe(plain.container("plain-health"), plain.container("plain-health").readinessProbe!), { ok: true, detail: "gRPC SERVING" });
  });

  it("the pod becomes Ready: its probes are the admin port's, and they pass", async () => {
    assert.equal(pod.ready, true);
    const app = pod.container("health");
    assert.deepEqual(app.readinessProbe?.httpGet, { path: "/app-health/health/readyz", port: 15021, scheme: "HTTP" });
    assert.deepEqual(app.livenessProbe?.httpGet, { path: "/app-health/health/livez", port: 15021, scheme: "HTTP" });
    const readyz = await httpGet(() => run!.cluster.nodeDialer.dial(pod.ip, 15021), { host: pod.ip, path: "/app-health/health/readyz" });
    assert.deepEqual([readyz.status, readyz.body], [200, "app health check: SERVING\n"]);
  });

  it("the app answering NOT_SERVING fails the readiness probe and takes the pod out of service; SERVING brings it back", async () => {
    const flip = async (to: "serving" | "not-serving") => {
      const res = await pod.exec("health", ["curl", "-sS", "-m", "3", `http://127.0.0.1:8080/make-${to}`]);
      assert.equal(res.code, 0, res.stderr);
    };
    const failuresBefore = pod.probeFailures.length;
    await flip("not-serving");
    await waitFor("the readiness probe to fail twice (failureThreshold 2)", () => !pod.ready);
    const failures = pod.probeFailures.slice(failuresBefore);
    assert.ok(failures.some((f) => f.kind === "readiness" && f.detail === "HTTP 503"), JSON.stringify(failures));
    const readyz = await httpGet(() => run!.cluster.nodeDialer.dial(pod.ip, 15021), { host: pod.ip, path: "/app-health/health/readyz" });
    assert.deepEqual([readyz.status, readyz.body], [503, "app health check: NOT_SERVING\n"]);

    await flip("serving");
    await waitFor("the pod to be ready again", () => pod.ready);
    assert.deepEqual(pod.probeFailures.filter((f) => f.kind === "liveness"), [], "the app's port stayed open: the tcpSocket liveness probe never failed");
  });
});
