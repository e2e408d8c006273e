// The engine stand-in for @pulumi/tls (shared by the component tests and the e2e engine): mints real keys, CSRs and certificates exactly as the
// resource inputs say, with the outputs named and shaped as the real provider returns them
// (terraform-provider-tls semantics: PEM formats, CSR subject and SANs copied into the leaf,
// allowed_uses → key usage / extended key usage, validity from now, CA flag and path length).
// Built on @peculiar/x509 over Node's WebCrypto.
import "reflect-metadata";
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, KeyObject, randomBytes, webcrypto } from "node:crypto";
import * as x509 from "@peculiar/x509";

x509.cryptoProvider.set(webcrypto as unknown as webcrypto.Crypto);

export class StandInError extends Error {}

const CURVES: Record<string, { node: string; web: string; hash: string }> = {
  P256: { node: "prime256v1", web: "P-256", hash: "SHA-256" },
  P384: { node: "secp384r1", web: "P-384", hash: "SHA-384" },
  P521: { node: "secp521r1", web: "P-521", hash: "SHA-512" },
};

// allowed_uses vocabulary of the provider (snake_case), mapped to X.509.
const KEY_USAGES: Record<string, number> = {
  digital_signature: x509.KeyUsageFlags.digitalSignature,
  content_commitment: x509.KeyUsageFlags.nonRepudiation,
  key_encipherment: x509.KeyUsageFlags.keyEncipherment,
  data_encipherment: x509.KeyUsageFlags.dataEncipherment,
  key_agreement: x509.KeyUsageFlags.keyAgreement,
  cert_signing: x509.KeyUsageFlags.keyCertSign,
  crl_signing: x509.KeyUsageFlags.cRLSign,
  encipher_only: x509.KeyUsageFlags.encipherOnly,
  decipher_only: x509.KeyUsageFlags.decipherOnly,
};
const EXT_KEY_USAGES: Record<string, string> = {
  any_extended: "2.5.29.37.0",
  server_auth: x509.ExtendedKeyUsage.serverAuth,
  client_auth: x509.ExtendedKeyUsage.clientAuth,
  code_signing: x509.ExtendedKeyUsage.codeSigning,
  email_protection: x509.ExtendedKeyUsage.emailProtection,
  ipsec_end_system: "1.3.6.1.5.5.7.3.5",
  ipsec_tunnel: "1.3.6.1.5.5.7.3.6",
  ipsec_user: "1.3.6.1.5.5.7.3.7",
  timestamping: x509.ExtendedKeyUsage.timeStamping,
  ocsp_signing: x509.ExtendedKeyUsage.ocspSigning,
  microsoft_server_gated_crypto: "1.3.6.1.4.1.311.10.3.3",
  netscape_server_gated_crypto: "2.16.840.1.113730.4.1",
};

type Inputs = Record<string, any>;

// ---------- tls:index/privateKey:PrivateKey ----------
export function privateKey(inputs: Inputs): Inputs {
  const algorithm = String(inputs.algorithm ?? "");
  let key: KeyObject;
  let pem: string;
  let ecdsaCurve = inputs.ecdsaCurve ?? "P224";
  const rsaBits = inputs.rsaBits ?? 2048;
  if (algorithm === "ECDSA") {
    const curve = CURVES[ecdsaCurve];
    if (!curve) throw new StandInError(`tls PrivateKey: ecdsaCurve ${ecdsaCurve} is not supported by the e2e stand-in (P256, P384, P521 are)`);
    key = generateKeyPairSync("ec", { namedCurve: curve.node }).privateKey;
    pem = key.export({ format: "pem", type: "sec1" }).toString();
  } else if (algorithm === "RSA") {
    key = generateKeyPairSync("rsa", { modulusLength: rsaBits }).privateKey;
    pem = key.export({ format: "pem", type: "pkcs1" }).toString();
  } else if (algorithm === "ED25519") {
    key = generateKeyPairSync("ed25519").privateKey;
    pem = key.export({ format: "pem", type: "pkcs8" }).toString();
  } else {
    throw new StandInError(`tls PrivateKey: algorithm ${JSON.stringify(algorithm)} is not one of RSA, ECDSA, ED25519`);
  }
  if (algorithm !== "ECDSA") ecdsaCurve = inputs.ecdsaCurve ?? "P224";
  const pub = createPublicKey(key);
  const spki = pub.export({ format: "der", type: "spki" });
  return {
    ...inputs,
    algorithm,
    ecdsaCurve,
    rsaBits,
    privateKeyPem: pem,
    privateKeyPemPkcs8: key.export({ format: "pem", type: "pkcs8" }).toString(),
    publicKeyPem: pub.export({ format: "pem", type: "spki" }).toString(),
    publicKeyFingerprintSha256: "SHA256:" + createHash("sha256").update(spki).digest("base64").replace(/=+$/, ""),
    publicKeyFingerprintMd5: createHash("md5").update(spki).digest("hex").replace(/(..)(?!$)/g, "$1:"),
    publicKeyOpenssh: "",
    privateKeyOpenssh: "",
  };
}

