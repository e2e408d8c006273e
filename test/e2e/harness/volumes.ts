// Secret / ConfigMap / projected volumes written the way kubelet's AtomicWriter does it:
//   <dir>/..2026_11_28_11_02_03.123456789/<files>   the payload, one timestamped directory
//   <dir>/..data -> ..2026_11_28_...                  the current payload
//   <dir>/<key> -> ..data/<key>                       what the container sees
// An update writes a new timestamped directory and renames a fresh `..data` symlink over the old
// one (one atomic step), so a reader sees the old payload or the new one, never a mix — and a
// proxy that watches the directory sees exactly the events it would see on a real node.
import * as fs from "node:fs";
import * as path from "node:path";

export interface VolumeFile {
  /** Relative path inside the volume (may contain '/'). */
  path: string;
  content: Buffer;
  mode: number;
}

export interface Ownership {
  /** Pod fsGroup: files get this group and group read, as kubelet does. */
  fsGroup?: number;
}

let sequence = 0;

function timestampDirName(): string {
  const now = new Date();
  const pad = (n: number, w = 2) => String(n).padStart(w, "0");
  // Nanoseconds are not available; a sequence number keeps two writes in one millisecond apart.
  const nanos = pad(now.getUTCMilliseconds(), 3) + pad(++sequence % 1_000_000, 6);
  return (
    `..${now.getUTCFullYear()}_${pad(now.getUTCMonth() + 1)}_${pad(now.getUTCDate())}_` +
    `${pad(now.getUTCHours())}_${pad(now.getUTCMinutes())}_${pad(now.getUTCSeconds())}.${nanos}`
  );
}

function checkPath(p: string): void {
  if (!p || path.isAbsolute(p) || p.split("/").some((s) => s === ".." || s === "" || s.startsWith(".."))) {
    throw new Error(`volume path ${JSON.stringify(p)} is not allowed (kubelet refuses it too)`);
  }
}

/** Writes (or atomically replaces) the payload of the volume mounted at `dir`. */
export function writeVolume(dir: string, files: VolumeFile[], owner: Ownership = {}): void {
  files.forEach((f) => checkPath(f.path));
  fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  fs.chmodSync(dir, 0o755);
  const dataLink = path.join(dir, "..data");
  const oldTarget = fs.existsSync(dataLink) ? fs.readlinkSync(dataLink) : undefined;
  const oldTopLevel = oldTarget ? topLevelNames(fs.readdirSync(path.join(dir, oldTarget))) : new Set<string>();

  const tsName = timestampDirName();
  const tsDir = path.join(dir, tsName);
  fs.mkdirSync(tsDir, { mode: 0o755 });
  for (const file of files) {
    const target = path.join(tsDir, file.path);
    fs.mkdirSync(path.dirname(target), { recursive: true, mode: 0o755 });
    fs.writeFileSync(target, file.content);
    let mode = file.mode;
    if (owner.fsGroup !== undefined) {
      fs.chownSync(target, 0, owner.fsGroup);
      mode |= 0o040;
    }
    fs.chmodSync(target, mode);
  }

  const tmpLink = path.join(dir, "..data_tmp");
  fs.rmSync(tmpLink, { force: true });
  fs.symlinkSync(tsName, tmpLink);
  fs.renameSync(tmpLink, dataLink);

  const newTopLevel = topLevelNames(files.map((f) => f.path));
  for (const name of newTopLevel) {
    const link = path.join(dir, name);
    if (!isSymlink(link)) fs.symlinkSync(path.join("..data", name), link);
  }
  for (const name of oldTopLevel) {
    if (!newTopLevel.has(name)) fs.rmSync(path.join(dir, name), { force: true });
  }
  if (oldTarget) fs.rmSync(path.join(dir, oldTarget), { recursive: true, force: true });
}

function topLevelNames(paths: string[]): Set<string> {
  return new Set(paths.map((p) => p.split("/")[0]).filter((n) => !n.startsWith("..")));
}

function isSymlink(p: string): boolean {
  try {
    return fs.lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}
