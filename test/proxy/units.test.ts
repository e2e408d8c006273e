// The pure parts of the proxy: peer-certificate checks, authorization, protocol sniffing,
// directory lookup, tunnel authorities and settings validation.
import { strict as assert } from "assert";
import * as fs from "fs";
import * as path from "path";
import { X509Certificate } from "crypto";
import { AsnConvert } from "@peculiar/asn1-schema";
import { Certificate, id_ce_subjectAltName } from "@peculiar/asn1-x509";
import { parseProxyFileConfig, parseWorkloadConfig } from "../../proxy/config";
import { lookupDestination, newlyMeshedPorts } from "../../proxy/directory";
import { authorize, decide, resolveMode } from "../../proxy/policy";
import { ConfigError } from "../../proxy/config";
import { probeHeaders } from "../../proxy/admin";
import { isLevel } from "../../proxy/log";
import { loadSettings } from "../../proxy/settings";
import { classifyFirstBytes } from "../../proxy/sniff";
import { authorityPort } from "../../proxy/tunnel";
import { checkPeerCertificate } from "../../proxy/verify";
import { keyExchangeGroups } from "../../proxy/identity";
import { Eku, KeyUsage } from "../support/pki";
import { CLIENT_ID, removeTmpDirs, SERVER_ID, TD, testMesh, tmpDir, workload } from "./support";

const der = (pem: string) => new X509Certificate(pem).raw;

