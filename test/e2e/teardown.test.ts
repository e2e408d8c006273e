// Teardown on every exit path: a process holding a running cluster is ended by SIGTERM, Ctrl-C
// (SIGINT), an uncaught exception, and SIGKILL (swept by the next run). Nothing may be left: no
// namespace, no process, no hosts file, no run directory. Root only.
import { strict as assert } from "node:assert";
import { ChildProcess, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { render } from "./engine/render";
import { skipUnlessRoot } from "./harness/cluster";
import { REPO_ROOT } from "./harness/images";
import { runNames } from "./harness/names";
import { isRunning, listNamespaces, namespacePids, sweepStale } from "./harness/teardown";

const HOLD = path.join(__dirname, "fixtures", "hold-cluster.js");
const TINY = path.join(REPO_ROOT, "dist", "test", "e2e", "programs", "tiny", "index.js");

interface Held {
  child: ChildProcess;
  id: string;
  pids: number[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

describe("e2e teardown on every exit path (root)", function () {
  this.timeout(60_000);
  let objectsFile: string;

  before(async function () {
    skipUnlessRoot(this);
    const rendered = await render({ program: TINY });
    objectsFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "e2e-objects-")), "objects.json");
    fs.writeFileSync(objectsFile, JSON.stringify(rendered.objects));
  });

  after(() => {
    if (objectsFile) fs.rmSync(path.dirname(objectsFile), { recursive: true, force: true });
  });

  const mine = (id: string) => listNamespaces().filter((ns) => ns.startsWith(`e2e-${id}-`));

  async function hold(mode = ""): Promise<Held> {
    const child = spawn(process.execPath, [HOLD, objectsFile, mode], { stdio: ["ignore", "pipe", "pipe"] });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
    const id = await new Promise<string>((resolve, reject) => {
      let out = "";
      child.stdout!.on("data", (d) => {
        out += d;
        if (out.includes("\n")) resolve(out.trim());
      });
      exited.then(() => reject(new Error(`fixture exited before the cluster was up`)));
    });
    const pids = mine(id).flatMap(namespacePids);
    assert.ok(pids.length >= 4, `expected the pods' processes, got ${pids.length}`);
    return { child, id, pids, exited };
  }

  function assertNothingLeft(held: Held): void {
    assert.deepEqual(mine(held.id), []);
    assert.deepEqual(held.pids.filter(isRunning), [], "processes survived");
    assert.equal(fs.existsSync(runNames(held.id).dir), false, "run directory left");
    assert.deepEqual(fs.readdirSync("/etc/netns").filter((d) => d.startsWith(`e2e-${held.id}-`)), []);
  }

  for (const [signal, code] of [["SIGTERM", 143], ["SIGINT", 130]] as const) {
    it(`${signal}: the run tears itself down and exits ${code}`, async () => {
      const held = await hold();
      held.child.kill(signal);
      assert.deepEqual(await held.exited, { code, signal: null });
      assertNothingLeft(held);
    });
  }

  it("an uncaught exception: the exit hook tears the run down", async () => {
    const held = await hold("throw");
    const { code } = await held.exited;
    assert.notEqual(code, 0);
    assertNothingLeft(held);
  });

  it("SIGKILL: the leftovers are recognisable by run id and swept by the next run", async () => {
    const held = await hold();
    held.child.kill("SIGKILL");
    await held.exited;
    assert.ok(mine(held.id).length > 0, "SIGKILL cannot run hooks: the namespaces are still there");
    assert.ok(sweepStale().includes(held.id));
    assertNothingLeft(held);
  });
});
