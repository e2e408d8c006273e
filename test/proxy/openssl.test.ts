// Black box: the `openssl s_client` CLI against a strict port, with and without a client
// certificate. openssl is one of the host packages the test setup installs.
import { strict as assert } from "assert";
import { spawn } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { Eku, KeyUsage } from "../support/pki";
import { Backend, removeTmpDirs, SERVER_ID, startBackend, startTestProxy, stopAllProxies, TestProxy, testMesh, tmpDir, workload } from "./support";

interface SClient {
  stdout: string;
  stderr: string;
  code: number | null;
}

/** Runs s_client, writes a line, and waits until it is echoed back or the connection ends. */
function sClient(args: string[], line: string): Promise<SClient> {
  return new Promise((resolve) => {
    const child = spawn("openssl", ["s_client", "-quiet", "-tls1_3", ...args], { stdio: ["pipe", "pipe", "pipe"] });
    const result: SClient = { stdout: "", stderr: "", code: null };
    const timer = setTimeout(() => child.kill(), 5000);
    child.stdout.on("data", (c: Buffer) => {
      result.stdout += c.toString();
      if (result.stdout.includes(line)) child.kill();
    });
    child.stderr.on("data", (c: Buffer) => (result.stderr += c.toString()));
    child.once("exit", (code) => {
      clearTimeout(timer);
      result.code = code;
      resolve(result);
    });
    child.stdin.write(line + "\n");
  });
}

describe("proxy/openssl s_client", function () {
  let backend: Backend;
  let server: TestProxy;
  let files: { cert: string; chain: string; key: string; ca: string; caLeaf: string; caLeafKey: string };

  before(async function () {
    const mesh = await testMesh();
    backend = await startBackend();
    server = await startTestProxy({
      leaf: await mesh.leaf("shop", "api"),
      bundlePem: mesh.bundlePem,
      workload: workload(SERVER_ID),
      inbound: [{ host: "127.0.0.1", port: 0, targetPort: backend.port, mode: "strict" }],
    });
    const dir = tmpDir();
    const web = await mesh.leaf("shop", "web");
    // A leaf with CA:TRUE: the chain verifies, our SVID checks refuse it (leaf_is_ca).
    const caLeaf = await mesh.leaf("shop", "web", { isCA: true, keyUsages: KeyUsage.digitalSignature, extKeyUsages: [Eku.clientAuth] });
    files = {
      cert: path.join(dir, "web.crt"), chain: path.join(dir, "issuer.crt"), key: path.join(dir, "web.key"), ca: path.join(dir, "ca.crt"),
      caLeaf: path.join(dir, "ca-leaf.crt"), caLeafKey: path.join(dir, "ca-leaf.key"),
    };
    fs.writeFileSync(files.caLeaf, caLeaf.certPem);
    fs.writeFileSync(files.caLeafKey, caLeaf.keyPem);
    fs.writeFileSync(files.cert, web.certPem);
    fs.writeFileSync(files.chain, mesh.issuer.certPem);
    fs.writeFileSync(files.key, web.keyPem);
    fs.writeFileSync(files.ca, mesh.bundlePem);
  });
  after(async function () {
    await stopAllProxies();
    await backend.close();
    removeTmpDirs();
  });

  it("with a mesh client certificate: the chain verifies and the echo comes back", async function () {
    const port = server.proxy.inboundPorts[0];
    const result = await sClient(
      ["-connect", `127.0.0.1:${port}`, "-cert", files.cert, "-cert_chain", files.chain, "-key", files.key, "-CAfile", files.ca, "-verify_return_error"],
      "hello from openssl",
    );
    assert.match(result.stdout, /hello from openssl/, result.stderr);
    assert.match(result.stderr, /verify return:1/);
  });

  it("without a client certificate: refused, nothing reaches the app", async function () {
    const port = server.proxy.inboundPorts[0];
    const accepted = backend.accepted;
    const bytes = backend.bytesReceived;
    const result = await sClient(["-connect", `127.0.0.1:${port}`, "-CAfile", files.ca], "should not pass");
    assert.doesNotMatch(result.stdout, /should not pass/);
    assert.match(result.stderr, /alert|error/i);
    assert.equal(backend.accepted, accepted);
    assert.equal(backend.bytesReceived, bytes);
    assert.ok(server.refusals("no_client_certificate").length >= 1);
  });

  it("with a certificate our SVID checks refuse: s_client reports the fatal alert", async function () {
    const port = server.proxy.inboundPorts[0];
    const accepted = backend.accepted;
    const result = await sClient(
      ["-connect", `127.0.0.1:${port}`, "-cert", files.caLeaf, "-cert_chain", files.chain, "-key", files.caLeafKey, "-CAfile", files.ca],
      "should not pass",
    );
    assert.doesNotMatch(result.stdout, /should not pass/);
    assert.match(result.stderr, /alert certificate unknown.*SSL alert number 46/, result.stderr);
    assert.equal(backend.accepted, accepted);
    assert.equal(server.refusals("leaf_is_ca").length, 1);
  });

  it("offers only TLS 1.3 with AES-128-GCM first", async function () {
    const port = server.proxy.inboundPorts[0];
    const tls12 = await sClientVersion(["-connect", `127.0.0.1:${port}`, "-tls1_2", "-CAfile", files.ca]);
    assert.match(tls12, /alert protocol version|no protocols available|wrong version|unsupported protocol/i);
    const brief = await sClient(["-connect", `127.0.0.1:${port}`, "-cert", files.cert, "-cert_chain", files.chain, "-key", files.key, "-CAfile", files.ca, "-brief"], "x");
    assert.match(brief.stderr, /TLS_AES_128_GCM_SHA256/);
  });
});

function sClientVersion(args: string[]): Promise<string> {
  return new Promise((resolve) => {
    const child = spawn("openssl", ["s_client", ...args], { stdio: ["pipe", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (c: Buffer) => (output += c.toString()));
    child.stderr.on("data", (c: Buffer) => (output += c.toString()));
    const timer = setTimeout(() => child.kill(), 5000);
    child.once("exit", () => {
      clearTimeout(timer);
      resolve(output);
    });
    child.stdin.end();
  });
}
