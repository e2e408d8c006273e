// The run's network: a "node" namespace with a bridge, and one namespace per pod replica joined
// to it by a veth pair. Dual stack, like a dual-stack cluster: pods get a /32 and a /128 address
// and default routes via the node (the Calico model), so pod-to-pod traffic is routed through the node's IP layer: kube-proxy's DNAT there
// sees both directions of every connection and can undo itself on the replies, without
// br_netfilter (a host-wide kernel setting we must not touch). A capture on the bridge sees every
// packet between pods.
import * as fs from "node:fs";
import * as path from "node:path";
import { run } from "./exec";
import { POD_CIDR, POD_CIDR6, RunNames } from "./names";

const ip = (...args: string[]) => run("ip", args);
const inNs = (ns: string, ...args: string[]) => run("ip", ["netns", "exec", ns, ...args]);

export async function createNode(names: RunNames): Promise<void> {
  await ip("netns", "add", names.nodeNs);
  await ip("-n", names.nodeNs, "link", "set", "lo", "up");
  await ip("-n", names.nodeNs, "link", "add", names.bridge, "type", "bridge");
  await ip("-n", names.nodeNs, "addr", "add", `${POD_CIDR.gateway}/${POD_CIDR.prefixLength}`, "dev", names.bridge);
  // nodad: the address is usable at once (duplicate address detection would hold it "tentative"
  // for a second or two; nothing else on this bridge can have it).
  await ip("-n", names.nodeNs, "addr", "add", `${POD_CIDR6.gateway}/${POD_CIDR6.prefixLength}`, "dev", names.bridge, "nodad");
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
    "net.ipv6.conf.all.forwarding=1",
  );
}

export interface PodNetwork {
  ns: string;
  ip: string;
  ip6: string;
  hostVeth: string;
}

/** A namespace for one pod replica, wired to the node bridge as eth0 with `podIp` and `podIp6(index)`. */
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
  const ip6 = podIp6(index);
  await ip("-n", ns, "addr", "add", `${ip6}/128`, "dev", "eth0", "nodad");
  await ip("-n", ns, "-6", "route", "add", POD_CIDR6.gateway, "dev", "eth0");
  await ip("-n", ns, "-6", "route", "add", "default", "via", POD_CIDR6.gateway, "dev", "eth0");
  // IPv6 has no send_redirects switch on the node: the pod ignores redirects instead, so its
  // traffic keeps going through the node like the IPv4 traffic does.
  await inNs(ns, "sysctl", "-q", "-w", "net.ipv6.conf.all.accept_redirects=0", "net.ipv6.conf.eth0.accept_redirects=0");
  // An address freed by a pod that just went away is reused at once: the node's neighbour entry
  // still names the old veth's MAC and stays "reachable" for up to ~45 s, so the kubelet's probes
  // (and everything else) would go nowhere until it expires. A real CNI announces the new MAC
  // (bridge plugin: gratuitous ARP); forgetting the old one here has the same effect.
  await ip("-n", names.nodeNs, "neigh", "flush", "to", podIp);
  await ip("-n", names.nodeNs, "-6", "neigh", "flush", "to", ip6);
  return { ns, ip: podIp, ip6, hostVeth };
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

/** A pod's IPv6 address: POD_CIDR6's prefix and the last octet of its IPv4 address, ::10, ::11, ... */
export function podIp6(index: number): string {
  return `${POD_CIDR6.prefix}${podIp(index).split(".")[3]}`;
}

/** Pod IPs in order: .10, .11, ... inside POD_CIDR. */
export function podIp(index: number): string {
  const host = 10 + index;
  if (host > 254) throw new Error(`pod index ${index} does not fit in ${POD_CIDR.base}.0/24`);
  return `${POD_CIDR.base}.${host}`;
}
