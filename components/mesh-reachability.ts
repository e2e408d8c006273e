// The Mesh's reachability objects: the `reachability` output, the matrix ConfigMap in the system
// namespace (reviewed in `pulumi preview --diff`; no proxy reads it, so no pod restarts for it), and
// the guard that refuses a program cutting off a declared unmeshed client.
import * as pulumi from "@pulumi/pulumi";
import * as k8s from "@pulumi/kubernetes";
import { LABELS } from "../proxy/wellknown";
import type { MeshRegistry } from "./registry";
import { ReachabilityEdge, breakingEdges, breakingMessage, clientExpectations, matrixInput, renderReachability, resolveReachability } from "./reachability";
import { MeshInputError } from "./validate";

export const REACHABILITY_FILE = "reachability.txt";

const EDGE_KEY = /^[a-z0-9-]+\/[a-z0-9-]+:\d+ from (sa:[a-z0-9-]+\/[a-z0-9-]+|unmeshed:[a-z0-9-]+)$/;

export function checkAcceptBreaking(label: string, value: unknown): string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw new MeshInputError(label, "acceptBreaking", `is ${JSON.stringify(value)}, not a list`, "list edges as the matrix names them, e.g. [\"shop/api:8080 from unmeshed:legacy-client\"]");
  return value.map((edge, i) => {
    if (typeof edge !== "string" || !EDGE_KEY.test(edge)) {
      throw new MeshInputError(label, `acceptBreaking[${i}]`, `is ${JSON.stringify(edge)}, not an edge of the matrix`, "write \"<namespace>/<workload>:<port> from <client>\", as the guard's error and the reachability ConfigMap print it");
    }
    return edge;
  });
}

export interface ReachabilityParts {
  edges: pulumi.Output<ReachabilityEdge[]>;
  configMap: k8s.core.v1.ConfigMap;
  /** Rejects (with a ResourceError on the Mesh) when the guard refuses the program. */
  check: Promise<void>;
}

export function meshReachability(args: {
  mesh: pulumi.ComponentResource;
  meshName: string;
  label: string;
  registry: MeshRegistry;
  systemNamespace: string;
  system: pulumi.Resource;
  configProvider: k8s.Provider;
  acceptBreaking: string[];
}): ReachabilityParts {
  const resolved = args.registry.snapshot.then((snapshot) => {
    const { clients, servers } = matrixInput(snapshot);
    return { snapshot, edges: resolveReachability(clients, servers) };
  });
  const edges = pulumi.output(resolved.then((r) => r.edges));
  const configMap = new k8s.core.v1.ConfigMap(
    `${args.meshName}-reachability`,
    {
      metadata: { name: `${args.meshName}-reachability`, namespace: args.systemNamespace, labels: { [LABELS.managedBy]: "pulumi-mtls-mesh" } },
      data: { [REACHABILITY_FILE]: edges.apply(renderReachability) },
    },
    { parent: args.mesh, dependsOn: [args.system], provider: args.configProvider },
  );
  const check = resolved.then(({ snapshot, edges: all }) => {
    const { breaking, unusedAcknowledgements } = breakingEdges(all, clientExpectations(snapshot), args.acceptBreaking);
    for (const edge of unusedAcknowledgements) {
      pulumi.log.warn(`${args.label}: acceptBreaking lists ${JSON.stringify(edge)}, which this program does not break; remove it, or it would let a later break of that edge through unreviewed`, args.mesh);
    }
    if (breaking.length) throw new pulumi.ResourceError(breakingMessage(args.label, breaking), args.mesh, true);
  });
  return { edges, configMap, check };
}
