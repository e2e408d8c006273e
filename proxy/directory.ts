// Secure naming for transparent outbound traffic: which meshed service (and so which SPIFFE ID)
// owns the address:port the app dialled. Pure lookup over directory.json.
import * as net from "net";
import { DirectoryConfig } from "./config";
import { Mode } from "./wellknown";

export interface DirectoryMatch {
  service: string;
  spiffeId: string;
  /** The server pod's app port behind this service port. */
  targetPort: number;
  mode: Mode;
  /** Reach it through the tunnel port (no protocol detection on the server side). */
  opaque: boolean;
}

/** IPv4-mapped IPv6 (::ffff:10.0.0.1) and plain IPv4 name the same destination. */
function normalizeAddress(address: string): string {
  const lower = address.toLowerCase();
  return lower.startsWith("::ffff:") && net.isIPv4(lower.slice(7)) ? lower.slice(7) : lower;
}

type Services = DirectoryConfig["services"];

/** Services by address, built once per loaded directory: a mesh of 10,000 services is no scan per connection. */
const indexes = new WeakMap<DirectoryConfig, Map<string, Services>>();

function byAddress(directory: DirectoryConfig): Map<string, Services> {
  let index = indexes.get(directory);
  if (!index) {
    index = new Map();
    for (const service of directory.services) {
      for (const address of new Set(service.addresses.map(normalizeAddress))) index.set(address, [...(index.get(address) ?? []), service]);
    }
    indexes.set(directory, index);
  }
  return index;
}

export function lookupDestination(directory: DirectoryConfig, address: string, port: number): DirectoryMatch | undefined {
  for (const service of byAddress(directory).get(normalizeAddress(address)) ?? []) {
    // A pod IP is dialled on the target port, a ClusterIP on the service port.
    const entry = service.ports.find((p) => p.port === port) ?? service.ports.find((p) => p.targetPort === port);
    if (!entry) continue;
    return { service: `${service.namespace}/${service.name}`, spiffeId: service.spiffeId, targetPort: entry.targetPort, mode: entry.mode, opaque: entry.opaque === true };
  }
  return undefined;
}

/** How long after a directory change a newly meshed port may fall back to plaintext (outbound.ts). */
export const MIGRATION_WINDOW_MS = 5 * 60_000;

/** Key of one meshed service port, as `migratingPorts` and `lookupDestination` callers use it. */
export const servicePortKey = (service: string, targetPort: number) => `${service}:${targetPort}`;

/**
 * Service ports that were not meshed in `before` (absent, or disabled) and are meshed in
 * `after`: their server pods may still run the old config (kubelet syncs pods at its own pace,
 * a rollout onboarding a workload still has pods without the proxy) for a while.
 */
export function newlyMeshedPorts(before: DirectoryConfig, after: DirectoryConfig): string[] {
  const meshed = (d: DirectoryConfig) =>
    new Set(d.services.flatMap((s) => s.ports.filter((p) => p.mode !== "disabled").map((p) => servicePortKey(`${s.namespace}/${s.name}`, p.targetPort))));
  const old = meshed(before);
  return [...meshed(after)].filter((key) => !old.has(key)).sort();
}
