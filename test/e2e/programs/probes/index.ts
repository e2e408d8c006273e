// The e2e probe fixture: a strict mesh with one workload whose app (agnhost grpc-health-checking,
// what Kubernetes' own gRPC probe tests run) has a `grpc:` readiness probe and a `tcpSocket`
// liveness probe on its redirected gRPC port. The kubelet has no mesh certificate, so both only
// work through the proxy's admin port.
import * as pulumi from "@pulumi/pulumi";
import * as mesh from "pulumi-mtls-mesh";

const config = new pulumi.Config();
const m = new mesh.Mesh("mesh", { trustDomain: "cluster.local", mode: (config.get("mode") ?? "strict") as mesh.Mode });

new mesh.MeshedWorkload("health", {
  mesh: m,
  namespace: "shop",
  containers: [
    {
      name: "health",
      image: "registry.k8s.io/e2e-test-images/agnhost:2.53",
      command: ["/agnhost", "grpc-health-checking"],
      args: ["--port", "5000", "--http-port", "8080"],
      ports: [{ name: "grpc", containerPort: 5000 }, { name: "control", containerPort: 8080 }],
      readinessProbe: { grpc: { port: 5000 }, periodSeconds: 1, failureThreshold: 2 },
      livenessProbe: { tcpSocket: { port: "grpc" }, periodSeconds: 1 },
    },
  ],
  ports: [{ name: "grpc", port: 5000 }],
});
