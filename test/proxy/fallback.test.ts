// Migration race: during disabled → permissive, kubelet refreshes each pod's config at its own
// time, so a client proxy may already originate mTLS while the server's proxy still forwards
// everything to its app as plaintext. For a few minutes after such a change, on that permissive
// port only, the client sends plaintext instead of failing. A steady permissive port, a strict
// port, or a real TLS server that refuses us: it fails closed.
import { strict as assert } from "assert";
import * as http from "http";
import * as net from "net";
import { TRANSPORTS } from "../../proxy/config";
import { Refusal, serverSpokeNoTls } from "../../proxy/handshake";
import { Mode } from "../../proxy/wellknown";
import { stableStringify } from "../../proxy/config";
import {
  Backend, CLIENT_ID, exchange, kubeletWrite, removeTmpDirs, SERVER_ID, startBackend, startTestProxy, stopAllProxies, TD, TestProxy, testMesh, waitFor,
  workload,
} from "./support";

const REQUEST = "GET / HTTP/1.1\r\nHost: api\r\nConnection: close\r\n\r\n";

/** An app behind a proxy that still runs "disabled": it gets the ClientHello as is. */
async function httpApp(): Promise<{ port: number; requests: () => number; close: () => Promise<void> }> {
  let requests = 0;
  const server = http.createServer((_req, res) => {
    requests++;
    res.end("hello from api");
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    requests: () => requests,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

describe("proxy/outbound plaintext fallback (migration race)", function () {
  it("counts only 'the server does not speak TLS' as a reason to fall back", function () {
    assert.ok(serverSpokeNoTls(new Refusal("handshake_failed", "ERR_SSL_WRONG_VERSION_NUMBER: wrong version number")));
    assert.ok(serverSpokeNoTls(new Refusal("handshake_failed", "ERR_SSL_PACKET_LENGTH_TOO_LONG: packet length too long")));
    assert.ok(!serverSpokeNoTls(new Refusal("handshake_eof", "closed during the handshake")), "a refusing server proxy just closes");
    assert.ok(!serverSpokeNoTls(new Refusal("handshake_failed", "ECONNRESET: Client network socket disconnected")));
    assert.ok(!serverSpokeNoTls(new Refusal("handshake_failed", "ERR_SSL_TLSV1_ALERT_UNKNOWN_CA: alert unknown ca")));
    assert.ok(!serverSpokeNoTls(new Refusal("server_identity_mismatch", "server presented spiffe://x/y")));
    assert.ok(!serverSpokeNoTls(new Refusal("handshake_timeout", "no handshake")));
    assert.ok(!serverSpokeNoTls(new Refusal("upstream_unavailable", "ECONNREFUSED")));
  });

  for (const transport of TRANSPORTS) {
    describe(`${transport}`, function () {
      let app: Awaited<ReturnType<typeof httpApp>>;
      let backend: Backend;
      let impostor: TestProxy;
      const clients: Partial<Record<"migrating" | "steady" | "strict", TestProxy>> = {};

      before(async function () {
        const mesh = await testMesh();
        app = await httpApp();
        backend = await startBackend();
        // A real server proxy, but with another identity than the directory expects.
        impostor = await startTestProxy({
          leaf: await mesh.leaf("shop", "impostor"),
          bundlePem: mesh.bundlePem,
          workload: workload(`spiffe://${TD}/ns/shop/sa/impostor`),
          inbound: [{ host: "127.0.0.1", port: 0, targetPort: backend.port }],
        });
        const impostorPort = impostor.proxy.inboundPorts[0];
        const directory = (mode: Mode) => ({
          version: 1 as const,
          services: [
            { namespace: "shop", name: "api", spiffeId: SERVER_ID, addresses: ["127.0.0.1"], ports: [{ port: app.port, targetPort: app.port, mode }, { port: impostorPort, targetPort: backend.port, mode }] },
          ],
        });
        const start: Record<keyof typeof clients, Mode> = { migrating: "disabled", steady: "permissive", strict: "strict" };
        for (const [name, mode] of Object.entries(start) as [keyof typeof clients, Mode][]) {
          let next = 0;
          clients[name] = await startTestProxy({
            leaf: await mesh.leaf("shop", "web"),
            bundlePem: mesh.bundlePem,
            workload: workload(CLIENT_ID),
            directory: directory(mode),
            outbound: [{ host: "127.0.0.1", port: 0 }],
            transport,
            // Odd connections go to the plaintext app, even ones to the impostor.
            originalDestination: () => ({ address: "127.0.0.1", port: next++ % 2 === 0 ? app.port : impostorPort }),
          });
        }
        // The migrating client's directory flips disabled → permissive (the server's has not yet).
        const migrating = clients.migrating!;
        kubeletWrite(migrating.configDir, { "workload.json": stableStringify(workload(CLIENT_ID)), "directory.json": stableStringify(directory("permissive")) });
        await waitFor(() => migrating.logs.some((l) => l.msg === "config reloaded"), 5000, "directory reload");
      });
      after(async function () {
        await stopAllProxies();
        await app.close();
        await backend.close();
        removeTmpDirs();
      });

      it("just turned permissive: a server that answers the ClientHello in plaintext gets the request in plaintext, with a warn line", async function () {
        const client = clients.migrating!;
        const reply = (await exchange(client.proxy.outboundPorts[0], REQUEST)).toString();
        assert.match(reply, /^HTTP\/1\.1 200 OK[\s\S]*hello from api$/);
        assert.equal(app.requests(), 1);
        const line = client.logs.find((l) => l.msg === "plaintext fallback");
        assert.ok(line, "a plaintext fallback log line");
        assert.equal(line.level, "warn");
      });

      it("just turned permissive: a TLS server with the wrong SPIFFE ID is still refused, no fallback, no app byte", async function () {
        const client = clients.migrating!;
        const before = client.logs.filter((l) => l.msg === "plaintext fallback").length;
        const reply = await exchange(client.proxy.outboundPorts[0], REQUEST);
        assert.equal(reply.length, 0);
        assert.equal(client.refusals("server_identity_mismatch").length, 1);
        assert.equal(client.logs.filter((l) => l.msg === "plaintext fallback").length, before);
        assert.equal(backend.bytesReceived, 0);
      });

      it("permissive with no recent change: the same plaintext server is refused (fails closed)", async function () {
        const client = clients.steady!;
        const requestsBefore = app.requests();
        assert.equal((await exchange(client.proxy.outboundPorts[0], REQUEST)).length, 0);
        assert.equal(client.refusals("handshake_failed").length, 1);
        assert.ok(!client.logs.some((l) => l.msg === "plaintext fallback"));
        assert.equal(app.requests(), requestsBefore);
      });

      it("strict: the same plaintext server is refused (fails closed)", async function () {
        const client = clients.strict!;
        const requestsBefore = app.requests();
        const reply = await exchange(client.proxy.outboundPorts[0], REQUEST);
        assert.equal(reply.length, 0);
        assert.equal(client.refusals("handshake_failed").length, 1);
        assert.ok(!client.logs.some((l) => l.msg === "plaintext fallback"));
        assert.equal(app.requests(), requestsBefore);
      });
    });
  }
});