interface SigningKey {
  algorithm: "ECDSA" | "RSA" | "ED25519";
  web: webcrypto.CryptoKey;
  publicKey: webcrypto.CryptoKey;
  signing: { name: string; hash?: string; namedCurve?: string };
}

async function importKey(pem: string, what: string): Promise<SigningKey> {
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch (err) {
    throw new StandInError(`${what}: not a private key PEM (${(err as Error).message})`);
  }
  const pkcs8 = key.export({ format: "der", type: "pkcs8" });
  const spki = createPublicKey(key).export({ format: "der", type: "spki" });
  let alg: any;
  let algorithm: SigningKey["algorithm"];
  if (key.asymmetricKeyType === "ec") {
    const named = key.asymmetricKeyDetails?.namedCurve;
    const curve = Object.values(CURVES).find((c) => c.node === named);
    if (!curve) throw new StandInError(`${what}: curve ${named} is not supported by the e2e stand-in`);
    alg = { name: "ECDSA", namedCurve: curve.web, hash: curve.hash };
    algorithm = "ECDSA";
  } else if (key.asymmetricKeyType === "rsa") {
    alg = { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" };
    algorithm = "RSA";
  } else if (key.asymmetricKeyType === "ed25519") {
    alg = { name: "Ed25519" };
    algorithm = "ED25519";
  } else {
    throw new StandInError(`${what}: key type ${key.asymmetricKeyType} is not supported`);
  }
  const web = await webcrypto.subtle.importKey("pkcs8", pkcs8, alg, true, ["sign"]);
  const publicKey = await webcrypto.subtle.importKey("spki", spki, alg, true, ["verify"]);
  return { algorithm, web, publicKey, signing: alg };
}

// Go's pkix.Name order, which is what the provider emits.
const SUBJECT_FIELDS: [string, string][] = [
  ["country", "C"],
  ["organization", "O"],
  ["organizationalUnit", "OU"],
  ["locality", "L"],
  ["province", "ST"],
  ["streetAddresses", "street"],
  ["postalCode", "postalCode"],
  ["serialNumber", "serialNumber"],
  ["commonName", "CN"],
];

function subjectName(subject: Inputs | undefined): x509.Name {
  const rdns: x509.JsonName = [];
  for (const [field, short] of SUBJECT_FIELDS) {
    const value = subject?.[field];
    if (value === undefined || value === null || value === "") continue;
    const values = Array.isArray(value) ? value.map(String) : [String(value)];
    rdns.push({ [short]: values });
  }
  return new x509.Name(rdns);
}

function sanExtension(inputs: Inputs, critical: boolean): x509.Extension | undefined {
  const names: x509.JsonGeneralName[] = [
    ...((inputs.dnsNames ?? []) as string[]).map((value) => ({ type: "dns" as const, value })),
    ...((inputs.ipAddresses ?? []) as string[]).map((value) => ({ type: "ip" as const, value })),
    ...((inputs.uris ?? []) as string[]).map((value) => ({ type: "url" as const, value })),
  ];
  return names.length ? new x509.SubjectAlternativeNameExtension(names, critical) : undefined;
}

function usageExtensions(allowedUses: string[], what: string): x509.Extension[] {
  let flags = 0;
  const ekus: string[] = [];
  for (const use of allowedUses) {
    if (use in KEY_USAGES) flags |= KEY_USAGES[use];
    else if (use in EXT_KEY_USAGES) ekus.push(EXT_KEY_USAGES[use]);
    else throw new StandInError(`${what}: allowedUses entry ${JSON.stringify(use)} is not a value the tls provider accepts`);
  }
  const out: x509.Extension[] = [];
  if (flags) out.push(new x509.KeyUsagesExtension(flags, true));
  if (ekus.length) out.push(new x509.ExtendedKeyUsageExtension(ekus, false));
  return out;
}

function validity(inputs: Inputs, what: string): { notBefore: Date; notAfter: Date } {
  const hours = inputs.validityPeriodHours;
  if (typeof hours !== "number" || !(hours > 0)) throw new StandInError(`${what}: validityPeriodHours must be a positive number, got ${hours}`);
  // The provider takes "now" with second precision and no backdating.
  const notBefore = new Date(Math.floor(Date.now() / 1000) * 1000);
  return { notBefore, notAfter: new Date(notBefore.getTime() + hours * 3_600_000) };
}

function certOutputs(inputs: Inputs, cert: x509.X509Certificate, keyAlgorithmField: string, keyAlgorithm: string): Inputs {
  return {
    ...inputs,
    certPem: cert.toString("pem") + "\n",
    [keyAlgorithmField]: keyAlgorithm,
    validityStartTime: cert.notBefore.toISOString().replace(/\.\d{3}Z$/, "Z"),
    validityEndTime: cert.notAfter.toISOString().replace(/\.\d{3}Z$/, "Z"),
    readyForRenewal: false,
    earlyRenewalHours: inputs.earlyRenewalHours ?? 0,
    isCaCertificate: inputs.isCaCertificate ?? false,
    setSubjectKeyId: inputs.setSubjectKeyId ?? false,
  };
}

function basicConstraints(inputs: Inputs): x509.Extension {
  const isCa = Boolean(inputs.isCaCertificate);
  const maxPath = typeof inputs.maxPathLength === "number" && inputs.maxPathLength >= 0 ? inputs.maxPathLength : undefined;
  return new x509.BasicConstraintsExtension(isCa, isCa ? maxPath : undefined, true);
}

const serial = () => "01" + randomBytes(15).toString("hex");

// ---------- tls:index/selfSignedCert:SelfSignedCert ----------
export async function selfSignedCert(inputs: Inputs): Promise<Inputs> {
  const what = "tls SelfSignedCert";
  const key = await importKey(inputs.privateKeyPem, what);
  const extensions = [basicConstraints(inputs), ...usageExtensions(inputs.allowedUses ?? [], what)];
  if (inputs.setSubjectKeyId) extensions.push(await x509.SubjectKeyIdentifierExtension.create(key.publicKey));
  if (inputs.setAuthorityKeyId) extensions.push(await x509.AuthorityKeyIdentifierExtension.create(key.publicKey));
  const subject = subjectName(inputs.subject);
  const san = sanExtension(inputs, subject.toString() === "");
  if (san) extensions.push(san);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject,
    issuer: subject,
    ...validity(inputs, what),
    signingAlgorithm: key.signing,
    publicKey: key.publicKey,
    signingKey: key.web,
    extensions,
  });
  return certOutputs(inputs, cert, "keyAlgorithm", key.algorithm);
}

