// CertificateAuthority: the mesh's trust anchor (self-signed root) and, by default, an
// intermediate issuer that signs workload leaves (Linkerd's "trust anchor + issuer" model).
import * as pulumi from "@pulumi/pulumi";
import * as tls from "@pulumi/tls";
import { CA_ALLOWED_USES, DEFAULTS, KEY_ALGORITHM, renewalGeneration, trustBundle } from "./identity";
import { MeshInputError, checkPositiveHours, componentLabel } from "./validate";

export interface CertificateAuthorityArgs {
  /** Subject common name of the root; default "<name> root". */
  commonName?: string;
  /** Organization in the subjects; default "pulumi-mtls-mesh". */
  organization?: string;
  /** Sign leaves with an intermediate (default true) rather than with the root itself. */
  intermediate?: boolean;
  /** Root lifetime; default 10 years. The root is never renewed automatically (rotate by hand). */
  rootValidityHours?: number;
  /** Intermediate lifetime; default 1 year. */
  issuerValidityHours?: number;
  /** Renew the intermediate this long before it expires; default 90 days. */
  issuerRenewBeforeHours?: number;
  /**
   * Extra roots to trust besides this CA's own root (PEM), e.g. the next root during a rotation,
   * or the previous one after it. They go into every workload's ca.crt.
   */
  additionalTrustedRoots?: pulumi.Input<string>[];
  /** Pulumi `protect` on the root key and certificate: `pulumi destroy`/replacement refuses. */
  protect?: boolean;
  /** Clock for the renewal schedule, ms since epoch. Tests pin it; programs leave it. */
  now?: number;
  /**
   * Use a CA that another program (stack) owns instead of creating one, e.g. from a
   * StackReference. Nothing is created; the key stays a secret.
   */
  existing?: ExistingCertificateAuthority;
}

export interface ExistingCertificateAuthority {
  rootCertPem: pulumi.Input<string>;
  issuerCertPem: pulumi.Input<string>;
  issuerKeyPem: pulumi.Input<string>;
  /** Certificates between the issuer and the root, issuer first; default [issuerCertPem] when it is not the root. */
  chainPems?: pulumi.Input<string[]>;
  /** The owner's issuer renewal window (hours); leaves must live shorter. Default 90 days. */
  maxLeafValidityHours?: number;
}

export class CertificateAuthority extends pulumi.ComponentResource {
  /** Every trusted root (this CA's root first, then additionalTrustedRoots), PEM. */
  readonly trustBundlePem: pulumi.Output<string>;
  /** The certificate that signs leaves (the intermediate, or the root when intermediate: false). */
  readonly issuerCertPem: pulumi.Output<string>;
  /** Its private key: a Pulumi secret. */
  readonly issuerKeyPem: pulumi.Output<string>;
  readonly rootCertPem: pulumi.Output<string>;
  /** Certificates a leaf must ship after itself in tls.crt (the intermediate, or none). */
  readonly chainPems: pulumi.Output<string[]>;
  /** Leaves must not live longer than this, or they could outlive their issuer. */
  readonly maxLeafValidityHours: number;

