// Hot reload through kubelet-style `..data` symlink swaps, readiness, metrics, probes, the
// connection limit and the SIGTERM drain, all on a running in-process proxy.
import { strict as assert } from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as http from "http";
import * as net from "net";
import * as path from "path";
import * as tls from "tls";
import { stableStringify } from "../../proxy/config";
import { ticketsPerHandshake } from "../../proxy/tickets";
import { createTestMesh, TestMesh } from "../support/pki";
import {
  adminGet, Backend, connect, freePort, identityFilesFor, kubeletWrite, rawAttempt, removeTmpDirs, SERVER_ID,
  sleep, startBackend, startFileProxy, startTestProxy, stopAllProxies, TD, testMesh, tlsAttempt, tmpDir, waitFor, workload,
} from "./support";

async function echoOnce(socket: net.Socket, text: string): Promise<string> {
  const reply = new Promise<string>((resolve) => socket.once("data", (c: Buffer) => resolve(c.toString())));
  socket.write(text);
  return reply;
}

/** The serial number of the certificate the server presents to a fresh connection. */
function presentedSerial(port: number, client: { cert: string; key: string; ca: string }): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: "127.0.0.1", port, ...client, checkServerIdentity: () => undefined }, () => {
      resolve(socket.getPeerCertificate().serialNumber);
      socket.destroy();
    });
    socket.on("error", reject);
  });
}

