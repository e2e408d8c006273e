// The proxy's settings, from either form of `--config`:
//   a directory (a pod's mount): workload.json + directory.json, transparent listeners on the
//     well-known ports, identity from --identity (default the pod's identity mount);
//   a single file (proxy.json, ProxyFileConfigSchema): the same two documents plus explicit
//     listeners, for use without iptables.
// Everything is validated here, once; the rest of the proxy trusts Settings.
import * as fs from "fs";
import * as path from "path";
import * as zlib from "zlib";
import {
  ConfigError,
  DirectoryConfig,
  parseDirectoryConfig,
  parseProxyFileConfig,
  parseWorkloadConfig,
  ProxyFileConfig,
  stableStringify,
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
  /** Pins the mode; absent: the workload's mode for the target port. A config reload updates it (proxy.ts). */
  mode?: Mode;
  /** The tunnel listener: mTLS HTTP/2 only, each stream names its app port (no targetPort, no mode). */
  tunnel?: boolean;
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
  /**
   * The destination port is opaque: dial the server proxy's tunnel listener on this port of the
   * same host instead, over HTTP/2 CONNECT whatever the transport (the stream names targetPort).
   */
  tunnelPort?: number;
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

export type ConfigSource =
  | { kind: "directory"; path: string }
  /** `restartOnly`: what a reload must find unchanged (restartOnlyPart). */
  | { kind: "file"; path: string; restartOnly: Record<string, string> };

export interface Settings {
  /** What --config pointed at. */
  source: ConfigSource;
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

// "::" is dual-stack (IPv4 arrives v4-mapped); it falls back to 0.0.0.0 without IPv6.
const TRANSPARENT_INBOUND: InboundListener[] = [
  { host: "::", port: PROXY_PORTS.inbound },
  { host: "::", port: PROXY_PORTS.tunnel, tunnel: true },
];

/** A decompressed directory larger than this is refused (a gzip bomb must not take the proxy down). */
const MAX_DIRECTORY_BYTES = 64 * 1024 * 1024;

function readJson(file: string): unknown {
  let text: string;
  try {
    text = file.endsWith(".gz")
      ? zlib.gunzipSync(fs.readFileSync(file), { maxOutputLength: MAX_DIRECTORY_BYTES }).toString("utf8")
      : fs.readFileSync(file, "utf8");
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

/** Reads the two documents of a config directory. */
export function loadMeshConfig(source: { kind: "directory"; path: string }): MeshConfig {
  const workloadFile = path.join(source.path, FILE_NAMES.workload);
  // A large mesh's directory comes compressed; the ConfigMap holds one form or the other.
  const gzipFile = path.join(source.path, FILE_NAMES.directoryGzip);
  const directoryFile = fs.existsSync(gzipFile) ? gzipFile : path.join(source.path, FILE_NAMES.directory);
  const workload = parseWorkloadConfig(readJson(workloadFile), workloadFile);
  // A workload that calls no meshed service may have no directory yet.
  const directory = fs.existsSync(directoryFile)
    ? parseDirectoryConfig(readJson(directoryFile), directoryFile)
    : parseDirectoryConfig({ version: 1 }, directoryFile);
  return checkConsistent({ workload, directory }, source.path);
}

/** What a config reload applies. */
export interface Reloaded {
  config: MeshConfig;
  /** proxy.json: the mode each explicit inbound listener pins, in file order (they lead Settings.inbound). */
  pinnedModes: Array<Mode | undefined>;
}

/**
 * The parts of proxy.json that only a restart applies, each as canonical JSON: listeners are bound
 * and outbound routes fixed at start, the identity directory and transport are wired then, too.
 * A listener's pinned mode is left out: like every other mode it reloads (a tightened mode must
 * act now, not at some later restart).
 */
function restartOnlyPart(file: ProxyFileConfig): Record<string, string> {
  const inbound = file.listeners.inbound.map(({ mode: _reloads, ...listener }) => listener);
  const fixed = { identity: file.identity, listeners: { ...file.listeners, inbound }, admin: file.admin, transport: file.transport };
  return Object.fromEntries(Object.entries(fixed).map(([key, value]) => [key, stableStringify(value ?? null)]));
}

/**
 * Re-reads what a running proxy can change without a restart. A proxy.json whose restart-only
 * parts changed is refused as a whole (ConfigError naming them): applying the rest while the
 * listeners stay as they were would log "reloaded" for a file that is not what runs.
 */
export function readReloadable(source: ConfigSource): Reloaded {
  if (source.kind === "directory") return { config: loadMeshConfig(source), pinnedModes: [] };
  const file = parseProxyFileConfig(readJson(source.path), source.path);
  const now = restartOnlyPart(file);
  const changed = Object.keys(now).filter((key) => now[key] !== source.restartOnly[key]);
  if (changed.length > 0) {
    throw new ConfigError(`${source.path}: ${changed.join(", ")} changed; restart mesh-proxy to apply that (only the documents and listener modes reload)`);
  }
  return {
    config: checkConsistent({ workload: file.workload, directory: file.directory }, source.path),
    pinnedModes: file.listeners.inbound.map((listener) => listener.mode),
  };
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
      inbound: TRANSPARENT_INBOUND,
      outbound: TRANSPARENT_OUTBOUND,
      admin: { host: "::", port: PROXY_PORTS.admin },
      transport: overrides.transport ?? "h2",
    };
  }

  const file = parseProxyFileConfig(readJson(resolved), resolved);
  const source = { kind: "file" as const, path: resolved, restartOnly: restartOnlyPart(file) };
  const config = checkConsistent({ workload: file.workload, directory: file.directory }, resolved);
  const identityDir = overrides.identityDir !== undefined
    ? path.resolve(overrides.identityDir)
    : file.identity !== undefined ? path.resolve(path.dirname(resolved), file.identity) : undefined;
  if (identityDir === undefined) {
    throw new ConfigError(`invalid config in ${resolved}:\n  identity: required (or pass --identity <dir>)`);
  }
  const inbound: InboundListener[] = file.listeners.inbound.map((l) => ({ host: l.host, port: l.port, targetPort: l.targetPort, mode: l.mode }));
  const { tunnel } = file.listeners;
  if (tunnel) inbound.push({ host: tunnel.host, port: tunnel.port, tunnel: true });
  const outbound: OutboundListener[] = file.listeners.outbound.map((l) => ({
    host: l.host,
    port: l.port,
    route: {
      host: l.target.host,
      port: l.target.port,
      spiffeId: l.spiffeId,
      targetPort: l.targetPort ?? l.target.port,
      ...(l.tunnel ? { tunnelPort: l.target.port } : {}),
    },
  }));
  // Checked before the transparent listeners join: those bind one port on two loopback addresses.
  const ports = [...inbound, ...outbound].map((l) => l.port).concat(file.admin.port);
  if (file.listeners.transparent) {
    ports.push(PROXY_PORTS.inbound, PROXY_PORTS.outbound, PROXY_PORTS.tunnel);
    inbound.push(...TRANSPARENT_INBOUND);
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
