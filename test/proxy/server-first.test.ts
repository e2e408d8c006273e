// Opaque ports with real server-first and client-first databases: MariaDB (the server greets
// first) and PostgreSQL (the client speaks first), Debian's own servers and CLI clients. On a
// permissive opaque port a plaintext client is forwarded at once, never held for the sniff window
// (set to 6 s here, so a wait could not hide); meshed clients reach the same port through the
// server proxy's tunnel listener, with mTLS, even when their own transport is "tcp".
import { strict as assert } from "assert";
import { spawn } from "child_process";
import * as net from "net";
import { startProtocolServer, ProtocolServer, missingBinaries } from "../../bench/protocols";
import { stableStringify, WorkloadConfigInput } from "../../proxy/config";
import { MESH_ALPN } from "../../proxy/identity";
import {
  adminGet, CLIENT_ID, freePort, kubeletWrite, rawAttempt, removeTmpDirs, SERVER_ID, startTestProxy, stopAllProxies, testMesh, TestProxy,
  tlsAttempt, tmpDir, waitFor, workload,
} from "./support";

const SNIFF_MS = 6000;

interface Ran {
  code: number | null;
  out: string;
  ms: number;
}

/** A real client CLI, with a deadline well below the sniff window. */
function runClient(cmd: string, args: string[], timeoutMs = SNIFF_MS / 2): Promise<Ran> {
  return new Promise((resolve) => {
    const started = Date.now();
    const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, PGCONNECT_TIMEOUT: "10" } });
    let out = "";
    child.stdout.on("data", (c: Buffer) => (out += c.toString()));
    child.stderr.on("data", (c: Buffer) => (out += c.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ code, out, ms: Date.now() - started });
    });
  });
}

const mariadb = (port: number, sql: string) => runClient("mariadb", ["--no-defaults", "-h", "127.0.0.1", "-P", String(port), "-u", "bench", "-N", "-B", "-e", sql]);
const psql = (port: number, sql: string) => runClient("psql", ["-X", "-A", "-t", "-h", "127.0.0.1", "-p", String(port), "-U", "postgres", "-c", sql, "postgres"]);

/** Milliseconds from connect to the server's first byte (MariaDB's greeting). */
function timeToGreeting(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const socket = net.connect({ host: "127.0.0.1", port });
    socket.once("data", () => {
      resolve(Number(process.hrtime.bigint() - started) / 1e6);
      socket.destroy();
    });
    socket.once("error", reject);
    setTimeout(() => socket.destroy(new Error("no greeting")), SNIFF_MS * 2).unref();
  });
}

function metric(text: string, name: string, labels: Record<string, string>): number {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  const line = text.split("\n").find((l) => l.startsWith(`${name}{`) && want.every((w) => l.includes(w)));
  return line ? Number(line.split(" ").at(-1)) : 0;
}

