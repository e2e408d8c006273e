// SPIFFE IDs (spiffe.io X509-SVID / SPIFFE-ID standard), parsed strictly and without regex tricks
// that a crafted ID could slip through. Used by the components (to mint identities) and the proxy
// (to verify peers), so both sides agree on what a valid ID is.

export const MAX_SPIFFE_ID_BYTES = 2048;

const TRUST_DOMAIN_CHARS = /^[a-z0-9._-]+$/;
const PATH_SEGMENT_CHARS = /^[A-Za-z0-9._-]+$/;

export interface SpiffeId {
  trustDomain: string;
  /** Path segments, e.g. ["ns", "shop", "sa", "api"]. */
  segments: string[];
  /** For Kubernetes-shaped IDs (/ns/<ns>/sa/<sa>), the namespace and service account. */
  namespace?: string;
  serviceAccount?: string;
}

export type SpiffeParse = { ok: true; id: SpiffeId } | { ok: false; reason: string };

/** Why a trust domain name is invalid, or undefined when it is valid. */
export function trustDomainProblem(trustDomain: string): string | undefined {
  if (trustDomain.length === 0) return "is empty";
  if (trustDomain.length > 255) return "is longer than 255 characters";
  if (!TRUST_DOMAIN_CHARS.test(trustDomain)) {
    return "may contain only lowercase letters, digits, '.', '-' and '_'";
  }
  return undefined;
}

/** Parses a SPIFFE ID; never throws. Rejects anything the standard forbids. */
export function parseSpiffeId(text: string): SpiffeParse {
  const fail = (reason: string): SpiffeParse => ({ ok: false, reason });
  if (Buffer.byteLength(text, "utf8") > MAX_SPIFFE_ID_BYTES) return fail("longer than 2048 bytes");
  if (!text.startsWith("spiffe://")) return fail("scheme is not spiffe://");
  const rest = text.slice("spiffe://".length);
  const slash = rest.indexOf("/");
  const authority = slash === -1 ? rest : rest.slice(0, slash);
  const path = slash === -1 ? "" : rest.slice(slash);
  if (authority.includes("@")) return fail("has user info");
  if (authority.includes(":")) return fail("has a port");
  const tdProblem = trustDomainProblem(authority);
  if (tdProblem) return fail(`trust domain ${tdProblem}`);
  if (path === "") return fail("has no path");
  if (path === "/" || path.endsWith("/")) return fail("has a trailing '/'");
  const segments = path.slice(1).split("/");
  for (const segment of segments) {
    if (segment === "") return fail("has an empty path segment ('//')");
    if (segment === "." || segment === "..") return fail("has a '.' or '..' path segment");
    if (!PATH_SEGMENT_CHARS.test(segment)) {
      return fail("path may contain only letters, digits, '.', '-' and '_' (no %, ?, # or control bytes)");
    }
  }
  const id: SpiffeId = { trustDomain: authority, segments };
  if (segments.length === 4 && segments[0] === "ns" && segments[2] === "sa") {
    id.namespace = segments[1];
    id.serviceAccount = segments[3];
  }
  return { ok: true, id };
}

/** The Kubernetes workload ID: spiffe://<trustDomain>/ns/<namespace>/sa/<serviceAccount>. */
export function spiffeId(trustDomain: string, namespace: string, serviceAccount: string): string {
  const text = `spiffe://${trustDomain}/ns/${namespace}/sa/${serviceAccount}`;
  const parsed = parseSpiffeId(text);
  if (!parsed.ok) throw new Error(`invalid SPIFFE ID ${JSON.stringify(text)}: ${parsed.reason}`);
  return text;
}
