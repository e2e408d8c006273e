// Where the two sides of each system run. "loopback": everything on 127.0.0.1 (in a private
// network namespace when root, so ports and sysctls are the bench's own). "netns": two network
// namespaces joined by a veth pair, like two pods: the client namespace holds the load generator
// and the client-side proxy, the server namespace the server-side proxy and the backend.
import { execFileSync } from "node:child_process";

export type TopologyName = "loopback" | "netns";

export interface Topology {
  name: TopologyName;
  clientNs?: string;
  serverNs?: string;
  /** Address the client side listens on (always loopback inside its namespace). */
  clientAddr: string;
  /** Address of the server side as the client side reaches it. */
  serverAddr: string;
  teardown(): void;
}

const SUBNET = "10.235.0";
const created = new Set<string>();

export const isRoot = () => process.getuid?.() === 0;

function ip(...args: string[]): void {
  execFileSync("ip", args, { stdio: ["ignore", "ignore", "pipe"] });
}

function nsExec(ns: string, ...cmd: string[]): void {
  execFileSync("ip", ["netns", "exec", ns, ...cmd], { stdio: ["ignore", "ignore", "pipe"] });
}

function addNamespace(ns: string): void {
  ip("netns", "add", ns);
  created.add(ns);
  ip("-n", ns, "link", "set", "lo", "up");
  // The churn workload opens tens of thousands of short connections: give it the whole port
  // range and let TIME_WAIT ports be reused (these sysctls are per namespace).
  nsExec(ns, "sysctl", "-q", "-w", "net.ipv4.ip_local_port_range=1024 65000", "net.ipv4.tcp_tw_reuse=1");
}

export function createTopology(name: TopologyName): Topology {
  removeStaleNamespaces();
  const id = `bn${process.pid}`;
  if (name === "loopback") {
    if (!isRoot()) {
      return { name, clientAddr: "127.0.0.1", serverAddr: "127.0.0.1", teardown: () => undefined };
    }
    const ns = `${id}l`;
    addNamespace(ns);
    return { name, clientNs: ns, serverNs: ns, clientAddr: "127.0.0.1", serverAddr: "127.0.0.1", teardown: () => deleteNamespace(ns) };
  }
  if (!isRoot()) throw new Error("the netns topology needs root (network namespaces); run as root or use --topology loopback");
  const clientNs = `${id}c`;
  const serverNs = `${id}s`;
  const teardown = () => {
    deleteNamespace(clientNs);
    deleteNamespace(serverNs);
  };
  try {
    addNamespace(clientNs);
    addNamespace(serverNs);
    ip("link", "add", `${id}c0`, "type", "veth", "peer", "name", `${id}s0`);
    ip("link", "set", `${id}c0`, "netns", clientNs);
    ip("link", "set", `${id}s0`, "netns", serverNs);
    ip("-n", clientNs, "addr", "add", `${SUBNET}.1/24`, "dev", `${id}c0`);
    ip("-n", serverNs, "addr", "add", `${SUBNET}.2/24`, "dev", `${id}s0`);
    ip("-n", clientNs, "link", "set", `${id}c0`, "up");
    ip("-n", serverNs, "link", "set", `${id}s0`, "up");
  } catch (err) {
    teardown();
    throw err;
  }
  return { name, clientNs, serverNs, clientAddr: "127.0.0.1", serverAddr: `${SUBNET}.2`, teardown };
}

function deleteNamespace(ns: string): void {
  try {
    ip("netns", "del", ns); // also removes the veth end inside it, and with it its peer
  } catch {
    /* already gone */
  }
  created.delete(ns);
}

/** Synchronous teardown of whatever is left, for exit handlers. */
export function deleteAllNamespaces(): void {
  for (const ns of [...created]) deleteNamespace(ns);
}

/** Namespaces left by an earlier bench run that was killed hard (its pid no longer exists). */
function removeStaleNamespaces(): void {
  if (!isRoot()) return;
  let list = "";
  try {
    list = execFileSync("ip", ["netns", "list"]).toString();
  } catch {
    return;
  }
  for (const line of list.split("\n")) {
    const m = /^(bn(\d+)[lcs])\b/.exec(line.trim());
    if (!m || Number(m[2]) === process.pid) continue;
    try {
      process.kill(Number(m[2]), 0);
    } catch {
      deleteNamespace(m[1]);
    }
  }
}