describe("proxy: opaque ports with real MariaDB and PostgreSQL", function () {
  this.timeout(180_000);
  let db: { mariadb: ProtocolServer; postgres: ProtocolServer };
  let server: TestProxy;
  let client: TestProxy;
  let ports: { mariadb: number; postgres: number; tunnel: number; meshedMariadb: number; meshedPostgres: number; undeclared: number };
  let serverWorkload: (mode: "permissive" | "strict") => WorkloadConfigInput;

  before(async function () {
    for (const protocol of ["mariadb", "postgres"] as const) {
      const missing = missingBinaries(protocol);
      assert.equal(missing, undefined, `${protocol}: ${missing} (test/setup/host-packages.sh installs them)`);
    }
    const dir = tmpDir("server-first-");
    const start = async (protocol: "mariadb" | "postgres") => startProtocolServer(protocol, { dir, port: await freePort(), serverAddr: "127.0.0.1" });
    db = { mariadb: await start("mariadb"), postgres: await start("postgres") };
    const mesh = await testMesh();
    serverWorkload = (mode) => workload(SERVER_ID, {
      inbound: { defaultMode: "strict", ports: [db.mariadb.port, db.postgres.port].map((port) => ({ port, mode, opaque: true })) },
      limits: { handshakeTimeoutMs: 1500, sniffTimeoutMs: SNIFF_MS },
    });
    server = await startTestProxy({
      leaf: await mesh.leaf("shop", "api"),
      bundlePem: mesh.bundlePem,
      workload: serverWorkload("permissive"),
      inbound: [
        { host: "127.0.0.1", port: 0, targetPort: db.mariadb.port },
        { host: "127.0.0.1", port: 0, targetPort: db.postgres.port },
        { host: "127.0.0.1", port: 0, tunnel: true },
      ],
    });
    const [mariadbPort, postgresPort, tunnel] = server.proxy.inboundPorts;
    const route = (targetPort: number) => ({ host: "127.0.0.1", port: tunnel, spiffeId: SERVER_ID, targetPort, tunnelPort: tunnel });
    client = await startTestProxy({
      leaf: await mesh.leaf("shop", "web"),
      bundlePem: mesh.bundlePem,
      workload: workload(CLIENT_ID),
      // "tcp": opaque ports still go through the HTTP/2 tunnel, the only thing the tunnel port speaks.
      transport: "tcp",
      outbound: [
        { host: "127.0.0.1", port: 0, route: route(db.mariadb.port) },
        { host: "127.0.0.1", port: 0, route: route(db.postgres.port) },
        { host: "127.0.0.1", port: 0, route: route(await freePort()) },
      ],
    });
    const [meshedMariadb, meshedPostgres, undeclared] = client.proxy.outboundPorts;
    ports = { mariadb: mariadbPort, postgres: postgresPort, tunnel, meshedMariadb, meshedPostgres, undeclared };
  });
  after(async function () {
    await stopAllProxies();
    await db?.mariadb.stop();
    await db?.postgres.stop();
    removeTmpDirs();
  });

  it("forwards a plaintext MariaDB client at once on a permissive opaque port: the greeting is not held for the sniff window", async function () {
    const ran = await mariadb(ports.mariadb, "SELECT 40 + 2");
    assert.equal(ran.code, 0, ran.out);
    assert.equal(ran.out.trim(), "42");
    const ms = await timeToGreeting(ports.mariadb);
    assert.ok(ms < SNIFF_MS / 2, `greeting after ${ms.toFixed(1)} ms`);
  });

  it("forwards a plaintext PostgreSQL client at once on a permissive opaque port", async function () {
    const ran = await psql(ports.postgres, "SELECT 6 * 7");
    assert.equal(ran.code, 0, ran.out);
    assert.equal(ran.out.trim(), "42");
  });

  it("carries meshed MariaDB and PostgreSQL clients through the tunnel listener, with mTLS, on a client whose transport is tcp", async function () {
    const before = (await adminGet(server.proxy.adminPort, "/metrics")).body;
    const insert = await mariadb(ports.meshedMariadb, "INSERT INTO bench.t (v) VALUES ('meshed'); SELECT v FROM bench.t WHERE v = 'meshed' LIMIT 1");
    assert.equal(insert.code, 0, insert.out);
    assert.equal(insert.out.trim(), "meshed");
    const select = await psql(ports.meshedPostgres, "SELECT count(*) > 0 FROM pgbench_accounts");
    assert.equal(select.code, 0, select.out);
    assert.equal(select.out.trim(), "t");
    const after = (await adminGet(server.proxy.adminPort, "/metrics")).body;
    const forwarded = (text: string) => metric(text, "mesh_proxy_connections_total", { direction: "inbound", mode: "permissive-mtls", outcome: "forwarded" });
    assert.equal(forwarded(after) - forwarded(before), 2, "both arrived authenticated");
    const clientMetrics = (await adminGet(client.proxy.adminPort, "/metrics")).body;
    assert.ok(metric(clientMetrics, "mesh_proxy_connections_total", { direction: "outbound", mode: "mtls-h2", outcome: "forwarded" }) >= 2);
  });

  it("refuses what the tunnel listener does not speak: plaintext, mTLS without the HTTP/2 tunnel, a stream to an undeclared port", async function () {
    const plain = await rawAttempt(ports.tunnel, Buffer.from("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    assert.equal(plain.received.length, 0);
    await waitFor(() => server.refusals("plaintext_on_strict").some((l) => l.listener === "tunnel"), 5000, "plaintext refusal logged");

    const mesh = await testMesh();
    const leaf = await mesh.leaf("shop", "web");
    const tcp = await tlsAttempt(ports.tunnel, { cert: leaf.chainPem ?? leaf.certPem, key: leaf.keyPem, ca: mesh.bundlePem, ALPNProtocols: [MESH_ALPN.tcp] });
    assert.equal(tcp.received.length, 0);
    await waitFor(() => server.refusals("bad_tunnel_request").length > 0, 5000, "mesh-tcp refusal logged");

    const stray = await new Promise<{ received: number; closed: boolean }>((resolve) => {
      const socket = net.connect({ host: "127.0.0.1", port: ports.undeclared });
      let received = 0;
      socket.on("data", (c: Buffer) => (received += c.length));
      socket.on("error", () => undefined);
      socket.once("close", () => resolve({ received, closed: true }));
    });
    assert.equal(stray.received, 0);
    await waitFor(() => server.refusals("tunnel_target_not_allowed").length > 0, 5000, "undeclared port refused");
  });

  it("in strict, refuses plaintext on the opaque port and still admits meshed clients through the tunnel", async function () {
    kubeletWrite(server.configDir, { "workload.json": stableStringify(serverWorkload("strict")) });
    await waitFor(() => server.logs.some((l) => l.msg === "config reloaded"), 10_000, "strict config reloaded");
    const plain = await mariadb(ports.mariadb, "SELECT 1");
    assert.notEqual(plain.code, 0, "plaintext refused");
    // A MariaDB client waits for the greeting, so strict refuses it when the handshake times out.
    await waitFor(() => server.refusals("handshake_timeout").some((l) => l.mode === "strict"), 10_000, `refusal logged in strict: ${JSON.stringify(server.logs.slice(-5))}`);
    const meshed = await mariadb(ports.meshedMariadb, "SELECT 'still meshed'");
    assert.equal(meshed.code, 0, meshed.out);
    assert.equal(meshed.out.trim(), "still meshed");
  });
});
