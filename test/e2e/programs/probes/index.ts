// The e2e probe fixture: a strict mesh with one workload whose app (agnhost grpc-health-checking,
// what Kubernetes' own gRPC probe tests run) has a `grpc:` readiness probe and a `tcpSocket`
// liveness probe on its redirected gRPC port. The kubelet has no mesh certificate, so both only
// work through the proxy's admin port. "plain-health", the same app outside the mesh, is the
// control: the kubelet stand-in's own gRPC probe reaches it directly.
import * as pulumi from "@pulumi/pulumi";
import * as k8s from "@pulumi/kubernetes";
import * as mesh from "pulumi-mtls-mesh";

const config = new pulumi.Config();
const m = new mesh.Mesh("mesh", { trustDomain: "cluster.local", mode: (config.get("mode") ?? "strict") as mesh.Mode });

const agnhost = (name: string): k8s.types.input.core.v1.Container => ({
  name,
  image: "registry.k8s.io/e2e-test-images/agnhost:2.53",
  command: ["/agnhost", "grpc-health-checking"],
  args: ["--port", "5000", "--http-port", "8080"],
  ports: [{ name: "grpc", containerPort: 5000 }, { name: "control", containerPort: 8080 }],
  readinessProbe: { grpc: { port: 5000 }, periodSeconds: 1, failureThreshold: 2 },
  livenessProbe: { tcpSocket: { port: "grpc" }, periodSeconds: 1 },
});

new mesh.MeshedWorkload("health", { mesh: m, namespace: "shop", containers: [agnhost("health")], ports: [{ name: "grpc", port: 5000 }] });

const legacy = new k8s.core.v1.Namespace("legacy", { metadata: { name: "legacy" } });
new k8s.apps.v1.Deployment(
  "plain-health",
  {
    metadata: { name: "plain-health", namespace: "legacy" },
    spec: {
      selector: { matchLabels: { app: "plain-health" } },
      template: { metadata: { labels: { app: "plain-health" } }, spec: { containers: [agnhost("plain-health")] } },
    },
  },
  { dependsOn: [legacy] },
);
