// The mesh's registry of members. The directory (every meshed service) and each workload's
// authorization rules depend on resources declared AFTER the one that needs them (a workload
// declared first is called by one declared later; a policy follows its workload). So the Mesh
// collects members synchronously as their constructors run, and renders config only once
// registration has gone quiet: one `pulumi up` renders consistent config.
//
// "Quiet" = a full turn of the event loop (setImmediate) passed with no new registration. Pulumi
// programs declare resources synchronously at the top level, which all happens before that.
// A registration after sealing is refused with an error that says how to fix the program.
import type { Mode } from "../proxy/wellknown";
import type { ResolvedRule } from "./policy";
import type { UnmeshedClient } from "./unmeshed-client";
import { MeshInputError, componentLabel } from "./validate";

export interface RegisteredServicePort {
  name?: string;
  port: number;
  targetPort: number;
  mode: Mode;
  /** Clients reach it through the pods' tunnel port. */
  opaque?: boolean;
}

export interface RegisteredWorkload {
  /** "<namespace>/<name>". */
  key: string;
  /** Component label for messages, e.g. `MeshedWorkload "api"`. */
  label: string;
  namespace: string;
  name: string;
  serviceAccount: string;
  spiffeId: string;
  /** The Service clients dial; absent for clients without ports. */
  service?: {
    name: string;
    /**
     * Resolved later: the Service's ClusterIPs, both families on a dual-stack cluster (a client
     * resolving the AAAA record dials the IPv6 one); the registry only carries them.
     */
    clusterIPs: unknown;
    ports: RegisteredServicePort[];
  };
}

export interface RegisteredPolicy {
  /** "<namespace>/<name>" of the AuthorizationPolicy. */
  key: string;
  label: string;
  workloadKey: string;
  rules: ResolvedRule[];
}

export interface RegistrySnapshot {
  /** Sorted by key. */
  workloads: RegisteredWorkload[];
  /** Policies per workload key, sorted by policy key. */
  policiesByWorkload: Map<string, RegisteredPolicy[]>;
  /** Every namespace with a member, sorted. */
  namespaces: string[];
  /** Declared unmeshed clients, sorted by key. */
  unmeshedClients: UnmeshedClient[];
}

const byKey = <T extends { key: string }>(a: T, b: T) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);

/**
 * For a component's super() call, so the claim comes before the engine sees the URN: claims
 * `name` in the mesh's registry and returns it. Without a mesh (bad input) it claims nothing; the
 * constructor refuses that input itself.
 */
export function claimedName(mesh: { registry?: unknown } | undefined, kind: string, name: string, namespace: unknown, parent: object | undefined): string {
  if (mesh?.registry instanceof MeshRegistry) mesh.registry.claimName(kind, name, String(namespace), parent);
  return name;
}

/**
 * The parent part of a URN: the types of the parent chain, outermost first, without the stack
 * (@pulumi/pulumi resource.ts createUrn). It reads the SDK's own `__pulumiType` and
 * `__parentResource`: a URN is an Output, and the claim must be decided synchronously.
 */
function parentTypeChain(parent: object | undefined): string {
  const types: string[] = [];
  for (let r = parent as { __pulumiType?: string; __parentResource?: object } | undefined; r && r.__pulumiType && r.__pulumiType !== "pulumi:pulumi:Stack"; r = r.__parentResource) {
    types.unshift(r.__pulumiType);
  }
  return types.join("$");
}

export class MeshRegistry {
  /** Component names claimed: "<parent type chain>$<kind>::<name>" (the URN's tail) → the namespace of the first claim. */
  private readonly names = new Map<string, string>();
  private readonly workloads = new Map<string, RegisteredWorkload>();
  private readonly identities = new Map<string, string>();
  private readonly policies = new Map<string, RegisteredPolicy>();
  private readonly unmeshedClients = new Map<string, UnmeshedClient>();
  private generation = 0;
  private sealedSnapshot?: RegistrySnapshot;
  private resolveSnapshot!: (s: RegistrySnapshot) => void;
  /** Resolves once registration has gone quiet. */
  readonly snapshot: Promise<RegistrySnapshot>;

