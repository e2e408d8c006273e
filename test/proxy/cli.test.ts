// The real `dist/proxy/cli.js` as a child process: usage errors, config errors that name the
// field, a pair of proxies from proxy.json files (the documented explicit-listener example),
// idle RSS, and the SIGTERM drain.
import { strict as assert } from "assert";
import { ChildProcess, spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as net from "net";
import * as path from "path";
import * as tls from "tls";
import { stableStringify } from "../../proxy/config";
import {
  adminGet, Backend, CLI, CLIENT_ID, imageEntrypoint, collect, connect, exchange, freePort, identityFilesFor, removeTmpDirs, SERVER_ID, sleep, startBackend, testMesh,
  tlsAttempt, tmpDir, waitFor, workload,
} from "./support";
import { Eku, KeyUsage } from "../support/pki";


function run(args: string[]) {
  return spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", timeout: 20_000 });
}

function writeIdentityDir(dir: string, files: Record<string, string>): string {
  fs.mkdirSync(dir, { recursive: true });
  for (const [name, content] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), content);
  return dir;
}

function rssKiB(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1]);
}

describe("proxy/cli", function () {
  this.timeout(30_000);
  const children: ChildProcess[] = [];
  after(function () {
    for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
    removeTmpDirs();
  });

  it("prints help and the version", function () {
    const help = run(["--help"]);
    assert.equal(help.status, 0);
    for (const word of ["run", "init", "version"]) assert.match(help.stdout, new RegExp(`\\b${word}\\b`));
    const version = run(["version"]);
    assert.equal(version.status, 0);
    assert.match(version.stdout, /^mesh-proxy \d+\.\d+\.\d+\nnode v\d+\.\d+\.\d+, OpenSSL \d+\.\d+\.\d+\S*, key exchange (X25519MLKEM768:)?X25519:P-256\n$/);
  });

  it("exits 2 with a clean message, never a stack trace, for user mistakes", function () {
    const dir = tmpDir();
    const cases: Array<{ args: string[]; message: RegExp }> = [
      { args: ["run"], message: /required option '--config <path>'/ },
      { args: ["run", "--config", path.join(dir, "missing")], message: /cannot read config .*missing: ENOENT/ },
      { args: ["run", "--config", dir], message: /cannot read .*workload\.json: ENOENT/ },
      { args: ["run", "--config", dir, "--transport", "udp"], message: /--transport/ },
      { args: ["bogus"], message: /unknown command 'bogus'/ },
    ];
    const bad = path.join(dir, "bad.json");
    fs.writeFileSync(bad, JSON.stringify({ version: 1, identity: "x", workload: { ...workload(SERVER_ID), inbound: { defaultMode: "strictest" } } }));
    cases.push({ args: ["run", "--config", bad], message: /workload\.inbound\.defaultMode: Invalid option/ });
    const noJson = path.join(dir, "nojson.json");
    fs.writeFileSync(noJson, "{ nope");
    cases.push({ args: ["run", "--config", noJson], message: /is not valid JSON/ });
    for (const { args, message } of cases) {
      const result = run(args);
      assert.equal(result.status, 2, `${args.join(" ")}: exit ${result.status}`);
      assert.match(result.stderr, message, `${args.join(" ")}: ${result.stderr}`);
      assert.doesNotMatch(result.stderr, /\n\s+at /, "no stack trace");
    }
  });

  it("exits 1 with a clean message when a listener's port is taken", async function () {
    const mesh = await testMesh();
    const dir = tmpDir();
    writeIdentityDir(path.join(dir, "id"), identityFilesFor(await mesh.leaf("shop", "api"), mesh.bundlePem));
    const taken = net.createServer();
    await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve));
    const port = (taken.address() as net.AddressInfo).port;
    const file = path.join(dir, "p.json");
    fs.writeFileSync(file, stableStringify({ version: 1, identity: "./id", workload: workload(SERVER_ID), listeners: { inbound: [{ port, host: "127.0.0.1", targetPort: 1 }] }, admin: { host: "127.0.0.1", port: await freePort() } }));
    const result = run(["run", "--config", file]);
    taken.close();
    assert.equal(result.status, 1);
    assert.match(result.stderr, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port} \\(inbound\\): EADDRINUSE`));
    assert.doesNotMatch(result.stderr, /\n\s+at /);
  });

  describe("a pair from proxy.json files", function () {
    let backend: Backend;
    let server: ChildProcess;
    let client: ChildProcess;
    const ports = { server: 0, serverAdmin: 0, client: 0, clientAdmin: 0 };
    const output: Record<string, string> = { server: "", client: "" };

    before(async function () {
      const mesh = await testMesh();
      backend = await startBackend();
      const dir = tmpDir();
      for (const key of Object.keys(ports) as Array<keyof typeof ports>) ports[key] = await freePort();
      writeIdentityDir(path.join(dir, "server-identity"), identityFilesFor(await mesh.leaf("shop", "api"), mesh.bundlePem));
      writeIdentityDir(path.join(dir, "client-identity"), identityFilesFor(await mesh.leaf("shop", "web"), mesh.bundlePem));
      fs.writeFileSync(
        path.join(dir, "server.json"),
        stableStringify({
          version: 1,
          identity: "./server-identity",
          workload: workload(SERVER_ID),
          listeners: { inbound: [{ port: ports.server, host: "127.0.0.1", targetPort: backend.port }] },
          admin: { host: "127.0.0.1", port: ports.serverAdmin },
        }),
      );
      fs.writeFileSync(
        path.join(dir, "client.json"),
        stableStringify({
          version: 1,
          identity: "./client-identity",
          workload: workload(CLIENT_ID),
          listeners: {
            outbound: [{ port: ports.client, host: "127.0.0.1", target: { host: "127.0.0.1", port: ports.server }, spiffeId: SERVER_ID, targetPort: backend.port }],
          },
          admin: { host: "127.0.0.1", port: ports.clientAdmin },
          transport: "h2",
        }),
      );
      const start = (name: "server" | "client") => {
        const child = spawn(process.execPath, [...imageEntrypoint(), "run", "--config", path.join(dir, `${name}.json`)], { stdio: ["ignore", "pipe", "pipe"] });
        child.stdout!.on("data", (c: Buffer) => (output[name] += c.toString()));
        child.stderr!.on("data", (c: Buffer) => (output[name] += c.toString()));
        children.push(child);
        return child;
      };
      server = start("server");
      client = start("client");
      for (const admin of [ports.serverAdmin, ports.clientAdmin]) {
        await waitFor(() => output.server.includes("proxy started") && output.client.includes("proxy started"), 10_000, "both proxies started");
        assert.equal((await adminGet(admin, "/readyz")).status, 200);
      }
    });
    after(async function () {
      await backend?.close();
    });

    it("forwards through the pair and logs JSON lines", async function () {
      assert.equal((await exchange(ports.client, "through the binaries")).toString(), "through the binaries");
      for (const line of output.server.trim().split("\n")) JSON.parse(line);
    });

    it("sends no TLS 1.3 session ticket: the client sees the handshake and the echo, and zero NewSessionTickets", async function () {
      const mesh = await testMesh();
      const web = await mesh.leaf("shop", "web");
      const socket = tls.connect({ host: "127.0.0.1", port: ports.server, cert: web.chainPem, key: web.keyPem, ca: mesh.bundlePem, checkServerIdentity: () => undefined });
      let tickets = 0;
      socket.on("session", () => tickets++);
      const echoed = await collect(socket as unknown as net.Socket, "ticket?");
      assert.equal(echoed.toString(), "ticket?");
      assert.equal(tickets, 0, "NewSessionTicket messages received");
      assert.doesNotMatch(output.server, /session tickets are on/);
    });

    it("refuses a certificate after the handshake with a TLS alert the client sees (here without tickets before it)", async function () {
      const mesh = await testMesh();
      const caLeaf = await mesh.leaf("shop", "web", { isCA: true, keyUsages: KeyUsage.digitalSignature, extKeyUsages: [Eku.clientAuth] });
      const accepted = backend.accepted;
      const result = await tlsAttempt(ports.server, { cert: caLeaf.chainPem, key: caLeaf.keyPem, ca: mesh.bundlePem });
      assert.equal(result.error, "ERR_SSL_SSLV3_ALERT_CERTIFICATE_UNKNOWN");
      assert.equal(backend.accepted, accepted, "nothing reached the app");
      await waitFor(() => output.server.includes('"reason":"leaf_is_ca"'), 5000, "the refusal log line");
    });

    it("idles at a modest RSS", async function () {
      await sleep(300);
      const rss = { server: rssKiB(server.pid!), client: rssKiB(client.pid!) };
      // Reported in the suite output; the bound is loose, the number is what matters.
      console.log(`      idle RSS: server ${(rss.server / 1024).toFixed(1)} MiB, client ${(rss.client / 1024).toFixed(1)} MiB`);
      assert.ok(rss.server < 120 * 1024 && rss.client < 120 * 1024);
    });

    it("drains on SIGTERM: open connections finish, then exit 0", async function () {
      const open = await connect(ports.client);
      const reply = new Promise<string>((resolve) => open.once("data", (c: Buffer) => resolve(c.toString())));
      open.write("before");
      assert.equal(await reply, "before");
      const exited = new Promise<number | null>((resolve) => server.once("exit", (code) => resolve(code)));
      server.kill("SIGTERM");
      await waitFor(() => output.server.includes('"msg":"draining"'), 5000, "draining");
      assert.equal((await adminGet(ports.serverAdmin, "/readyz")).status, 503);
      const again = new Promise<string>((resolve) => open.once("data", (c: Buffer) => resolve(c.toString())));
      open.write("during drain");
      assert.equal(await again, "during drain");
      open.end();
      assert.equal(await exited, 0);
      client.kill("SIGTERM");
    });
  });
});
