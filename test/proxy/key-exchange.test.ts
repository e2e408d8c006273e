// Post-quantum key exchange between proxies, on the wire: pairs of real `mesh-proxy` processes
// started as the image starts them, under the image's Node (24, OpenSSL 3.5, fetched from the npm
// registry by test/setup/node-runtime.sh) and under the host's Node (20, OpenSSL 3.0, no ML-KEM).
// A tcpdump capture of the connection between the two proxies shows the group the server's
// ServerHello selected, and whether it first had to ask for another key share.
import { strict as assert } from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { stableStringify, Transport } from "../../proxy/config";
import { Capture } from "../e2e/harness/capture";
import { countPlaintext, tlsView } from "../e2e/harness/pcap";
import {
  Backend, CLIENT_ID, exchange, freePort, identityFilesFor, ProxyProcess, removeTmpDirs, SERVER_ID, spawnProxy, startBackend, testMesh, tmpDir, workload,
} from "./support";

const NODE_RUNTIME = path.resolve(__dirname, "../../../test/setup/node-runtime.sh");
const GROUP = { X25519MLKEM768: 0x11ec, X25519: 0x001d } as const;

function node24(): string {
  const r = spawnSync("bash", [NODE_RUNTIME], { encoding: "utf8", timeout: 300_000 });
  assert.equal(r.status, 0, `test/setup/node-runtime.sh failed: ${r.stderr}`);
  const binary = r.stdout.trim();
  const openssl = spawnSync(binary, ["-p", "process.versions.openssl"], { encoding: "utf8" }).stdout.trim();
  assert.match(openssl, /^3\.[5-9]/, `${binary} bundles OpenSSL ${openssl}, not 3.5+`);
  return binary;
}

describe("proxy: key exchange between proxies (Node 24 with ML-KEM, Node 20 without)", function () {
  this.timeout(120_000);
  let runtimes: { node24: string; node20: string };
  let backend: Backend;
  let dir: string;

  before(async function () {
    runtimes = { node24: node24(), node20: process.execPath };
    assert.doesNotMatch(spawnSync(runtimes.node20, ["-p", "process.versions.openssl"], { encoding: "utf8" }).stdout, /^3\.[5-9]/, "the host Node is the one without ML-KEM");
    backend = await startBackend();
    dir = tmpDir("key-exchange-");
    const mesh = await testMesh();
    for (const [name, ns, sa] of [["server", "shop", "api"], ["client", "shop", "web"]] as const) {
      const identity = path.join(dir, `${name}-identity`);
      fs.mkdirSync(identity);
      for (const [file, text] of Object.entries(identityFilesFor(await mesh.leaf(ns, sa), mesh.bundlePem))) fs.writeFileSync(path.join(identity, file), text);
    }
  });
  after(async function () {
    await backend?.close();
    removeTmpDirs();
  });

  /** A client and a server proxy on loopback, each under its runtime; the capture sees only the hop between them. */
  async function throughPair(serverNode: string, clientNode: string, transport: Transport) {
    const [server, client, serverAdmin, clientAdmin] = [await freePort(), await freePort(), await freePort(), await freePort()];
    const write = (name: string, config: object) => {
      const file = path.join(dir, `${name}-${server}.json`);
      fs.writeFileSync(file, stableStringify(config));
      return file;
    };
    const serverFile = write("server", {
      version: 1, identity: "./server-identity", workload: workload(SERVER_ID), transport,
      listeners: { inbound: [{ port: server, host: "127.0.0.1", targetPort: backend.port }] },
      admin: { host: "127.0.0.1", port: serverAdmin },
    });
    const clientFile = write("client", {
      version: 1, identity: "./client-identity", workload: workload(CLIENT_ID), transport,
      listeners: { outbound: [{ port: client, host: "127.0.0.1", target: { host: "127.0.0.1", port: server }, spiffeId: SERVER_ID, targetPort: backend.port }] },
      admin: { host: "127.0.0.1", port: clientAdmin },
    });
    const procs: ProxyProcess[] = [];
    try {
      procs.push(await spawnProxy(serverNode, serverFile));
      procs.push(await spawnProxy(clientNode, clientFile));
      const capture = await Capture.start(undefined, "lo", path.join(dir, `hop-${server}.pcap`), `tcp port ${server}`);
      const payload = `key exchange over ${transport}`;
      const echoed = (await exchange(client, payload)).toString();
      const streams = await capture.stop();
      assert.equal(echoed, payload);
      assert.equal(countPlaintext(streams, payload), 0, "the app's bytes are encrypted between the proxies");
      const fromServer = streams.filter((s) => s.key.startsWith(`127.0.0.1:${server} ->`));
      assert.equal(fromServer.length, 1, `one connection between the proxies (${streams.map((s) => s.key).join(", ")})`);
      return tlsView(fromServer[0].bytes);
    } finally {
      for (const p of procs.reverse()) await p.stop();
    }
  }

  for (const transport of ["h2", "tcp"] as const) {
    it(`negotiates X25519MLKEM768 between two Node 24 proxies (${transport}), in one round trip`, async function () {
      const view = await throughPair(runtimes.node24, runtimes.node24, transport);
      assert.ok(view.serverHelloSelected13, "TLS 1.3");
      assert.equal(view.serverHelloGroup, GROUP.X25519MLKEM768);
      assert.equal(view.helloRetryRequest, false);
    });
  }

  it("falls back to X25519 with a Node 20 client, without a HelloRetryRequest", async function () {
    const view = await throughPair(runtimes.node24, runtimes.node20, "h2");
    assert.equal(view.serverHelloGroup, GROUP.X25519);
    assert.equal(view.helloRetryRequest, false);
  });

  it("falls back to X25519 with a Node 20 server: the Node 24 client's second key share answers at once", async function () {
    const view = await throughPair(runtimes.node20, runtimes.node24, "tcp");
    assert.equal(view.serverHelloGroup, GROUP.X25519);
    assert.equal(view.helloRetryRequest, false, "the ClientHello carried an X25519 share too");
  });

  it("`mesh-proxy version` says which runtime and key exchange runs", function () {
    const cli = path.resolve(__dirname, "../../proxy/cli.js");
    const on24 = spawnSync(runtimes.node24, [cli, "version"], { encoding: "utf8" }).stdout;
    const on20 = spawnSync(runtimes.node20, [cli, "version"], { encoding: "utf8" }).stdout;
    assert.match(on24, /node v24\.\d+\.\d+, OpenSSL 3\.[5-9]\S*, key exchange X25519MLKEM768:X25519:P-256/);
    assert.match(on20, /node v20\.\d+\.\d+, OpenSSL 3\.0\S*, key exchange X25519:P-256/);
  });
});
