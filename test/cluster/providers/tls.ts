// A stand-in `pulumi-resource-tls` plugin for the real engine: @pulumi/tls's provider is a Go
// module the Go proxy cannot build here, so this serves the four resource types the components use
// over the ordinary provider gRPC protocol (`@pulumi/pulumi/provider` main), minting with the same
// code as the component tests' engine stand-in (test/support/tls-provider.ts, `mint`).
//
// What it copies from the real (bridged terraform-provider-tls) provider:
//  - version 5.6.1, the npm @pulumi/tls the SDK asks the engine for;
//  - every input is ForceNew: any input change is a replace, create-before-delete;
//  - outputs are the inputs plus the computed outputs, private keys (sensitive in the schema)
//    returned as secrets, and an input that came in secret stays secret in the outputs;
//  - ids: a key's and a CSR's are the SHA-1 of their public key / CSR PEM, a certificate's its
//    serial number in decimal.
// Not copied: refresh (Read returns the state as it is; `readyForRenewal` never flips), import,
// the RSA/ED25519 corner cases the stand-in minter leaves out.
//
// The engine starts it through a wrapper that engineStack({ standIns: true }) writes to its temp
// dir (../engine.ts); it prints its port on stdout and nothing else.
import { createHash, X509Certificate } from "node:crypto";
import * as provider from "@pulumi/pulumi/provider";
import { isMintedType, mint } from "../../support/tls-provider";

export const TLS_STAND_IN_VERSION = "5.6.1";

/** Wire markers of the provider protocol (sdk/go/common/resource/plugin/rpc.go). */
const SIG_KEY = "4dabf18193072939515e22adb298388d";
const SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270";
const OUTPUT_SIG = "d0e6a833031e9bbcd3f4e8bde6ca49a4";
const UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";

type Props = Record<string, any>;

/** Computed (output-only) properties per type: everything else in the outputs is an input. */
const COMPUTED: Record<string, string[]> = {
  "tls:index/privateKey:PrivateKey": ["privateKeyPem", "privateKeyPemPkcs8", "privateKeyOpenssh", "publicKeyPem", "publicKeyOpenssh", "publicKeyFingerprintMd5", "publicKeyFingerprintSha256"],
  "tls:index/certRequest:CertRequest": ["certRequestPem", "keyAlgorithm"],
  "tls:index/selfSignedCert:SelfSignedCert": ["certPem", "keyAlgorithm", "validityStartTime", "validityEndTime", "readyForRenewal"],
  "tls:index/locallySignedCert:LocallySignedCert": ["certPem", "caKeyAlgorithm", "validityStartTime", "validityEndTime", "readyForRenewal"],
};

/** Schema defaults the bridge's Check fills in (and the minter assumes), so outputs echo inputs. */
const CERT_DEFAULTS = { earlyRenewalHours: 0, isCaCertificate: false, setSubjectKeyId: false };
const DEFAULTS: Record<string, Props> = {
  "tls:index/privateKey:PrivateKey": { ecdsaCurve: "P224", rsaBits: 2048 },
  "tls:index/certRequest:CertRequest": {},
  "tls:index/selfSignedCert:SelfSignedCert": CERT_DEFAULTS,
  "tls:index/locallySignedCert:LocallySignedCert": CERT_DEFAULTS,
};

/** Sensitive in the provider's schema: always returned as secrets. */
const SENSITIVE = new Set(["privateKeyPem", "privateKeyPemPkcs8", "privateKeyOpenssh", "caPrivateKeyPem"]);

const typeOf = (urn: string): string => urn.split("::")[2]?.split("$").pop() ?? "";

function checkType(urn: string): string {
  const type = typeOf(urn);
  if (!isMintedType(type)) throw new Error(`the tls stand-in does not implement ${type} (${urn})`);
  return type;
}

const isWrapped = (v: any, sig: string): boolean => v !== null && typeof v === "object" && !Array.isArray(v) && v[SIG_KEY] === sig;

