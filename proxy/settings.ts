// The proxy's settings, from either form of `--config`:
//   a directory (a pod's mount): workload.json + directory.json, transparent listeners on the
//     well-known ports, identity from --identity (default the pod's identity mount);
//   a single file (proxy.json, ProxyFileConfigSchema): the same two documents plus explicit
//     listeners, for use without iptables.
// Everything is validated here, once; the rest of the proxy trusts Settings.
import * as fs from "fs";
import * as path from "path";
import {
  ConfigError,
  DirectoryConfig,
  parseDirectoryConfig,
  parseProxyFileConfig,
  parseWorkloadConfig,
  Transport,
  WorkloadConfig,
} from "./config";
import { FILE_NAMES, Mode, MOUNT_PATHS, PROXY_PORTS } from "./wellknown";

export interface InboundListener {
  host: string;
  /** 0 asks the OS for a free port (tests). */
  port: number;
  /** Explicit: the app port on 127.0.0.1. Absent: transparent, from SO_ORIGINAL_DST. */
  targetPort?: number;
  /** Pins the mode; absent: the workload's mode for the target port. */
  mode?: Mode;
}

export interface OutboundRoute {
  host: string;
  port: number;
  /** Expected server identity; null: plaintext passthrough. */
  spiffeId: string | null;
  /** The app port the server-side proxy forwards to (tunnel CONNECT target). */
  targetPort: number;
  /**
   * The destination port is permissive: if the server side answers our ClientHello with something
   * that is not TLS (its proxy still runs the old "disabled" config), send plaintext instead.
   */
  plaintextFallback?: boolean;
}

export interface OutboundListener {
  host: string;
  port: number;
  /** Skip it (with a log line) when the address family is unavailable, e.g. ::1 without IPv6. */
  optional?: boolean;
  /** Explicit route. Absent: transparent, from SO_ORIGINAL_DST and directory.json. */
  route?: OutboundRoute;
}

/** The documents that hot-reload. */
export interface MeshConfig {
  workload: WorkloadConfig;
  directory: DirectoryConfig;
}

export interface Settings {
  /** What --config pointed at. */
  source: { kind: "directory" | "file"; path: string };
  identityDir: string;
  config: MeshConfig;
  inbound: InboundListener[];
  outbound: OutboundListener[];
  admin: { host: string; port: number };
  transport: Transport;
}

export interface SettingsOverrides {
  identityDir?: string;
  transport?: Transport;
}

// The OUTPUT REDIRECT rewrites the destination to loopback (127.0.0.1, or ::1 for ip6tables):
// nothing outside the pod should reach the outbound listener.
const TRANSPARENT_OUTBOUND: OutboundListener[] = [
  { host: "127.0.0.1", port: PROXY_PORTS.outbound },
  { host: "::1", port: PROXY_PORTS.outbound, optional: true },
];

function readJson(file: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (error) {
    throw new ConfigError(`cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new ConfigError(`${file} is not valid JSON: ${(error as Error).message}`);
  }
}

function statOrFail(target: string): fs.Stats {
  try {
    return fs.statSync(target);
  } catch (error) {
    throw new ConfigError(`cannot read config ${target}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
}

/** Reads only the hot-reloadable documents (used by the watcher, too). */
export function loadMeshConfig(source: Settings["source"]): MeshConfig {
  if (source.kind === "directory") {
    const workloadFile = path.join(source.path, FILE_NAMES.workload);
    const directoryFile = path.join(source.path, FILE_NAMES.directory);
    const workload = parseWorkloadConfig(readJson(workloadFile), workloadFile);
    // A workload that calls no meshed service may have no directory yet.
    const directory = fs.existsSync(directoryFile)
      ? parseDirectoryConfig(readJson(directoryFile), directoryFile)
      : parseDirectoryConfig({ version: 1 }, directoryFile);
    return checkConsistent({ workload, directory }, source.path);
  }
  const file = parseProxyFileConfig(readJson(source.path), source.path);
  return checkConsistent({ workload: file.workload, directory: file.directory }, source.path);
}

function checkConsistent(config: MeshConfig, source: string): MeshConfig {
  const { workload } = config;
  const idPrefix = `spiffe://${workload.trustDomain}/`;
  if (!workload.workload.spiffeId.startsWith(idPrefix)) {
    throw new ConfigError(`invalid config in ${source}:\n  workload.spiffeId: must be in trust domain ${workload.trustDomain}`);
  }
  return config;
}

/** Loads and validates everything `mesh-proxy run` needs; throws ConfigError naming the field. */
export function loadSettings(configPath: string, overrides: SettingsOverrides = {}): Settings {
  const resolved = path.resolve(configPath);
  if (statOrFail(resolved).isDirectory()) {
    const source = { kind: "directory" as const, path: resolved };
    return {
      source,
      identityDir: path.resolve(overrides.identityDir ?? MOUNT_PATHS.identity),
      config: loadMeshConfig(source),
      // "::" is dual-stack (IPv4 arrives v4-mapped); it falls back to 0.0.0.0 without IPv6.
      inbound: [{ host: "::", port: PROXY_PORTS.inbound }],
      outbound: TRANSPARENT_OUTBOUND,
      admin: { host: "::", port: PROXY_PORTS.admin },
      transport: overrides.transport ?? "h2",
    };
  }

  const source = { kind: "file" as const, path: resolved };
  const file = parseProxyFileConfig(readJson(resolved), resolved);
  const config = checkConsistent({ workload: file.workload, directory: file.directory }, resolved);
  const identityDir = overrides.identityDir !== undefined
    ? path.resolve(overrides.identityDir)
    : file.identity !== undefined ? path.resolve(path.dirname(resolved), file.identity) : undefined;
  if (identityDir === undefined) {
    throw new ConfigError(`invalid config in ${resolved}:\n  identity: required (or pass --identity <dir>)`);
  }
  const inbound: InboundListener[] = file.listeners.inbound.map((l) => ({ host: l.host, port: l.port, targetPort: l.targetPort, mode: l.mode }));
  const outbound: OutboundListener[] = file.listeners.outbound.map((l) => ({
    host: l.host,
    port: l.port,
    route: { host: l.target.host, port: l.target.port, spiffeId: l.spiffeId, targetPort: l.targetPort ?? l.target.port },
  }));
  // Checked before the transparent listeners join: those bind one port on two loopback addresses.
  const ports = [...inbound, ...outbound].map((l) => l.port).concat(file.admin.port);
  if (file.listeners.transparent) {
    ports.push(PROXY_PORTS.inbound, PROXY_PORTS.outbound);
    inbound.push({ host: "::", port: PROXY_PORTS.inbound });
    outbound.push(...TRANSPARENT_OUTBOUND);
  }
  const duplicate = ports.find((port, i) => ports.indexOf(port) !== i);
  if (duplicate !== undefined) throw new ConfigError(`invalid config in ${resolved}:\n  listeners: port ${duplicate} is used twice`);
  if (inbound.length + outbound.length === 0) {
    throw new ConfigError(`invalid config in ${resolved}:\n  listeners: no listener (add inbound/outbound entries or set transparent)`);
  }
  return {
    source,
    identityDir,
    config,
    inbound,
    outbound,
    admin: file.admin,
    transport: overrides.transport ?? file.transport,
  };
}
