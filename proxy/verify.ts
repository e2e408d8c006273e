// Peer-certificate checks that OpenSSL does not make. OpenSSL has already verified the chain to
// the trust bundle and the validity window; it accepts a leaf with CA:TRUE, several URI SANs or no
// EKU, which SPIFFE forbids. We parse the leaf structurally (never from Node's `subjectaltname`
// string, see CVE-2021-44532) and return the peer's SPIFFE ID or a refusal reason. The ASN.1
// schemas alone (@peculiar/asn1-x509), not a full X.509 toolkit: this module is loaded by every
// proxy, and the toolkit (with its reflect-metadata and DI container) cost ~4 MB of idle RSS.
import { AsnConvert } from "@peculiar/asn1-schema";
import {
  BasicConstraints,
  Certificate,
  ExtendedKeyUsage,
  Extension,
  KeyUsage,
  KeyUsageFlags,
  SubjectAlternativeName,
  id_ce_basicConstraints,
  id_ce_extKeyUsage,
  id_ce_keyUsage,
  id_ce_subjectAltName,
  id_kp_clientAuth,
  id_kp_serverAuth,
} from "@peculiar/asn1-x509";
import { parseSpiffeId, SpiffeId } from "./spiffe";

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

const EKU_OID: Record<PeerRole, string> = { client: id_kp_clientAuth, server: id_kp_serverAuth };
const SIGNING_USAGES = KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign;
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
  let leaf: Leaf;
  try {
    leaf = parseLeaf(der);
  } catch (error) {
    return refuse("unparsable_certificate", (error as Error).message);
  }

  const uris = [...(leaf.san ?? [])].flatMap((name) => (name.uniformResourceIdentifier === undefined ? [] : [name.uniformResourceIdentifier]));
  if (uris.length === 0) return refuse("no_uri_san", "the certificate has no URI SAN");
  if (uris.length > 1) return refuse("multiple_uri_sans", `the certificate has ${uris.length} URI SANs`);
  const uri = uris[0];
  if (CONTROL.test(uri)) return refuse("control_bytes_in_san", "the URI SAN contains control bytes");
  const parsed = parseSpiffeId(uri);
  if (!parsed.ok) return refuse("invalid_spiffe_id", `${JSON.stringify(uri)}: ${parsed.reason}`);
  if (parsed.id.trustDomain !== trustDomain) {
    return refuse("foreign_trust_domain", `${uri} is not in trust domain ${trustDomain}`);
  }

  if (leaf.basic?.cA) return refuse("leaf_is_ca", `${uri} is a CA certificate`);
  if (leaf.usages && (leaf.usages.toNumber() & SIGNING_USAGES) !== 0) {
    return refuse("leaf_can_sign_certificates", `${uri} has keyCertSign or cRLSign`);
  }
  const wanted = EKU_OID[role];
  if (!leaf.eku || !leaf.eku.includes(wanted)) {
    return refuse("missing_eku", `${uri} lacks EKU ${role === "client" ? "clientAuth" : "serverAuth"}`);
  }
  return { ok: true, id: uri, spiffe: parsed.id, notAfter: leaf.notAfter };
}

/** What the checks read from a leaf. */
interface Leaf {
  notAfter: Date;
  san?: SubjectAlternativeName;
  basic?: BasicConstraints;
  usages?: KeyUsage;
  eku?: ExtendedKeyUsage;
}

/**
 * Decodes the leaf and the four extensions the checks read; throws on anything that does not
 * parse. A certificate with the same extension twice is refused too (RFC 5280 4.2 forbids it):
 * which copy counts would be ambiguous.
 */
function parseLeaf(der: Buffer): Leaf {
  const cert = AsnConvert.parse(der, Certificate);
  const byOid = new Map<string, Extension>();
  for (const ext of cert.tbsCertificate.extensions ?? []) {
    if (byOid.has(ext.extnID)) throw new Error(`extension ${ext.extnID} appears twice`);
    byOid.set(ext.extnID, ext);
  }
  const extension = <T>(oid: string, type: new () => T): T | undefined => {
    const ext = byOid.get(oid);
    return ext === undefined ? undefined : AsnConvert.parse(ext.extnValue.buffer, type);
  };
  return {
    notAfter: cert.tbsCertificate.validity.notAfter.getTime(),
    san: extension(id_ce_subjectAltName, SubjectAlternativeName),
    basic: extension(id_ce_basicConstraints, BasicConstraints),
    usages: extension(id_ce_keyUsage, KeyUsage),
    eku: extension(id_ce_extKeyUsage, ExtendedKeyUsage),
  };
}