describe("proxy/verify checkPeerCertificate", function () {
  after(removeTmpDirs);

  it("accepts a mesh leaf in both roles and returns its ID", async function () {
    const mesh = await testMesh();
    const leaf = await mesh.leaf("shop", "web");
    for (const role of ["client", "server"] as const) {
      const check = checkPeerCertificate(der(leaf.certPem), role, TD);
      assert.ok(check.ok);
      assert.equal(check.ok && check.id, CLIENT_ID);
    }
  });

  it("refuses every shape SPIFFE forbids", async function () {
    const mesh = await testMesh();
    const cases: Array<[string, Parameters<typeof mesh.leaf>[2], string, "client" | "server"]> = [
      ["two URI SANs", { uris: [CLIENT_ID, SERVER_ID] }, "multiple_uri_sans", "client"],
      ["no SAN", { uris: [] }, "no_uri_san", "client"],
      ["DNS SAN spelling an ID", { uris: [], dnsNames: [CLIENT_ID] }, "no_uri_san", "client"],
      ["CA:TRUE", { isCA: true, keyUsages: KeyUsage.digitalSignature, extKeyUsages: [Eku.clientAuth] }, "leaf_is_ca", "client"],
      ["keyCertSign", { keyUsages: KeyUsage.digitalSignature | KeyUsage.keyCertSign }, "leaf_can_sign_certificates", "client"],
      ["cRLSign", { keyUsages: KeyUsage.digitalSignature | KeyUsage.cRLSign }, "leaf_can_sign_certificates", "client"],
      ["no clientAuth", { extKeyUsages: [Eku.serverAuth] }, "missing_eku", "client"],
      ["no serverAuth", { extKeyUsages: [Eku.clientAuth] }, "missing_eku", "server"],
      ["no EKU at all", { extKeyUsages: [] }, "missing_eku", "client"],
      ["other trust domain", { uris: ["spiffe://other.local/ns/shop/sa/web"] }, "foreign_trust_domain", "client"],
      ["NUL byte", { uris: [`spiffe://${TD}/ns/shop/sa/web\u0000x`] }, "control_bytes_in_san", "client"],
      ["newline", { uris: [`spiffe://${TD}/ns/shop/sa/web\nx`] }, "control_bytes_in_san", "client"],
      ["uppercase trust domain", { uris: [`spiffe://Cluster.local/ns/shop/sa/web`] }, "invalid_spiffe_id", "client"],
      ["%2e", { uris: [`spiffe://${TD}/ns/shop/sa/%2e`] }, "invalid_spiffe_id", "client"],
      ["//", { uris: [`spiffe://${TD}/ns//sa/web`] }, "invalid_spiffe_id", "client"],
      ["trailing /", { uris: [`spiffe://${TD}/ns/shop/sa/web/`] }, "invalid_spiffe_id", "client"],
      ["query", { uris: [`spiffe://${TD}/ns/shop/sa/web?x=1`] }, "invalid_spiffe_id", "client"],
      ["port", { uris: [`spiffe://${TD}:8443/ns/shop/sa/web`] }, "invalid_spiffe_id", "client"],
      ["> 2048 bytes", { uris: [`spiffe://${TD}/${"a".repeat(2100)}`] }, "invalid_spiffe_id", "client"],
      ["not spiffe", { uris: [`https://${TD}/ns/shop/sa/web`] }, "invalid_spiffe_id", "client"],
    ];
    for (const [name, opts, reason, role] of cases) {
      const leaf = await mesh.leaf("shop", "web", opts);
      const check = checkPeerCertificate(der(leaf.certPem), role, TD, undefined);
      assert.equal(check.ok ? "ok" : check.reason, reason, name);
    }
  });

  it("refuses bytes that are not a certificate, and a certificate carrying the same extension twice", async function () {
    const garbage = checkPeerCertificate(Buffer.from("not a certificate at all"), "client", TD);
    assert.equal(garbage.ok ? "ok" : garbage.reason, "unparsable_certificate");
    const truncated = checkPeerCertificate(der((await (await testMesh()).leaf("shop", "web")).certPem).subarray(0, 200), "client", TD);
    assert.equal(truncated.ok ? "ok" : truncated.reason, "unparsable_certificate");

    // Re-encode a valid leaf with its SAN extension appended again (the signature no longer
    // matters: OpenSSL checked it before this runs).
    const leaf = AsnConvert.parse(der((await (await testMesh()).leaf("shop", "web")).certPem), Certificate);
    const extensions = leaf.tbsCertificate.extensions!;
    extensions.push(extensions.find((e) => e.extnID === id_ce_subjectAltName)!);
    const doubled = checkPeerCertificate(Buffer.from(AsnConvert.serialize(leaf)), "client", TD);
    assert.deepEqual(doubled.ok ? "ok" : [doubled.reason, doubled.detail], ["unparsable_certificate", `extension ${id_ce_subjectAltName} appears twice`]);
  });

  it("caches by fingerprint without mixing roles or trust domains", async function () {
    const mesh = await testMesh();
    const leaf = await mesh.leaf("shop", "web", { extKeyUsages: [Eku.clientAuth] });
    const x = new X509Certificate(leaf.certPem);
    assert.ok(checkPeerCertificate(x.raw, "client", TD, x.fingerprint256).ok);
    assert.equal(checkPeerCertificate(x.raw, "server", TD, x.fingerprint256).ok, false);
    assert.equal(checkPeerCertificate(x.raw, "client", "other.local", x.fingerprint256).ok, false);
  });
});