describe("proxy/reload", function () {
  let mesh: TestMesh;
  let backend: Backend;
  let clientCreds: { cert: string; key: string; ca: string };

  before(async function () {
    mesh = await testMesh();
    backend = await startBackend();
    const web = await mesh.leaf("shop", "web");
    clientCreds = { cert: web.chainPem, key: web.keyPem, ca: mesh.bundlePem };
  });
  afterEach(stopAllProxies);
  after(async function () {
    await backend.close();
    removeTmpDirs();
  });

  it("rotates the leaf mid-stream: the open connection survives, the next one gets the new certificate", async function () {
    const first = await mesh.leaf("shop", "api");
    const server = await startTestProxy({ leaf: first, bundlePem: mesh.bundlePem, workload: workload(SERVER_ID), inbound: [{ host: "127.0.0.1", port: 0, targetPort: backend.port }] });
    const port = server.proxy.inboundPorts[0];
    const open = tls.connect({ host: "127.0.0.1", port, ...clientCreds, checkServerIdentity: () => undefined });
    await new Promise((resolve) => open.once("secureConnect", resolve));
    assert.equal(open.getPeerCertificate().serialNumber, first.cert.serialNumber.toUpperCase());
    assert.equal(await echoOnce(open as unknown as net.Socket, "before"), "before");

    const second = await mesh.leaf("shop", "api");
    kubeletWrite(server.identityDir, identityFilesFor(second, mesh.bundlePem));
    await waitFor(() => server.logs.some((l) => l.msg === "identity reloaded"), 5000, "identity reload");

    assert.equal(await echoOnce(open as unknown as net.Socket, "after"), "after", "the open connection survives");
    assert.equal(await presentedSerial(port, clientCreds), second.cert.serialNumber.toUpperCase(), "the next connection presents the new leaf");
    open.destroy();
  });

  it("never resumes a TLS session, before or after a trust-bundle change (#26)", async function () {
    const leaf = await mesh.leaf("shop", "api");
    const server = await startTestProxy({ leaf, bundlePem: mesh.bundlePem, workload: workload(SERVER_ID), inbound: [{ host: "127.0.0.1", port: 0, targetPort: backend.port }] });
    const port = server.proxy.inboundPorts[0];
    const attempt = (session?: Buffer) =>
      new Promise<{ reused: boolean; session?: Buffer }>((resolve, reject) => {
        let ticket: Buffer | undefined;
        let reused = false;
        const socket = tls.connect({ host: "127.0.0.1", port, ...clientCreds, session, checkServerIdentity: () => undefined });
        socket.on("session", (s: Buffer) => (ticket = s));
        socket.once("secureConnect", () => {
          reused = socket.isSessionReused();
          socket.end("x");
        });
        socket.on("data", () => undefined);
        socket.once("close", () => resolve({ reused, session: ticket }));
        socket.once("error", reject);
      });
    const first = await attempt();
    assert.equal(first.reused, false);
    assert.equal((await attempt(first.session)).reused, false, "no resumption even while nothing changed");
    const otherRoot = (await createTestMesh(TD, "next")).bundlePem;
    kubeletWrite(server.identityDir, identityFilesFor(leaf, mesh.bundlePem + otherRoot));
    await waitFor(() => server.logs.some((l) => l.msg === "identity reloaded"), 5000, "bundle reload");
    assert.equal((await attempt(first.session)).reused, false, "a session from before the bundle change is not honoured");
    assert.equal((await tlsAttempt(port, clientCreds, "fresh")).received.toString(), "fresh");
  });

  it("logs a warning when this process's OpenSSL sends session tickets (node started without proxy/openssl.cnf)", async function () {
    const server = await startTestProxy({ leaf: await mesh.leaf("shop", "api"), bundlePem: mesh.bundlePem, workload: workload(SERVER_ID) });
    const perHandshake = await ticketsPerHandshake(server.proxy.ctx.identity!.context);
    await sleep(50);
    const warning = server.logs.find((l) => l.msg === "TLS session tickets are on");
    if (perHandshake === 0) assert.equal(warning, undefined);
    else assert.equal(warning?.perHandshake, perHandshake);
  });

  it("rejects a corrupt new file and keeps serving the old identity", async function () {
    const leaf = await mesh.leaf("shop", "api");
    const server = await startTestProxy({ leaf, bundlePem: mesh.bundlePem, workload: workload(SERVER_ID), inbound: [{ host: "127.0.0.1", port: 0, targetPort: backend.port }] });
    const port = server.proxy.inboundPorts[0];
    kubeletWrite(server.identityDir, { ...identityFilesFor(leaf, mesh.bundlePem), "tls.crt": "-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n" });
    await waitFor(() => server.logs.some((l) => l.msg === "identity reload rejected, keeping the previous identity"), 5000, "rejection");
    const metrics = await adminGet(server.proxy.adminPort, "/metrics");
    assert.match(metrics.body, /mesh_proxy_reloads_total\{kind="identity",outcome="rejected"\} 1/);
    assert.equal(await presentedSerial(port, clientCreds), leaf.cert.serialNumber.toUpperCase());
    assert.equal((await tlsAttempt(port, clientCreds, "still")).received.toString(), "still");
    assert.equal((await adminGet(server.proxy.adminPort, "/readyz")).status, 200);
  });

  it("closes connections that a tightened mode no longer allows, keeps the rest (#5), and rejects broken config", async function () {
    const server = await startTestProxy({
      leaf: await mesh.leaf("shop", "api"),
      bundlePem: mesh.bundlePem,
      workload: workload(SERVER_ID, { inbound: { defaultMode: "permissive", ports: [] } }),
      inbound: [{ host: "127.0.0.1", port: 0, targetPort: backend.port }],
    });
    const port = server.proxy.inboundPorts[0];
    const plain = await connect(port);
    assert.equal(await echoOnce(plain, "plain"), "plain");
    const meshed = tls.connect({ host: "127.0.0.1", port, ...clientCreds, checkServerIdentity: () => undefined });
    await new Promise((resolve) => meshed.once("secureConnect", resolve));
    assert.equal(await echoOnce(meshed as unknown as net.Socket, "meshed"), "meshed");

    const plainClosed = new Promise((resolve) => plain.once("end", resolve));
    kubeletWrite(server.configDir, {
      "workload.json": stableStringify(workload(SERVER_ID, { inbound: { defaultMode: "strict", ports: [] } })),
      "directory.json": stableStringify({ version: 1, services: [] }),
    });
    await plainClosed;
    assert.equal(await echoOnce(meshed as unknown as net.Socket, "still meshed"), "still meshed");
    assert.equal((await rawAttempt(port, Buffer.from("new plaintext"))).received.length, 0);
    assert.ok(server.refusals("plaintext_on_strict").length >= 1);

    kubeletWrite(server.configDir, { "workload.json": "{ not json", "directory.json": "{}" });
    await waitFor(() => server.logs.some((l) => l.msg === "config reload rejected, keeping the previous config"), 5000, "config rejection");
    assert.equal(await echoOnce(meshed as unknown as net.Socket, "old config"), "old config");
    meshed.destroy();
  });

  it("proxy.json: applies a listener's new pinned mode on reload (closing what it no longer allows) and refuses, naming the restart, a change to the listeners themselves", async function () {
    const dir = tmpDir();
    kubeletWrite(path.join(dir, "identity"), identityFilesFor(await mesh.leaf("shop", "api"), mesh.bundlePem));
    const [port, adminPort] = [await freePort(), await freePort()];
    const file = path.join(dir, "proxy.json");
    const write = (listener: object) => {
      const doc = { version: 1, identity: "./identity", workload: workload(SERVER_ID), admin: { host: "127.0.0.1", port: adminPort }, listeners: { inbound: [listener] } };
      fs.writeFileSync(`${file}.tmp`, JSON.stringify(doc));
      fs.renameSync(`${file}.tmp`, file);
    };
    const pinned = (mode: string) => ({ host: "127.0.0.1", port, targetPort: backend.port, mode });
    write(pinned("disabled"));
    const server = await startFileProxy(file);
    const plain = await connect(port);
    assert.equal(await echoOnce(plain, "plain"), "plain", "disabled: plaintext passes");

    const plainClosed = new Promise((resolve) => plain.once("end", resolve));
    write(pinned("strict"));
    await waitFor(() => server.logs.some((l) => l.msg === "config reloaded"), 5000, "config reload");
    assert.equal((await rawAttempt(port, Buffer.from("new plaintext"))).received.length, 0, "strict now: new plaintext refused");
    assert.equal(server.refusals("plaintext_on_strict").length, 1);
    await Promise.race([plainClosed, sleep(2000).then(() => assert.fail("the open plaintext connection was not closed"))]);
    assert.equal((await tlsAttempt(port, clientCreds, "meshed")).received.toString(), "meshed");

    // The listener's target is bound at start: a reload cannot move it, so it is refused as a whole.
    write({ ...pinned("disabled"), targetPort: backend.port + 1 });
    const rejected = await waitFor(() => server.logs.find((l) => l.msg === "config reload rejected, keeping the previous config"), 5000, "rejection");
    assert.match(String(rejected.error), /restart/);
    assert.match((await adminGet(server.proxy.adminPort, "/metrics")).body, /mesh_proxy_reloads_total\{kind="config",outcome="rejected"\} 1/);
    assert.equal((await rawAttempt(port, Buffer.from("still strict"))).received.length, 0, "the previous config (strict) keeps serving");
    plain.destroy();
  });

  it("is not ready and refuses TLS until an identity is loaded (#32), then becomes ready", async function () {
    const server = await startTestProxy({ bundlePem: mesh.bundlePem, workload: workload(SERVER_ID), inbound: [{ host: "127.0.0.1", port: 0, targetPort: backend.port }] });
    const admin = server.proxy.adminPort;
    assert.equal((await adminGet(admin, "/healthz")).status, 200);
    const notReady = await adminGet(admin, "/readyz");
    assert.equal(notReady.status, 503);
    assert.match(notReady.body, /no identity/);
    const accepted = backend.accepted;
    await tlsAttempt(server.proxy.inboundPorts[0], clientCreds);
    assert.equal(backend.accepted, accepted);
    assert.equal(server.refusals("no_identity").length, 1);

    kubeletWrite(server.identityDir, identityFilesFor(await mesh.leaf("shop", "api"), mesh.bundlePem));
    await waitFor(() => server.proxy.ctx.identity, 5000, "identity load");
    assert.equal((await adminGet(admin, "/readyz")).status, 200);
    assert.equal((await tlsAttempt(server.proxy.inboundPorts[0], clientCreds, "ready")).received.toString(), "ready");
  });

  it("exposes the metrics and forwards rewritten kubelet probes to the app", async function () {
    const seen: http.IncomingHttpHeaders[] = [];
    const app = http.createServer((req, res) => {
      seen.push(req.headers);
      res.statusCode = req.url === "/healthy" ? 204 : 500;
      res.end();
    });
    await new Promise<void>((resolve) => app.listen(0, "127.0.0.1", resolve));
    const appPort = (app.address() as net.AddressInfo).port;
    const server = await startTestProxy({
      leaf: await mesh.leaf("shop", "api"),
      bundlePem: mesh.bundlePem,
      workload: workload(SERVER_ID, {
        probes: [
          { path: "/app-health/api/livez", port: appPort, targetPath: "/healthy", headers: [{ name: "X-Probe-Token", value: "s3cret" }] },
          { path: "/app-health/api/readyz", port: appPort, targetPath: "/broken" },
        ],
      }),
      inbound: [{ host: "127.0.0.1", port: 0, targetPort: backend.port }],
    });
    const admin = server.proxy.adminPort;
    await tlsAttempt(server.proxy.inboundPorts[0], clientCreds, "count me");
    await rawAttempt(server.proxy.inboundPorts[0], Buffer.from("plaintext"));
    const { status, body } = await adminGet(admin, "/metrics");
    assert.equal(status, 200);
    for (const name of [
      'mesh_proxy_connections_total{direction="inbound",mode="strict-mtls",outcome="forwarded"} 1',
      'mesh_proxy_refusals_total{direction="inbound",reason="plaintext_on_strict"} 1',
      'mesh_proxy_bytes_total{direction="inbound",flow="to_app"} 8',
      "mesh_proxy_tls_handshake_seconds_count",
      "mesh_proxy_certificate_expiry_seconds",
      "mesh_proxy_active_connections",
    ]) {
      assert.ok(body.includes(name), `metrics include ${name}`);
    }
    assert.equal((await adminGet(admin, "/app-health/api/livez")).status, 204);
    // The app gets the probe's httpHeaders (from workload.json) and kubelet's User-Agent, never the caller's others.
    assert.equal((await adminGet(admin, "/app-health/api/livez", { authorization: "Bearer stolen", "user-agent": "kube-probe/1.31" })).status, 204);
    assert.equal(seen.at(-1)?.["x-probe-token"], "s3cret");
    assert.equal(seen.at(-1)?.["user-agent"], "kube-probe/1.31");
    assert.equal(seen.at(-1)?.authorization, undefined);
    assert.equal((await adminGet(admin, "/app-health/api/readyz")).status, 500);
    assert.equal((await adminGet(admin, "/app-health/api/startupz")).status, 404);
    app.close();
  });

  it("refuses connections past maxConnections while existing ones keep working (#33)", async function () {
    const server = await startTestProxy({
      leaf: await mesh.leaf("shop", "api"),
      bundlePem: mesh.bundlePem,
      workload: workload(SERVER_ID, { inbound: { defaultMode: "disabled", ports: [] }, limits: { maxConnections: 5 } }),
      inbound: [{ host: "127.0.0.1", port: 0, targetPort: backend.port }],
    });
    const port = server.proxy.inboundPorts[0];
    const held = await Promise.all(Array.from({ length: 5 }, () => connect(port)));
    for (const s of held) assert.equal(await echoOnce(s, "held"), "held");
    const excess = await rawAttempt(port, Buffer.from("one too many"));
    assert.equal(excess.received.length, 0);
    assert.equal(server.refusals("max_connections").length, 1);
    assert.equal(await echoOnce(held[0], "fine"), "fine");
    for (const s of held) s.destroy();
  });

  it("closes a connection idle in both directions for idleTimeoutMs", async function () {
    const server = await startTestProxy({
      leaf: await mesh.leaf("shop", "api"),
      bundlePem: mesh.bundlePem,
      workload: workload(SERVER_ID, { inbound: { defaultMode: "disabled", ports: [] }, limits: { idleTimeoutMs: 300 } }),
      inbound: [{ host: "127.0.0.1", port: 0, targetPort: backend.port }],
    });
    const socket = await connect(server.proxy.inboundPorts[0]);
    assert.equal(await echoOnce(socket, "active"), "active");
    const started = Date.now();
    await new Promise((resolve) => socket.once("end", resolve));
    const idle = Date.now() - started;
    assert.ok(idle >= 250 && idle < 2000, `closed after ${idle} ms idle`);
    socket.destroy();
  });

  it("arms TCP keepalive on accepted connections, so a vanished peer is freed (#29)", async function () {
    const server = await startTestProxy({
      leaf: await mesh.leaf("shop", "api"),
      bundlePem: mesh.bundlePem,
      workload: workload(SERVER_ID, { inbound: { defaultMode: "disabled", ports: [] } }),
      inbound: [{ host: "127.0.0.1", port: 0, targetPort: backend.port }],
    });
    const port = server.proxy.inboundPorts[0];
    const socket = await connect(port);
    assert.equal(await echoOnce(socket, "alive"), "alive");
    const ss = spawnSync("ss", ["-tnoH", "state", "established", `( sport = :${port} )`], { encoding: "utf8" });
    assert.equal(ss.status, 0, ss.stderr);
    assert.match(ss.stdout, /timer:\(keepalive,/, ss.stdout);
    socket.destroy();
  });

  it("drains on shutdown: stops accepting, lets open connections finish, then stops", async function () {
    const server = await startTestProxy({
      leaf: await mesh.leaf("shop", "api"),
      bundlePem: mesh.bundlePem,
      workload: workload(SERVER_ID, { inbound: { defaultMode: "disabled", ports: [] } }),
      inbound: [{ host: "127.0.0.1", port: 0, targetPort: backend.port }],
    });
    const port = server.proxy.inboundPorts[0];
    const open = await connect(port);
    const stopped = server.proxy.shutdown(5000);
    await sleep(50);
    await assert.rejects(connect(port), /ECONNREFUSED/);
    assert.equal(await echoOnce(open, "in flight"), "in flight");
    let done = false;
    void stopped.then(() => (done = true));
    await sleep(100);
    assert.equal(done, false, "still draining while a connection is open");
    open.end();
    const result = await stopped;
    assert.equal(result.leftOpen, 0);
  });
});
