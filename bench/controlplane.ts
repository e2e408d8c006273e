// Control-plane cost: time and memory to evaluate a program with N MeshedWorkloads under the
// Pulumi mock runtime, each size in a fresh child process (controlplane-child.ts).
import * as path from "node:path";
import { run } from "./processes";

export interface ControlPlaneResult {
  workloads: number;
  seconds: number;
  maxRssMB: number;
  heapUsedMB: number;
  /** Every resource registered (Mesh-level ones included). */
  resources?: number;
  /** Resources named after a workload (its component and children). */
  workloadResources?: number;
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
      progress(`control plane ${n} workloads: ${r.seconds.toFixed(2)} s, peak RSS ${r.maxRssMB.toFixed(0)} MB, ${r.resources} resources`);
    } catch (err) {
      results.push({ workloads: n, seconds: NaN, maxRssMB: NaN, heapUsedMB: NaN, error: (err as Error).message.split("\n")[0] });
      progress(`control plane ${n} workloads FAILED: ${(err as Error).message}`);
    }
  }
  return results;
}