describe("proxy/policy", function () {
  const w = parseWorkloadConfig(
    workload(SERVER_ID, {
      inbound: { defaultMode: "permissive", ports: [{ port: 9090, mode: "strict" }, { port: 7070, mode: "disabled" }] },
      authorization: { rules: [{ ports: [8080], principals: [CLIENT_ID] }, { namespaces: ["ops"] }] },
    }),
  );

  it("lets the port-level mode beat the workload default (#4)", function () {
    assert.equal(resolveMode(w, 9090), "strict");
    assert.equal(resolveMode(w, 7070), "disabled");
    assert.equal(resolveMode(w, 8080), "permissive");
  });

  it("authorizes principals per port and namespaces, never plaintext, never another trust domain", function () {
    assert.equal(authorize(CLIENT_ID, 8080, w.authorization, TD), true);
    assert.equal(authorize(CLIENT_ID, 9090, w.authorization, TD), false);
    assert.equal(authorize(`spiffe://${TD}/ns/ops/sa/anyone`, 9090, w.authorization, TD), true);
    assert.equal(authorize(`spiffe://other.local/ns/ops/sa/anyone`, 9090, w.authorization, TD), false);
    assert.equal(authorize(null, 8080, w.authorization, TD), false);
    assert.equal(authorize(null, 8080, null, TD), true);
  });

  it("decides: disabled forwards anyone, strict needs mTLS, permissive applies the rules to plaintext", function () {
    assert.deepEqual(decide("disabled", { id: null }, 8080, w), { allow: true });
    assert.deepEqual(decide("strict", { id: null }, 8080, w), { allow: false, reason: "plaintext_on_strict" });
    assert.deepEqual(decide("permissive", { id: null }, 8080, w), { allow: false, reason: "authorization_denied" });
    assert.deepEqual(decide("strict", { id: CLIENT_ID }, 8080, w), { allow: true });
  });

  it("decides audit as strict, but admits what strict refuses and says why", function () {
    assert.deepEqual(decide("audit", { id: null }, 8080, w), { allow: true, wouldRefuse: "plaintext_on_strict" });
    assert.deepEqual(decide("audit", { id: `spiffe://${TD}/ns/shop/sa/reports` }, 8080, w), { allow: true, wouldRefuse: "authorization_denied" });
    assert.deepEqual(decide("audit", { id: CLIENT_ID }, 8080, w), { allow: true });
  });

  it("matches a plaintext peer only by a rule's plaintextFrom block, on its ports", function () {
    const rules = parseWorkloadConfig(
      workload(SERVER_ID, { authorization: { rules: [{ ports: [9102], plaintextFrom: ["10.1.0.0/16", "fd00::/64"] }] } }),
    ).authorization;
    assert.equal(authorize(null, 9102, rules, TD, "10.1.2.3"), true);
    assert.equal(authorize(null, 9102, rules, TD, "::ffff:10.1.2.3"), true, "an IPv4-mapped source is its IPv4 address");
    assert.equal(authorize(null, 9102, rules, TD, "fd00::7"), true);
    assert.equal(authorize(null, 9102, rules, TD, "10.2.0.1"), false);
    assert.equal(authorize(null, 8080, rules, TD, "10.1.2.3"), false, "another port");
    assert.equal(authorize(null, 9102, rules, TD), false, "no address, no match");
    assert.equal(authorize(CLIENT_ID, 9102, rules, TD, "10.1.2.3"), false, "an mTLS peer is matched by identity, not address");
    const ws = parseWorkloadConfig(workload(SERVER_ID, { authorization: rules }));
    assert.deepEqual(decide("permissive", { id: null, address: "10.1.2.3" }, 9102, ws), { allow: true });
    assert.deepEqual(decide("strict", { id: null, address: "10.1.2.3" }, 9102, ws), { allow: false, reason: "plaintext_on_strict" });
  });
});

describe("proxy/sniff classifyFirstBytes", function () {
  it("recognises a ClientHello record and nothing else", function () {
    assert.equal(classifyFirstBytes(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01])), "tls");
    assert.equal(classifyFirstBytes(Buffer.from([0x16, 0x03, 0x01])), undefined, "needs more bytes");
    assert.equal(classifyFirstBytes(Buffer.from("GET / HTTP/1.1\r\n")), "plaintext");
    assert.equal(classifyFirstBytes(Buffer.from([0x16, 0x02])), "plaintext");
    assert.equal(classifyFirstBytes(Buffer.from([0x16, 0x03, 0x01, 0xff, 0xff, 0x01])), "plaintext", "record too long");
    assert.equal(classifyFirstBytes(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x10, 0x02])), "plaintext", "not a ClientHello");
    assert.equal(classifyFirstBytes(Buffer.alloc(0)), undefined);
  });
});

describe("proxy/directory lookupDestination", function () {
  const directory = {
    version: 1 as const,
    services: [
      { namespace: "shop", name: "api", spiffeId: SERVER_ID, addresses: ["10.96.0.10", "10.244.1.5"], hostnames: [], ports: [{ port: 80, targetPort: 8080, mode: "strict" as const }] },
    ],
  };
  it("finds a ClusterIP on the service port and a pod IP on the target port, IPv4-mapped too", function () {
    assert.equal(lookupDestination(directory, "10.96.0.10", 80)?.targetPort, 8080);
    assert.equal(lookupDestination(directory, "::ffff:10.96.0.10", 80)?.spiffeId, SERVER_ID);
    assert.equal(lookupDestination(directory, "10.244.1.5", 8080)?.targetPort, 8080);
    assert.equal(lookupDestination(directory, "10.96.0.10", 81), undefined);
    assert.equal(lookupDestination(directory, "10.96.0.11", 80), undefined);
  });
});

