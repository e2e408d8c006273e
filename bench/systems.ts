// The systems under test, started the same way: a pair of proxies (or none, for "direct")
// between the load generator and the backend, ready once both sides listen.
import * as fs from "node:fs";
import * as path from "node:path";
import { start, Started, stop, waitForPort } from "./processes";
import { startPeer, PeerName, PairPlan, Pair } from "./peers";
import { startOurs, startOursPermissive, OursOptions, OursPlan } from "./ours";

export type SystemName =
  | "direct" | "ours" | "haproxy" | "nginx" | "stunnel" | "ours-h2" | "ours-tcp" | "ours-alt-node" | "ours-base" | "socat" | "node-relay"
  | "ours-permissive" | "ours-permissive-sniffed";
/** What a run compares unless --systems says otherwise. */
export const DEFAULT_SYSTEMS: SystemName[] = ["direct", "ours", "haproxy", "nginx", "stunnel"];
/** Plus our proxy with its pair transport pinned (pooled h2 or one mTLS connection per
 * application connection), on a second runtime, or from a second build; socat; the floor of a
 * Node relay; and our server side alone in permissive mode for a plaintext client, on an opaque
 * port and on a detected (sniffed) one. */
export const ALL_SYSTEMS: SystemName[] = [
  ...DEFAULT_SYSTEMS, "ours-h2", "ours-tcp", "ours-alt-node", "ours-base", "socat", "node-relay", "ours-permissive", "ours-permissive-sniffed",
];
export const isOurs = (s: SystemName) => s.startsWith("ours");
/** One proxy (ours, server side, permissive) and a plaintext client: no pair, no TLS to probe, not
 * comparable with the pairs' figures; measured on the real-protocol rows only. */
export const isPlaintextClient = (s: SystemName) => s === "ours-permissive" || s === "ours-permissive-sniffed";
/** The variant of our proxy the targets are checked on: "ours" (its default transport) when it
 * ran, else the first pair of this build that did (never ours-base: another build). */
export const primaryOurs = (systems: SystemName[]): SystemName | undefined =>
  systems.includes("ours") ? "ours" : systems.find((s) => isOurs(s) && s !== "ours-base" && !isPlaintextClient(s));
/** The order of round `round` (1-based): the list rotated by one system per round, so no system
 * is always first (the first after a pause measured ~7% slower); every system runs every round. */
export const roundOrder = <T>(systems: T[], round: number): T[] => {
  const k = (round - 1) % systems.length;
  return [...systems.slice(k), ...systems.slice(0, k)];
};

export const LABELS: Record<SystemName, string> = {
  direct: "direct (no proxy)",
  ours: "mesh-proxy (ours)",
  "ours-h2": "mesh-proxy, h2 pool",
  "ours-tcp": "mesh-proxy, tcp per conn",
  "ours-alt-node": "mesh-proxy on --alt-node",
  "ours-base": "mesh-proxy, --baseline-proxy",
  haproxy: "HAProxy",
  nginx: "nginx stream",
  stunnel: "stunnel",
  socat: "socat",
  "node-relay": "Node TLS relay (floor)",
  "ours-permissive": "mesh-proxy permissive, plaintext client, opaque port",
  "ours-permissive-sniffed": "mesh-proxy permissive, plaintext client, detected port",
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
  // A plaintext-client system is our server side alone, dialled directly; the others are pairs.
  const proxies: RunningSystem["proxies"] = isPlaintextClient(name)
    ? [{ side: "server", proc: startOursPermissive({ ...plan, dir }, ours, name === "ours-permissive") }]
    : pairProxies(name, { ...plan, dir }, ours);
  const client = proxies.find((p) => p.side === "client");
  const running: RunningSystem = {
    name,
    host: client ? plan.clientAddr : plan.serverAddr,
    port: client ? plan.clientPort : plan.serverPort,
    proxies,
    stop: async () => {
      await Promise.all(proxies.map((p) => stop(p.proc)));
    },
  };
  const listens = { server: [plan.serverPort, plan.serverNs], client: [plan.clientPort, plan.clientNs] } as const;
  try {
    // The server side first: the client side's listener is only useful once it can reach it.
    for (const side of ["server", "client"] as const) {
      const p = proxies.find((x) => x.side === side);
      if (p) await waitForPort(listens[side][0], p.proc, listens[side][1]);
    }
  } catch (err) {
    await running.stop();
    throw err;
  }
  return running;
}

function pairProxies(name: SystemName, plan: OursPlan, ours: OursOptions): RunningSystem["proxies"] {
  const pair = isOurs(name)
    ? startOurs(plan, oursVariant(name, ours))
    : name === "node-relay"
      ? startNodeRelay(plan, ours.node)
      : startPeer(name as PeerName, plan);
  return [
    { side: "client", proc: pair.client },
    { side: "server", proc: pair.server },
  ];
}

/** The options one variant of our proxy runs with. */
export function oursVariant(name: SystemName, ours: OursOptions): OursOptions {
  const transport = name === "ours-h2" ? "h2" : name === "ours-tcp" ? "tcp" : ours.transport;
  if (name === "ours-alt-node" && !ours.altNode) throw new Error("ours-alt-node needs --alt-node <path to a node binary>");
  if (name === "ours-base" && !ours.baselineCli) throw new Error("ours-base needs --baseline-proxy <path to dist/proxy/cli.js>");
  const node = name === "ours-alt-node" ? ours.altNode! : ours.node;
  const cli = name === "ours-base" ? ours.baselineCli : ours.cli;
  return { ...ours, node, transport, cli };
}

const NODE_RELAY = path.join(__dirname, "node-relay.js");

/** bench/node-relay.ts, one process per side, on our proxy's runtime. */
function startNodeRelay(p: PairPlan, node: string): Pair {
  const launch = (side: "client" | "server", args: object, netns?: string) =>
    start(`node-relay ${side}`, node, [NODE_RELAY, JSON.stringify({ side, ...args })], { netns, logFile: path.join(p.dir, `node-relay-${side}.log`) });
  const files = (leaf: PairPlan["pki"]["client"]) => ({ cert: leaf.certFile, key: leaf.keyFile, ca: p.pki.caFile });
  fs.mkdirSync(p.dir, { recursive: true });
  return {
    server: launch("server", { listen: { host: p.serverAddr, port: p.serverPort }, target: { host: "127.0.0.1", port: p.backendPort }, ...files(p.pki.server) }, p.serverNs),
    client: launch("client", { listen: { host: p.clientAddr, port: p.clientPort }, target: { host: p.serverAddr, port: p.serverPort }, ...files(p.pki.client) }, p.clientNs),
  };
}
