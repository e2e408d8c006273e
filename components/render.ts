// Renders the two config documents the proxy reads (schemas in proxy/config.ts). Pure and
// sorted: the same inputs give byte-identical text, so a re-run previews no change.
import {
  CONFIG_VERSION,
  DirectoryConfigInput,
  DirectoryService,
  Probe,
  WorkloadConfigInput,
  parseDirectoryConfig,
  parseWorkloadConfig,
  stableStringify,
  AuthorizationRule,
} from "../proxy/config";
import type { Mode } from "../proxy/wellknown";

export interface WorkloadConfigParts {
  trustDomain: string;
  namespace: string;
  name: string;
  serviceAccount: string;
  spiffeId: string;
  /** Mode of a redirected port with no port-level mode (workload > namespace > mesh). */
  defaultMode: Mode;
  /** Effective mode of every inbound (pod) port. */
  inboundPorts: { port: number; mode: Mode; opaque?: true }[];
  /** null: no AuthorizationPolicy targets the workload (every authenticated peer allowed). */
  rules: AuthorizationRule[] | null;
  probes: Probe[];
}

/** workload.json text; validated against the proxy's own schema before it is written. */
export function renderWorkloadConfig(parts: WorkloadConfigParts): string {
  const doc: WorkloadConfigInput = {
    version: CONFIG_VERSION,
    trustDomain: parts.trustDomain,
    workload: { namespace: parts.namespace, name: parts.name, serviceAccount: parts.serviceAccount, spiffeId: parts.spiffeId },
    inbound: {
      defaultMode: parts.defaultMode,
      ports: [...parts.inboundPorts].sort((a, b) => a.port - b.port),
    },
    authorization: parts.rules === null ? null : { rules: parts.rules },
    probes: [...parts.probes].sort((a, b) => a.path.localeCompare(b.path)),
  };
  parseWorkloadConfig(doc, `workload.json of ${parts.namespace}/${parts.name}`);
  return stableStringify(doc);
}

/** directory.json text: every meshed service of the mesh, sorted by namespace/name. */
export function renderDirectoryConfig(services: DirectoryService[]): string {
  const doc: DirectoryConfigInput = {
    version: CONFIG_VERSION,
    services: [...services]
      .map((s) => ({
        ...s,
        addresses: [...new Set(s.addresses)].sort(),
        hostnames: [...new Set(s.hostnames)].sort(),
        ports: [...s.ports].sort((a, b) => a.port - b.port),
      }))
      .sort((a, b) => `${a.namespace}/${a.name}`.localeCompare(`${b.namespace}/${b.name}`)),
  };
  parseDirectoryConfig(doc);
  return stableStringify(doc);
}

/**
 * A Service's addresses in the directory: its `clusterIP` and every family's `clusterIPs` (both
 * on a dual-stack cluster), once each; a headless Service's "None" and unset values are no address.
 */
export function serviceAddresses(clusterIP: string | undefined, clusterIPs: string[] | undefined): string[] {
  return [...new Set([clusterIP, ...(clusterIPs ?? [])])].filter((ip): ip is string => !!ip && ip !== "None");
}

/** The DNS names a client may use for a Service. */
export function serviceHostnames(service: string, namespace: string, clusterDomain: string): string[] {
  return [`${service}.${namespace}`, `${service}.${namespace}.svc`, `${service}.${namespace}.svc.${clusterDomain}`];
}
