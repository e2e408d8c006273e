// Real test certificates, minted with a maintained X.509 library (@peculiar/x509 on Node's
// WebCrypto). Every knob a bad-input test needs is here: CA flag, key usages, EKUs, several or
// no URI SANs, DNS SANs, validity window, a different CA.
import "reflect-metadata";
import { webcrypto, createPrivateKey, randomBytes } from "node:crypto";
import * as x509 from "@peculiar/x509";

x509.cryptoProvider.set(webcrypto as unknown as webcrypto.Crypto);

const ALG = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;

export interface KeyPair {
  keys: webcrypto.CryptoKeyPair;
  /** PKCS#8 PEM, as Node's tls expects. */
  keyPem: string;
}

export interface Issued extends KeyPair {
  cert: x509.X509Certificate;
  certPem: string;
}

export interface CertOptions {
  commonName?: string;
  uris?: string[];
  dnsNames?: string[];
  isCA?: boolean;
  pathLength?: number;
  /** Default for a leaf: digitalSignature; for a CA: keyCertSign + cRLSign. */
  keyUsages?: number;
  /** Default for a leaf: serverAuth + clientAuth; none for a CA. Pass [] for no EKU extension. */
  extKeyUsages?: string[];
  notBefore?: Date;
  notAfter?: Date;
  /** Signing CA; self-signed when absent. */
  issuer?: Issued;
  /** Reuse a key instead of generating one. */
  key?: KeyPair;
}

export const KeyUsage = x509.KeyUsageFlags;
export const Eku = x509.ExtendedKeyUsage;

export async function generateKey(): Promise<KeyPair> {
  const keys = (await webcrypto.subtle.generateKey(ALG, true, ["sign", "verify"])) as webcrypto.CryptoKeyPair;
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey("pkcs8", keys.privateKey));
  const keyPem = createPrivateKey({ key: pkcs8, format: "der", type: "pkcs8" })
    .export({ format: "pem", type: "pkcs8" })
    .toString();
  return { keys, keyPem };
}

export async function issue(opts: CertOptions = {}): Promise<Issued> {
  const key = opts.key ?? (await generateKey());
  const now = Date.now();
  const isCA = opts.isCA ?? false;
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(isCA, isCA ? opts.pathLength : undefined, true),
    new x509.KeyUsagesExtension(
      opts.keyUsages ??
        (isCA ? KeyUsage.keyCertSign | KeyUsage.cRLSign : KeyUsage.digitalSignature),
      true,
    ),
    await x509.SubjectKeyIdentifierExtension.create(key.keys.publicKey),
  ];
  const ekus = opts.extKeyUsages ?? (isCA ? [] : [Eku.serverAuth, Eku.clientAuth]);
  if (ekus.length) extensions.push(new x509.ExtendedKeyUsageExtension(ekus));
  const names: x509.JsonGeneralName[] = [
    ...(opts.uris ?? []).map((value) => ({ type: "url" as const, value })),
    ...(opts.dnsNames ?? []).map((value) => ({ type: "dns" as const, value })),
  ];
  if (names.length) extensions.push(new x509.SubjectAlternativeNameExtension(names, false));
  if (opts.issuer) {
    extensions.push(await x509.AuthorityKeyIdentifierExtension.create(opts.issuer.cert));
  }
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: "01" + randomBytes(15).toString("hex"),
    subject: `CN=${opts.commonName ?? (isCA ? "test-ca" : "test-leaf")}`,
    issuer: opts.issuer ? opts.issuer.cert.subject : `CN=${opts.commonName ?? "test-ca"}`,
    notBefore: opts.notBefore ?? new Date(now - 2 * 60_000),
    notAfter: opts.notAfter ?? new Date(now + 24 * 3600_000),
    signingAlgorithm: ALG,
    publicKey: key.keys.publicKey,
    signingKey: opts.issuer ? opts.issuer.keys.privateKey : key.keys.privateKey,
    extensions,
  });
  return { ...key, cert, certPem: cert.toString("pem") + "\n" };
}

/** A mesh PKI: root → intermediate issuer → leaves, like the components build it. */
export interface TestMesh {
  trustDomain: string;
  root: Issued;
  issuer: Issued;
  /** PEM bundle of trusted roots (ca.crt). */
  bundlePem: string;
  leaf(namespace: string, serviceAccount: string, opts?: CertOptions): Promise<Issued & { chainPem: string }>;
}

export async function createTestMesh(trustDomain = "cluster.local", name = "mesh"): Promise<TestMesh> {
  const root = await issue({ isCA: true, commonName: `${name} root` });
  const issuer = await issue({ isCA: true, commonName: `${name} issuer`, issuer: root, pathLength: 0 });
  return {
    trustDomain,
    root,
    issuer,
    bundlePem: root.certPem,
    async leaf(namespace, serviceAccount, opts = {}) {
      const leaf = await issue({
        commonName: `${serviceAccount}.${namespace}`,
        uris: [`spiffe://${trustDomain}/ns/${namespace}/sa/${serviceAccount}`],
        issuer,
        ...opts,
      });
      // tls.crt carries the leaf and the intermediate, as a kubernetes.io/tls Secret would.
      return { ...leaf, chainPem: leaf.certPem + (opts.issuer ? "" : issuer.certPem) };
    },
  };
}
