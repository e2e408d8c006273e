// Control-plane cost: time and memory to evaluate a program with N MeshedWorkloads under the
// Pulumi mock runtime, each size in a fresh child process (controlplane-child.ts).
import * as fs from "node:fs";
import * as path from "node:path";
import { run } from "./processes";
import { topFunctions, ProfileEntry, AreaEntry } from "./profile";

export interface ControlPlaneResult {
  workloads: number;
  seconds: number;
  maxRssMB: number;
  heapUsedMB: number;
  /** Every resource registered (Mesh-level ones included). */
  resources?: number;
  /** Resources named after a workload (its component and children). */
  workloadResources?: number;
  /** The directory ConfigMap's key ("directory.json" or "directory.json.gz") and payload size (base64 for gzip). */
  directoryForm?: string;
  directoryBytes?: number;
  error?: string;
}

const CHILD = path.join(__dirname, "controlplane-child.js");

export async function runControlPlane(sizes: number[], progress: (l: string) => void): Promise<ControlPlaneResult[]> {
  const results: ControlPlaneResult[] = [];
  for (const n of sizes) {
    try {
      const out = await run(`control plane ${n}`, process.execPath, [CHILD, String(n)], { timeoutMs: 600_000 });
      const r = JSON.parse(out.trim().split("\n").pop()!) as ControlPlaneResult;
      results.push(r);
      progress(`control plane ${n} workloads: ${r.seconds.toFixed(2)} s, peak RSS ${r.maxRssMB.toFixed(0)} MB, ${r.resources} resources, directory ${r.directoryForm} ${r.directoryBytes} B`);
    } catch (err) {
      results.push({ workloads: n, seconds: NaN, maxRssMB: NaN, heapUsedMB: NaN, error: (err as Error).message.split("\n")[0] });
      progress(`control plane ${n} workloads FAILED: ${(err as Error).message}`);
    }
  }
  return results;
}

/** The control-plane targets: 1,000 workloads within 30 s, and time per workload not growing
 * faster than linearly (1,000 at most 1.5× the per-workload time of 100). */
export function controlPlaneMissed(results: ControlPlaneResult[]): boolean {
  const big = results.find((r) => r.workloads === 1000 && !r.error);
  const mid = results.find((r) => r.workloads === 100 && !r.error);
  if (!big) return false;
  return big.seconds > 30 || (mid !== undefined && big.seconds / 1000 / (mid.seconds / 100) > 1.5);
}

export interface ControlPlaneProfile {
  workloads: number;
  totalMs: number;
  top: ProfileEntry[];
  byArea: AreaEntry[];
}

/** Where evaluating a program spends its time: the child under `node --cpu-prof`. */
export async function profileControlPlane(n: number, dir: string): Promise<ControlPlaneProfile> {
  const profDir = path.join(dir, "cpuprofile-controlplane");
  await run(`control plane ${n} (profiled)`, process.execPath, ["--cpu-prof", `--cpu-prof-dir=${profDir}`, CHILD, String(n)], { timeoutMs: 600_000 });
  const file = fs.readdirSync(profDir).find((f) => f.endsWith(".cpuprofile"));
  if (!file) throw new Error("the control-plane child wrote no CPU profile");
  return { workloads: n, ...topFunctions(JSON.parse(fs.readFileSync(path.join(profDir, file), "utf8")), 20) };
}
