// e2e: the quickstart example (examples/quickstart, unmodified) rendered by the engine stand-in
// and run as pods in network namespaces with the real proxy, real iptables and real TLS. One
// bring-up serves every assertion, in order: disabled → permissive → (migration) → strict, then
// probes, certificate renewal and teardown. Root only.
import "reflect-metadata";
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as net from "node:net";
import * as x509 from "@peculiar/x509";
import { Capture } from "./harness/capture";
import { skipUnlessRoot } from "./harness/cluster";
import { httpGet } from "./harness/dialer";
import { presentedCertificate } from "./harness/openssl";
import { isRunning, listNamespaces } from "./harness/teardown";
import { wireReport } from "./harness/wire";
import { Client, expectedToSucceed, KubeletSkew, MeshRun, QUICKSTART } from "./mesh-run";
import { Mode } from "../../proxy/wellknown";

const { server, clients } = QUICKSTART;
const [web, reports, legacy] = clients;
const NEEDLES = ["GET / HTTP/1.1", server.text];

describe("e2e quickstart mesh as pods (network namespaces, real proxy, iptables, TLS)", function () {
  this.timeout(120_000);
  let run: MeshRun | undefined;
  let meshedCapture: Capture | undefined;

  before(async function () {
    skipUnlessRoot(this);
    run = await MeshRun.up({ mode: "disabled" });
  });

  after(async () => {
    await run?.down(); // Safety net; the last test tears down and checks.
  });

  const ipOf = (c: Client) => run!.cluster.pod(c.namespace, c.workload).ip;

  /** Every client's request, against the product's promise and against the render's own matrix. */
  async function matrix(mode: Mode): Promise<void> {
    const predicted = run!.predictedMatrix();
    for (const client of clients) {
      const outcome = await run!.curl(client, server);
      assert.equal(outcome.ok, expectedToSucceed(mode, client), `${mode}: ${client.label} → ${server.label}: ${outcome.detail}`);
      const edge = predicted.find((e) => e.server === "shop/api:8080" && e.client === client.matrixKey);
      assert.equal(edge?.mode, mode);
      assert.equal(edge?.allowed, outcome.ok, `${mode}: the matrix predicted ${JSON.stringify(edge)} for ${client.label}`);
      assert.equal(edge?.transport, client.meshed && mode !== "disabled" ? "mtls" : "plaintext");
    }
  }

  async function flip(mode: Mode, skew?: KubeletSkew) {
    const pids = run!.cluster.pids();
    const report = await run!.setMode(mode, skew);
    assert.ok(report.changed.length > 0);
    // A NetworkPolicy enforces only where the mode does, so a flip out of or into "disabled" updates it too.
    const config = (k: string) => k.startsWith("ConfigMap/") || k.startsWith("NetworkPolicy/");
    assert.deepEqual(report.changed.filter((k) => !config(k)), [], "a mode flip changes ConfigMaps (and NetworkPolicies) only");
    assert.deepEqual(report.templatesChanged, []);
    assert.deepEqual(run!.cluster.pids(), pids, "no container restarted");
    return report;
  }

  it("disabled: every client reaches api, and request and answer cross the bridge in plaintext", async () => {
    const capture = await run!.cluster.capture("disabled");
    await matrix("disabled");
    const streams = await capture.stop();
    for (const client of clients) {
      const wire = wireReport(streams, ipOf(client), NEEDLES);
      assert.equal(wire.verdict, "plaintext", `${client.label}: ${JSON.stringify(wire)}`);
      assert.ok(wire.plaintextHits["GET / HTTP/1.1"] > 0 && wire.plaintextHits[server.text] > 0);
    }
  });

  it("permissive (config flip, no restart, clients' config first): web never fails in between; then web allowed over mTLS, reports denied by policy, legacy denied", async () => {
    // Kubelet refreshes the clients' directory before api's own config: web's proxy originates
    // mTLS while api's proxy still forwards as "disabled"; web falls back to plaintext, not failing.
    const inBetween: string[] = [];
    await flip("permissive", {
      first: (pod) => pod.namespace !== server.namespace || !pod.name.startsWith(`${server.service}-`),
      meanwhile: async () => {
        for (let i = 0; i < 3; i++) inBetween.push((await run!.curl(web, server)).detail);
      },
    });
    assert.deepEqual(inBetween, Array(3).fill(`200 ${JSON.stringify(server.text)}`), "web → api while only the clients had the new config");
    const webPod = run!.cluster.pod(web.namespace, web.workload);
    assert.ok(fs.readFileSync(webPod.containers.get("mesh-proxy")!.logFile, "utf8").includes('"msg":"plaintext fallback"'), "web's proxy logged the fallback");
    meshedCapture = await run!.cluster.capture("meshed");
    await matrix("permissive");
  });

  it("migration permissive → strict: only ConfigMaps change, same PIDs, web never fails during the flip", async () => {
    let flipping = true;
    const results: boolean[] = [];
    const traffic = (async () => {
      // Keep going a little after the flip so requests also run under the new config.
      let after = 0;
      while (flipping || after++ < 5) results.push((await run!.curl(web, server)).ok);
    })();
    try {
      await flip("strict");
    } finally {
      flipping = false;
      await traffic;
    }
    assert.ok(results.length >= 10, `only ${results.length} requests ran during the flip`);
    assert.equal(results.filter((ok) => !ok).length, 0, `${results.filter((ok) => !ok).length} of ${results.length} meshed requests failed during the flip`);
    assert.equal((await run!.curl(legacy, server)).ok, false, "legacy-client is refused after the flip");
  });

  it("strict: the matrix holds, and meshed traffic on the bridge was TLS 1.3 only, without application bytes", async () => {
    await matrix("strict");
    const streams = await meshedCapture!.stop();
    for (const client of [web, reports]) {
      const wire = wireReport(streams, ipOf(client), NEEDLES);
      assert.ok(wire.streams > 0, `${client.label}: no traffic captured`);
      assert.ok(wire.allTls, `${client.label}: bytes that are not TLS records: ${JSON.stringify(wire)}`);
      assert.ok(wire.tls13Handshake, `${client.label}: no ServerHello selecting TLS 1.3`);
      assert.deepEqual(wire.plaintextHits, { [NEEDLES[0]]: 0, [NEEDLES[1]]: 0 });
    }
    // Positive control: the same capture does see the non-meshed client's plaintext request.
    assert.ok(wireReport(streams, ipOf(legacy), NEEDLES).plaintextHits["GET / HTTP/1.1"] > 0);
  });

  it("a kubelet-style probe from the node to a strict api pod succeeds through the proxy's admin port", async () => {
    for (const pod of run!.cluster.podsOf("shop", "api")) {
      const app = pod.container("api");
      const probe = app.readinessProbe!;
      assert.equal(probe.httpGet!.port, 15021, "the components rewrote the probe to the admin port");
      assert.deepEqual(await pod.probe(app, probe), { ok: true, detail: "HTTP 200" });
      // What kubelet would have done without the rewrite: plaintext to a strict port, refused.
      const direct = await httpGet(() => run!.cluster.nodeDialer.dial(pod.ip, 8080), { host: pod.ip, path: "/" }).then(
        (r) => `HTTP ${r.status}`,
        (e: Error) => e.message,
      );
      assert.doesNotMatch(direct, /^HTTP 200/);
    }
  });

  it("renews api's certificate while a long-lived connection is open: it survives, new connections get the new certificate", async () => {
    const secret = () => run!.cluster.objects.get("Secret/shop/mesh-identity-api")!.stringData["tls.crt"] as string;
    const serial = (pem: string) => new x509.X509Certificate(pem).serialNumber;
    const oldSerial = serial(secret());
    const apiPods = run!.cluster.podsOf("shop", "api");
    for (const pod of apiPods) assert.equal(serial(await presentedCertificate(run!.cluster.names.nodeNs, pod.ip, 8080)), oldSerial);

    // One keep-alive HTTP connection from web's container (its UID, so redirected to its proxy).
    const dialer = await run!.cluster.pod("shop", "web").dialer("web");
    const socket = await dialer.dial(run!.cluster.service("shop", "api").spec.clusterIP, 8080);
    const keepAlive = (): Promise<string> =>
      httpGet(async () => socket, { host: "api.shop.svc.cluster.local", path: "/", headers: { connection: "keep-alive" } }).then((r) => `${r.status} ${r.body.trim()}`);
    try {
      assert.equal(await keepAlive(), `200 ${server.text}`);
      const pids = run!.cluster.pids();
      const report = await run!.renew(["^api-identity-(key|csr|cert)$"]);
      assert.deepEqual(report.changed, ["Secret/shop/mesh-identity-api"]);
      assert.deepEqual(run!.cluster.pids(), pids);
      const newSerial = serial(secret());
      assert.notEqual(newSerial, oldSerial);
      assert.equal(await keepAlive(), `200 ${server.text}`, "the connection opened before the renewal still works");
      assert.ok(!socket.destroyed);
      for (const pod of apiPods) assert.equal(serial(await presentedCertificate(run!.cluster.names.nodeNs, pod.ip, 8080)), newSerial);
      assert.equal((await run!.curl(web, server)).ok, true, "new meshed connections work with the new certificate");
    } finally {
      (socket as net.Socket).destroy();
    }
  });

  it("kubelet's periodic probes never failed (mode flips, renewal included); tears down leaving nothing", async () => {
    const c = run!.cluster;
    assert.deepEqual(c.probeFailures(), [], "kubelet's periodic readiness/liveness probes never failed during the run");
    assert.ok(c.pods.every((p) => p.ready));
    const pids = Object.values(c.pids());
    assert.ok(pids.length >= 10);
    const left = await c.down();
    run = undefined;
    assert.deepEqual(left, { namespaces: [], processes: [] });
    assert.deepEqual(listNamespaces().filter((ns) => ns.startsWith(`e2e-${c.names.id}-`)), []);
    assert.deepEqual(pids.filter(isRunning), [], "container processes still running");
    assert.equal(fs.existsSync(c.names.dir), false);
    assert.deepEqual(fs.readdirSync("/etc/netns").filter((d) => d.startsWith(`e2e-${c.names.id}-`)), []);
  });
});
