// The five systems under test, started the same way: a pair of proxies (or none, for "direct")
// between the load generator and the backend, ready once both sides listen.
import * as path from "node:path";
import { Started, stop, waitForPort } from "./processes";
import { startPeer, PeerName } from "./peers";
import { startOurs, OursOptions, OursPlan } from "./ours";

export type SystemName = "direct" | "ours" | "haproxy" | "nginx" | "stunnel" | "ours-h2" | "ours-tcp" | "ours-alt-node";
/** What a run compares unless --systems says otherwise. */
export const DEFAULT_SYSTEMS: SystemName[] = ["direct", "ours", "haproxy", "nginx", "stunnel"];
/** Plus our proxy with its pair transport pinned, to compare pooled h2 with one mTLS connection per
 * application connection. */
export const ALL_SYSTEMS: SystemName[] = [...DEFAULT_SYSTEMS, "ours-h2", "ours-tcp", "ours-alt-node"];
export const isOurs = (s: SystemName) => s.startsWith("ours");
/** The variant of our proxy the targets are checked on: "ours" (its default transport) when it
 * ran, else the first pinned variant that did. */
export const primaryOurs = (systems: SystemName[]): SystemName | undefined => (systems.includes("ours") ? "ours" : systems.find(isOurs));
export const LABELS: Record<SystemName, string> = {
  direct: "direct (no proxy)",
  ours: "mesh-proxy (ours)",
  "ours-h2": "mesh-proxy, h2 pool",
  "ours-tcp": "mesh-proxy, tcp per conn",
  "ours-alt-node": "mesh-proxy on --alt-node",
  haproxy: "HAProxy",
  nginx: "nginx stream",
  stunnel: "stunnel",
};

export interface RunningSystem {
  name: SystemName;
  /** Where the load generator connects (inside the client namespace). */
  host: string;
  port: number;
  /** The proxy processes, client side first; empty for "direct". */
  proxies: { side: "client" | "server"; proc: Started }[];
  stop(): Promise<void>;
}

export async function startSystem(name: SystemName, plan: OursPlan, ours: OursOptions): Promise<RunningSystem> {
  if (name === "direct") {
    return { name, host: plan.serverAddr, port: plan.backendPort, proxies: [], stop: async () => undefined };
  }
  const dir = path.join(plan.dir, name);
  const transport = name === "ours-h2" ? "h2" : name === "ours-tcp" ? "tcp" : ours.transport;
  if (name === "ours-alt-node" && !ours.altNode) throw new Error("ours-alt-node needs --alt-node <path to a node binary>");
  const node = name === "ours-alt-node" ? ours.altNode! : ours.node;
  const pair = isOurs(name) ? startOurs({ ...plan, dir }, { ...ours, node, transport }) : startPeer(name as PeerName, { ...plan, dir });
  const running: RunningSystem = {
    name,
    host: plan.clientAddr,
    port: plan.clientPort,
    proxies: [
      { side: "client", proc: pair.client },
      { side: "server", proc: pair.server },
    ],
    stop: async () => {
      await Promise.all([stop(pair.client), stop(pair.server)]);
    },
  };
  try {
    await waitForPort(plan.serverPort, pair.server, plan.serverNs);
    await waitForPort(plan.clientPort, pair.client, plan.clientNs);
  } catch (err) {
    await running.stop();
    throw err;
  }
  return running;
}
