// The mesh proxy's Prometheus metrics, scraped from its admin port the way a node-local agent
// would (from the node namespace).
import { Dialer, httpGet } from "./dialer";
import type { Pod } from "./pod";
import { tail } from "./process";

/** Scrapes `pod`'s proxy; the result sums `name`'s samples whose labels include every given `label="value"`. */
export async function proxyMetric(node: Dialer, pod: Pod, name: string): Promise<(...labels: string[]) => number> {
  const proxy = pod.containers.get("mesh-proxy");
  if (!proxy) throw new Error(`${pod.namespace}/${pod.name} runs no mesh-proxy`);
  if (proxy.exit) {
    throw new Error(`the proxy of ${pod.namespace}/${pod.name} is not running (exited ${proxy.exit.code ?? proxy.exit.signal}):\n${tail(proxy.logFile)}`);
  }
  const res = await httpGet(() => node.dial(pod.ip, 15021), { host: pod.ip, path: "/metrics" });
  const samples = res.body.split("\n").filter((l) => l.startsWith(`${name}{`));
  return (...labels) => samples.filter((l) => labels.every((label) => l.includes(label))).reduce((sum, l) => sum + Number(l.split(" ").pop()), 0);
}

/** The proxy's mesh_proxy_reloads_total{outcome="applied"} by kind. */
export async function proxyReloads(node: Dialer, pod: Pod): Promise<{ config: number; identity: number }> {
  const count = await proxyMetric(node, pod, "mesh_proxy_reloads_total");
  return { config: count('kind="config"', 'outcome="applied"'), identity: count('kind="identity"', 'outcome="applied"') };
}

/** Resolves once `pod`'s proxy applied more reloads of `kind` than `before` (bounded). */
export async function waitForReload(node: Dialer, pod: Pod, kind: "config" | "identity", before: number, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if ((await proxyReloads(node, pod))[kind] > before) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`the proxy of ${pod.namespace}/${pod.name} did not reload its ${kind} within ${timeoutMs / 1000} s`);
}
