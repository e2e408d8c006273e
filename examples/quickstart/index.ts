// Quickstart: a strict mTLS mesh for two services in namespace "shop", one caller that is not
// authorized, and a plaintext client outside the mesh (namespace "legacy") that strict mode refuses.
//   pulumi config set mode permissive   # re-render with another mesh mode (default strict)
import * as pulumi from "@pulumi/pulumi";
import * as k8s from "@pulumi/kubernetes";
import * as mesh from "pulumi-mtls-mesh";

const config = new pulumi.Config();
// No mesh-proxy image is published yet: build proxy/Dockerfile and push it (or `kind load` it),
// then `pulumi config set proxyImage <ref>`. Required, so `pulumi up` stops here with Pulumi's
// own message instead of leaving pods in ImagePullBackOff for a 10-minute await.
const proxyImage = config.require("proxyImage");

// The Mesh creates namespace "mesh-system", the CA, the node proxy and, on first use, the
// namespaces its workloads live in ("shop" here).
const m = new mesh.Mesh("mesh", {
  trustDomain: "cluster.local",
  mode: (config.get("mode") ?? "strict") as mesh.Mode,
  proxyImage,
});

const api = new mesh.MeshedWorkload("api", {
  mesh: m,
  namespace: "shop",
  serviceAccount: "api",
  replicas: 2,
  containers: [
    {
      name: "api",
      image: "hashicorp/http-echo:1.0",
      args: ["-listen=:8080", "-text=hello from api"],
      ports: [{ name: "http", containerPort: 8080 }],
      // Rewritten to the proxy's admin port: kubelet cannot present a mesh certificate.
      readinessProbe: { httpGet: { path: "/", port: 8080 }, periodSeconds: 5 },
    },
  ],
  ports: [{ name: "http", port: 8080 }],
});

const curl = (name: string): k8s.types.input.core.v1.Container => ({
  name,
  image: "curlimages/curl:8.11.1",
  command: ["sleep", "infinity"],
});

const web = new mesh.MeshedWorkload("web", { mesh: m, namespace: "shop", containers: [curl("web")] });
// Meshed, so it holds a valid identity, but no policy allows it: api refuses it.
const reports = new mesh.MeshedWorkload("reports", { mesh: m, namespace: "shop", containers: [curl("reports")] });

new mesh.AuthorizationPolicy("api-allow", {
  mesh: m,
  namespace: "shop",
  workload: api,
  rules: [{ from: { serviceAccounts: ["shop/web"] }, ports: [8080] }],
});

// Outside the mesh: a plain Deployment in its own namespace, talking plaintext.
const legacy = new k8s.core.v1.Namespace("legacy", { metadata: { name: "legacy" } });
const legacyClient = new k8s.apps.v1.Deployment(
  "legacy-client",
  {
    metadata: { name: "legacy-client", namespace: "legacy" },
    spec: {
      replicas: 1,
      selector: { matchLabels: { app: "legacy-client" } },
      template: { metadata: { labels: { app: "legacy-client" } }, spec: { containers: [curl("legacy-client")] } },
    },
  },
  { dependsOn: [legacy] },
);
// Declared to the mesh, so the reachability matrix (ConfigMap mesh-reachability in mesh-system)
// shows what it may reach: nothing, since api's policy admits only shop/web.
m.unmeshedClient("legacy-client", { namespace: "legacy", deployment: legacyClient });

export const mode = m.mode;
export const proxyImageRef = m.proxyImage;
export const trustBundle = m.trustBundlePem;
export const apiUrl = `http://${api.serviceHost}:8080/`;
export const identities = { api: api.spiffeId, web: web.spiffeId, reports: reports.spiffeId };
export const apiCertificateExpires = api.identity.notAfter;
export const apiCertificateRenewsAt = api.identity.renewsAt;