  constructor(name: string, args: CertificateAuthorityArgs = {}, opts?: pulumi.ComponentResourceOptions) {
    super("mtls-mesh:index:CertificateAuthority", name, {}, opts);
    const label = componentLabel("CertificateAuthority", name);
    if (args.existing) {
      const e = args.existing;
      this.rootCertPem = pulumi.output(e.rootCertPem);
      this.issuerCertPem = pulumi.output(e.issuerCertPem);
      this.issuerKeyPem = pulumi.secret(e.issuerKeyPem);
      this.chainPems = e.chainPems
        ? pulumi.output(e.chainPems)
        : pulumi.all([e.rootCertPem, e.issuerCertPem]).apply(([root, issuer]) => (root.trim() === issuer.trim() ? [] : [issuer]));
      this.maxLeafValidityHours = checkPositiveHours(label, "existing.maxLeafValidityHours", e.maxLeafValidityHours ?? DEFAULTS.issuerRenewBeforeHours);
      this.trustBundlePem = pulumi
        .all([this.rootCertPem, pulumi.all(args.additionalTrustedRoots ?? [])])
        .apply(([own, extra]) => trustBundle([own, ...extra]));
      this.registerOutputs({ trustBundlePem: this.trustBundlePem, rootCertPem: this.rootCertPem, issuerKeyPem: this.issuerKeyPem });
      return;
    }
    const rootValidityHours = checkPositiveHours(label, "rootValidityHours", args.rootValidityHours ?? DEFAULTS.rootValidityHours);
    const issuerValidityHours = checkPositiveHours(label, "issuerValidityHours", args.issuerValidityHours ?? DEFAULTS.issuerValidityHours);
    const issuerRenewBeforeHours = checkPositiveHours(label, "issuerRenewBeforeHours", args.issuerRenewBeforeHours ?? DEFAULTS.issuerRenewBeforeHours);
    const schedule = { validityHours: issuerValidityHours, renewBeforeHours: issuerRenewBeforeHours };
    if (issuerRenewBeforeHours >= issuerValidityHours) {
      throw new MeshInputError(label, "issuerRenewBeforeHours", `is ${issuerRenewBeforeHours}, not less than issuerValidityHours (${issuerValidityHours})`, "renew before the issuer expires: make it smaller than issuerValidityHours");
    }
    const organization = args.organization ?? "pulumi-mtls-mesh";
    const intermediate = args.intermediate ?? true;

    // The root is never replaced by an edit: changing its settings would re-sign every leaf in
    // one `pulumi up` while running pods trust only the old root. Rotation adds a second
    // CertificateAuthority and overlaps the bundles instead (components/README.md).
    const rootOpts: pulumi.CustomResourceOptions = {
      parent: this,
      protect: args.protect,
      ignoreChanges: ["algorithm", "ecdsaCurve", "subject", "validityPeriodHours", "allowedUses"],
    };
    const rootKey = new tls.PrivateKey(`${name}-root-key`, { ...KEY_ALGORITHM }, rootOpts);
    const root = new tls.SelfSignedCert(
      `${name}-root`,
      {
        privateKeyPem: rootKey.privateKeyPem,
        subject: { commonName: args.commonName ?? `${name} root`, organization },
        isCaCertificate: true,
        allowedUses: [...CA_ALLOWED_USES],
        validityPeriodHours: rootValidityHours,
        setSubjectKeyId: true,
      },
      rootOpts,
    );

    let issuerCertPem: pulumi.Output<string> = root.certPem;
    let issuerKeyPem: pulumi.Output<string> = rootKey.privateKeyPem;
    let chainPems: pulumi.Output<string[]> = pulumi.output([]);
    if (intermediate) {
      const generation = String(renewalGeneration(args.now ?? Date.now(), schedule, `${name}-issuer`));
      const issuerOpts = { parent: this, replacementTrigger: generation };
      const issuerKey = new tls.PrivateKey(`${name}-issuer-key`, { ...KEY_ALGORITHM }, issuerOpts);
      const csr = new tls.CertRequest(
        `${name}-issuer-csr`,
        { privateKeyPem: issuerKey.privateKeyPem, subject: { commonName: `${name} issuer`, organization } },
        issuerOpts,
      );
      const issuer = new tls.LocallySignedCert(
        `${name}-issuer`,
        {
          certRequestPem: csr.certRequestPem,
          caCertPem: root.certPem,
          caPrivateKeyPem: rootKey.privateKeyPem,
          isCaCertificate: true,
          // Only leaves below the issuer: it cannot mint further CAs.
          maxPathLength: 0,
          allowedUses: [...CA_ALLOWED_USES],
          validityPeriodHours: issuerValidityHours,
          earlyRenewalHours: issuerRenewBeforeHours,
          setSubjectKeyId: true,
        },
        issuerOpts,
      );
      issuerCertPem = issuer.certPem;
      issuerKeyPem = issuerKey.privateKeyPem;
      chainPems = issuer.certPem.apply((pem) => [pem]);
    }

    this.rootCertPem = root.certPem;
    this.issuerCertPem = issuerCertPem;
    this.issuerKeyPem = pulumi.secret(issuerKeyPem);
    this.chainPems = chainPems;
    this.maxLeafValidityHours = intermediate ? issuerRenewBeforeHours : rootValidityHours;
    this.trustBundlePem = pulumi
      .all([root.certPem, pulumi.all(args.additionalTrustedRoots ?? [])])
      .apply(([own, extra]) => trustBundle([own, ...extra]));
    this.registerOutputs({
      trustBundlePem: this.trustBundlePem,
      issuerCertPem: this.issuerCertPem,
      issuerKeyPem: this.issuerKeyPem,
      rootCertPem: this.rootCertPem,
    });
  }
}
