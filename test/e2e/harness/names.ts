// Every namespace, interface and directory a run creates carries "e2e" and the run's short id,
// so a leftover from a crashed run is recognisable (and swept by the next run).
import { randomBytes } from "node:crypto";
import * as os from "node:os";
import * as path from "node:path";

export const PREFIX = "e2e";
/** Pod IPs: a range that only ever exists inside namespaces a run creates. */
export const POD_CIDR = { base: "10.234.0", gateway: "10.234.0.1", prefixLength: 24 } as const;
/**
 * Pods' IPv6 addresses (dual stack): a ULA prefix that likewise only exists inside the run's
 * namespaces. A pod's address ends in the last octet of its IPv4 address (…::10 for .10).
 */
export const POD_CIDR6 = { prefix: "fd00:e2e:234::", gateway: "fd00:e2e:234::1", prefixLength: 64 } as const;
/** Service ClusterIPs (<base>.x.y): likewise private to the run's namespaces. */
export const SERVICE_CIDR = { base: "10.233", prefixLength: 16 } as const;

export const RUNS_DIR = path.join(os.tmpdir(), "e2e-mesh");

export interface RunNames {
  id: string;
  /** The "node": holds the bridge, kube-proxy's DNAT rules, the probes and the packet capture. */
  nodeNs: string;
  bridge: string;
  /** Where volumes, logs and agent sockets of this run live. */
  dir: string;
  podNs(podName: string): string;
  /** Node-side end of a pod's veth pair; IFNAMSIZ allows 15 characters. */
  hostVeth(index: number): string;
}

export function newRunId(): string {
  return randomBytes(2).toString("hex");
}

export function runNames(id: string): RunNames {
  return {
    id,
    nodeNs: `${PREFIX}-${id}-node`,
    bridge: `${PREFIX}${id}br`,
    dir: path.join(RUNS_DIR, id),
    podNs: (podName) => `${PREFIX}-${id}-${podName}`,
    hostVeth: (index) => `${PREFIX}${id}v${index}`,
  };
}

/** The run id encoded in a namespace name this module made, or undefined. */
export function runIdOfNamespace(name: string): string | undefined {
  return new RegExp(`^${PREFIX}-([0-9a-f]{4})-`).exec(name)?.[1];
}