  constructor(private readonly meshLabel: string) {
    this.snapshot = new Promise((resolve) => (this.resolveSnapshot = resolve));
    this.scheduleSeal(this.generation);
  }

  get sealed(): boolean {
    return this.sealedSnapshot !== undefined;
  }

  /**
   * Claims a component's name before it registers. The engine builds a URN from the parent chain,
   * the type and the name only, so the same workload or policy name in two namespaces is one URN,
   * and the engine would stop the whole update with "Duplicate resource URN". We refuse it first,
   * naming both namespaces and the fix.
   */
  claimName(kind: string, name: string, namespace: string, parent: object | undefined): void {
    const key = `${parentTypeChain(parent)}$${kind}::${name}`;
    const first = this.names.get(key);
    if (first !== undefined) {
      throw new MeshInputError(
        componentLabel(kind, name),
        "name",
        `is already the name of the ${kind} in namespace ${JSON.stringify(first)}; a URN is the parents' types, the type and the name (no namespace), so the engine would stop with "Duplicate resource URN"`,
        `give this one another name, e.g. ${JSON.stringify(`${namespace}-${name}`.slice(0, 63).replace(/-+$/, ""))}`,
      );
    }
    this.names.set(key, namespace);
  }

  registerWorkload(w: RegisteredWorkload): void {
    this.refuseIfSealed(w.label);
    const existing = this.workloads.get(w.key);
    if (existing) {
      throw new MeshInputError(w.label, "name", `names workload ${w.key}, which ${existing.label} already declares`, "give each meshed workload a unique name within its namespace");
    }
    const identityKey = `${w.namespace}/${w.serviceAccount}`;
    const owner = this.identities.get(identityKey);
    if (owner) {
      throw new MeshInputError(w.label, "serviceAccount", `is ${identityKey}, already the identity of ${owner}`, "give each meshed workload its own service account");
    }
    this.identities.set(identityKey, w.label);
    this.workloads.set(w.key, w);
    this.touch();
  }

  registerPolicy(p: RegisteredPolicy): void {
    this.refuseIfSealed(p.label);
    if (this.policies.has(p.key)) {
      throw new MeshInputError(p.label, "name", `names policy ${p.key}, which is already declared`, "give each AuthorizationPolicy a unique name within its namespace");
    }
    this.policies.set(p.key, p);
    this.touch();
  }

  registerUnmeshedClient(c: UnmeshedClient): void {
    this.refuseIfSealed(c.label);
    if (this.unmeshedClients.has(c.key)) {
      throw new MeshInputError(c.label, "name", `names unmeshed client ${JSON.stringify(c.name)}, which is already declared`, "give each unmeshed client a unique name");
    }
    this.unmeshedClients.set(c.key, c);
    this.touch();
  }

  private refuseIfSealed(label: string): void {
    if (this.sealed) {
      throw new MeshInputError(
        label,
        "mesh",
        `was declared after ${this.meshLabel} rendered its config (after an await, or inside an apply/then callback)`,
        "declare meshed workloads, unmeshed clients and authorization policies synchronously at the top level of the program, with the Mesh",
      );
    }
  }

  private touch(): void {
    this.generation += 1;
  }

  private scheduleSeal(seenGeneration: number): void {
    setImmediate(() => {
      if (this.generation !== seenGeneration) return this.scheduleSeal(this.generation);
      this.seal();
    });
  }

  private seal(): void {
    const workloads = [...this.workloads.values()].sort(byKey);
    const policiesByWorkload = new Map<string, RegisteredPolicy[]>();
    for (const p of [...this.policies.values()].sort(byKey)) {
      policiesByWorkload.set(p.workloadKey, [...(policiesByWorkload.get(p.workloadKey) ?? []), p]);
    }
    const namespaces = [...new Set(workloads.map((w) => w.namespace))].sort();
    const unmeshedClients = [...this.unmeshedClients.values()].sort(byKey);
    this.sealedSnapshot = { workloads, policiesByWorkload, namespaces, unmeshedClients };
    this.resolveSnapshot(this.sealedSnapshot);
  }
}