/** The plain value, and whether a secret was anywhere inside it. */
function unwrap(v: any): { value: any; secret: boolean } {
  if (isWrapped(v, SECRET_SIG)) return { value: unwrap(v.value).value, secret: true };
  if (isWrapped(v, OUTPUT_SIG)) {
    const inner = unwrap(v.value);
    return { value: inner.value, secret: inner.secret || v.secret === true };
  }
  if (Array.isArray(v)) {
    const items = v.map(unwrap);
    return { value: items.map((i) => i.value), secret: items.some((i) => i.secret) };
  }
  if (v !== null && typeof v === "object") {
    let secret = false;
    const out: Props = {};
    for (const [k, x] of Object.entries(v)) {
      const u = unwrap(x);
      out[k] = u.value;
      secret ||= u.secret;
    }
    return { value: out, secret };
  }
  return { value: v, secret: false };
}

const secret = (value: any) => ({ [SIG_KEY]: SECRET_SIG, value });

function hasUnknown(v: any): boolean {
  if (v === UNKNOWN) return true;
  if (Array.isArray(v)) return v.some(hasUnknown);
  if (v !== null && typeof v === "object") return Object.values(v).some(hasUnknown);
  return false;
}

function equal(a: any, b: any): boolean {
  if (a === b) return true;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => equal(x, b[i]));
  if (a && b && typeof a === "object" && typeof b === "object" && !Array.isArray(a) && !Array.isArray(b)) {
    const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
    return [...keys].every((k) => equal(a[k], b[k]));
  }
  return false;
}

function idOf(type: string, outs: Props): string {
  if (type === "tls:index/privateKey:PrivateKey") return createHash("sha1").update(outs.publicKeyPem).digest("hex");
  if (type === "tls:index/certRequest:CertRequest") return createHash("sha1").update(outs.certRequestPem).digest("hex");
  return BigInt("0x" + new X509Certificate(outs.certPem).serialNumber).toString(10);
}

/** Mints the outputs of `inputs` (wire form) and returns them in wire form, secrets marked. */
async function mintOutputs(type: string, inputs: Props): Promise<Props> {
  const plain: Props = {};
  const secretKeys = new Set<string>();
  for (const [k, v] of Object.entries(inputs)) {
    const u = unwrap(v);
    plain[k] = u.value;
    if (u.secret) secretKeys.add(k);
  }
  const outs = await mint(type, plain);
  const wire: Props = {};
  for (const [k, v] of Object.entries(outs)) wire[k] = secretKeys.has(k) || SENSITIVE.has(k) ? secret(v) : v;
  return wire;
}

export const tlsStandIn: provider.Provider = {
  version: TLS_STAND_IN_VERSION,

  async check(urn, _olds, news) {
    const type = checkType(urn);
    return { inputs: { ...DEFAULTS[type], ...news } };
  },

  async diff(_id, urn, olds, news) {
    const type = checkType(urn);
    const computed = new Set(COMPUTED[type]);
    const keys = new Set([...Object.keys(olds ?? {}), ...Object.keys(news ?? {})].filter((k) => !computed.has(k)));
    const replaces: string[] = [];
    for (const k of [...keys].sort()) {
      const n = news?.[k];
      if (hasUnknown(n) || !equal(unwrap(olds?.[k]).value, unwrap(n).value)) replaces.push(k);
    }
    // Every input is ForceNew in the real provider, so any change replaces (create-before-delete).
    return replaces.length ? { changes: true, replaces, deleteBeforeReplace: false } : { changes: false };
  },

  async create(urn, inputs) {
    const type = checkType(urn);
    const outs = await mintOutputs(type, inputs);
    return { id: idOf(type, unwrap(outs).value), outs };
  },

  async read(id, _urn, props) {
    // Nothing lives outside the state: what was minted is what there is.
    return { id, props };
  },

  async update(_id, urn, _olds, news) {
    // Unreachable while every input replaces; mint afresh rather than pretend.
    return { outs: await mintOutputs(checkType(urn), news) };
  },

  async delete() {
    // Nothing to tear down: keys and certificates exist only in the state.
  },
};

if (require.main === module) {
  provider.main(tlsStandIn, process.argv.slice(2)).catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
