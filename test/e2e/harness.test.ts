// The e2e harness on its own (no mesh): the engine stand-in, the kubelet-style volume writer,
// kube-proxy's rules, the pcap reader, and — as root — a small program of plain Kubernetes
// objects run as pods.
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import * as tls from "node:tls";
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { render, Rendered } from "./engine/render";
import { Cluster, ClusterError, rootProblem, skipUnlessRoot } from "./harness/cluster";
import { codeRootsFor, reachableByOthers } from "./harness/code";
import { REPO_ROOT } from "./harness/images";
import { renderRules } from "./harness/kube-proxy";
import { tlsView } from "./harness/pcap";
import { listNamespaces } from "./harness/teardown";
import { writeVolume } from "./harness/volumes";
import { issue } from "../support/pki";

const TINY = path.join(REPO_ROOT, "dist", "test", "e2e", "programs", "tiny", "index.js");

describe("e2e harness: engine stand-in", function () {
  this.timeout(60_000);
  let first: Rendered;

  before(async () => {
    first = await render({ program: TINY, config: { text: "one" } });
  });

  const secret = (r: Rendered) => r.objects.find((o) => o.kind === "Secret" && o.metadata.name === "echo-tls")!;
  const leafOf = (r: Rendered) => new x509.X509Certificate(secret(r).stringData["tls.crt"]);

  it("mints the leaf exactly as the @pulumi/tls inputs say", () => {
    const leaf = leafOf(first);
    const ca = new x509.X509Certificate(secret(first).stringData["ca.crt"]);
    assert.equal(leaf.subject, "CN=echo");
    assert.equal(leaf.issuer, ca.subject);
    assert.equal(ca.subject, "O=e2e, CN=tiny root");
    const san = leaf.getExtension(x509.SubjectAlternativeNameExtension)!;
    assert.deepEqual(san.names.toJSON(), [
      { type: "dns", value: "echo.tiny.svc" },
      { type: "url", value: "spiffe://tiny.local/ns/tiny/sa/echo" },
    ]);
    assert.equal(leaf.getExtension(x509.BasicConstraintsExtension)!.ca, false);
    assert.equal(leaf.getExtension(x509.KeyUsagesExtension)!.usages, x509.KeyUsageFlags.digitalSignature);
    assert.deepEqual([...leaf.getExtension(x509.ExtendedKeyUsageExtension)!.usages], [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]);
    assert.equal(leaf.notAfter.getTime() - leaf.notBefore.getTime(), 2 * 3_600_000);
    assert.equal((leaf.publicKey.algorithm as { namedCurve?: string }).namedCurve, "P-256");
    assert.ok(ca.getExtension(x509.BasicConstraintsExtension)!.ca);
    assert.equal(ca.getExtension(x509.KeyUsagesExtension)!.usages, x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign);
  });

  it("keeps outputs whose inputs did not change, re-mints replaced resources, and keeps ClusterIPs", async () => {
    const second = await render({ program: TINY, config: { text: "two" }, state: first.state });
    assert.equal(secret(second).stringData["tls.crt"], secret(first).stringData["tls.crt"]);
    assert.equal(second.objects.find((o) => o.kind === "ConfigMap")!.data["text.txt"], "two");
    const renewed = await render({ program: TINY, config: { text: "two" }, state: second.state, replace: ["^leaf$"] });
    assert.notEqual(secret(renewed).stringData["tls.crt"], secret(second).stringData["tls.crt"]);
    assert.equal(secret(renewed).stringData["tls.key"], secret(second).stringData["tls.key"], "only the leaf was replaced, not its key");
    const ip = (r: Rendered) => r.objects.find((o) => o.kind === "Service")!.spec.clusterIP;
    assert.match(ip(first), /^10\.233\.\d+\.\d+$/);
    assert.equal(ip(renewed), ip(first));
  });
});

