// Applies rendered rules with the iptables binary (execFile, no shell), idempotently as rules.ts
// describes, and turns the ways it can fail into one clear sentence each.
import { execFile } from "child_process";
import * as path from "path";
import { BUILTIN_CHAINS } from "./rules";

export type InstallFailureKind = "missing-binary" | "permission" | "failed";

export class RedirectInstallError extends Error {
  constructor(
    readonly kind: InstallFailureKind,
    message: string,
  ) {
    super(message);
    this.name = "RedirectInstallError";
  }
}

/** How long one iptables call may take, including waiting for the xtables lock. */
const COMMAND_TIMEOUT_MS = 15_000;
/** Seconds iptables waits for another holder of the xtables lock (legacy backend) before failing. */
const LOCK_WAIT_SECONDS = "10";

interface Outcome {
  ok: boolean;
  stderr: string;
  /** The spawn error code (ENOENT, EACCES) when the binary could not run at all. */
  spawnError?: string;
}

function run(binary: string, argv: string[]): Promise<Outcome> {
  return new Promise((resolve) => {
    execFile(binary, ["-w", LOCK_WAIT_SECONDS, ...argv], { timeout: COMMAND_TIMEOUT_MS }, (error, _stdout, stderr) => {
      if (!error) return resolve({ ok: true, stderr });
      const code = (error as NodeJS.ErrnoException).code;
      resolve({ ok: false, stderr: stderr || error.message, spawnError: typeof code === "string" ? code : undefined });
    });
  });
}

/** Applies the rules in order; throws RedirectInstallError on the first failure. */
export async function installRules(binary: string, rules: readonly string[][]): Promise<void> {
  for (const argv of rules) {
    const op = argv.indexOf("-N") >= 0 ? "-N" : argv.indexOf("-A") >= 0 ? "-A" : "";
    if (op === "-N") {
      const created = await run(binary, argv);
      if (created.ok) continue;
      if (!/already exists/i.test(created.stderr)) throw describeFailure(binary, argv, created);
      // Ours from an earlier run: empty it so that the appends below leave exactly one copy.
      const flushed = await run(binary, swapOp(argv, "-N", "-F"));
      if (!flushed.ok) throw describeFailure(binary, swapOp(argv, "-N", "-F"), flushed);
      continue;
    }
    if (op === "-A" && BUILTIN_CHAINS.includes(argv[argv.indexOf("-A") + 1])) {
      const present = await run(binary, swapOp(argv, "-A", "-C"));
      if (present.ok) continue;
      if (!isMissingRule(present.stderr)) throw describeFailure(binary, swapOp(argv, "-A", "-C"), present);
    }
    const applied = await run(binary, argv);
    if (!applied.ok) throw describeFailure(binary, argv, applied);
  }
}

function swapOp(argv: string[], from: string, to: string): string[] {
  const copy = [...argv];
  copy[copy.indexOf(from)] = to;
  return copy;
}

/** `-C` exits 1 with this text when the rule is simply not there (the normal first-run case). */
function isMissingRule(stderr: string): boolean {
  return /does a matching rule exist|Bad rule/i.test(stderr);
}

/** One sentence saying what is wrong and what to do, for each way iptables can fail. */
export function describeFailure(binary: string, argv: string[], outcome: Outcome): RedirectInstallError {
  // ip6tables ships in the same package but has its own flag.
  const tool = path.basename(binary).startsWith("ip6tables") ? "ip6tables" : "iptables";
  if (outcome.spawnError === "ENOENT") {
    return new RedirectInstallError(
      "missing-binary",
      `could not find ${tool}: "${binary}" is not installed or not on PATH (install the iptables package, or pass --${tool} <path>)`,
    );
  }
  if (outcome.spawnError === "EACCES") {
    return new RedirectInstallError("missing-binary", `could not run ${tool}: "${binary}" is not executable`);
  }
  const firstLine = outcome.stderr.trim().split("\n")[0] ?? "";
  if (/permission denied|operation not permitted|you must be root|EPERM/i.test(outcome.stderr)) {
    return new RedirectInstallError(
      "permission",
      `iptables was refused (permission denied): the init container must run as root with the NET_ADMIN and NET_RAW capabilities [${firstLine}]`,
    );
  }
  return new RedirectInstallError("failed", `${binary} ${argv.join(" ")} failed: ${firstLine || "no error output"}`);
}
