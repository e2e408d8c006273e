// The local control plane starts, serves the pinned version with RBAC and a working
// controller-manager, and leaves no process, port or directory behind (issue "Real engine" item 2).
// Not part of `npm test` (the file name does not end in .test.ts): run with `npm run test:cluster`.
import { strict as assert } from "node:assert";
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { start, expectedKubeVersion, pidAlive, portIsFree, sweepStale, ControlPlane } from "./control-plane";

async function assertGone(ports: number[], pids: number[], dir: string): Promise<void> {
  // A process just SIGKILLed (by us, or by the kernel's pdeathsig) takes a moment to exit, and
  // its ports may stay unbindable a moment longer (connections closing: FIN_WAIT/LAST_ACK): give
  // each a few seconds, then it must be gone.
  const deadline = Date.now() + 5_000;
  for (const pid of pids) {
    while (pidAlive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    assert.equal(pidAlive(pid), false, `pid ${pid} still alive`);
  }
  for (const port of ports) {
    while (!(await portIsFree(port)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    assert.equal(await portIsFree(port), true, `port ${port} still bound`);
  }
  assert.equal(fs.existsSync(dir), false, `${dir} still exists`);
}

describe("local control plane", function () {
  let cp: ControlPlane | undefined;
  after(async () => cp?.stop());

  it("starts, serves the pinned version with RBAC, runs the controller-manager, and stop() leaves nothing behind", async () => {
    const t = Date.now();
    cp = await start({ log: (l) => console.log(`    ${l}`) });
    console.log(`    started in ${Date.now() - t} ms: ${JSON.stringify(cp.timings)}`);
    assert.equal(cp.version, expectedKubeVersion());
    const ns = await cp.request("GET", "/api/v1/namespaces/kube-system");
    assert.equal(ns.status, 200);
    // RBAC is on: an anonymous caller may read /version but not namespaces.
    const kc = JSON.parse(fs.readFileSync(cp.kubeconfigPath, "utf8"));
    assert.equal(kc.clusters[0].cluster.server, cp.server);
    // the controller-manager published the root CA into the default namespace
    const deadline = Date.now() + 60_000;
    let rootCa: any;
    while (Date.now() < deadline) {
      rootCa = await cp.request("GET", "/api/v1/namespaces/default/configmaps/kube-root-ca.crt");
      if (rootCa.status === 200) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    assert.equal(rootCa.status, 200);
    assert.equal(rootCa.body.data["ca.crt"].trim(), cp.caPem.trim());

    const { ports, pids, dir } = cp;
    const ts = Date.now();
    await cp.stop();
    console.log(`    stopped in ${Date.now() - ts} ms`);
    cp = undefined;
    await assertGone(Object.values(ports), Object.values(pids), dir);
  });

  for (const signal of ["SIGTERM", "SIGINT", "SIGKILL"] as const) {
    it(`a process that gets ${signal} takes its control plane with it`, async () => {
      // A child Node process starts a control plane, prints its ports/pids/dir, and is signalled.
      const script = `
        const cp = require(${JSON.stringify(path.join(__dirname, "control-plane.js"))});
        const fs = require("fs"), os = require("os"), path = require("path");
        const extra = fs.mkdtempSync(path.join(os.tmpdir(), "mesh-teardown-"));
        cp.onTeardown(() => fs.rmSync(extra, { recursive: true, force: true }));
        cp.start().then((p) => { console.log(JSON.stringify({ ports: p.ports, pids: p.pids, dir: p.dir, extra })); setInterval(() => {}, 1000); },
          (e) => { console.error(e); process.exit(2); });`;
      const child = spawn(process.execPath, ["-e", script], { stdio: ["ignore", "pipe", "inherit"] });
      const line = await new Promise<string>((resolve, reject) => {
        let out = "";
        child.stdout!.on("data", (d) => {
          out += d;
          if (out.includes("\n")) resolve(out.split("\n")[0]);
        });
        child.on("exit", (code) => reject(new Error(`child exited ${code} before the control plane was up`)));
      });
      const info = JSON.parse(line);
      const exited = new Promise<NodeJS.Signals | null>((r) => child.on("exit", (_c, s) => r(s)));
      child.kill(signal);
      assert.equal(await exited, signal, "the process dies of the signal it got (re-raised after teardown)");
      if (signal === "SIGKILL") {
        // No handler ran: the kernel killed the components (setpriv --pdeathsig KILL); the
        // directory is left for the next start() to sweep, as here.
        await new Promise((r) => setTimeout(r, 500));
        assert.equal(fs.existsSync(info.dir), true);
        sweepStale();
        fs.rmSync(info.extra, { recursive: true, force: true });
      }
      await assertGone(Object.values(info.ports), Object.values(info.pids), info.dir);
      // what the process registered with onTeardown (the engine's work dir, in real-engine) ran too
      assert.equal(fs.existsSync(info.extra), false, `${info.extra} still exists`);
    });
  }
});
