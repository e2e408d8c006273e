// The e2e opaque-port program: "db" runs two server-first TCP servers (agnhost serve-hostname
// writes its hostname on accept and reads nothing, as a MySQL server greets first), one on 3306
// (opaque by the Mesh's default list) and one on 9376 (protocol detection, the default for other
// ports). "app" is a meshed client, "legacy-client" a plaintext one outside the mesh.
import * as pulumi from "@pulumi/pulumi";
import * as k8s from "@pulumi/kubernetes";
import * as mesh from "pulumi-mtls-mesh";

const config = new pulumi.Config();
const m = new mesh.Mesh("mesh", {
  trustDomain: "cluster.local",
  mode: (config.get("mode") ?? "permissive") as mesh.Mode,
  proxyTransport: config.get("proxyTransport") as mesh.Transport | undefined,
});

const serveHostname = (name: string, port: number): k8s.types.input.core.v1.Container => ({
  name,
  image: "registry.k8s.io/e2e-test-images/agnhost:2.53",
  args: ["serve-hostname", "--tcp", "--http=false", "--port", String(port)],
  ports: [{ containerPort: port }],
  // Ready once it listens: the test's first connection must not race the server's start-up.
  readinessProbe: { tcpSocket: { port }, periodSeconds: 1 },
});
const curl = (name: string): k8s.types.input.core.v1.Container => ({ name, image: "curlimages/curl:8.11.1", command: ["sleep", "infinity"] });

new mesh.MeshedWorkload("db", {
  mesh: m,
  namespace: "data",
  containers: [serveHostname("mysql", 3306), serveHostname("stats", 9376)],
  ports: [{ name: "mysql", port: 3306 }, { name: "stats", port: 9376 }],
});
new mesh.MeshedWorkload("app", { mesh: m, namespace: "data", containers: [curl("app")] });

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
