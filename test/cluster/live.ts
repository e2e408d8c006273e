// What the real-engine suites read back from a live cluster: the objects a stack holds, the pods
// of a workload (API objects and the node stand-in's running pods) and their containers' start
// times, the proof that nothing restarted.
import * as k8s from "@kubernetes/client-node";
import type { Pod } from "../e2e/harness/pod";
import type { NodeStandIn } from "./node/node";

export interface StateObject {
  urn: string;
  type: string;
  apiVersion: string;
  kind: string;
  namespace?: string;
  name: string;
}

/** Every Kubernetes object in a `stack export` deployment (providers and components left out). */
export function stateObjects(deployment: any): StateObject[] {
  return (deployment.resources ?? [])
    .filter((r: any) => r.custom && String(r.type).startsWith("kubernetes:") && r.outputs?.metadata?.name)
    .map((r: any) => ({
      urn: r.urn,
      type: r.type,
      apiVersion: r.outputs.apiVersion,
      kind: r.outputs.kind,
      namespace: r.outputs.metadata.namespace,
      name: r.outputs.metadata.name,
    }));
}

export class Live {
  readonly objects: k8s.KubernetesObjectApi;
  readonly core: k8s.CoreV1Api;

  constructor(kubeconfigPath: string) {
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(kubeconfigPath);
    this.objects = k8s.KubernetesObjectApi.makeApiClient(kc);
    this.core = kc.makeApiClient(k8s.CoreV1Api);
  }

  /** The live object, or undefined when the API server answers 404. */
  async read(o: Pick<StateObject, "apiVersion" | "kind" | "namespace" | "name">): Promise<k8s.KubernetesObject | undefined> {
    try {
      return await this.objects.read({ apiVersion: o.apiVersion, kind: o.kind, metadata: { name: o.name, namespace: o.namespace } });
    } catch (err) {
      if ((err as { code?: number }).code === 404) return undefined;
      throw err;
    }
  }

  /** "<ns>/<pod>/<container>" → "<state> <startedAt> restarts=<n>" for every container of the namespaces' pods. */
  async containerStarts(namespaces: string[]): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    for (const namespace of namespaces) {
      for (const p of (await this.core.listNamespacedPod({ namespace })).items) {
        for (const c of [...(p.status?.initContainerStatuses ?? []), ...(p.status?.containerStatuses ?? [])]) {
          const started = c.state?.running?.startedAt ?? c.state?.terminated?.startedAt;
          const state = c.state?.running ? "running" : c.state?.terminated ? "terminated" : "waiting";
          out[`${namespace}/${p.metadata!.name}/${c.name}`] = `${state} ${started ? new Date(started).toISOString() : "-"} restarts=${c.restartCount}`;
        }
      }
    }
    return out;
  }
}

/** The running pods of a Deployment (`<name>-<hash>-<suffix>`) or DaemonSet (`<name>-<suffix>`). */
export function podsOf(node: NodeStandIn, namespace: string, workload: string): Pod[] {
  const own = new RegExp(`^${workload}-([0-9a-z]+-)?[0-9a-z]{5}$`);
  return node.runningPods(namespace).filter((p) => own.test(p.name));
}

/** Polls `f` until it returns true (bounded), for what controllers and the node do after an `up`. */
export async function eventually(what: string, f: () => Promise<boolean> | boolean, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await f()) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
}
