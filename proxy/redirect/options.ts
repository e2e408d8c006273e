// `mesh-proxy init` flags, parsed and checked once into a RedirectOptions value. Everything here is
// pure so that each refusal can be tested without iptables; the error names the flag at fault.
import * as net from "net";
import { PROXY_PORTS, PROXY_UID } from "../wellknown";

export interface RedirectOptions {
  /** App ports whose inbound connections go to the inbound listener; "*" = every port but the excluded and the proxy's own. */
  inboundPorts: number[] | "*";
  excludeInboundPorts: number[];
  /** Traffic from this UID (the proxy itself) is never redirected, or the proxy would loop into itself. */
  proxyUid: number;
  inboundListener: number;
  outboundListener: number;
  /** Never redirected in either direction: the kubelet probes it and it is not the app's. */
  adminPort: number;
  /** Never redirected inbound: meshed clients of opaque ports connect to the proxy on it directly. */
  tunnelPort: number;
  excludeOutboundPorts: number[];
  /** Normalised "a.b.c.d/n" (IPv4) and "x::/n" (IPv6) blocks reached directly, not through the proxy. */
  excludeOutboundCidrs: string[];
  /**
   * IPv6 redirection with ip6tables: "auto" (the default) installs it whenever the pod's network
   * namespace has IPv6 (ipv6.ts), "required" (--ipv6) installs it unconditionally. There is no
   * "off": IPv6 left unredirected is a way around the mesh.
   */
  ipv6: "auto" | "required";
}

/** The raw flag values as commander hands them over (strings, or undefined when absent). */
export interface RawInitFlags {
  inboundPorts?: string;
  excludeInboundPorts?: string;
  proxyUid?: string;
  inboundListener?: string;
  outboundListener?: string;
  excludeOutboundPorts?: string;
  excludeOutboundCidrs?: string;
  ipv6?: boolean;
}

/** A user error in one flag: printed as one line, exit code 2. */
export class RedirectInputError extends Error {
  constructor(
    readonly flag: string,
    problem: string,
  ) {
    super(`${flag}: ${problem}`);
    this.name = "RedirectInputError";
  }
}

/** With `--inbound-ports *`: the ports inbound redirection leaves alone, the proxy's own first. */
export function inboundPortsKept(options: RedirectOptions): number[] {
  return [...new Set([options.inboundListener, options.outboundListener, options.adminPort, options.tunnelPort, ...options.excludeInboundPorts])];
}

export function parseInitFlags(raw: RawInitFlags): RedirectOptions {
  const inboundListener = parsePort("--inbound-listener", raw.inboundListener, PROXY_PORTS.inbound);
  const outboundListener = parsePort("--outbound-listener", raw.outboundListener, PROXY_PORTS.outbound);
  const adminPort = PROXY_PORTS.admin;
  const tunnelPort = PROXY_PORTS.tunnel;
  if (inboundListener === outboundListener) {
    throw new RedirectInputError("--outbound-listener", `${outboundListener} is also the inbound listener; they must differ`);
  }
  for (const [flag, port] of [
    ["--inbound-listener", inboundListener],
    ["--outbound-listener", outboundListener],
  ] as const) {
    if (port === adminPort) throw new RedirectInputError(flag, `${port} is the proxy's admin port`);
    if (port === tunnelPort) throw new RedirectInputError(flag, `${port} is the proxy's tunnel port`);
  }
  const proxyPorts = new Set([inboundListener, outboundListener, adminPort, tunnelPort]);

  const excludeInboundPorts = parsePortList("--exclude-inbound-ports", raw.excludeInboundPorts);
  let inboundPorts: number[] | "*";
  if (raw.inboundPorts?.trim() === "*") {
    inboundPorts = "*";
  } else {
    inboundPorts = parsePortList("--inbound-ports", raw.inboundPorts);
    const own = inboundPorts.find((port) => proxyPorts.has(port));
    if (own !== undefined) {
      // Redirecting the proxy's own ports would loop inbound traffic into itself and hide the admin port from the kubelet.
      throw new RedirectInputError("--inbound-ports", `${own} is one of the proxy's own ports (${[...proxyPorts].join(", ")})`);
    }
    inboundPorts = inboundPorts.filter((port) => !excludeInboundPorts.includes(port));
  }

  return {
    inboundPorts,
    excludeInboundPorts,
    proxyUid: parseUid("--proxy-uid", raw.proxyUid),
    inboundListener,
    outboundListener,
    adminPort,
    tunnelPort,
    excludeOutboundPorts: parsePortList("--exclude-outbound-ports", raw.excludeOutboundPorts),
    // IPv6 blocks only matter where IPv6 is redirected; on an IPv4-only pod they match nothing.
    excludeOutboundCidrs: parseCidrList("--exclude-outbound-cidrs", raw.excludeOutboundCidrs),
    ipv6: raw.ipv6 === true ? "required" : "auto",
  };
}

export function parsePort(flag: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  return portOf(flag, text.trim());
}

/** "8080,9090" → [8080, 9090]; "" or absent → []; duplicates dropped, order kept. */
export function parsePortList(flag: string, text: string | undefined): number[] {
  const items = splitList(flag, text);
  return [...new Set(items.map((item) => portOf(flag, item)))];
}

/** "10.0.0.0/8,192.168.1.7" → ["10.0.0.0/8", "192.168.1.7/32"]. IPv6 blocks are recognised too. */
export function parseCidrList(flag: string, text: string | undefined): string[] {
  return [...new Set(splitList(flag, text).map((item) => cidrOf(flag, item)))];
}

export function parseUid(flag: string, text: string | undefined): number {
  if (text === undefined) return PROXY_UID;
  const trimmed = text.trim();
  if (!/^\d{1,10}$/.test(trimmed) || Number(trimmed) > 4294967294) {
    throw new RedirectInputError(flag, `${JSON.stringify(text)} is not a numeric UID`);
  }
  const uid = Number(trimmed);
  // Skipping root's traffic would let any app running as root bypass the mesh.
  if (uid === 0) throw new RedirectInputError(flag, "0 (root) cannot be the proxy's UID");
  return uid;
}

function splitList(flag: string, text: string | undefined): string[] {
  if (text === undefined || text.trim() === "") return [];
  const items = text.split(",").map((item) => item.trim());
  if (items.some((item) => item === "")) throw new RedirectInputError(flag, `${JSON.stringify(text)} has an empty item`);
  return items;
}

function portOf(flag: string, item: string): number {
  if (!/^\d{1,5}$/.test(item) || Number(item) < 1 || Number(item) > 65535) {
    throw new RedirectInputError(flag, `${JSON.stringify(item)} is not a port (1-65535)`);
  }
  return Number(item);
}

function cidrOf(flag: string, item: string): string {
  const slash = item.indexOf("/");
  const address = slash < 0 ? item : item.slice(0, slash);
  const family = net.isIPv4(address) ? 4 : net.isIPv6(address) ? 6 : 0;
  if (family === 0) throw new RedirectInputError(flag, `${JSON.stringify(item)} is not a CIDR block (a.b.c.d/n)`);
  const maxPrefix = family === 4 ? 32 : 128;
  const prefixText = slash < 0 ? String(maxPrefix) : item.slice(slash + 1);
  if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > maxPrefix) {
    throw new RedirectInputError(flag, `${JSON.stringify(item)} has a bad prefix length (0-${maxPrefix})`);
  }
  return `${address.toLowerCase()}/${Number(prefixText)}`;
}
