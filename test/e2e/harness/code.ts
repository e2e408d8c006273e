// Pod processes run as their containers' UIDs (the proxy's 1337, http-echo's 65532, curl's 100),
// not as root. A clone under /root (mode 0700 on Debian) or in a `mktemp -d` directory is out of
// their reach, so the harness then stages what they run (dist/, node_modules/, package.json and
// the node binary) inside the run directory: hard links, so it costs well under a second (a copy
// of ~200 MB when the run directory is on another file system), and the run's teardown removes it.
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { HOST_CODE } from "./images";

/** Where pod processes find the repository's code and the Node binary. */
export interface CodeRoots {
  root: string;
  node: string;
}

/** Can an unprivileged user (nobody) read `file` (or execute it, with `execute`)? */
export function reachableByOthers(file: string, execute = false): boolean {
  const r = spawnSync("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", "--", "test", execute ? "-x" : "-r", file]);
  return r.status === 0;
}

function linkTree(from: string, to: string): void {
  // Hard links first; a copy when `to` is on another file system.
  for (const flags of ["-al", "-a"]) {
    if (spawnSync("cp", [flags, from, to]).status === 0) return;
    fs.rmSync(to, { recursive: true, force: true });
  }
  throw new Error(`cannot stage ${from} into ${to}`);
}

/**
 * The code roots pod processes can use: the repository and node as they are when an unprivileged
 * user can reach them, else a staged copy under `runDir/code`.
 */
export function codeRootsFor(runDir: string, code: CodeRoots = HOST_CODE, log: (line: string) => void = () => {}): CodeRoots {
  const repoOk = reachableByOthers(path.join(code.root, "dist", "proxy", "cli.js")) && reachableByOthers(path.join(code.root, "node_modules", "commander", "package.json"));
  const nodeOk = reachableByOthers(code.node, true);
  if (repoOk && nodeOk) return code;
  const staged = path.join(runDir, "code");
  fs.mkdirSync(staged, { recursive: true, mode: 0o755 });
  fs.chmodSync(staged, 0o755);
  const out = { ...code };
  if (!repoOk) {
    for (const entry of ["dist", "node_modules", "package.json"]) linkTree(path.join(code.root, entry), path.join(staged, entry));
    // The proxy image's ENTRYPOINT loads it (no TLS session tickets); the harness runs it the same way.
    fs.mkdirSync(path.join(staged, "proxy"), { recursive: true });
    linkTree(path.join(code.root, "proxy", "openssl.cnf"), path.join(staged, "proxy", "openssl.cnf"));
    out.root = staged;
  }
  if (!nodeOk) {
    // A copy, not a link: chmod on a hard link would change the user's own binary.
    fs.copyFileSync(code.node, path.join(staged, "node"));
    fs.chmodSync(path.join(staged, "node"), 0o755);
    out.node = path.join(staged, "node");
  }
  if (!reachableByOthers(path.join(out.root, "dist", "proxy", "cli.js")) || !reachableByOthers(out.node, true)) {
    throw new Error(`pod processes (non-root UIDs) cannot read the code even after staging it in ${staged}: is ${runDir} in a private directory (TMPDIR)?`);
  }
  log(`pod processes cannot read ${!repoOk ? code.root : code.node} (a private directory): staged a hard-linked copy in ${staged}`);
  return out;
}
