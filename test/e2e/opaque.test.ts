// e2e opaque ports (test/e2e/programs/opaque): a server-first app on 3306, opaque by the Mesh's
// default list, next to the same app on 9376, where the proxy detects the protocol. Everything as
// rendered and wired for real: the Service's mesh-tunnel port behind kube-proxy's DNAT, the
// init container's iptables, the directory's opaque flag. In permissive mode a plaintext client
// gets 3306's greeting at once and 9376's only after the sniff window; a meshed client reaches
// 3306 through db's tunnel port with mTLS on the wire. In strict, plaintext gets nothing on 3306
// and the meshed client still gets through. Root only.
import { strict as assert } from "node:assert";
import * as path from "node:path";
import { skipUnlessRoot } from "./harness/cluster";
import { REPO_ROOT } from "./harness/images";
import { tlsView } from "./harness/pcap";
import { wireReport } from "./harness/wire";
import { MeshRun } from "./mesh-run";

const PROGRAM = path.join(REPO_ROOT, "dist", "test", "e2e", "programs", "opaque", "index.js");
const SNIFF_WINDOW_MS = 200; // limits.sniffTimeoutMs's default

interface Greeting {
  text: string;
  /** From the dial to the server's first byte. */
  ms: number;
}

describe("e2e opaque ports: a server-first app without the sniff wait, meshed clients through the tunnel", function () {
  this.timeout(180_000);
  let run: MeshRun | undefined;

  before(async function () {
    skipUnlessRoot(this);
    run = await MeshRun.up({ program: PROGRAM, mode: "permissive" });
  });
  after(async () => {
    if (!run) return;
    const left = await run.down();
    assert.deepEqual(left, { namespaces: [], processes: [] });
  });

  /** Connects from a container (its UID: redirected through its pod's proxy, if any) and reads until the server ends. */
  async function greeting(namespace: string, workload: string, container: string, port: number, waitMs = 5000): Promise<Greeting | undefined> {
    const dialer = await run!.cluster.pod(namespace, workload).dialer(container);
    const started = Date.now();
    const socket = await dialer.dial(run!.cluster.service("data", "db").spec.clusterIP, port);
    return new Promise((resolve) => {
      let text = "";
      let first = 0;
      const timer = setTimeout(() => {
        socket.destroy();
        resolve(undefined);
      }, waitMs);
      socket.on("data", (chunk: Buffer) => {
        first ||= Date.now();
        text += chunk.toString();
      });
      socket.on("error", () => undefined);
      // The server closes after its greeting; the dialer's socket is half-open, so its end is the answer.
      const done = () => {
        clearTimeout(timer);
        socket.destroy();
        resolve(text ? { text, ms: first - started } : undefined);
      };
      socket.once("end", done);
      socket.once("close", done);
      socket.resume(); // dialThrough hands it over paused

    });
  }

  async function fastest(port: number, tries = 3): Promise<Greeting> {
    const seen: Greeting[] = [];
    for (let i = 0; i < tries; i++) {
      const g = await greeting("legacy", "legacy-client", "legacy-client", port);
      assert.ok(g, `legacy-client got no greeting on ${port}`);
      seen.push(g);
    }
    return seen.sort((a, b) => a.ms - b.ms)[0];
  }

  it("renders db's Service with the mesh-tunnel port, kube-proxy forwards it", () => {
    const ports = run!.cluster.service("data", "db").spec.ports.map((p: { name?: string; port: number }) => `${p.name}:${p.port}`);
    assert.deepEqual(ports, ["mysql:3306", "stats:9376", "mesh-tunnel:15008"]);
  });

  it("permissive: a plaintext client gets the opaque port's greeting at once, the detected port's only after the sniff window", async () => {
    const opaque = await fastest(3306);
    const detected = await fastest(9376);
    console.log(`      greeting after: opaque 3306 ${opaque.ms} ms, detected 9376 ${detected.ms} ms (best of 3 each)`);
    assert.equal(opaque.text, detected.text, "the same app answers both");
    assert.ok(detected.ms >= SNIFF_WINDOW_MS - 10, `the detected port waits the sniff window (${detected.ms} ms)`);
    assert.ok(opaque.ms < SNIFF_WINDOW_MS / 2, `the opaque port does not (${opaque.ms} ms, the detected one ${detected.ms} ms)`);
  });

  it("permissive: a meshed client reaches the opaque port through db's tunnel port, TLS 1.3 on the wire", async () => {
    const capture = await run!.cluster.capture("opaque-meshed");
    const meshed = await greeting("data", "app", "app", 3306);
    const streams = await capture.stop();
    assert.ok(meshed, "the meshed client got the greeting");
    const appIp = run!.cluster.pod("data", "app").ip;
    const dbIp = run!.cluster.pod("data", "db").ip;
    const wire = wireReport(streams, appIp, [meshed.text]);
    assert.equal(wire.verdict, "TLS 1.3", JSON.stringify(wire));
    const toTunnel = streams.filter((s) => s.key.startsWith(`${appIp}:`) && s.key.endsWith(` -> ${dbIp}:15008`));
    assert.equal(toTunnel.length, 1, `one connection from app to db's tunnel port (${streams.map((s) => s.key).join(", ")})`);
    assert.ok(!streams.some((s) => s.key.startsWith(`${appIp}:`) && s.key.endsWith(`:3306`)), "nothing from app went to 3306 directly");
    const fromTunnel = streams.find((s) => s.key === `${dbIp}:15008 -> ${toTunnel[0].key.split(" -> ")[0]}`);
    assert.ok(fromTunnel && tlsView(fromTunnel.bytes).serverHelloSelected13, "db's proxy answered the tunnel with TLS 1.3");
  });

  it("strict: a plaintext client gets nothing from the opaque port, the meshed client still does", async () => {
    await run!.setMode("strict");
    assert.equal(await greeting("legacy", "legacy-client", "legacy-client", 3306, 1500), undefined, "plaintext got a greeting in strict");
    const meshed = await greeting("data", "app", "app", 3306);
    assert.ok(meshed, "the meshed client got the greeting in strict");
  });
});
