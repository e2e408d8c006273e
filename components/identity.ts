// Pure rules for certificates: what a leaf may be used for, how long it lives, and when it is
// renewed. The components pass these straight to @pulumi/tls.
import { createHash } from "node:crypto";

/**
 * A workload leaf's `allowedUses`, in @pulumi/tls's snake_case vocabulary: signs TLS 1.3
 * handshakes (digitalSignature; ECDSA keys never encipher, so no keyEncipherment) and acts as
 * both TLS server and client. No cert_signing: a leaf is never a CA.
 */
export const LEAF_ALLOWED_USES = ["digital_signature", "server_auth", "client_auth"] as const;

/** A root or intermediate: signs certificates and CRLs, nothing else. */
export const CA_ALLOWED_USES = ["cert_signing", "crl_signing", "digital_signature"] as const;

export const KEY_ALGORITHM = { algorithm: "ECDSA", ecdsaCurve: "P256" } as const;

export const DEFAULTS = {
  /** Leaves: 30 days, renewed in their last 10 days. */
  leafValidityHours: 30 * 24,
  leafRenewBeforeHours: 10 * 24,
  /** Issuer (intermediate): one year, renewed in its last 90 days. */
  issuerValidityHours: 365 * 24,
  issuerRenewBeforeHours: 90 * 24,
  /** Root: ten years; rotated by hand with an overlapping trust bundle (see README). */
  rootValidityHours: 10 * 365 * 24,
} as const;

export interface RenewalSchedule {
  validityHours: number;
  renewBeforeHours: number;
}

const HOUR_MS = 3_600_000;

/** The schedule's period and this certificate's stable offset into it, in ms. */
function periodOf(schedule: RenewalSchedule, stagger: string): { periodMs: number; offsetMs: number } {
  const periodMs = (schedule.validityHours - schedule.renewBeforeHours) * HOUR_MS;
  const offsetMs = stagger === "" ? 0 : createHash("sha256").update(stagger).digest().readUInt32BE(0) % periodMs;
  return { periodMs, offsetMs };
}

/**
 * The renewal generation of a certificate at time `nowMs`: an integer that changes every
 * (validityHours - renewBeforeHours) hours. The certificate resources are replaced when it
 * changes (Pulumi `replacementTrigger`), so a `pulumi up` run on or after the boundary issues a
 * fresh key and certificate, while every run inside the same period previews zero changes.
 *
 * Why this works: a certificate issued in period k expires at least validityHours after the start
 * of period k, i.e. at least renewBeforeHours after the start of period k+1, where the next
 * generation replaces it. `stagger` (e.g. the SPIFFE ID) shifts each certificate's boundaries by a
 * stable offset so that the leaves of a mesh do not all renew in the same run.
 *
 * @pulumi/tls alone never renews on a plain `pulumi up` (pulumi-tls issue 39: `readyForRenewal`
 * only flips on refresh); this closes that gap. Callers ensure renewBeforeHours < validityHours.
 */
export function renewalGeneration(nowMs: number, schedule: RenewalSchedule, stagger = ""): number {
  const { periodMs, offsetMs } = periodOf(schedule, stagger);
  return Math.floor((nowMs + offsetMs) / periodMs);
}

/** When the generation that is current at `nowMs` ends (the next scheduled renewal), as ISO time. */
export function nextRenewalAt(nowMs: number, schedule: RenewalSchedule, stagger = ""): string {
  const { periodMs, offsetMs } = periodOf(schedule, stagger);
  return new Date((renewalGeneration(nowMs, schedule, stagger) + 1) * periodMs - offsetMs).toISOString();
}

/** tls.crt: the leaf followed by its issuer chain (intermediate), as TLS servers send it. */
export function certificateChain(leafPem: string, chainPems: string[]): string {
  return [leafPem, ...chainPems].map((p) => p.trim() + "\n").join("");
}

/** ca.crt: every trusted root, deduplicated, in a stable order (current root first). */
export function trustBundle(rootPems: string[]): string {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const pem of rootPems) {
    const key = pem.trim();
    if (key === "" || seen.has(key)) continue;
    seen.add(key);
    out.push(key + "\n");
  }
  return out.join("");
}
