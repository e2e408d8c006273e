// The pooled HTTP/2 CONNECT transport from the server's side, driven by a hand-made tunnel
// client: per-stream authorization, no open relay, bad requests; and the transparent listeners
// (original destination injected) with directory-based secure naming.
import { strict as assert } from "assert";
import * as http2 from "http2";
import * as tls from "tls";
import { stableStringify } from "../../proxy/config";
import { createTestMesh, TestMesh } from "../support/pki";
import {
  Backend, CLIENT_ID, exchange, identityFilesFor, kubeletWrite, removeTmpDirs, SERVER_ID, sleep, startBackend, startTestProxy, stopAllProxies, TD,
  TestProxy, testMesh, waitFor, workload,
} from "./support";

async function tunnelSession(port: number, creds: { cert: string; key: string; ca: string }): Promise<http2.ClientHttp2Session> {
  const socket = tls.connect({ host: "127.0.0.1", port, ...creds, ALPNProtocols: ["mesh-h2"], checkServerIdentity: () => undefined });
  await new Promise((resolve, reject) => socket.once("secureConnect", resolve).once("error", reject));
  const session = http2.connect(`https://127.0.0.1:${port}`, { createConnection: () => socket });
  session.on("error", () => undefined);
  return session;
}

function connectStream(session: http2.ClientHttp2Session, authority: string, method = "CONNECT"): Promise<{ status: number; stream: http2.ClientHttp2Stream }> {
  const headers: http2.OutgoingHttpHeaders = { ":method": method, ":authority": authority };
  if (method !== "CONNECT") Object.assign(headers, { ":path": "/", ":scheme": "https" });
  const stream = session.request(headers);
  stream.on("error", () => undefined);
  return new Promise((resolve) => stream.once("response", (h) => resolve({ status: Number(h[":status"]), stream })));
}

function streamEcho(stream: http2.ClientHttp2Stream, text: string): Promise<string> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    stream.on("data", (c: Buffer) => chunks.push(c));
    stream.once("close", () => resolve(Buffer.concat(chunks).toString()));
    stream.end(text);
  });
}

