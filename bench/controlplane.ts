// Placeholder until components/ lands.
export interface ControlPlaneResult {
  workloads: number;
  seconds: number;
  maxRssMB: number;
  heapUsedMB: number;
  resources?: number;
  error?: string;
}
export async function runControlPlane(sizes: number[], progress: (l: string) => void): Promise<ControlPlaneResult[]> {
  progress(`control plane not wired yet (${sizes.join(",")})`);
  return [];
}