// ---------- tls:index/certRequest:CertRequest ----------
export async function certRequest(inputs: Inputs): Promise<Inputs> {
  const what = "tls CertRequest";
  const key = await importKey(inputs.privateKeyPem, what);
  const subject = subjectName(inputs.subject);
  const san = sanExtension(inputs, false);
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: subject,
    keys: { privateKey: key.web, publicKey: key.publicKey },
    signingAlgorithm: key.signing,
    extensions: san ? [san] : [],
  });
  return { ...inputs, certRequestPem: csr.toString("pem") + "\n", keyAlgorithm: key.algorithm };
}

// ---------- tls:index/locallySignedCert:LocallySignedCert ----------
export async function locallySignedCert(inputs: Inputs): Promise<Inputs> {
  const what = "tls LocallySignedCert";
  let csr: x509.Pkcs10CertificateRequest;
  let caCert: x509.X509Certificate;
  try {
    csr = new x509.Pkcs10CertificateRequest(inputs.certRequestPem);
    caCert = new x509.X509Certificate(inputs.caCertPem);
  } catch (err) {
    throw new StandInError(`${what}: certRequestPem/caCertPem unreadable (${(err as Error).message})`);
  }
  if (!(await csr.verify())) throw new StandInError(`${what}: the CSR's signature does not verify`);
  const caKey = await importKey(inputs.caPrivateKeyPem, what);
  const caPublic = Buffer.from(await webcrypto.subtle.exportKey("spki", caKey.publicKey));
  if (!caPublic.equals(Buffer.from(caCert.publicKey.rawData))) {
    throw new StandInError(`${what}: caPrivateKeyPem does not belong to caCertPem`);
  }
  const publicKey = await csr.publicKey.export();
  const extensions = [basicConstraints(inputs), ...usageExtensions(inputs.allowedUses ?? [], what)];
  if (inputs.setSubjectKeyId) extensions.push(await x509.SubjectKeyIdentifierExtension.create(publicKey));
  extensions.push(await x509.AuthorityKeyIdentifierExtension.create(caCert));
  // The leaf takes its subject and SANs from the CSR, as the provider does.
  const csrSan = csr.extensions.find((e): e is x509.SubjectAlternativeNameExtension => e instanceof x509.SubjectAlternativeNameExtension);
  if (csrSan) extensions.push(new x509.SubjectAlternativeNameExtension(csrSan.names.toJSON(), csr.subject === ""));
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: csr.subject,
    issuer: caCert.subject,
    ...validity(inputs, what),
    signingAlgorithm: caKey.signing,
    publicKey,
    signingKey: caKey.web,
    extensions,
  });
  return certOutputs(inputs, cert, "caKeyAlgorithm", caKey.algorithm);
}

/** The @pulumi/tls resource types this stand-in mints, by type token. */
const MINTERS: Record<string, (inputs: Inputs) => Inputs | Promise<Inputs>> = {
  "tls:index/privateKey:PrivateKey": privateKey,
  "tls:index/selfSignedCert:SelfSignedCert": selfSignedCert,
  "tls:index/certRequest:CertRequest": certRequest,
  "tls:index/locallySignedCert:LocallySignedCert": locallySignedCert,
};

export function isMintedType(type: string): boolean {
  return type in MINTERS;
}

/** The outputs the provider would return for a new resource of this type. */
export async function mint(type: string, inputs: Inputs): Promise<Inputs> {
  const minter = MINTERS[type];
  if (!minter) throw new StandInError(`${type} is not a @pulumi/tls resource the stand-in mints`);
  return minter(inputs);
}
