// The run's network: a "node" namespace with a bridge, and one namespace per pod replica joined
// to it by a veth pair. Pods get a /32 address and a default route via the node (the Calico
// model), so pod-to-pod traffic is routed through the node's IP layer: kube-proxy's DNAT there
// sees both directions of every connection and can undo itself on the replies, without
// br_netfilter (a host-wide kernel setting we must not touch). A capture on the bridge sees every
// packet between pods.
import * as fs from "node:fs";
import * as path from "node:path";
import { run } from "./exec";
import { POD_CIDR, RunNames } from "./names";

const ip = (...args: string[]) => run("ip", args);
const inNs = (ns: string, ...args: string[]) => run("ip", ["netns", "exec", ns, ...args]);

export async function createNode(names: RunNames): Promise<void> {
  await ip("netns", "add", names.nodeNs);
  await ip("-n", names.nodeNs, "link", "set", "lo", "up");
  await ip("-n", names.nodeNs, "link", "add", names.bridge, "type", "bridge");
  await ip("-n", names.nodeNs, "addr", "add", `${POD_CIDR.gateway}/${POD_CIDR.prefixLength}`, "dev", names.bridge);
  await ip("-n", names.nodeNs, "link", "set", names.bridge, "up");
  // The node routes pod traffic back out of the interface it came in on: forward, and tell no
  // one to take a shortcut (redirects would bypass the DNAT).
  await inNs(
    names.nodeNs,
    "sysctl", "-q", "-w",
    "net.ipv4.ip_forward=1",
    "net.ipv4.conf.all.send_redirects=0",
    "net.ipv4.conf.default.send_redirects=0",
    `net.ipv4.conf.${names.bridge}.send_redirects=0`,
  );
}

export interface PodNetwork {
  ns: string;
  ip: string;
  hostVeth: string;
}

/** A namespace for one pod replica, wired to the node bridge as eth0 with `podIp`. */
export async function createPodNetwork(names: RunNames, podName: string, index: number, podIp: string): Promise<PodNetwork> {
  const ns = names.podNs(podName);
  const hostVeth = names.hostVeth(index);
  await ip("netns", "add", ns);
  await ip("-n", names.nodeNs, "link", "add", hostVeth, "type", "veth", "peer", "name", "eth0", "netns", ns);
  await ip("-n", names.nodeNs, "link", "set", hostVeth, "master", names.bridge, "up");
  await ip("-n", ns, "link", "set", "lo", "up");
  await ip("-n", ns, "link", "set", "eth0", "up");
  await ip("-n", ns, "addr", "add", `${podIp}/32`, "dev", "eth0");
  await ip("-n", ns, "route", "add", POD_CIDR.gateway, "dev", "eth0", "scope", "link");
  await ip("-n", ns, "route", "add", "default", "via", POD_CIDR.gateway, "dev", "eth0");
  return { ns, ip: podIp, hostVeth };
}

/**
 * The pod's /etc/hosts: `ip netns exec` bind-mounts /etc/netns/<ns>/hosts over /etc/hosts for the
 * processes it starts, so curl and getaddrinfo in the pod resolve Service names the way cluster
 * DNS would (short names only within the pod's own Kubernetes namespace, like the search path).
 */
export function writeHostsFile(ns: string, content: string): void {
  const dir = path.join("/etc/netns", ns);
  fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  const tmp = path.join(dir, ".hosts.tmp");
  fs.writeFileSync(tmp, content, { mode: 0o644 });
  fs.renameSync(tmp, path.join(dir, "hosts"));
}

/** Pod IPs in order: .10, .11, ... inside POD_CIDR. */
export function podIp(index: number): string {
  const host = 10 + index;
  if (host > 254) throw new Error(`pod index ${index} does not fit in ${POD_CIDR.base}.0/24`);
  return `${POD_CIDR.base}.${host}`;
}
