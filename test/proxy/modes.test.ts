// The mode matrix and the bad-input catalogue against a server proxy with one explicit listener
// per mode. Every refusal asserts the invariant that matters: no upstream connection opened and
// zero bytes reached the backend, plus one log line with the reason; a long-lived good connection
// keeps working throughout.
import { strict as assert } from "assert";
import * as net from "net";
import * as tls from "tls";
import { TRANSPORTS } from "../../proxy/config";
import { createTestMesh, Eku, KeyUsage, TestMesh } from "../support/pki";
import {
  Backend, CLIENT_ID, connect, exchange, rawAttempt, removeTmpDirs, SERVER_ID, sleep, startBackend,
  startTestProxy, stopAllProxies, TD, TestProxy, testMesh, tlsAttempt, TlsAttempt, workload,
} from "./support";

// The fatal alerts (RFC 8446 §6.2) a Node client reports for a certificate refused after the handshake.
const UNKNOWN_CA = "ERR_SSL_TLSV1_ALERT_UNKNOWN_CA";
const EXPIRED = "ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED";
const CERTIFICATE_UNKNOWN = "ERR_SSL_SSLV3_ALERT_CERTIFICATE_UNKNOWN";

for (const transport of TRANSPORTS) describe(`proxy/modes (client transport ${transport})`, function () {
  let mesh: TestMesh;
  let backend: Backend;
  let greeter: Backend;
  let server: TestProxy;
  let client: TestProxy;
  let good: net.Socket;
  const port = { strict: 0, permissive: 0, disabled: 0, greeter: 0 };
  const via = { strict: 0, permissive: 0, disabled: 0 };

  before(async function () {
    mesh = await testMesh();
    backend = await startBackend();
    // A server-first protocol: it speaks before the client does (like SMTP or MySQL).
    greeter = await startBackend((socket) => {
      socket.write("220 hello\r\n");
      socket.pipe(socket);
    });
    server = await startTestProxy({
      leaf: await mesh.leaf("shop", "api"),
      bundlePem: mesh.bundlePem,
      workload: workload(SERVER_ID, {
        authorization: { rules: [{ ports: [backend.port], principals: [CLIENT_ID] }] },
      }),
      inbound: [
        { host: "127.0.0.1", port: 0, targetPort: backend.port, mode: "strict" },
        { host: "127.0.0.1", port: 0, targetPort: backend.port, mode: "permissive" },
        { host: "127.0.0.1", port: 0, targetPort: backend.port, mode: "disabled" },
      ],
    });
    [port.strict, port.permissive, port.disabled] = server.proxy.inboundPorts;
    // No authorization policy at all: plaintext is allowed on a permissive port.
    const open = await startTestProxy({
      leaf: await mesh.leaf("shop", "api"),
      bundlePem: mesh.bundlePem,
      workload: workload(SERVER_ID, { inbound: { defaultMode: "permissive", ports: [] } }),
      inbound: [{ host: "127.0.0.1", port: 0, targetPort: greeter.port }],
    });
    port.greeter = open.proxy.inboundPorts[0];
    const route = (p: number, spiffeId: string | null) => ({ host: "127.0.0.1", port: p, spiffeId, targetPort: p });
    client = await startTestProxy({
      leaf: await mesh.leaf("shop", "web"),
      bundlePem: mesh.bundlePem,
      workload: workload(CLIENT_ID),
      transport,
      outbound: [
        { host: "127.0.0.1", port: 0, route: route(port.strict, SERVER_ID) },
        { host: "127.0.0.1", port: 0, route: route(port.permissive, SERVER_ID) },
        { host: "127.0.0.1", port: 0, route: route(port.disabled, null) },
      ],
    });
    [via.strict, via.permissive, via.disabled] = client.proxy.outboundPorts;
    good = await connect(via.strict);
    good.on("error", () => undefined);
  });

  after(async function () {
    good?.destroy();
    await stopAllProxies();
    await backend.close();
    await greeter.close();
    removeTmpDirs();
  });

  async function goodStillWorks(): Promise<void> {
    const reply = new Promise<string>((resolve) => good.once("data", (c: Buffer) => resolve(c.toString())));
    good.write("ping");
    assert.equal(await reply, "ping", "the long-lived good connection still echoes");
  }

  /**
   * Runs a bad input and asserts: refused with `reasons`, nothing reached the backend; for a
   * certificate refused after the handshake, the client saw the fatal TLS `alert` (Node's code).
   */
  async function assertRefused(attempt: () => Promise<unknown>, reasons: string[], alert?: string): Promise<void> {
    const accepted = backend.accepted;
    const bytes = backend.bytesReceived;
    const logged = server.refusals().length;
    const result = await attempt();
    if (alert) assert.equal((result as TlsAttempt).error, alert, "the TLS alert the client saw");
    await sleep(30);
    assert.equal(backend.accepted, accepted, "no upstream connection opened");
    assert.equal(backend.bytesReceived, bytes, "zero bytes reached the backend");
    const refusal = server.refusals().slice(logged)[0];
    assert.ok(refusal, "a refusal log line");
    assert.ok(reasons.includes(refusal.reason as string), `reason ${refusal.reason} (detail: ${refusal.detail}) is one of ${reasons}`);
    await goodStillWorks();
  }

  const clientCert = async (opts: Parameters<TestMesh["leaf"]>[2] = {}) => {
    const leaf = await mesh.leaf("shop", "web", opts);
    return { cert: leaf.chainPem, key: leaf.keyPem, ca: mesh.bundlePem };
  };

  describe("mode matrix", function () {
    it("strict: meshed client yes, plaintext no, other CA no", async function () {
      assert.equal((await exchange(via.strict, "meshed")).toString(), "meshed");
      await assertRefused(() => rawAttempt(port.strict, Buffer.from("GET / HTTP/1.1\r\n\r\n")), ["plaintext_on_strict"]);
      const other = await createTestMesh(TD, "other");
      const stranger = await other.leaf("shop", "web");
      await assertRefused(() => tlsAttempt(port.strict, { cert: stranger.chainPem, key: stranger.keyPem, ca: mesh.bundlePem }), ["untrusted_certificate"], UNKNOWN_CA);
    });

    it("permissive: meshed client yes, plaintext is unauthenticated (a policy needing an identity denies it, #2), other CA no", async function () {
      assert.equal((await exchange(via.permissive, "meshed")).toString(), "meshed");
      // Plaintext is unauthenticated: the rule that needs web's identity does not match it (#2).
      await assertRefused(() => rawAttempt(port.permissive, Buffer.from("hello")), ["authorization_denied"]);
      const other = await createTestMesh(TD, "other");
      const stranger = await other.leaf("shop", "web");
      await assertRefused(() => tlsAttempt(port.permissive, { cert: stranger.chainPem, key: stranger.keyPem, ca: mesh.bundlePem }), ["untrusted_certificate"], UNKNOWN_CA);
    });

    it("disabled: meshed client (plaintext route) yes, plaintext yes, TLS passes through opaque (#3)", async function () {
      assert.equal((await exchange(via.disabled, "meshed")).toString(), "meshed");
      assert.equal((await exchange(port.disabled, "plain")).toString(), "plain");
      const other = await createTestMesh(TD, "other");
      const stranger = await other.leaf("shop", "web");
      const accepted = backend.accepted;
      const result = await tlsAttempt(port.disabled, { cert: stranger.chainPem, key: stranger.keyPem, ca: mesh.bundlePem });
      assert.equal(result.secure, false, "the echo backend is no TLS server");
      assert.equal(backend.accepted, accepted + 1, "the bytes went to the app unexamined");
    });

    it("permissive without a policy lets plaintext through, and a server-first protocol gets its greeting fast (#31)", async function () {
      const started = Date.now();
      const socket = await connect(port.greeter);
      const greeting = await new Promise<string>((resolve) => socket.once("data", (c: Buffer) => resolve(c.toString())));
      socket.destroy();
      assert.equal(greeting, "220 hello\r\n");
      assert.ok(Date.now() - started < 1000, `greeting after ${Date.now() - started} ms`);
    });
  });

  describe("bad-input catalogue (strict port)", function () {
    it("TLS without a client certificate (#6)", async function () {
      await assertRefused(() => tlsAttempt(port.strict, { ca: mesh.bundlePem }), ["no_client_certificate"]);
    });

    it("a leaf from another trust domain under our CA (#8)", async function () {
      const c = await clientCert({ uris: ["spiffe://other.local/ns/shop/sa/web"] });
      await assertRefused(() => tlsAttempt(port.strict, c), ["foreign_trust_domain"], CERTIFICATE_UNKNOWN);
    });

    it("expired (#9) and not yet valid (#10)", async function () {
      const now = Date.now();
      await assertRefused(
        async () => tlsAttempt(port.strict, await clientCert({ notBefore: new Date(now - 7200_000), notAfter: new Date(now - 3600_000) })),
        ["certificate_expired"],
        EXPIRED,
      );
      await assertRefused(
        async () => tlsAttempt(port.strict, await clientCert({ notBefore: new Date(now + 3600_000), notAfter: new Date(now + 7200_000) })),
        ["certificate_not_yet_valid"],
        EXPIRED,
      );
    });

    it("a peer whose clock runs 60 s ahead still works (#10)", async function () {
      const c = await clientCert({ notBefore: new Date(Date.now() + 60_000 - 120_000) });
      const result = await tlsAttempt(port.strict, c, "skewed");
      assert.equal(result.received.toString(), "skewed");
    });

    it("wrong SPIFFE ID: authorization denies (#11)", async function () {
      const intruder = await mesh.leaf("shop", "intruder");
      await assertRefused(() => tlsAttempt(port.strict, { cert: intruder.chainPem, key: intruder.keyPem, ca: mesh.bundlePem }), ["authorization_denied"], "ERR_SSL_TLSV1_ALERT_ACCESS_DENIED");
    });

    it("two URI SANs (#13), no URI SAN (#14), a DNS SAN spelling a SPIFFE ID (#15)", async function () {
      await assertRefused(async () => tlsAttempt(port.strict, await clientCert({ uris: [CLIENT_ID, `spiffe://${TD}/ns/shop/sa/api`] })), ["multiple_uri_sans"], CERTIFICATE_UNKNOWN);
      await assertRefused(async () => tlsAttempt(port.strict, await clientCert({ uris: [] })), ["no_uri_san"], CERTIFICATE_UNKNOWN);
      await assertRefused(async () => tlsAttempt(port.strict, await clientCert({ uris: [], dnsNames: [CLIENT_ID] })), ["no_uri_san"], CERTIFICATE_UNKNOWN);
    });

    it("leaf with CA:TRUE (#16), with keyCertSign (#17), without clientAuth EKU (#18)", async function () {
      await assertRefused(
        async () => tlsAttempt(port.strict, await clientCert({ isCA: true, keyUsages: KeyUsage.digitalSignature, extKeyUsages: [Eku.clientAuth, Eku.serverAuth] })),
        ["leaf_is_ca"],
        CERTIFICATE_UNKNOWN,
      );
      await assertRefused(
        async () => tlsAttempt(port.strict, await clientCert({ keyUsages: KeyUsage.digitalSignature | KeyUsage.keyCertSign })),
        ["leaf_can_sign_certificates"],
        CERTIFICATE_UNKNOWN,
      );
      await assertRefused(async () => tlsAttempt(port.strict, await clientCert({ extKeyUsages: [Eku.serverAuth] })), ["missing_eku", "untrusted_certificate"], "ERR_SSL_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE");
    });

    it("malformed SPIFFE IDs (#19) and control bytes in the SAN (#20)", async function () {
      for (const uri of [`spiffe://CLUSTER.local/ns/shop/sa/web`, `spiffe://${TD}/ns/shop/sa/%2e%2e`, `spiffe://${TD}/ns//sa/web`, `spiffe://${TD}:443/ns/shop/sa/web`]) {
        await assertRefused(async () => tlsAttempt(port.strict, await clientCert({ uris: [uri] })), ["invalid_spiffe_id"], CERTIFICATE_UNKNOWN);
      }
      await assertRefused(async () => tlsAttempt(port.strict, await clientCert({ uris: [`spiffe://${TD}/ns/shop/sa/web\u0000.evil`] })), ["control_bytes_in_san"], CERTIFICATE_UNKNOWN);
    });

    it("TLS 1.2 and lower offered (#25)", async function () {
      const c = await clientCert();
      await assertRefused(() => tlsAttempt(port.strict, { ...c, minVersion: "TLSv1", maxVersion: "TLSv1.2" }), ["tls_version"]);
    });

    it("garbage bytes (#24)", async function () {
      await assertRefused(() => rawAttempt(port.strict, Buffer.from([0x16, 0x03, 0x01, 0xde, 0xad, 0xbe, 0xef, 0x00])), ["plaintext_on_strict", "handshake_failed"]);
      await assertRefused(() => rawAttempt(port.strict, Buffer.from("\x00\x01\x02garbage")), ["plaintext_on_strict"]);
    });

    it("truncated ClientHello then stall is closed at the handshake timeout (#21)", async function () {
      let took = 0;
      await assertRefused(async () => {
        took = (await rawAttempt(port.strict, Buffer.from([0x16, 0x03, 0x01, 0x01, 0x00, 0x01, 0x00, 0x00]))).ms;
      }, ["handshake_timeout"]);
      assert.ok(took >= 1400 && took < 4000, `closed after ${took} ms`);
    });

    it("truncated ClientHello then FIN (#22)", async function () {
      await assertRefused(() => rawAttempt(port.strict, Buffer.from([0x16, 0x03, 0x01, 0x01, 0x00, 0x01, 0x00]), { end: true }), [
        "handshake_eof",
        "handshake_failed",
      ]);
    });

    it("oversized ClientHello (#23)", async function () {
      // A handshake message that claims 1 MiB, streamed in full-size records.
      const header = Buffer.from([0x16, 0x03, 0x01, 0x40, 0x00, 0x01, 0x10, 0x00, 0x00]);
      const body = Buffer.concat([header, Buffer.alloc(16384 - 4, 0x41)]);
      const records = Buffer.concat(Array.from({ length: 8 }, (_, i) => (i === 0 ? body : Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x40, 0x00]), Buffer.alloc(16384, 0x41)]))));
      await assertRefused(() => rawAttempt(port.strict, records), ["handshake_failed", "handshake_eof"]);
    });

    it("a client that connects and sends nothing is closed at the handshake timeout (slowloris)", async function () {
      let took = 0;
      await assertRefused(async () => {
        took = (await rawAttempt(port.strict, Buffer.alloc(0))).ms;
      }, ["handshake_timeout"]);
      assert.ok(took >= 1400 && took < 4000, `closed after ${took} ms`);
    });

    it("sends the alert under every TLS 1.3 suite a client may choose", async function () {
      const c = await clientCert({ isCA: true, keyUsages: KeyUsage.digitalSignature, extKeyUsages: [Eku.clientAuth] });
      for (const suite of ["TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"]) {
        await assertRefused(() => tlsAttempt(port.strict, { ...c, ciphers: suite }), ["leaf_is_ca"], CERTIFICATE_UNKNOWN);
      }
    });

    it("SNI never grants identity (#27): a bad certificate with the server's name as SNI is refused", async function () {
      const c = await clientCert({ uris: [] });
      await assertRefused(() => tlsAttempt(port.strict, { ...c, servername: "api.shop.svc.cluster.local" }), ["no_uri_san"], CERTIFICATE_UNKNOWN);
    });
  });

  describe("outbound", function () {
    it("a server with a certificate from another CA is refused before any app byte (#12)", async function () {
      const other = await createTestMesh(TD, "other");
      const impostorLeaf = await other.leaf("shop", "api");
      const received: Buffer[] = [];
      const impostor = tls.createServer({ cert: impostorLeaf.chainPem, key: impostorLeaf.keyPem, minVersion: "TLSv1.3" }, (s) => s.on("data", (c: Buffer) => received.push(c)));
      await new Promise<void>((resolve) => impostor.listen(0, "127.0.0.1", resolve));
      const impostorPort = (impostor.address() as net.AddressInfo).port;
      const lone = await startTestProxy({
        leaf: await mesh.leaf("shop", "web"),
        bundlePem: mesh.bundlePem,
        workload: workload(CLIENT_ID),
        outbound: [{ host: "127.0.0.1", port: 0, route: { host: "127.0.0.1", port: impostorPort, spiffeId: SERVER_ID, targetPort: 1 } }],
        transport,
      });
      const reply = await exchange(lone.proxy.outboundPorts[0], "secret");
      impostor.close();
      assert.equal(reply.length, 0);
      assert.equal(Buffer.concat(received).length, 0, "the impostor received no app byte");
      assert.ok(lone.refusals().some((r) => String(r.reason).startsWith("server_")), JSON.stringify(lone.refusals()));
    });
  });

  it("accepts a default leaf from the mesh through the raw TLS client (guards the fixtures)", async function () {
    const result = await tlsAttempt(port.strict, await clientCert(), "fixture");
    assert.equal(result.received.toString(), "fixture");
  });
});
