// Teardown that works on every exit path. Everything a run starts lives inside a network
// namespace named after the run (processes included: all are started with `ip netns exec`), so
// one synchronous sweep — kill the namespace's processes, delete the namespace, remove its
// /etc/netns hosts dir and the run dir — is enough for a normal end, a failure, Ctrl-C/SIGTERM and
// an uncaught exception alike. A run killed with SIGKILL is swept by the next run (sweepStale).
import * as fs from "node:fs";
import * as path from "node:path";
import { runSyncQuiet } from "./exec";
import { PREFIX, RUNS_DIR, runIdOfNamespace, runNames } from "./names";

const OWNER_FILE = "owner.pid";

export function listNamespaces(): string[] {
  return runSyncQuiet("ip", ["netns", "list"])
    .split("\n")
    .map((line) => line.split(" ")[0])
    .filter((name) => name && name.startsWith(`${PREFIX}-`));
}

export function namespacePids(ns: string): number[] {
  return runSyncQuiet("ip", ["netns", "pids", ns])
    .split(/\s+/)
    .filter(Boolean)
    .map(Number);
}

/** Alive and not a zombie (a killed child stays a zombie until its parent or init reaps it). */
export function isRunning(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}

/** Removes everything of run `id`; never throws, safe to call twice. */
export function sweepRun(id: string): void {
  const names = runNames(id);
  const namespaces = listNamespaces().filter((ns) => runIdOfNamespace(ns) === id);
  for (let attempt = 0; attempt < 3; attempt++) {
    const pids = namespaces.flatMap(namespacePids);
    if (pids.length === 0) break;
    for (const pid of pids) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        /* already gone */
      }
    }
    runSyncQuiet("sleep", ["0.05"]);
  }
  // Pods first, the node (bridge end of every veth) last.
  for (const ns of namespaces.sort((a, b) => Number(a === names.nodeNs) - Number(b === names.nodeNs))) {
    runSyncQuiet("ip", ["netns", "delete", ns]);
    fs.rmSync(path.join("/etc/netns", ns), { recursive: true, force: true });
  }
  fs.rmSync(names.dir, { recursive: true, force: true });
}

/** Claims run `id` for this process, so concurrent runs never sweep each other. */
export function claimRun(id: string): void {
  const dir = runNames(id).dir;
  fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  fs.writeFileSync(path.join(dir, OWNER_FILE), String(process.pid));
}

function ownerAlive(id: string): boolean {
  try {
    const pid = Number(fs.readFileSync(path.join(runNames(id).dir, OWNER_FILE), "utf8"));
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Sweeps runs whose owning process is gone (a crashed or SIGKILLed earlier run). */
export function sweepStale(): string[] {
  const ids = new Set<string>();
  for (const ns of listNamespaces()) {
    const id = runIdOfNamespace(ns);
    if (id) ids.add(id);
  }
  if (fs.existsSync(RUNS_DIR)) for (const entry of fs.readdirSync(RUNS_DIR)) ids.add(entry);
  const swept = [...ids].filter((id) => !ownerAlive(id));
  swept.forEach(sweepRun);
  return swept;
}

type Exit = (code: number) => void;

/**
 * Sweeps run `id` when the process ends for any reason. Returns a function that removes the
 * hooks (after a normal, awaited teardown).
 */
export function sweepOnExit(id: string, exit: Exit = (code) => process.exit(code)): () => void {
  const onExit = () => sweepRun(id);
  const onSignal = (signal: NodeJS.Signals) => {
    process.stderr.write(`\n${signal}: tearing down run ${id}\n`);
    sweepRun(id);
    exit(signal === "SIGINT" ? 130 : 143);
  };
  process.on("exit", onExit);
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  return () => {
    process.off("exit", onExit);
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  };
}
