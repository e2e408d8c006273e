// Starts a container's process inside a pod's network namespace with the container's identity:
// `ip netns exec <ns>` (which also bind-mounts the pod's /etc/netns/<ns>/hosts) then `setpriv` for
// the UID/GID, supplementary groups, the capability bounding set and no_new_privs. Both exec in
// place, so the PID we hold is the container's process.
import { ChildProcess, spawn } from "node:child_process";
import * as fs from "node:fs";

export interface Identity {
  uid: number;
  gid: number;
  groups: number[];
  /**
   * Capabilities kept in the bounding set (lower-case, no CAP_ prefix); [] drops all. For UID 0
   * the bounding set is what the program ends up with after exec; other UIDs get none anyway.
   */
  capabilities: string[];
  noNewPrivileges: boolean;
}

export interface StartOptions {
  ns: string;
  identity: Identity;
  argv: string[];
  env?: Record<string, string>;
  logFile: string;
}

export interface Started {
  child: ChildProcess;
  pid: number;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export function setprivArgs(id: Identity): string[] {
  const args = [`--reuid=${id.uid}`, `--regid=${id.gid}`];
  args.push(id.groups.length ? `--groups=${id.groups.join(",")}` : "--clear-groups");
  args.push(`--bounding-set=-all${id.capabilities.map((c) => `,+${c}`).join("")}`);
  if (id.noNewPrivileges) args.push("--no-new-privs");
  return args;
}

export function startInNamespace(opts: StartOptions): Started {
  const log = fs.openSync(opts.logFile, "a");
  const child = spawn("ip", ["netns", "exec", opts.ns, "setpriv", ...setprivArgs(opts.identity), "--", ...opts.argv], {
    stdio: ["ignore", log, log],
    env: { PATH: process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin", HOME: "/", ...opts.env },
    detached: true,
  });
  fs.closeSync(log);
  if (child.pid === undefined) throw new Error(`could not start ${opts.argv.join(" ")} in ${opts.ns}`);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  child.unref();
  return { child, pid: child.pid, exited };
}

/** Runs to completion (an init container); resolves with the exit code. */
export async function runInNamespace(opts: StartOptions, timeoutMs = 30_000): Promise<number | null> {
  const started = startInNamespace(opts);
  const timer = setTimeout(() => started.child.kill("SIGKILL"), timeoutMs);
  const { code } = await started.exited;
  clearTimeout(timer);
  return code;
}

export function tail(file: string, lines = 20): string {
  try {
    return fs.readFileSync(file, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}
