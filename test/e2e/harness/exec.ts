// Runs host commands (ip, iptables, tcpdump) with their stderr in the error, so a failing step
// says which command failed and why instead of "exit code 1".
import { execFile, execFileSync } from "node:child_process";

export class CommandError extends Error {
  constructor(
    readonly command: string,
    readonly code: number | null,
    readonly stderr: string,
  ) {
    super(`${command} failed (exit ${code}): ${stderr.trim() || "(no output)"}`);
  }
}

export interface RunResult {
  stdout: string;
  stderr: string;
}

export function run(file: string, args: string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      file,
      args,
      { timeout: opts.timeoutMs ?? 30_000, maxBuffer: 64 * 1024 * 1024, encoding: "utf8" },
      (error, stdout, stderr) => {
        if (error) {
          const code = typeof error.code === "number" ? error.code : null;
          reject(new CommandError([file, ...args].join(" "), code, stderr || error.message));
        } else resolve({ stdout, stderr });
      },
    );
    // A program that fails to start closes its stdin first: the exit code reports that, not EPIPE.
    child.stdin?.on("error", () => {});
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

/** Synchronous variant for the process-exit path, where no promise will ever be awaited. */
export function runSyncQuiet(file: string, args: string[]): string {
  try {
    return execFileSync(file, args, { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"], timeout: 10_000 });
  } catch {
    return "";
  }
}

export function isRoot(): boolean {
  return typeof process.getuid === "function" && process.getuid() === 0;
}
