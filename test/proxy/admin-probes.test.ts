// The admin port's rewritten grpc and tcpSocket probes (issue 12, item 6), against real servers on
// localhost: a @grpc/grpc-js Health service (a real gRPC implementation, so the hand-encoded
// protobuf and h2c framing are checked against someone else's), and plain TCP listeners.
import * as assert from "assert";
import * as grpc from "@grpc/grpc-js";
import * as http from "http";
import * as net from "net";
import { AddressInfo } from "net";
import { checkGrpcHealth, decodeHealthCheckResponse, encodeHealthCheckRequest, grpcFrame, grpcUnframe } from "../../proxy/admin-grpc";
import { createAdminServer } from "../../proxy/admin";
import type { Probe } from "../../proxy/config";
import type { ProxyContext } from "../../proxy/state";

const identity = (b: Buffer) => b;
const HEALTH = {
  Check: { path: "/grpc.health.v1.Health/Check", requestStream: false, responseStream: false, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity },
};

/** A Health server: `status(service)` answers a ServingStatus number, or a gRPC error code as { code }. */
async function healthServer(status: (service: string) => number | { code: grpc.status }): Promise<{ port: number; server: grpc.Server; asked: string[] }> {
  const asked: string[] = [];
  const server = new grpc.Server();
  server.addService(HEALTH, {
    Check: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
      // The request as the spec encodes it: field 1, length-delimited, the service name.
      const service = call.request.length === 0 ? "" : call.request.subarray(2, 2 + call.request[1]).toString();
      asked.push(service);
      const answer = status(service);
      if (typeof answer === "object") return callback({ code: answer.code, details: "no such service" });
      callback(null, answer === 0 ? Buffer.alloc(0) : Buffer.from([0x08, answer]));
    },
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  return { port, server, asked };
}

function adminFor(probes: Probe[]): Promise<{ get: (path: string) => Promise<{ status: number; body: string }>; close: () => void }> {
  const ctx = { config: { workload: { probes } } } as unknown as ProxyContext;
  const admin = createAdminServer(ctx, { ready: () => ({ ready: true }) });
  return new Promise((resolve) =>
    admin.listen(0, "127.0.0.1", () => {
      const port = (admin.address() as AddressInfo).port;
      const get = (path: string) =>
        new Promise<{ status: number; body: string }>((done, fail) =>
          http.get({ host: "127.0.0.1", port, path }, (res) => {
            let body = "";
            res.on("data", (c) => (body += c));
            res.on("end", () => done({ status: res.statusCode ?? 0, body }));
          }).on("error", fail),
        );
      resolve({ get, close: () => admin.close() });
    }),
  );
}

const closedPort = async () => {
  const server = net.createServer().listen(0, "127.0.0.1");
  await new Promise((r) => server.once("listening", r));
  const port = (server.address() as AddressInfo).port;
  await new Promise((r) => server.close(r));
  return port;
};

describe("proxy/admin-grpc the health protocol's bytes", () => {
  it("encodes HealthCheckRequest as the spec does (empty service = empty message)", () => {
    assert.deepStrictEqual(encodeHealthCheckRequest(""), Buffer.alloc(0));
    assert.deepStrictEqual(encodeHealthCheckRequest("foo"), Buffer.from([0x0a, 0x03, 0x66, 0x6f, 0x6f]));
    const long = "s".repeat(200);
    assert.deepStrictEqual(encodeHealthCheckRequest(long).subarray(0, 3), Buffer.from([0x0a, 0xc8, 0x01]), "a varint length");
  });

  it("decodes HealthCheckResponse: status 0 when absent, unknown fields skipped", () => {
    assert.strictEqual(decodeHealthCheckResponse(Buffer.alloc(0)), 0);
    assert.strictEqual(decodeHealthCheckResponse(Buffer.from([0x08, 0x01])), 1);
    assert.strictEqual(decodeHealthCheckResponse(Buffer.from([0x12, 0x02, 0x61, 0x62, 0x08, 0x02])), 2);
    assert.throws(() => decodeHealthCheckResponse(Buffer.from([0x08])), /truncated varint/);
  });

  it("frames and unframes one message; refuses compressed or truncated ones", () => {
    assert.deepStrictEqual(grpcFrame(Buffer.from([0x08, 0x01])), Buffer.from([0, 0, 0, 0, 2, 0x08, 0x01]));
    assert.deepStrictEqual(grpcUnframe(Buffer.from([0, 0, 0, 0, 2, 0x08, 0x01])), Buffer.from([0x08, 0x01]));
    assert.throws(() => grpcUnframe(Buffer.from([1, 0, 0, 0, 2, 0x08, 0x01])), /compressed/);
    assert.throws(() => grpcUnframe(Buffer.from([0, 0, 0, 0, 5, 0x08])), /truncated/);
  });
});

describe("proxy/admin rewritten grpc and tcpSocket probes", () => {
  it("checkGrpcHealth: SERVING passes; NOT_SERVING, UNKNOWN, an unknown service and no server fail, saying why", async () => {
    let status = 1;
    const { port, server, asked } = await healthServer((service) => (service === "" || service === "shop.Api" ? status : { code: grpc.status.NOT_FOUND }));
    try {
      const check = (service = "") => checkGrpcHealth({ authority: `http://127.0.0.1:${port}`, service, timeoutMs: 5_000 });
      assert.deepStrictEqual(await check(), { serving: true, detail: "SERVING" });
      assert.deepStrictEqual(await check("shop.Api"), { serving: true, detail: "SERVING" });
      status = 2;
      assert.deepStrictEqual(await check(), { serving: false, detail: "NOT_SERVING" });
      status = 0;
      assert.deepStrictEqual(await check(), { serving: false, detail: "UNKNOWN" });
      assert.deepStrictEqual(await check("other"), { serving: false, detail: "gRPC status 5: no such service" });
      assert.deepStrictEqual(asked, ["", "shop.Api", "", "", "other"]);
    } finally {
      server.forceShutdown();
    }
    const refused = await checkGrpcHealth({ authority: `http://127.0.0.1:${await closedPort()}`, service: "", timeoutMs: 5_000 });
    assert.strictEqual(refused.serving, false);
    assert.match(refused.detail, /ECONNREFUSED/);
  });

  it("the admin port answers a grpc probe with the app's health and a tcpSocket probe with a connect", async () => {
    let status = 1;
    const { port: grpcPort, server } = await healthServer(() => status);
    const tcp = net.createServer((s) => s.destroy()).listen(0, "127.0.0.1");
    await new Promise((r) => tcp.once("listening", r));
    const tcpPort = (tcp.address() as AddressInfo).port;
    const gone = await closedPort();
    const admin = await adminFor([
      { kind: "grpc", path: "/app-health/api/readyz", port: grpcPort },
      { kind: "tcpSocket", path: "/app-health/api/livez", port: tcpPort },
      { kind: "tcpSocket", path: "/app-health/api/startupz", port: gone },
    ]);
    try {
      assert.deepStrictEqual(await admin.get("/app-health/api/readyz"), { status: 200, body: "app health check: SERVING\n" });
      status = 2;
      assert.deepStrictEqual(await admin.get("/app-health/api/readyz"), { status: 503, body: "app health check: NOT_SERVING\n" });
      assert.deepStrictEqual(await admin.get("/app-health/api/livez"), { status: 200, body: `app port ${tcpPort} accepted a connection\n` });
      const closed = await admin.get("/app-health/api/startupz");
      assert.strictEqual(closed.status, 503);
      assert.match(closed.body, /ECONNREFUSED/);
    } finally {
      admin.close();
      tcp.close();
      server.forceShutdown();
    }
  });
});