describe("e2e harness: volumes, rules, pcap", () => {
  it("writes volumes in kubelet's ..data layout and swaps them atomically", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "e2e-vol-"));
    try {
      writeVolume(dir, [
        { path: "a.txt", content: Buffer.from("one"), mode: 0o644 },
        { path: "sub/b.txt", content: Buffer.from("b"), mode: 0o600 },
      ]);
      const first = fs.readlinkSync(path.join(dir, "..data"));
      assert.match(first, /^\.\.\d{4}_\d\d_\d\d_\d\d_\d\d_\d\d\.\d+$/);
      assert.equal(fs.readlinkSync(path.join(dir, "a.txt")), "..data/a.txt");
      assert.equal(fs.readFileSync(path.join(dir, "sub", "b.txt"), "utf8"), "b");
      assert.equal(fs.statSync(path.join(dir, first, "sub", "b.txt")).mode & 0o777, 0o600);
      writeVolume(dir, [{ path: "a.txt", content: Buffer.from("two"), mode: 0o644 }]);
      const second = fs.readlinkSync(path.join(dir, "..data"));
      assert.notEqual(second, first);
      assert.equal(fs.readFileSync(path.join(dir, "a.txt"), "utf8"), "two");
      assert.deepEqual(fs.readdirSync(dir).sort(), [second, "..data", "a.txt"].sort(), "old payload and stale links removed");
      assert.throws(() => writeVolume(dir, [{ path: "../x", content: Buffer.alloc(0), mode: 0o644 }]), /not allowed/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("renders kube-proxy's DNAT with 1/n probabilities and rejects services without endpoints", () => {
    const rules = renderRules("abcd", [
      { name: "shop/api:8080", clusterIP: "10.233.1.2", port: 8080, endpoints: [{ ip: "10.234.0.10", port: 8080 }, { ip: "10.234.0.11", port: 8080 }] },
      { name: "shop/none:80", clusterIP: "10.233.1.3", port: 80, endpoints: [] },
    ], 0);
    assert.match(rules, /-A e2e-abcd-SVC0 -m statistic --mode random --probability 0\.50000000000 -p tcp -j DNAT --to-destination 10\.234\.0\.10:8080/);
    assert.match(rules, /-A e2e-abcd-SVC0 -p tcp -j DNAT --to-destination 10\.234\.0\.11:8080/);
    assert.match(rules, /\*filter[\s\S]*-d 10\.233\.1\.3\/32 -p tcp -m tcp --dport 80 .*-j REJECT/);
  });

  it("recognises a real TLS 1.3 handshake in captured bytes", async () => {
    const ca = await issue({ isCA: true });
    const leaf = await issue({ issuer: ca, dnsNames: ["localhost"] });
    const toServer: Buffer[] = [];
    const toClient: Buffer[] = [];
    const server = tls.createServer({ key: leaf.keyPem, cert: leaf.certPem, minVersion: "TLSv1.3" }, (s) => s.end("secret reply"));
    // A tap between client and server records both directions, as tcpdump would.
    const tap = net.createServer((c) => {
      const up = net.connect((server.address() as net.AddressInfo).port, "127.0.0.1");
      c.on("data", (d) => (toServer.push(d), up.write(d)));
      up.on("data", (d) => (toClient.push(d), c.write(d)));
      up.on("end", () => c.end());
      c.on("error", () => up.destroy());
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    await new Promise<void>((r) => tap.listen(0, "127.0.0.1", r));
    const reply = await new Promise<string>((resolve, reject) => {
      const c = tls.connect({ port: (tap.address() as net.AddressInfo).port, host: "127.0.0.1", ca: ca.certPem, servername: "localhost" });
      let got = "";
      c.on("data", (d) => (got += d));
      c.on("end", () => resolve(got));
      c.on("error", reject);
    });
    server.close();
    tap.close();
    assert.equal(reply, "secret reply");
    const clientSide = tlsView(Buffer.concat(toServer));
    const serverSide = tlsView(Buffer.concat(toClient));
    assert.ok(clientSide.isTls && clientSide.clientHelloOffers13 && clientSide.recordsOnly);
    assert.ok(serverSide.serverHelloSelected13 && serverSide.recordsOnly);
    assert.ok(!Buffer.concat(toClient).includes("secret reply"));
    assert.equal(tlsView(Buffer.from("GET / HTTP/1.1\r\n\r\n")).recordsOnly, false);
  });
});

describe("e2e harness: code a pod's UID can read (root)", function () {
  it("stages a hard-linked copy when the clone sits in a private directory (e.g. under /root)", function () {
    if (rootProblem()) this.skip();
    const parent = fs.mkdtempSync(path.join(os.tmpdir(), "private-clone-")); // mode 0700
    const runDir = fs.mkdtempSync(path.join(os.tmpdir(), "run-"));
    fs.chmodSync(runDir, 0o755);
    try {
      const root = path.join(parent, "repo");
      fs.mkdirSync(path.join(root, "dist", "proxy"), { recursive: true });
      fs.mkdirSync(path.join(root, "node_modules", "commander"), { recursive: true });
      fs.writeFileSync(path.join(root, "dist", "proxy", "cli.js"), "// proxy\n");
      fs.writeFileSync(path.join(root, "node_modules", "commander", "package.json"), "{}\n");
      fs.writeFileSync(path.join(root, "package.json"), "{}\n");
      fs.mkdirSync(path.join(root, "proxy"));
      fs.writeFileSync(path.join(root, "proxy", "openssl.cnf"), "# tickets off\n");
      const code = { root, node: process.execPath };
      assert.equal(reachableByOthers(path.join(root, "dist", "proxy", "cli.js")), false);
      const staged = codeRootsFor(runDir, code);
      assert.equal(staged.root, path.join(runDir, "code"));
      assert.ok(reachableByOthers(path.join(staged.root, "dist", "proxy", "cli.js")));
      assert.ok(reachableByOthers(path.join(staged.root, "proxy", "openssl.cnf")), "the proxy's OpenSSL config too");
      assert.equal(fs.statSync(path.join(staged.root, "dist", "proxy", "cli.js")).ino, fs.statSync(path.join(root, "dist", "proxy", "cli.js")).ino, "a hard link, not a copy");
      fs.chmodSync(parent, 0o755);
      assert.deepEqual(codeRootsFor(runDir, code), code, "a readable clone is used where it is");
    } finally {
      fs.rmSync(parent, { recursive: true, force: true });
      fs.rmSync(runDir, { recursive: true, force: true });
    }
  });
});

describe("e2e harness: plain Kubernetes objects as pods (root)", function () {
  this.timeout(60_000);
  let cluster: Cluster | undefined;
  let rendered: Rendered;

  before(async function () {
    skipUnlessRoot(this);
    rendered = await render({ program: TINY, config: { text: "one" } });
    cluster = await Cluster.up(rendered.objects);
  });

  after(async () => {
    if (!cluster) return;
    const id = cluster.names.id;
    const left = await cluster.down();
    assert.deepEqual(left, { namespaces: [], processes: [] });
    assert.equal(listNamespaces().filter((ns) => ns.includes(`-${id}-`)).length, 0);
    assert.equal(fs.existsSync(cluster.names.dir), false);
    assert.equal(fs.readdirSync("/etc/netns").filter((d) => d.includes(`-${id}-`)).length, 0);
  });

  it("resolves Service names through the pod's hosts file and spreads connections over both replicas (DNAT)", async () => {
    const client = cluster!.pod("tiny", "client");
    const servedBy = new Set<string>();
    for (let i = 0; i < 16 && servedBy.size < 2; i++) {
      const res = await client.exec("curl", ["curl", "-sS", "-i", "-m", "2", "http://echo/"]);
      assert.equal(res.code, 0, res.stderr);
      assert.match(res.stdout, /\r\n\r\none\n$/);
      servedBy.add(/x-served-by: (\S+)/i.exec(res.stdout)![1]);
    }
    assert.deepEqual([...servedBy].sort(), ["echo-0", "echo-1"]);
    const fqdn = await client.exec("curl", ["curl", "-sS", "-m", "2", "http://echo.tiny.svc.cluster.local/"]);
    assert.equal(fqdn.stdout, "one\n");
  });

  it("runs containers as their UID with fsGroup, and mounts Secret/projected volumes with modes and ownership", async () => {
    const echo = cluster!.pod("tiny", "echo");
    const id = await echo.exec("echo", ["id", "-u"]);
    assert.equal(id.stdout.trim(), "4000");
    const groups = await echo.exec("echo", ["id", "-G"]);
    assert.ok(groups.stdout.trim().split(" ").includes("2000"));
    const key = fs.statSync(path.join(echo.volumeDir("tls"), "tls.key"));
    assert.equal(key.mode & 0o777, 0o440);
    assert.equal(key.gid, 2000);
    const read = await echo.exec("echo", ["cat", path.join(echo.volumeDir("tls"), "tls.key")]);
    assert.match(read.stdout, /BEGIN EC PRIVATE KEY/);
    assert.match(fs.readFileSync(path.join(echo.volumeDir("all"), "bundle", "ca.pem"), "utf8"), /BEGIN CERTIFICATE/);
    const curlId = await cluster!.pod("tiny", "client").exec("curl", ["id", "-u"]);
    assert.equal(curlId.stdout.trim(), "100", "the curl image's default user");
  });

  it("applies a re-render: the ConfigMap volume is swapped in place, the template change is reported, no restart", async () => {
    const before = cluster!.pids();
    const next = await render({ program: TINY, config: { text: "two" }, state: rendered.state });
    const report = await cluster!.apply(next.objects);
    assert.deepEqual(report.changed.sort(), ["ConfigMap/tiny/echo-config", "Deployment/tiny/echo"]);
    assert.deepEqual(report.templatesChanged, ["Deployment/tiny/echo"]);
    assert.deepEqual(report.volumesUpdated.sort(), ["tiny/echo-0: all", "tiny/echo-1: all"]);
    assert.equal(fs.readFileSync(path.join(cluster!.pod("tiny", "echo").volumeDir("all"), "text.txt"), "utf8"), "two");
    assert.deepEqual(cluster!.pids(), before);
  });

  it("a kubelet-style probe from the node reaches the pod", async () => {
    const echo = cluster!.pod("tiny", "echo");
    const result = await echo.probe(echo.container("echo"), { httpGet: { path: "/health", port: "http" } });
    assert.deepEqual(result, { ok: true, detail: "HTTP 200" });
    const missing = await echo.probe(echo.container("echo"), { httpGet: { path: "/", port: 9 } });
    assert.equal(missing.ok, false);
  });

  it("refuses unknown images before starting anything, and leaves nothing behind", async () => {
    const objects = rendered.objects.map((o) =>
      o.kind === "Deployment" && o.metadata.name === "client"
        ? { ...o, spec: { ...o.spec, template: { ...o.spec.template, spec: { containers: [{ name: "x", image: "example.com/mystery:1" }] } } } }
        : o,
    );
    const before = listNamespaces();
    await assert.rejects(Cluster.up(objects), (err: Error) => err instanceof ClusterError && /example\.com\/mystery:1 is not one the e2e harness can run/.test(err.message));
    assert.deepEqual(listNamespaces(), before);
  });
});
