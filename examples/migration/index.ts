// Migration: from plaintext to strict mTLS without a big bang, namespace by namespace.
//   pulumi config set stage 0 && pulumi up   # ...then 1, 2, 3, 4
// Every step after 0 changes only the mesh's ConfigMaps: no pod restarts, the proxies hot-reload.
// Step 0 itself rolls the sidecars into the pods while nothing changes on the wire.
import * as pulumi from "@pulumi/pulumi";
import * as mesh from "pulumi-mtls-mesh";

interface Stage {
  why: string;
  mode: mesh.Mode;
  namespaceModes: Record<string, mesh.Mode>;
}

const STAGES: Stage[] = [
  { why: "sidecars in, still plaintext everywhere", mode: "disabled", namespaceModes: {} },
  { why: "meshed clients now use mTLS; servers still accept plaintext", mode: "permissive", namespaceModes: {} },
  { why: "payments refuses plaintext first (watch its refused-connection metrics)", mode: "permissive", namespaceModes: { payments: "strict" } },
  { why: "then shop", mode: "permissive", namespaceModes: { payments: "strict", shop: "strict" } },
  { why: "strict is the default; overrides no longer needed", mode: "strict", namespaceModes: {} },
];

const config = new pulumi.Config();
const stage = config.getNumber("stage") ?? 0;
if (!Number.isInteger(stage) || stage < 0 || stage >= STAGES.length) {
  throw new pulumi.RunError(`config "stage" is ${stage}; use 0 to ${STAGES.length - 1}`);
}
const { mode, namespaceModes, why } = STAGES[stage];

// Required: no mesh-proxy image is published yet (README, "Building the proxy image").
const m = new mesh.Mesh("mesh", { trustDomain: "cluster.local", mode, namespaceModes, proxyImage: new pulumi.Config().require("proxyImage") });

const payments = new mesh.MeshedWorkload("payments", {
  mesh: m,
  namespace: "payments",
  containers: [
    {
      name: "payments",
      image: "ghcr.io/acme/payments:5.2",
      ports: [{ containerPort: 8443 }, { containerPort: 9102 }],
      livenessProbe: { httpGet: { path: "/healthz", port: 8443 } },
    },
  ],
  ports: [
    { name: "https", port: 443, targetPort: 8443 },
    // Port level beats namespace level: the metrics port stays scrapeable by a plaintext
    // Prometheus even once the namespace is strict.
    { name: "metrics", port: 9102, mode: "permissive" },
  ],
});

const shop = new mesh.MeshedWorkload("storefront", {
  mesh: m,
  namespace: "shop",
  replicas: 3,
  containers: [{ name: "storefront", image: "ghcr.io/acme/storefront:8.0", ports: [{ containerPort: 8080 }] }],
  ports: [{ name: "http", port: 80, targetPort: 8080 }],
});

// Prometheus is not meshed: it scrapes in plaintext. Declared, a rule can admit it (by network:
// the NetworkPolicy allows only namespace monitoring), and the guard refuses any stage that would
// cut it off, e.g. one making 9102 strict.
const prometheus = m.unmeshedClient("prometheus", { namespace: "monitoring", calls: [{ workload: payments, ports: [9102] }] });

new mesh.AuthorizationPolicy("payments-from-shop", {
  mesh: m,
  namespace: "payments",
  workload: payments,
  rules: [
    { from: { serviceAccounts: ["shop/storefront"] }, ports: [443] },
    { from: { namespaces: ["monitoring"], clients: [prometheus] }, ports: [9102] },
  ],
});

export const currentStage = `${stage}: ${why}`;
export const meshMode = m.mode;
export const storefront = shop.serviceHost;
