// A plaintext client known to exist: a Deployment of plain @pulumi/kubernetes, every pod of a
// namespace that is not meshed, or address blocks (a monitoring system, an ingress). Declared with
// `mesh.unmeshedClient(...)`, it appears in the reachability matrix, authorization rules may name it
// (`from.clients`), and the guard refuses a change that cuts it off from what it calls.
//
// It has no identity, so the proxy can only match it by source address: a rule naming a CIDR
// client admits plaintext from those blocks; a rule naming a namespace or Deployment client admits
// plaintext from anywhere at the proxy (pod IPs are not known to the program), and the rendered
// NetworkPolicy narrows it to that namespace or those pods (an enforcing CNI is then required).
import type * as pulumi from "@pulumi/pulumi";
import type * as k8s from "@pulumi/kubernetes";
import type { MeshWorkloadRef } from "./meshed-workload";
import { NAMESPACE_NAME_LABEL } from "./policy";
import { MeshInputError, checkCidr, checkDns1123Label, componentLabel } from "./validate";

/** What the proxy admits for a client it can only tell apart by the NetworkPolicy. */
const ANY_SOURCE = ["0.0.0.0/0", "::/0"];

export interface UnmeshedClientArgs {
  /** The namespace the client's pods run in. Alone: every pod of that namespace. */
  namespace?: string;
  /** The client's Deployment (plain @pulumi/kubernetes), in `namespace`: its pod selector picks the pods. */
  deployment?: k8s.apps.v1.Deployment;
  /** The client's pod labels, in `namespace` (instead of `deployment`). */
  podSelector?: Record<string, string>;
  /** Source address blocks, for clients outside the cluster or not known as pods; excludes `namespace`. */
  cidrs?: string[];
  /**
   * Meshed workloads the client is known to call (every Service port, or the listed ones): a change
   * that denies it one of them is refused.
   */
  calls?: (MeshWorkloadRef | { workload: MeshWorkloadRef; ports: number[] })[];
}

/** One called workload: its key and the Service ports called. */
export interface ClientCall {
  workload: string;
  label: string;
  ports: number[];
}

export class UnmeshedClient {
  /** "unmeshed:<name>": how the matrix, and `acceptBreaking`, name it. */
  readonly key: string;
  readonly label: string;
  readonly namespace?: string;
  readonly cidrs: string[];
  readonly calls: ClientCall[];
  private readonly podSelector?: pulumi.Input<Record<string, string>>;

  constructor(
    readonly mesh: object,
    readonly name: string,
    args: UnmeshedClientArgs,
  ) {
    this.label = componentLabel("UnmeshedClient", name);
    checkDns1123Label(this.label, "name", name);
    this.key = `unmeshed:${name}`;
    if (args.namespace === undefined && args.cidrs === undefined) {
      throw new MeshInputError(this.label, "namespace", "and \"cidrs\" are both missing", "give the namespace its pods run in (with deployment or podSelector for some of them), or the cidrs it connects from");
    }
    if (args.namespace !== undefined && args.cidrs !== undefined) {
      throw new MeshInputError(this.label, "cidrs", "and \"namespace\" are both set", "declare pods by namespace (and deployment or podSelector), or addresses by cidrs; not both");
    }
    if (args.deployment !== undefined && args.podSelector !== undefined) {
      throw new MeshInputError(this.label, "podSelector", "and \"deployment\" are both set", "pass the Deployment, or its pods' labels; not both");
    }
    if (args.namespace === undefined && (args.deployment !== undefined || args.podSelector !== undefined)) {
      throw new MeshInputError(this.label, "namespace", "is missing", "give the namespace the client's pods run in");
    }
    this.namespace = args.namespace === undefined ? undefined : checkDns1123Label(this.label, "namespace", args.namespace);
    if (args.cidrs !== undefined && (!Array.isArray(args.cidrs) || args.cidrs.length === 0)) {
      throw new MeshInputError(this.label, "cidrs", "is empty", "list the address blocks the client connects from, e.g. [\"10.8.0.0/16\"]");
    }
    this.cidrs = (args.cidrs ?? []).map((c, i) => checkCidr(this.label, `cidrs[${i}]`, c));
    if (args.podSelector !== undefined) {
      const entries = Object.entries(args.podSelector ?? {});
      if (entries.length === 0 || entries.some(([k, v]) => typeof k !== "string" || typeof v !== "string")) {
        throw new MeshInputError(this.label, "podSelector", `is ${JSON.stringify(args.podSelector)}, not a set of labels`, "give the pods' labels, e.g. { app: \"legacy-client\" }");
      }
    }
    if (args.deployment !== undefined && typeof (args.deployment as { spec?: unknown }).spec !== "object") {
      throw new MeshInputError(this.label, "deployment", "is not a Deployment", "pass a k8s.apps.v1.Deployment");
    }
    this.podSelector = args.deployment ? args.deployment.spec.selector.matchLabels : args.podSelector;
    this.calls = (args.calls ?? []).map((entry, i) => {
      const at = `calls[${i}]`;
      const w = entry && "workload" in entry && !("workloadName" in entry) ? entry.workload : (entry as MeshWorkloadRef);
      if (!w || typeof w.workloadName !== "string") {
        throw new MeshInputError(this.label, at, "is not a meshed workload", "pass a MeshedWorkload (or a workload from meshTransform), or { workload, ports }");
      }
      if (w.mesh !== mesh) throw new MeshInputError(this.label, at, `is ${w.label}, which belongs to another mesh`, "list workloads of this client's mesh");
      const servicePorts = w.portPlan.servicePorts.map((p) => p.port);
      if (servicePorts.length === 0) throw new MeshInputError(this.label, at, `is ${w.label}, which has no Service ports to call`, "list workloads with ports");
      const listed = w === entry ? servicePorts : (entry as { ports: unknown }).ports;
      if (!Array.isArray(listed) || listed.length === 0) throw new MeshInputError(this.label, `${at}.ports`, "is empty", `list Service ports of ${w.label}: ${servicePorts.join(", ")}`);
      for (const [j, port] of listed.entries()) {
        if (!servicePorts.includes(port)) throw new MeshInputError(this.label, `${at}.ports[${j}]`, `is ${JSON.stringify(port)}, not a Service port of ${w.label}`, `use one of ${servicePorts.join(", ")}`);
      }
      return { workload: `${w.namespace}/${w.workloadName}`, label: w.label, ports: [...new Set(listed as number[])].sort((a, b) => a - b) };
    });
  }

  /** The source blocks a rule naming this client admits plaintext from, at the proxy. */
  get plaintextFrom(): string[] {
    return this.cidrs.length ? this.cidrs : ANY_SOURCE;
  }

  /** NetworkPolicy peers for a rule naming this client: its pods, its namespace, or its blocks. */
  get networkPolicyPeers(): k8s.types.input.networking.v1.NetworkPolicyPeer[] {
    if (this.cidrs.length) return this.cidrs.map((cidr) => ({ ipBlock: { cidr } }));
    const namespaceSelector = { matchLabels: { [NAMESPACE_NAME_LABEL]: this.namespace! } };
    return [this.podSelector ? { namespaceSelector, podSelector: { matchLabels: this.podSelector } } : { namespaceSelector }];
  }
}