describe("proxy/tunnel", function () {
  let mesh: TestMesh;
  let backend: Backend;
  let admin: Backend;
  let other: Backend;
  let server: TestProxy;
  let creds: { cert: string; key: string; ca: string };

  before(async function () {
    mesh = await testMesh();
    backend = await startBackend();
    other = await startBackend(); // Declared on the workload, but web may not reach it.
    admin = await startBackend(); // Anything else on localhost: never reachable through a tunnel.
    server = await startTestProxy({
      leaf: await mesh.leaf("shop", "api"),
      bundlePem: mesh.bundlePem,
      workload: workload(SERVER_ID, {
        inbound: { defaultMode: "strict", ports: [{ port: other.port, mode: "strict" }] },
        authorization: { rules: [{ ports: [backend.port], principals: [CLIENT_ID] }] },
      }),
      inbound: [{ host: "127.0.0.1", port: 0, targetPort: backend.port }],
    });
    const web = await mesh.leaf("shop", "web");
    creds = { cert: web.chainPem, key: web.keyPem, ca: mesh.bundlePem };
  });
  after(async function () {
    await stopAllProxies();
    await Promise.all([backend.close(), other.close(), admin.close()]);
    removeTmpDirs();
  });

  it("authorizes each stream on its own port: allowed, denied, undeclared, proxy port, bad method", async function () {
    const port = server.proxy.inboundPorts[0];
    const session = await tunnelSession(port, creds);
    const ok = await connectStream(session, `127.0.0.1:${backend.port}`);
    assert.equal(ok.status, 200);
    assert.equal(await streamEcho(ok.stream, "via tunnel"), "via tunnel");
    // The listener's own port names its target port, as the explicit client does.
    const byListener = await connectStream(session, `127.0.0.1:${port}`);
    assert.equal(byListener.status, 200);
    byListener.stream.close();

    assert.equal((await connectStream(session, `127.0.0.1:${other.port}`)).status, 403);
    assert.equal(server.refusals("authorization_denied").length, 1);
    assert.equal((await connectStream(session, `127.0.0.1:${admin.port}`)).status, 403);
    assert.equal((await connectStream(session, `127.0.0.1:15021`)).status, 403);
    assert.equal(server.refusals("tunnel_target_not_allowed").length, 2);
    assert.equal((await connectStream(session, `127.0.0.1:${backend.port}`, "GET")).status, 405);
    assert.equal((await connectStream(session, `nonsense`)).status, 400);
    await sleep(30);
    assert.equal(other.accepted, 0, "the denied port saw no connection");
    assert.equal(admin.accepted, 0, "no open relay");
    session.close();
  });

  it("sends GOAWAY on pooled sessions after a trust-bundle change, letting their open streams finish", async function () {
    const port = server.proxy.inboundPorts[0];
    const session = await tunnelSession(port, creds);
    const { status, stream } = await connectStream(session, `127.0.0.1:${backend.port}`);
    assert.equal(status, 200);
    const goaway = new Promise((resolve) => session.once("goaway", resolve));
    const next = (await createTestMesh(TD, "next")).bundlePem;
    kubeletWrite(server.identityDir, { ...identityFilesFor(await mesh.leaf("shop", "api"), mesh.bundlePem + next) });
    await goaway;
    assert.equal(await streamEcho(stream, "finishes"), "finishes");
    session.close();
  });

  it("ends a pooled session when the peer certificate that authenticated it expires", async function () {
    const port = server.proxy.inboundPorts[0];
    const shortLived = await mesh.leaf("shop", "web", { notAfter: new Date(Date.now() + 1500) });
    const session = await tunnelSession(port, { cert: shortLived.chainPem, key: shortLived.keyPem, ca: mesh.bundlePem });
    const { status } = await connectStream(session, `127.0.0.1:${backend.port}`);
    assert.equal(status, 200);
    const started = Date.now();
    await new Promise((resolve) => session.once("goaway", resolve));
    assert.ok(Date.now() - started < 3000);
    session.destroy();
  });

  it("closes open streams whose peer a policy edit no longer allows (#5)", async function () {
    const port = server.proxy.inboundPorts[0];
    const session = await tunnelSession(port, creds);
    const { status, stream } = await connectStream(session, `127.0.0.1:${backend.port}`);
    assert.equal(status, 200);
    const closed = new Promise((resolve) => stream.once("close", resolve));
    kubeletWrite(server.configDir, {
      "workload.json": stableStringify(workload(SERVER_ID, { authorization: { rules: [{ principals: [`spiffe://${TD}/ns/shop/sa/someone-else`] }] } })),
      "directory.json": stableStringify({ version: 1, services: [] }),
    });
    await closed;
    await waitFor(() => server.logs.some((l) => l.msg === "config reloaded"), 2000, "reload");
    session.destroy();
  });

  describe("transparent listeners (original destination injected)", function () {
    let tserver: TestProxy;
    let tclient: TestProxy;
    let plainTarget: Backend;

    before(async function () {
      plainTarget = await startBackend();
      // The server proxy's transparent inbound: SO_ORIGINAL_DST would say "the app port".
      tserver = await startTestProxy({
        leaf: await mesh.leaf("shop", "api"),
        bundlePem: mesh.bundlePem,
        workload: workload(SERVER_ID),
        inbound: [{ host: "127.0.0.1", port: 0 }],
        originalDestination: () => ({ address: "127.0.0.1", port: backend.port }),
      });
      const inbound = tserver.proxy.inboundPorts[0];
      const destinations = [
        { address: "127.0.0.1", port: inbound }, // a meshed service (its "ClusterIP:port")
        { address: "127.0.0.1", port: plainTarget.port }, // not in the directory: passthrough
        undefined, // no conntrack entry
        { address: "10.0.0.1", port: 15006 }, // the proxy's own port: never loop
      ];
      let next = 0;
      tclient = await startTestProxy({
        leaf: await mesh.leaf("shop", "web"),
        bundlePem: mesh.bundlePem,
        workload: workload(CLIENT_ID),
        directory: {
          version: 1,
          services: [{ namespace: "shop", name: "api", spiffeId: SERVER_ID, addresses: ["127.0.0.1"], ports: [{ port: inbound, targetPort: backend.port, mode: "strict" }] }],
        },
        outbound: [{ host: "127.0.0.1", port: 0 }],
        transport: "h2",
        originalDestination: () => destinations[next++ % destinations.length],
      });
    });
    after(async function () {
      await plainTarget.close();
    });

    it("meshes a directory destination, passes through the rest, refuses lookups that fail or loop", async function () {
      const port = tclient.proxy.outboundPorts[0];
      assert.equal((await exchange(port, "meshed")).toString(), "meshed");
      assert.equal((await exchange(port, "plain")).toString(), "plain");
      assert.equal(plainTarget.accepted, 1);
      assert.equal((await exchange(port, "lost")).length, 0);
      assert.equal(tclient.refusals("no_original_destination").length, 1);
      assert.equal((await exchange(port, "loop")).length, 0);
      assert.equal(tclient.refusals("proxy_port").length, 1);
      assert.ok(tserver.logs.some((l) => l.msg === "proxy started"));
    });
  });
});
