// AuthorizationPolicy: which identities may reach which ports of one workload. Rendered into the
// workload's workload.json (the proxy enforces it on the peer's SPIFFE ID; once any policy targets
// a workload, everything not allowed is denied) and into a NetworkPolicy for the same ports.
import * as pulumi from "@pulumi/pulumi";
import * as k8s from "@pulumi/kubernetes";
import { LABELS } from "../proxy/wellknown";
import type { Mesh } from "./mesh";
import type { MeshWorkloadRef } from "./meshed-workload";
import { ResolvedRule, renderNetworkPolicySpec } from "./policy";
import { MeshInputError, checkDns1123Label, checkServiceAccountRef, componentLabel } from "./validate";
import { claimedName } from "./registry";
import { UnmeshedClient } from "./unmeshed-client";
import type { Mode } from "../proxy/wellknown";

/** Modes in which the proxy admits every peer, so the NetworkPolicy must too. */
const admitsEveryone = (mode: Mode) => mode === "disabled" || mode === "audit";

export interface AuthorizationRuleArgs {
  from: {
    /** "namespace/serviceAccount" of allowed callers. */
    serviceAccounts?: string[];
    /** Namespaces whose every meshed identity is allowed. */
    namespaces?: string[];
    /** Declared unmeshed clients (`mesh.unmeshedClient`), admitted in plaintext where the port's mode takes it. */
    clients?: UnmeshedClient[];
  };
  /** Service ports (or pod ports) of the workload; absent = all of its ports. */
  ports?: number[];
}

export interface AuthorizationPolicyArgs {
  mesh: Mesh;
  namespace: string;
  /** The protected workload: a MeshedWorkload, or a workload meshed by meshTransform. */
  workload: MeshWorkloadRef;
  rules: AuthorizationRuleArgs[];
}

export class AuthorizationPolicy extends pulumi.ComponentResource {
  readonly networkPolicy: k8s.networking.v1.NetworkPolicy;
  /** The rules as the proxy enforces them (principals are SPIFFE IDs). */
  readonly rules: ResolvedRule[];

  constructor(name: string, args: AuthorizationPolicyArgs, opts?: pulumi.ComponentResourceOptions) {
    super("mtls-mesh:index:AuthorizationPolicy", claimedName(args?.mesh, "AuthorizationPolicy", name, args?.namespace, opts?.parent), {}, opts);
    const label = componentLabel("AuthorizationPolicy", name);
    checkDns1123Label(label, "name", name);
    const namespace = checkDns1123Label(label, "namespace", args.namespace);
    const workload = args.workload;
    if (!workload || typeof workload.workloadName !== "string") {
      throw new MeshInputError(label, "workload", "is not a meshed workload", "pass a MeshedWorkload (or a workload from meshTransform)");
    }
    if (workload.mesh !== args.mesh) {
      throw new MeshInputError(label, "workload", `is ${workload.label}, which belongs to another mesh`, "pass the mesh the workload was declared with, or a workload of this mesh");
    }
    if (workload.namespace !== namespace) {
      throw new MeshInputError(label, "namespace", `is ${JSON.stringify(namespace)}, but ${workload.label} lives in ${JSON.stringify(workload.namespace)}`, `set namespace: ${JSON.stringify(workload.namespace)}`);
    }
    this.rules = resolveRules(label, args.rules, workload, args.mesh);

    const ns = args.mesh.namespaceResource(namespace);
    this.networkPolicy = new k8s.networking.v1.NetworkPolicy(
      `${name}-netpol`,
      {
        metadata: { name, namespace, labels: { [LABELS.managedBy]: "pulumi-mtls-mesh", [LABELS.workload]: workload.workloadName } },
        spec: renderNetworkPolicySpec({
          workload: workload.workloadName,
          rules: this.rules,
          openPorts: workload.portPlan.inboundPorts.filter((p) => admitsEveryone(p.mode)).map((p) => p.port),
          allOpen: admitsEveryone(workload.portPlan.defaultMode) && workload.portPlan.inboundPorts.every((p) => admitsEveryone(p.mode)),
          opaquePorts: workload.portPlan.inboundPorts.filter((p) => p.opaque).map((p) => p.port),
        }),
      },
      { parent: this, dependsOn: ns ? [ns] : [] },
    );
    args.mesh.registry.registerPolicy({
      key: `${namespace}/${name}`,
      label,
      workloadKey: `${workload.namespace}/${workload.workloadName}`,
      rules: this.rules,
    });
    this.registerOutputs({});
  }
}

/** Validates rules and translates Service ports to the pod ports the proxy and NetworkPolicy see. */
export function resolveRules(label: string, rules: AuthorizationRuleArgs[], workload: MeshWorkloadRef, mesh: object): ResolvedRule[] {
  if (!Array.isArray(rules) || rules.length === 0) {
    throw new MeshInputError(label, "rules", "is empty", "give at least one rule; to deny everyone, delete the workload's Service instead");
  }
  const plan = workload.portPlan;
  return rules.map((rule, i) => {
    const at = `rules[${i}]`;
    const serviceAccounts = (rule.from?.serviceAccounts ?? []).map((sa, j) => checkServiceAccountRef(label, `${at}.from.serviceAccounts[${j}]`, sa));
    const namespaces = (rule.from?.namespaces ?? []).map((ns, j) => checkDns1123Label(label, `${at}.from.namespaces[${j}]`, ns));
    const clients = (rule.from?.clients ?? []).map((c, j) => {
      if (!(c instanceof UnmeshedClient)) throw new MeshInputError(label, `${at}.from.clients[${j}]`, "is not an unmeshed client", "pass what mesh.unmeshedClient(...) returns");
      if (c.mesh !== mesh) throw new MeshInputError(label, `${at}.from.clients[${j}]`, `is ${c.label}, declared with another mesh`, "declare the client with this policy's mesh");
      return c;
    });
    if (serviceAccounts.length + namespaces.length + clients.length === 0) {
      throw new MeshInputError(label, `${at}.from`, "names nobody", "list serviceAccounts (\"ns/sa\"), namespaces, or unmeshed clients");
    }
    const ports = rule.ports?.map((port, j) => {
      const service = plan.servicePorts.find((p) => p.port === port);
      if (service) return service.targetPort;
      if (plan.redirectPorts.includes(port)) return port;
      const known = [...new Set([...plan.servicePorts.map((p) => p.port), ...plan.redirectPorts])].sort((a, b) => a - b);
      throw new MeshInputError(label, `${at}.ports[${j}]`, `is ${JSON.stringify(port)}, not a port of ${workload.label}`, known.length ? `use one of ${known.join(", ")}` : "the workload has no ports to protect");
    });
    if (ports && ports.length === 0) {
      throw new MeshInputError(label, `${at}.ports`, "is empty", "omit ports to allow every port, or list some");
    }
    return { serviceAccounts, namespaces, clients, ...(ports ? { ports: [...new Set(ports)].sort((a, b) => a - b) } : {}) };
  });
}
