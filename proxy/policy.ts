// Inbound decisions, pure: which mode applies to a port, and whether a peer may use it.
import { BlockList, isIPv6 } from "node:net";
import { AuthorizationRule, WorkloadConfig } from "./config";
import { Mode } from "./wellknown";
import { parseSpiffeId } from "./spiffe";

/** The port-level mode wins over the workload default (catalogue #4). */
export function resolveMode(workload: WorkloadConfig, port: number): Mode {
  return workload.inbound.ports.find((entry) => entry.port === port)?.mode ?? workload.inbound.defaultMode;
}

/** An opaque port gets no protocol detection: its meshed clients come through the tunnel listener. */
export function isOpaque(workload: WorkloadConfig, port: number): boolean {
  return workload.inbound.ports.find((entry) => entry.port === port)?.opaque === true;
}

/**
 * May `peer` (an authenticated SPIFFE ID, or null for a plaintext client) reach `port`?
 * No policy (null) allows everyone; otherwise a rule must match. A plaintext peer has no
 * identity, so it matches only a rule's `plaintextFrom` (its source address; catalogue #2).
 */
export function authorize(
  peer: string | null,
  port: number,
  authorization: { rules: AuthorizationRule[] } | null,
  trustDomain: string,
  address?: string,
): boolean {
  if (authorization === null) return true;
  if (peer === null) {
    return address !== undefined && authorization.rules.some((rule) => (!rule.ports || rule.ports.includes(port)) && inCidrs(address, rule.plaintextFrom));
  }
  const parsed = parseSpiffeId(peer);
  if (!parsed.ok) return false;
  const sameDomain = parsed.id.trustDomain === trustDomain;
  return authorization.rules.some((rule) => {
    if (rule.ports && !rule.ports.includes(port)) return false;
    if (rule.principals?.includes(peer)) return true;
    return sameDomain && parsed.id.namespace !== undefined && (rule.namespaces?.includes(parsed.id.namespace) ?? false);
  });
}

const blockLists = new WeakMap<string[], BlockList>();

/** Is `address` in one of `cidrs`? Lists are compiled once per config document. */
function inCidrs(address: string, cidrs: string[] | undefined): boolean {
  if (!cidrs?.length) return false;
  let list = blockLists.get(cidrs);
  if (!list) {
    list = new BlockList();
    for (const cidr of cidrs) {
      const [net, prefix] = cidr.split("/");
      list.addSubnet(net, Number(prefix), isIPv6(net) ? "ipv6" : "ipv4");
    }
    blockLists.set(cidrs, list);
  }
  // BlockList matches an IPv4-mapped source (::ffff:a.b.c.d, a dual-stack socket) to its IPv4 block itself.
  return list.check(address, isIPv6(address) ? "ipv6" : "ipv4");
}

export interface InboundPeer {
  /** Authenticated SPIFFE ID, or null for plaintext. */
  id: string | null;
  /** The connection's source address (matched against plaintextFrom). */
  address?: string;
}

export type RefusalReason = "plaintext_on_strict" | "authorization_denied";

/** `wouldRefuse`: an audit port admitted what strict would have refused, and why. */
export type Decision = { allow: true; wouldRefuse?: RefusalReason } | { allow: false; reason: RefusalReason };

/** The whole inbound decision for one connection (or tunnel stream) once its peer is known. */
export function decide(mode: Mode, peer: InboundPeer, port: number, workload: WorkloadConfig): Decision {
  if (mode === "disabled") return { allow: true };
  const strict = mode === "strict" || mode === "audit";
  const refusal: RefusalReason | undefined =
    strict && peer.id === null
      ? "plaintext_on_strict"
      : !authorize(peer.id, port, workload.authorization, workload.trustDomain, peer.address)
        ? "authorization_denied"
        : undefined;
  if (refusal === undefined) return { allow: true };
  return mode === "audit" ? { allow: true, wouldRefuse: refusal } : { allow: false, reason: refusal };
}
