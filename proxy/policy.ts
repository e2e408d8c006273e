// Inbound decisions, pure: which mode applies to a port, and whether a peer may use it.
import { AuthorizationRule, WorkloadConfig } from "./config";
import { Mode } from "./wellknown";
import { parseSpiffeId } from "./spiffe";

/** The port-level mode wins over the workload default (catalogue #4). */
export function resolveMode(workload: WorkloadConfig, port: number): Mode {
  return workload.inbound.ports.find((entry) => entry.port === port)?.mode ?? workload.inbound.defaultMode;
}

/**
 * May `peer` (an authenticated SPIFFE ID, or null for a plaintext client) reach `port`?
 * No policy (null) allows everyone; otherwise a rule must match, and a plaintext peer has no
 * identity so it matches no rule (catalogue #2).
 */
export function authorize(
  peer: string | null,
  port: number,
  authorization: { rules: AuthorizationRule[] } | null,
  trustDomain: string,
): boolean {
  if (authorization === null) return true;
  if (peer === null) return false;
  const parsed = parseSpiffeId(peer);
  if (!parsed.ok) return false;
  const sameDomain = parsed.id.trustDomain === trustDomain;
  return authorization.rules.some((rule) => {
    if (rule.ports && !rule.ports.includes(port)) return false;
    if (rule.principals?.includes(peer)) return true;
    return sameDomain && parsed.id.namespace !== undefined && (rule.namespaces?.includes(parsed.id.namespace) ?? false);
  });
}

export interface InboundPeer {
  /** Authenticated SPIFFE ID, or null for plaintext. */
  id: string | null;
}

export type Decision = { allow: true } | { allow: false; reason: "plaintext_on_strict" | "authorization_denied" };

/** The whole inbound decision for one connection (or tunnel stream) once its peer is known. */
export function decide(mode: Mode, peer: InboundPeer, port: number, workload: WorkloadConfig): Decision {
  if (mode === "disabled") return { allow: true };
  if (mode === "strict" && peer.id === null) return { allow: false, reason: "plaintext_on_strict" };
  if (!authorize(peer.id, port, workload.authorization, workload.trustDomain)) {
    return { allow: false, reason: "authorization_denied" };
  }
  return { allow: true };
}
