// Every process the bench starts goes through here, so that one teardown (normal end, error,
// Ctrl-C) can stop them all: each child is its own process group and is killed by its own id.
import { spawn, ChildProcess, execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";

export interface Started {
  name: string;
  child: ChildProcess;
  pid: number;
  /** Resolves with the exit code (or signal name) once the process has ended. */
  exited: Promise<number | string>;
  /** Last lines of stderr+stdout, for error messages. */
  tail(): string;
  /** Exit code or signal once the process has ended. */
  exitStatus?: number | string;
}

const live = new Set<Started>();

export interface StartOptions {
  /** Network namespace to run in (`ip netns exec`), or undefined for the current one. */
  netns?: string;
  /** Where stdout/stderr go, besides the in-memory tail. */
  logFile?: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

export function start(name: string, cmd: string, args: string[], opts: StartOptions = {}): Started {
  const [file, argv] = opts.netns ? ["ip", ["netns", "exec", opts.netns, cmd, ...args]] : [cmd, args];
  const child = spawn(file, argv, {
    detached: true,
    stdio: ["pipe", "pipe", "pipe"],
    env: opts.env ?? process.env,
    cwd: opts.cwd,
  });
  if (child.pid === undefined) throw new Error(`could not start ${name} (${cmd})`);
  const log = opts.logFile ? fs.createWriteStream(opts.logFile, { flags: "a" }) : undefined;
  let tail = "";
  const keep = (chunk: Buffer) => {
    log?.write(chunk);
    tail = (tail + chunk.toString()).slice(-4000);
  };
  child.stdout!.on("data", keep);
  child.stderr!.on("data", keep);
  const started: Started = {
    name,
    child,
    pid: child.pid,
    exited: new Promise((resolve) =>
      child.on("exit", (code, signal) => {
        live.delete(started);
        log?.end();
        started.exitStatus = code ?? signal ?? "unknown";
        resolve(started.exitStatus);
      }),
    ),
    tail: () => tail,
  };
  child.on("error", (err) => keep(Buffer.from(`spawn error: ${err.message}\n`)));
  live.add(started);
  return started;
}

/** Runs a command to completion and returns its stdout; throws with the output tail on failure. */
export async function run(name: string, cmd: string, args: string[], opts: StartOptions & { timeoutMs?: number } = {}): Promise<string> {
  const p = start(name, cmd, args, opts);
  let out = "";
  p.child.stdout!.on("data", (c: Buffer) => (out += c.toString()));
  p.child.stdin!.end();
  const timer = opts.timeoutMs ? setTimeout(() => kill(p, "SIGKILL"), opts.timeoutMs) : undefined;
  const code = await p.exited;
  if (timer) clearTimeout(timer);
  if (code !== 0) throw new Error(`${name} failed (${code}): ${lastLines(p)}`);
  return out;
}

export function kill(p: Started, signal: NodeJS.Signals = "SIGTERM"): void {
  try {
    process.kill(-p.pid, signal);
  } catch {
    /* already gone */
  }
}

/** SIGTERM, then SIGKILL after a grace period. */
export async function stop(p: Started, graceMs = 3000): Promise<void> {
  if (!live.has(p)) return;
  kill(p, "SIGTERM");
  const timer = setTimeout(() => kill(p, "SIGKILL"), graceMs);
  await p.exited;
  clearTimeout(timer);
}

export async function stopAll(): Promise<void> {
  await Promise.all([...live].map((p) => stop(p)));
}

/** Synchronous last resort for process exit handlers. */
export function killAllNow(): void {
  for (const p of live) kill(p, "SIGKILL");
}

/** Waits until something listens on a TCP port (inside the namespace when given). Looks at the
 * socket table instead of connecting, so no proxy sees a half-open probe connection. */
export async function waitForPort(port: number, proc: Started, netns?: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!live.has(proc)) throw new Error(`${proc.name} exited during startup: ${lastLines(proc)}`);
    if (listening(port, netns)) return;
    if (Date.now() > deadline) throw new Error(`${proc.name} did not listen on port ${port} within ${timeoutMs} ms: ${lastLines(proc)}`);
    await sleep(50);
  }
}

export function lastLines(p: Started, n = 8): string {
  return p.tail().trim().split("\n").slice(-n).join("\n");
}

function listening(port: number, netns?: string): boolean {
  const ss = ["ss", "-Hltn", `sport = :${port}`];
  try {
    const out = netns ? execFileSync("ip", ["netns", "exec", netns, ...ss]) : execFileSync(ss[0], ss.slice(1));
    return out.toString().trim().length > 0;
  } catch {
    return false;
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Free TCP ports on loopback, for the loopback topology. */
export async function freePorts(n: number): Promise<number[]> {
  const servers: net.Server[] = [];
  const ports: number[] = [];
  for (let i = 0; i < n; i++) {
    const s = net.createServer();
    await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
    servers.push(s);
    ports.push((s.address() as net.AddressInfo).port);
  }
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}
