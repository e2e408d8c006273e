// A client proxy and a server proxy in explicit-listener mode, for both transports: the basic
// round trip, secure naming, integrity, half-close and many concurrent connections.
import { strict as assert } from "assert";
import * as crypto from "crypto";
import { TRANSPORTS } from "../../proxy/config";
import {
  Backend, CLIENT_ID, collect, connect, exchange, removeTmpDirs, SERVER_ID, sha256, startBackend, startTestProxy,
  stopAllProxies, TD, TestProxy, testMesh, workload,
} from "./support";

for (const transport of TRANSPORTS) {
  describe(`proxy/pair (${transport})`, function () {
    let backend: Backend;
    let server: TestProxy;
    let client: TestProxy;
    let wrongName: TestProxy;

    before(async function () {
      const mesh = await testMesh();
      backend = await startBackend();
      server = await startTestProxy({
        leaf: await mesh.leaf("shop", "api"),
        bundlePem: mesh.bundlePem,
        workload: workload(SERVER_ID),
        inbound: [{ host: "127.0.0.1", port: 0, targetPort: backend.port }],
      });
      const route = (spiffeId: string) => ({ host: "127.0.0.1", port: server.proxy.inboundPorts[0], spiffeId, targetPort: backend.port });
      client = await startTestProxy({
        leaf: await mesh.leaf("shop", "web"),
        bundlePem: mesh.bundlePem,
        workload: workload(CLIENT_ID),
        outbound: [
          { host: "127.0.0.1", port: 0, route: route(SERVER_ID) },
          { host: "127.0.0.1", port: 0, route: route(`spiffe://${TD}/ns/shop/sa/other`) },
        ],
        transport,
      });
      wrongName = client;
    });
    after(async function () {
      await stopAllProxies();
      await backend.close();
      removeTmpDirs();
    });

    it("forwards a round trip through mTLS", async function () {
      const reply = await exchange(client.proxy.outboundPorts[0], "hello mesh");
      assert.equal(reply.toString(), "hello mesh");
    });

    it("aborts before any app byte when the server presents another SPIFFE ID (secure naming)", async function () {
      const before = backend.accepted;
      const bytesBefore = backend.bytesReceived;
      const reply = await exchange(wrongName.proxy.outboundPorts[1], "secret");
      assert.equal(reply.length, 0);
      assert.equal(backend.accepted, before);
      assert.equal(backend.bytesReceived, bytesBefore);
      const refusal = client.refusals("server_identity_mismatch").at(-1);
      assert.ok(refusal, "a refusal log line with the reason");
    });

    it("keeps 100 MB intact in each direction", async function () {
      this.timeout(60_000);
      const size = 100 * 1024 * 1024;
      const payload = crypto.randomBytes(size);
      const reply = await exchange(client.proxy.outboundPorts[0], payload);
      assert.equal(reply.length, size);
      assert.equal(sha256(reply), sha256(payload));
    });

    it("forwards half-close: the client shuts its write side and still reads the whole reply", async function () {
      const socket = await connect(client.proxy.outboundPorts[0]);
      const reply = await collect(socket, "half-closed request");
      assert.equal(reply.toString(), "half-closed request");
    });

    it("recovers after the server proxy restarts (pooled sessions are re-established)", async function () {
      const mesh = await testMesh();
      assert.equal((await exchange(client.proxy.outboundPorts[0], "before restart")).toString(), "before restart");
      const port = server.proxy.inboundPorts[0];
      await server.stop();
      assert.equal((await exchange(client.proxy.outboundPorts[0], "while down")).length, 0);
      server = await startTestProxy({
        leaf: await mesh.leaf("shop", "api"),
        bundlePem: mesh.bundlePem,
        workload: workload(SERVER_ID),
        inbound: [{ host: "127.0.0.1", port, targetPort: backend.port }],
      });
      assert.equal((await exchange(client.proxy.outboundPorts[0], "after restart")).toString(), "after restart");
    });

    it("carries 1,000 concurrent connections", async function () {
      this.timeout(60_000);
      const sockets = await Promise.all(Array.from({ length: 1000 }, () => connect(client.proxy.outboundPorts[0])));
      const replies = await Promise.all(sockets.map((socket, i) => collect(socket, `conn-${i}`)));
      replies.forEach((reply, i) => assert.equal(reply.toString(), `conn-${i}`));
    });
  });
}