describe("proxy/tunnel authorityPort", function () {
  it("parses host:port and [v6]:port, rejects everything else", function () {
    assert.equal(authorityPort("127.0.0.1:8080"), 8080);
    assert.equal(authorityPort("[::1]:9090"), 9090);
    assert.equal(authorityPort("api:1"), 1);
    for (const bad of [undefined, "", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:70000", "a:b:80", "127.0.0.1:80/x", ":80"]) {
      assert.equal(authorityPort(bad), undefined, String(bad));
    }
  });
});

describe("proxy/settings loadSettings", function () {
  it("names the bad field and refuses duplicate or missing listeners", function () {
    const dir = tmpDir();
    const file = path.join(dir, "proxy.json");
    const write = (doc: unknown) => fs.writeFileSync(file, JSON.stringify(doc));
    write({ version: 1, identity: "id", workload: workload(SERVER_ID), listeners: { inbound: [{ port: 70000, targetPort: 1 }] } });
    assert.throws(() => loadSettings(file), (e: Error) => e instanceof ConfigError && /listeners\.inbound\.0\.port/.test(e.message));
    write({ version: 1, identity: "id", workload: workload(SERVER_ID), listeners: { inbound: [{ port: 1500, targetPort: 1 }, { port: 1500, targetPort: 2 }] } });
    assert.throws(() => loadSettings(file), /port 1500 is used twice/);
    write({ version: 1, identity: "id", workload: workload(SERVER_ID) });
    assert.throws(() => loadSettings(file), /no listener/);
    write({ version: 1, workload: workload(SERVER_ID), listeners: { transparent: true } });
    assert.throws(() => loadSettings(file), /identity: required/);
    write({ version: 1, identity: "id", workload: workload(SERVER_ID), listeners: { outbound: [{ port: 1501, target: { host: "127.0.0.1", port: 2 }, spiffeId: "spiffe://x/y/" }] } });
    assert.throws(() => loadSettings(file), /listeners\.outbound\.0\.spiffeId: invalid SPIFFE ID/);
  });

  it("accepts the copy-paste examples in proxy/README.md", function () {
    const readme = fs.readFileSync(path.resolve(__dirname, "../../../proxy/README.md"), "utf8");
    const examples = [...readme.matchAll(/```json\n([\s\S]*?)```/g)].map((m) => JSON.parse(m[1])).filter((doc) => doc.listeners);
    assert.equal(examples.length, 2);
    for (const doc of examples) parseProxyFileConfig(doc, "README example");
  });

  it("resolves the file's identity relative to the file and fills defaults", function () {
    const dir = tmpDir();
    const file = path.join(dir, "proxy.json");
    fs.writeFileSync(file, JSON.stringify({ version: 1, identity: "./id", workload: workload(SERVER_ID), listeners: { inbound: [{ port: 1502, targetPort: 8080 }] } }));
    const settings = loadSettings(file);
    assert.equal(settings.identityDir, path.join(dir, "id"));
    assert.deepEqual(settings.inbound, [{ host: "0.0.0.0", port: 1502, targetPort: 8080, mode: undefined }]);
    assert.deepEqual(settings.admin, { host: "0.0.0.0", port: 15021 });
    assert.equal(settings.transport, "h2");
  });

  it("adds the transparent listeners (outbound on both loopbacks, inbound and tunnel) and still catches a clash with them", function () {
    const dir = tmpDir();
    const file = path.join(dir, "proxy.json");
    const write = (doc: unknown) => fs.writeFileSync(file, JSON.stringify(doc));
    write({ version: 1, identity: "id", workload: workload(SERVER_ID), listeners: { transparent: true } });
    const settings = loadSettings(file);
    assert.deepEqual(settings.inbound.map((l) => `${l.host}:${l.port}${l.tunnel ? " tunnel" : ""}`), [":::15006", ":::15008 tunnel"]);
    assert.deepEqual(settings.outbound.map((l) => `${l.host}:${l.port}`), ["127.0.0.1:15001", "::1:15001"]);
    write({ version: 1, identity: "id", workload: workload(SERVER_ID), listeners: { transparent: true, inbound: [{ port: 15006, targetPort: 1 }] } });
    assert.throws(() => loadSettings(file), /port 15006 is used twice/);
    write({ version: 1, identity: "id", workload: workload(SERVER_ID), listeners: { transparent: true, tunnel: { port: 15008 } } });
    assert.throws(() => loadSettings(file), /port 15008 is used twice/);
  });

  it("turns an explicit tunnel listener and an outbound route to one into settings", function () {
    const dir = tmpDir();
    const file = path.join(dir, "proxy.json");
    fs.writeFileSync(file, JSON.stringify({
      version: 1, identity: "id", workload: workload(SERVER_ID),
      listeners: {
        tunnel: { port: 7008, host: "127.0.0.1" },
        outbound: [{ port: 7001, target: { host: "127.0.0.1", port: 7108 }, spiffeId: SERVER_ID, targetPort: 3306, tunnel: true }],
      },
    }));
    const settings = loadSettings(file);
    assert.deepEqual(settings.inbound, [{ host: "127.0.0.1", port: 7008, tunnel: true }]);
    assert.deepEqual(settings.outbound[0].route, { host: "127.0.0.1", port: 7108, spiffeId: SERVER_ID, targetPort: 3306, tunnelPort: 7108 });
  });
});

describe("proxy/log isLevel", function () {
  it("knows the four levels and nothing inherited from Object", function () {
    for (const level of ["debug", "info", "warn", "error"]) assert.ok(isLevel(level), level);
    for (const bad of ["constructor", "toString", "__proto__", "trace", ""]) assert.ok(!isLevel(bad), bad);
  });
});

describe("proxy/admin probeHeaders", function () {
  it("sends the probe's own headers, kubelet's User-Agent and Host (pointed at the app port), and nothing the caller adds", function () {
    const probe = { port: 8080, headers: [{ name: "X-Token", value: "t" }] };
    const out = probeHeaders({ host: "10.244.0.7:15021", "user-agent": "kube-probe/1.31", authorization: "Bearer stolen", cookie: "c", connection: "close" }, probe);
    assert.deepEqual(out, { "user-agent": "kube-probe/1.31", host: "10.244.0.7:8080", "x-token": "t" });
    assert.equal(probeHeaders({ host: "api.internal" }, { port: 8080 }).host, undefined);
  });
});

describe("proxy/directory newlyMeshedPorts", function () {
  const dir = (ports: Array<{ port: number; targetPort: number; mode: "disabled" | "permissive" | "strict" }>, extra: object[] = []) => ({
    version: 1 as const,
    services: [{ namespace: "shop", name: "api", spiffeId: SERVER_ID, addresses: ["10.96.0.10"], hostnames: [], ports }, ...(extra as never[])],
  });
  it("lists ports that were disabled or absent and are meshed now, nothing else", function () {
    const before = dir([{ port: 80, targetPort: 8080, mode: "disabled" }, { port: 81, targetPort: 8081, mode: "permissive" }]);
    const after = dir([{ port: 80, targetPort: 8080, mode: "permissive" }, { port: 81, targetPort: 8081, mode: "strict" }, { port: 82, targetPort: 8082, mode: "permissive" }]);
    assert.deepEqual(newlyMeshedPorts(before, after), ["shop/api:8080", "shop/api:8082"]);
    assert.deepEqual(newlyMeshedPorts(after, after), []);
    assert.deepEqual(newlyMeshedPorts(after, before), []);
  });
});

describe("proxy/identity keyExchangeGroups", function () {
  it("offers the post-quantum hybrid first, with a second key share for X25519, from OpenSSL 3.5 on", function () {
    assert.equal(keyExchangeGroups("3.0.15+quic"), "X25519:P-256");
    assert.equal(keyExchangeGroups("3.4.1"), "X25519:P-256");
    assert.equal(keyExchangeGroups("3.5.9"), "*X25519MLKEM768:*X25519:P-256");
    assert.equal(keyExchangeGroups("4.0.0"), "*X25519MLKEM768:*X25519:P-256");
  });
});
