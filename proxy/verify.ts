// Peer-certificate checks that OpenSSL does not make. OpenSSL has already verified the chain to
// the trust bundle and the validity window; it accepts a leaf with CA:TRUE, several URI SANs or no
// EKU, which SPIFFE forbids. We parse the leaf structurally (never from Node's `subjectaltname`
// string, see CVE-2021-44532) and return the peer's SPIFFE ID or a refusal reason.
import "reflect-metadata";
import { webcrypto } from "node:crypto";
import * as x509 from "@peculiar/x509";
import { parseSpiffeId, SpiffeId } from "./spiffe";

x509.cryptoProvider.set(webcrypto as unknown as webcrypto.Crypto);

/** The role the PEER plays: a client must carry EKU clientAuth, a server EKU serverAuth. */
export type PeerRole = "client" | "server";

export type PeerRefusal =
  | "no_uri_san"
  | "multiple_uri_sans"
  | "control_bytes_in_san"
  | "invalid_spiffe_id"
  | "foreign_trust_domain"
  | "leaf_is_ca"
  | "leaf_can_sign_certificates"
  | "missing_eku"
  | "unparsable_certificate";

export type PeerCheck =
  | { ok: true; id: string; spiffe: SpiffeId; notAfter: Date }
  | { ok: false; reason: PeerRefusal; detail: string };

const EKU_OID: Record<PeerRole, string> = {
  client: x509.ExtendedKeyUsage.clientAuth,
  server: x509.ExtendedKeyUsage.serverAuth,
};
const SIGNING_USAGES = x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign;
// C0 controls, DEL and C1 controls: never part of an ID, a sign of a smuggling attempt.
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

// Parsing DER costs far more than a handshake's worth of JS; peers reconnect with the same leaf.
const CACHE_LIMIT = 1024;
const cache = new Map<string, PeerCheck>();

/**
 * Checks a peer leaf (DER) for `role` in `trustDomain`. `fingerprint` (e.g. X509Certificate's
 * fingerprint256) keys the cache; pass undefined to skip caching.
 */
export function checkPeerCertificate(der: Buffer, role: PeerRole, trustDomain: string, fingerprint?: string): PeerCheck {
  const key = fingerprint === undefined ? undefined : `${role}|${trustDomain}|${fingerprint}`;
  if (key !== undefined) {
    const hit = cache.get(key);
    if (hit) return hit;
  }
  const result = check(der, role, trustDomain);
  if (key !== undefined) {
    if (cache.size >= CACHE_LIMIT) cache.clear();
    cache.set(key, result);
  }
  return result;
}

function check(der: Buffer, role: PeerRole, trustDomain: string): PeerCheck {
  const refuse = (reason: PeerRefusal, detail: string): PeerCheck => ({ ok: false, reason, detail });
  let cert: x509.X509Certificate;
  try {
    cert = new x509.X509Certificate(der);
  } catch (error) {
    return refuse("unparsable_certificate", (error as Error).message);
  }

  const san = cert.getExtension(x509.SubjectAlternativeNameExtension);
  const uris = san ? san.names.items.filter((name) => name.type === "url").map((name) => name.value) : [];
  if (uris.length === 0) return refuse("no_uri_san", "the certificate has no URI SAN");
  if (uris.length > 1) return refuse("multiple_uri_sans", `the certificate has ${uris.length} URI SANs`);
  const uri = uris[0];
  if (CONTROL.test(uri)) return refuse("control_bytes_in_san", "the URI SAN contains control bytes");
  const parsed = parseSpiffeId(uri);
  if (!parsed.ok) return refuse("invalid_spiffe_id", `${JSON.stringify(uri)}: ${parsed.reason}`);
  if (parsed.id.trustDomain !== trustDomain) {
    return refuse("foreign_trust_domain", `${uri} is not in trust domain ${trustDomain}`);
  }

  const basic = cert.getExtension(x509.BasicConstraintsExtension);
  if (basic?.ca) return refuse("leaf_is_ca", `${uri} is a CA certificate`);
  const usages = cert.getExtension(x509.KeyUsagesExtension);
  if (usages && (usages.usages & SIGNING_USAGES) !== 0) {
    return refuse("leaf_can_sign_certificates", `${uri} has keyCertSign or cRLSign`);
  }
  const eku = cert.getExtension(x509.ExtendedKeyUsageExtension);
  const wanted = EKU_OID[role];
  if (!eku || !eku.usages.map(String).includes(wanted)) {
    return refuse("missing_eku", `${uri} lacks EKU ${role === "client" ? "clientAuth" : "serverAuth"}`);
  }
  return { ok: true, id: uri, spiffe: parsed.id, notAfter: cert.notAfter };
}
