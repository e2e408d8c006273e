// compose, program 1 of 2 (the platform team's stack): the CA, the node proxy and the mesh's own
// services. It exports what the application teams' programs need to join the same mesh.
import * as pulumi from "@pulumi/pulumi";
import * as mesh from "pulumi-mtls-mesh";

// protect: a `pulumi destroy` or an accidental replacement of the root would cut every pod off.
const ca = new mesh.CertificateAuthority("platform-ca", { protect: true });
const m = new mesh.Mesh("platform", { trustDomain: "prod.acme.internal", mode: "strict", ca, proxyImage: new pulumi.Config().require("proxyImage") });

new mesh.MeshedWorkload("accounts", {
  mesh: m,
  namespace: "identity",
  containers: [{ name: "accounts", image: "ghcr.io/acme/accounts:2.3", ports: [{ containerPort: 8080 }] }],
  ports: [{ name: "http", port: 8080 }],
});

export const trustDomain = "prod.acme.internal";
export const rootCertPem = ca.rootCertPem;
export const issuerCertPem = ca.issuerCertPem;
// A Pulumi secret in the stack's outputs; only stacks allowed to read it can mint identities.
export const issuerKeyPem = ca.issuerKeyPem;
export const proxyImage = m.proxyImage;
export const services = m.services;
