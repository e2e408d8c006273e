// The proxy's own identity: leaf + chain (tls.crt), key (tls.key) and trust bundle (ca.crt), as a
// kubernetes.io/tls Secret mounts them. Loaded into ONE SecureContext that every inbound accept,
// outbound connect and tunnel session shares: building contexts per connection re-parses keys.
// A reload builds a new context, so new connections get the new leaf and bundle. Sessions are
// never resumed (no usable tickets), so nothing negotiated under an old bundle carries over.
import * as fs from "fs";
import * as path from "path";
import * as tls from "tls";
import { X509Certificate, constants, createHash } from "crypto";
import { FILE_NAMES } from "./wellknown";
import { checkPeerCertificate } from "./verify";

/** ALPN ids: a server accepts both, a client offers the transport it is configured for. */
export const MESH_ALPN = { h2: "mesh-h2", tcp: "mesh-tcp" } as const;

// TLS 1.3 only, AES-128-GCM first (fastest with AES-NI); ECDSA P-256 leaves.
export const TLS_VERSION = "TLSv1.3" as const;
export const TLS_CIPHERS = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";

/** Hybrid post-quantum key exchange (ML-KEM-768 with X25519), in OpenSSL 3.5 and so Node 24. */
export const PQ_GROUP = "X25519MLKEM768";
/**
 * Key exchange groups, most wanted first. On a runtime with ML-KEM: the hybrid first, then
 * X25519. The "*" marks the groups a ClientHello sends a key share for (OpenSSL 3.5 syntax): both,
 * so a peer on an older runtime answers X25519 at once instead of a HelloRetryRequest (one more
 * round trip). Without ML-KEM (Node 20's OpenSSL 3.0): X25519 first. P-256 last either way.
 */
export const TLS_GROUPS = keyExchangeGroups();

export function keyExchangeGroups(openssl = process.versions.openssl): string {
  // Decided by version, not by trying: Node 20 leaves the failed attempt's error on OpenSSL's
  // error queue, and the next unrelated key operation then fails with "passed invalid argument".
  const [major, minor] = openssl.split(".").map((n) => parseInt(n, 10));
  return major > 3 || (major === 3 && minor >= 5) ? `*${PQ_GROUP}:*X25519:P-256` : "X25519:P-256";
}

export interface Identity {
  spiffeId: string;
  notAfter: Date;
  context: tls.SecureContext;
  /** Changes whenever any of the three files changes; pools key on it. */
  fingerprint: string;
}

export class IdentityError extends Error {}

export interface IdentityFiles {
  cert: string;
  key: string;
  bundle: string;
}

export function identityFiles(dir: string): IdentityFiles {
  return {
    cert: path.join(dir, FILE_NAMES.cert),
    key: path.join(dir, FILE_NAMES.key),
    bundle: path.join(dir, FILE_NAMES.trustBundle),
  };
}

/** Reads the three files; throws IdentityError naming the file when one is missing. */
export function readIdentityFiles(dir: string): IdentityFiles {
  const files = identityFiles(dir);
  const read = (file: string) => {
    try {
      return fs.readFileSync(file, "utf8");
    } catch (error) {
      throw new IdentityError(`cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
  };
  return { cert: read(files.cert), key: read(files.key), bundle: read(files.bundle) };
}

/**
 * Builds the identity from PEM text. Refuses (IdentityError) a leaf that is not a valid SVID of
 * `trustDomain`, whose ID is not `expectedId`, that is expired, or whose key does not match.
 */
export function buildIdentity(pem: IdentityFiles, trustDomain: string, expectedId: string): Identity {
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(pem.cert);
  } catch (error) {
    throw new IdentityError(`${FILE_NAMES.cert} is not a PEM certificate: ${(error as Error).message}`);
  }
  // Our leaf must pass the checks peers will apply to it, in both roles.
  for (const role of ["server", "client"] as const) {
    const check = checkPeerCertificate(leaf.raw, role, trustDomain);
    if (!check.ok) throw new IdentityError(`${FILE_NAMES.cert}: ${check.reason}: ${check.detail}`);
    if (check.id !== expectedId) {
      throw new IdentityError(`${FILE_NAMES.cert} is for ${check.id}, but this workload is ${expectedId}`);
    }
  }
  const notAfter = new Date(leaf.validTo);
  if (notAfter.getTime() <= Date.now()) throw new IdentityError(`${FILE_NAMES.cert} expired at ${notAfter.toISOString()}`);
  if (!/-----BEGIN CERTIFICATE-----/.test(pem.bundle)) throw new IdentityError(`${FILE_NAMES.trustBundle} holds no PEM certificate`);

  let context: tls.SecureContext;
  try {
    context = tls.createSecureContext({
      cert: pem.cert,
      key: pem.key,
      ca: pem.bundle,
      minVersion: TLS_VERSION,
      maxVersion: TLS_VERSION,
      ciphers: TLS_CIPHERS,
      ecdhCurve: TLS_GROUPS,
      honorCipherOrder: true,
      // No resumption: nothing negotiated under an old bundle may be resumed (CVE-2022-21654
      // class), and the pooled transport makes it moot. (With stateless tickets on, a resumption
      // attempt hit a Node crash, now also guarded in handshake.ts.) In TLS 1.3 this option only
      // makes OpenSSL's tickets stateful: they name a session in a cache we never keep, so none
      // can be used. Not sending them at all takes OpenSSL's NumTickets = 0, which Node does not
      // expose: proxy/openssl.cnf, loaded by the image's ENTRYPOINT.
      secureOptions: constants.SSL_OP_NO_TICKET,
    });
  } catch (error) {
    throw new IdentityError(`cannot use ${FILE_NAMES.cert}/${FILE_NAMES.key}/${FILE_NAMES.trustBundle}: ${(error as Error).message}`);
  }
  const fingerprint = createHash("sha256").update(pem.cert).update("\0").update(pem.key).update("\0").update(pem.bundle).digest("hex");
  return { spiffeId: expectedId, notAfter, context, fingerprint };
}
