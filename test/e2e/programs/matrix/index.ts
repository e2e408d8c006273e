// The e2e traffic matrix: the quickstart's cast (api with a policy allowing only shop/web; web
// and reports meshed; legacy-client outside the mesh) plus "open", a meshed server that no
// AuthorizationPolicy targets. With it every cell of client meshed / not meshed × authorization
// allowed / denied exists: a plaintext client can only ever be "allowed" by a server without a
// policy, since a plaintext peer has no identity for a rule to match.
import * as pulumi from "@pulumi/pulumi";
import * as k8s from "@pulumi/kubernetes";
import * as mesh from "pulumi-mtls-mesh";

const config = new pulumi.Config();
const m = new mesh.Mesh("mesh", {
  trustDomain: "cluster.local",
  mode: (config.get("mode") ?? "strict") as mesh.Mode,
  proxyTransport: config.get("proxyTransport") as mesh.Transport | undefined,
});

const echo = (name: string): k8s.types.input.core.v1.Container => ({
  name,
  image: "hashicorp/http-echo:1.0",
  args: ["-listen=:8080", `-text=hello from ${name}`],
  ports: [{ name: "http", containerPort: 8080 }],
  readinessProbe: { httpGet: { path: "/", port: 8080 } },
});
const curl = (name: string): k8s.types.input.core.v1.Container => ({ name, image: "curlimages/curl:8.11.1", command: ["sleep", "infinity"] });

const api = new mesh.MeshedWorkload("api", { mesh: m, namespace: "shop", containers: [echo("api")], ports: [{ name: "http", port: 8080 }] });
new mesh.MeshedWorkload("open", { mesh: m, namespace: "shop", containers: [echo("open")], ports: [{ name: "http", port: 8080 }] });
new mesh.MeshedWorkload("web", { mesh: m, namespace: "shop", containers: [curl("web")] });
new mesh.MeshedWorkload("reports", { mesh: m, namespace: "shop", containers: [curl("reports")] });
new mesh.AuthorizationPolicy("api-allow", {
  mesh: m,
  namespace: "shop",
  workload: api,
  rules: [{ from: { serviceAccounts: ["shop/web"] }, ports: [8080] }],
});

const legacy = new k8s.core.v1.Namespace("legacy", { metadata: { name: "legacy" } });
new k8s.apps.v1.Deployment(
  "legacy-client",
  {
    metadata: { name: "legacy-client", namespace: "legacy" },
    spec: {
      selector: { matchLabels: { app: "legacy-client" } },
      template: { metadata: { labels: { app: "legacy-client" } }, spec: { containers: [curl("legacy-client")] } },
    },
  },
  { dependsOn: [legacy] },
);
