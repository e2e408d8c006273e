// compose, program 2 of 2 (an application team's stack): joins the platform's mesh through a
// StackReference and meshes Deployments it already declares with plain @pulumi/kubernetes,
// using meshTransform instead of rewriting them as MeshedWorkloads.
//   pulumi config set platformStack acme/platform/prod
import * as pulumi from "@pulumi/pulumi";
import * as k8s from "@pulumi/kubernetes";
import * as mesh from "pulumi-mtls-mesh";

const config = new pulumi.Config();
const platform = new pulumi.StackReference(config.require("platformStack"));
const output = (name: string) => platform.requireOutput(name) as pulumi.Output<string>;

const ca = new mesh.CertificateAuthority("platform-ca", {
  existing: { rootCertPem: output("rootCertPem"), issuerCertPem: output("issuerCertPem"), issuerKeyPem: output("issuerKeyPem") },
});
const m = new mesh.Mesh("billing-mesh", {
  trustDomain: "prod.acme.internal",
  mode: "strict",
  ca,
  namespace: "billing-mesh",
  // The platform stack runs the node proxy and owns its proxy image.
  nodeProxy: false,
  proxyImage: config.require("proxyImage"),
  // Our clients originate mTLS to the platform's services too.
  importedServices: platform.requireOutput("services") as pulumi.Output<mesh.DirectoryService[]>,
  // This program creates namespace billing itself (below).
  existingNamespaces: ["billing"],
});

const ns = new k8s.core.v1.Namespace("billing", { metadata: { name: "billing" } });
const invoicesService = new k8s.core.v1.Service(
  "invoices",
  {
    metadata: { name: "invoices", namespace: "billing" },
    spec: { selector: { app: "invoices" }, ports: [{ name: "http", port: 80, targetPort: 8080 }] },
  },
  { dependsOn: [ns] },
);

// List the Deployments to mesh up front: their identities and config are created now, the
// transform rewrites their pod specs when Pulumi registers them.
const meshed = mesh.meshTransform(m, {
  workloads: [
    {
      namespace: "billing",
      name: "invoices",
      ports: [{ name: "http", port: 80, targetPort: 8080 }],
      service: { name: "invoices", clusterIP: invoicesService.spec.clusterIP },
    },
  ],
});

// Unchanged application code, plus one label and one resource option.
new k8s.apps.v1.Deployment(
  "invoices",
  {
    metadata: { name: "invoices", namespace: "billing", labels: { [mesh.INJECT_LABEL]: "true" } },
    spec: {
      replicas: 2,
      selector: { matchLabels: { app: "invoices" } },
      template: {
        metadata: { labels: { app: "invoices" } },
        spec: {
          containers: [
            {
              name: "invoices",
              image: "ghcr.io/acme/invoices:3.1",
              ports: [{ name: "http", containerPort: 8080 }],
              readinessProbe: { httpGet: { path: "/ready", port: "http" } },
            },
          ],
        },
      },
    },
  },
  { dependsOn: [ns], transforms: [meshed] },
);

new mesh.AuthorizationPolicy("invoices-allow", {
  mesh: m,
  namespace: "billing",
  workload: meshed.workload("billing/invoices"),
  rules: [{ from: { serviceAccounts: ["identity/accounts"] }, ports: [80] }],
});

export const invoicesIdentity = meshed.workload("billing/invoices").identity.spiffeId;
