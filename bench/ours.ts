// This project's proxy as a benchmark pair, in its explicit-listener mode (one proxy.json each,
// no iptables; see proxy/README.md): the client side listens on a port routed to the server
// side's address with the SPIFFE ID it must present; the server side listens on a strict mTLS
// port forwarded to the backend on loopback.
import * as fs from "node:fs";
import * as path from "node:path";
import { start, Started } from "./processes";
import { PairPlan, Pair } from "./peers";
import { NAMESPACE, TRUST_DOMAIN, LeafFiles } from "./pki";

export interface OursOptions {
  /** Node binary that runs the proxy (a newer runtime is one of the levers). */
  node: string;
  /** A second runtime, for the "ours-alt-node" system: both interleaved in the same run. */
  altNode?: string;
  /** The proxy's entry point (dist/proxy/cli.js); absent: this build's. */
  cli?: string;
  /** Another build's dist/proxy/cli.js, for the "ours-base" system (before vs after in one run). */
  baselineCli?: string;
  /** Extra Node flags, e.g. --cpu-prof for the profile pass. */
  nodeFlags: string[];
  /** Pin the transport between the pair ("h2": pooled, multiplexed; "tcp": one mTLS connection
   * per application connection); absent: the proxy's default. */
  transport?: "h2" | "tcp";
  /** Where --cpu-prof writes, per side (the profile pass). */
  profileDirFor?: (side: "client" | "server") => string;
}

export const PROXY_CLI = path.resolve(__dirname, "../proxy/cli.js");

export function oursAvailable(): boolean {
  return fs.existsSync(PROXY_CLI);
}

/** Plan for our pair: the peers' plan plus one admin port per side. */
export interface OursPlan extends PairPlan {
  adminPorts: [number, number];
}

function workload(leaf: LeafFiles, name: string) {
  return {
    version: 1,
    trustDomain: TRUST_DOMAIN,
    workload: { namespace: NAMESPACE, name, serviceAccount: name, spiffeId: leaf.spiffeId },
    inbound: { defaultMode: "strict", ports: [] },
    // A bench pair has nothing to drain for: stop within a second (the profile pass needs a
    // clean exit to get its CPU profile written).
    limits: { drainTimeoutMs: 1000 },
  };
}

function identityDir(plan: OursPlan, side: "client" | "server", leaf: LeafFiles): string {
  const dir = path.join(plan.dir, `${side}-identity`);
  fs.mkdirSync(dir, { recursive: true });
  fs.copyFileSync(leaf.certFile, path.join(dir, "tls.crt"));
  fs.copyFileSync(leaf.keyFile, path.join(dir, "tls.key"));
  fs.copyFileSync(plan.pki.caFile, path.join(dir, "ca.crt"));
  return dir;
}

export function oursConfigs(plan: OursPlan, o: OursOptions): Record<"client" | "server", object> {
  const { pki } = plan;
  const transport = o.transport ? { transport: o.transport } : {};
  return {
    client: {
      version: 1,
      identity: identityDir(plan, "client", pki.client),
      workload: workload(pki.client, "client"),
      listeners: {
        outbound: [
          {
            host: plan.clientAddr,
            port: plan.clientPort,
            target: { host: plan.serverAddr, port: plan.serverPort },
            spiffeId: pki.server.spiffeId,
            targetPort: plan.backendPort,
          },
        ],
      },
      admin: { host: "127.0.0.1", port: plan.adminPorts[0] },
      ...transport,
    },
    server: {
      version: 1,
      identity: identityDir(plan, "server", pki.server),
      workload: workload(pki.server, "server"),
      listeners: {
        inbound: [{ host: plan.serverAddr, port: plan.serverPort, targetPort: plan.backendPort, mode: "strict" }],
      },
      admin: { host: "127.0.0.1", port: plan.adminPorts[1] },
      ...transport,
    },
  };
}

/**
 * Only our server side, in permissive mode, for a plaintext client dialling it directly: what a
 * client that is not in the mesh yet meets during a migration. `opaque` turns protocol detection
 * off on the app port (a server-first client such as MariaDB's then never waits the sniff window).
 */
export function permissiveServerConfig(plan: OursPlan, opaque: boolean): object {
  const { pki } = plan;
  const base = workload(pki.server, "server");
  return {
    version: 1,
    identity: identityDir(plan, "server", pki.server),
    workload: { ...base, inbound: { defaultMode: "permissive", ports: [{ port: plan.backendPort, mode: "permissive", ...(opaque ? { opaque: true } : {}) }] } },
    listeners: {
      inbound: [{ host: plan.serverAddr, port: plan.serverPort, targetPort: plan.backendPort, mode: "permissive" }],
    },
    admin: { host: "127.0.0.1", port: plan.adminPorts[1] },
  };
}

export function startOursPermissive(plan: OursPlan, o: OursOptions, opaque: boolean): Started {
  fs.mkdirSync(plan.dir, { recursive: true });
  return launch(plan, o, "server", permissiveServerConfig(plan, opaque), plan.serverNs);
}

export function startOurs(plan: OursPlan, o: OursOptions): Pair {
  fs.mkdirSync(plan.dir, { recursive: true });
  const configs = oursConfigs(plan, o);
  return { server: launch(plan, o, "server", configs.server, plan.serverNs), client: launch(plan, o, "client", configs.client, plan.clientNs) };
}

/** One proxy process from its proxy.json, written next to its log in the plan's directory. */
function launch(plan: OursPlan, o: OursOptions, side: "client" | "server", config: object, netns?: string): Started {
  const file = path.join(plan.dir, `proxy-${side}.json`);
  fs.writeFileSync(file, JSON.stringify(config, null, 2) + "\n");
  const flags = [...o.nodeFlags];
  if (o.profileDirFor) flags.push(`--cpu-prof-dir=${o.profileDirFor(side)}`);
  return start(`mesh-proxy ${side}`, o.node, [...flags, o.cli ?? PROXY_CLI, "run", "--config", file], {
    netns,
    logFile: path.join(plan.dir, `proxy-${side}.log`),
  });
}
