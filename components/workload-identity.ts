// WorkloadIdentity: one X.509-SVID per (namespace, service account), stored where the pod mounts
// it. Key → CSR (only URI SAN: the SPIFFE ID) → leaf signed by the mesh issuer → a
// kubernetes.io/tls Secret with ca.crt.
import * as pulumi from "@pulumi/pulumi";
import * as tls from "@pulumi/tls";
import * as k8s from "@pulumi/kubernetes";
import { spiffeId as makeSpiffeId } from "../proxy/spiffe";
import { FILE_NAMES, LABELS } from "../proxy/wellknown";
import type { CertificateAuthority } from "./ca";
import { DEFAULTS, KEY_ALGORITHM, LEAF_ALLOWED_USES, certificateChain, nextRenewalAt, renewalGeneration } from "./identity";
import {
  MeshInputError,
  checkDns1123Label,
  checkDns1123Subdomain,
  checkPositiveHours,
  checkTrustDomain,
  componentLabel,
} from "./validate";

export interface WorkloadIdentityArgs {
  ca: CertificateAuthority;
  trustDomain: string;
  namespace: string;
  serviceAccount: string;
  /** Extra DNS SANs (not used for identity; for clients outside the mesh). */
  dnsNames?: string[];
  /** Leaf lifetime; default 30 days. */
  validityHours?: number;
  /** Renew this long before expiry; default 10 days. */
  renewBeforeHours?: number;
  /** The Secret's name; default "mesh-identity-<serviceAccount>". Kept stable across renewals. */
  secretName?: string;
  /** Trust bundle for ca.crt; default the CA's bundle. */
  trustBundlePem?: pulumi.Input<string>;
  /** Clock for the renewal schedule, ms since epoch. Tests pin it; programs leave it. */
  now?: number;
  /**
   * Provider of the Secret. It should set `enableSecretMutable`, or each renewal deletes the
   * Secret before it recreates it (Mesh passes its configProvider). Default: the inherited one.
   */
  secretProvider?: k8s.Provider;
}

/** The Secret name MeshedWorkload uses for a service account's identity. */
export const identitySecretName = (serviceAccount: string) => `mesh-identity-${serviceAccount}`;

export class WorkloadIdentity extends pulumi.ComponentResource {
  readonly spiffeId: string;
  readonly secretName: string;
  readonly certPem: pulumi.Output<string>;
  /** RFC 3339 expiry of the current leaf. */
  readonly notAfter: pulumi.Output<string>;
  /** When the next `pulumi up` will renew the leaf at the latest (the schedule's next boundary). */
  readonly renewsAt: string;
  readonly secret: k8s.core.v1.Secret;

  constructor(name: string, args: WorkloadIdentityArgs, opts?: pulumi.ComponentResourceOptions) {
    super("mtls-mesh:index:WorkloadIdentity", name, {}, opts);
    const label = componentLabel("WorkloadIdentity", name);
    const trustDomain = checkTrustDomain(label, "trustDomain", args.trustDomain);
    const namespace = checkDns1123Label(label, "namespace", args.namespace);
    const serviceAccount = checkDns1123Label(label, "serviceAccount", args.serviceAccount);
    const validityHours = checkPositiveHours(label, "validityHours", args.validityHours ?? DEFAULTS.leafValidityHours);
    const renewBeforeHours = checkPositiveHours(label, "renewBeforeHours", args.renewBeforeHours ?? DEFAULTS.leafRenewBeforeHours);
    if (renewBeforeHours >= validityHours) {
      throw new MeshInputError(label, "renewBeforeHours", `is ${renewBeforeHours}, not less than validityHours (${validityHours})`, "renew before the certificate expires: make it smaller than validityHours");
    }
    if (validityHours > args.ca.maxLeafValidityHours) {
      throw new MeshInputError(label, "validityHours", `is ${validityHours}, longer than the issuer's renewal window (${args.ca.maxLeafValidityHours} h), so a leaf could outlive its issuer`, `use at most ${args.ca.maxLeafValidityHours}`);
    }
    // A Secret name is a DNS subdomain (253 characters), so any service account name fits.
    const secretName = checkDns1123Subdomain(label, "secretName", args.secretName ?? identitySecretName(serviceAccount));
    for (const [i, dns] of (args.dnsNames ?? []).entries()) {
      if (!/^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/.test(dns)) {
        throw new MeshInputError(label, `dnsNames[${i}]`, `is ${JSON.stringify(dns)}, not a DNS name`, "use lowercase DNS names such as \"api.shop.svc\"");
      }
    }

    this.spiffeId = makeSpiffeId(trustDomain, namespace, serviceAccount);
    this.secretName = secretName;
    const schedule = { validityHours, renewBeforeHours };
    const now = args.now ?? Date.now();
    this.renewsAt = nextRenewalAt(now, schedule, this.spiffeId);
    // A new generation replaces key, CSR and leaf together (fresh key on every renewal).
    const certOpts: pulumi.CustomResourceOptions = {
      parent: this,
      replacementTrigger: String(renewalGeneration(now, schedule, this.spiffeId)),
    };

    const key = new tls.PrivateKey(`${name}-key`, { ...KEY_ALGORITHM }, certOpts);
    const csr = new tls.CertRequest(
      `${name}-csr`,
      {
        privateKeyPem: key.privateKeyPem,
        // SPIFFE identity lives in the URI SAN alone; the subject is informational.
        subject: { organization: trustDomain, commonName: serviceAccount },
        uris: [this.spiffeId],
        dnsNames: args.dnsNames ? [...args.dnsNames].sort() : undefined,
      },
      certOpts,
    );
    const leaf = new tls.LocallySignedCert(
      `${name}-cert`,
      {
        certRequestPem: csr.certRequestPem,
        caCertPem: args.ca.issuerCertPem,
        caPrivateKeyPem: args.ca.issuerKeyPem,
        isCaCertificate: false,
        allowedUses: [...LEAF_ALLOWED_USES],
        validityPeriodHours: validityHours,
        // Belt and braces: `pulumi refresh` also marks the leaf for renewal in the window.
        earlyRenewalHours: renewBeforeHours,
        setSubjectKeyId: true,
      },
      certOpts,
    );

    // Stable name: a renewal updates the Secret's data in place, so there is never a moment
    // without an identity Secret (no delete-before-replace gap). kubelet refreshes the mounted
    // files and the proxy hot-reloads them.
    this.secret = new k8s.core.v1.Secret(
      `${name}-secret`,
      {
        metadata: {
          name: secretName,
          namespace,
          labels: { [LABELS.managedBy]: "pulumi-mtls-mesh" },
          annotations: { "mtls-mesh.io/spiffe-id": this.spiffeId },
        },
        type: "kubernetes.io/tls",
        stringData: {
          [FILE_NAMES.cert]: pulumi.all([leaf.certPem, args.ca.chainPems]).apply(([pem, chain]) => certificateChain(pem, chain)),
          [FILE_NAMES.key]: pulumi.secret(key.privateKeyPemPkcs8),
          [FILE_NAMES.trustBundle]: args.trustBundlePem ?? args.ca.trustBundlePem,
        },
      },
      { parent: this, provider: args.secretProvider },
    );

    this.certPem = leaf.certPem;
    this.notAfter = leaf.validityEndTime;
    this.registerOutputs({ spiffeId: this.spiffeId, secretName, certPem: this.certPem, notAfter: this.notAfter });
  }
}
