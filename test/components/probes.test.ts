// Every kubelet probe kind in strict mode (issue 12, item 6): the kubelet has no mesh certificate,
// so httpGet, grpc and tcpSocket probes of app containers become httpGet probes of the proxy's
// admin port, and workload.json tells the proxy which real probe to run on localhost. exec probes
// run inside the container and stay as they are.
import * as assert from "node:assert/strict";
import { Pod } from "kubernetes-models/v1";
import { injectSidecar, InjectionError, InjectOptions, PodSpecLike, rewriteProbes } from "../../components/inject";
import { renderWorkloadConfig } from "../../components/render";
import { parseWorkloadConfig } from "../../proxy/config";
import type { Mode } from "../../proxy/wellknown";

const options: InjectOptions = {
  proxyImage: "ghcr.io/acme/mesh-proxy:0.1.0",
  inboundPorts: [5000, 8080],
  identitySecretName: "mesh-identity-api",
  workloadConfigMapName: "api-mesh-config",
  directoryConfigMapName: "mesh-directory",
};
const admin = (path: string) => ({ httpGet: { path, port: 15021, scheme: "HTTP" } });

const grpcPod = (): PodSpecLike => ({
  containers: [
    {
      name: "api",
      image: "ghcr.io/acme/api:1.4",
      ports: [{ name: "grpc", containerPort: 5000 }, { name: "http", containerPort: 8080 }],
      readinessProbe: { grpc: { port: 5000 }, periodSeconds: 2, failureThreshold: 2, timeoutSeconds: 3 },
      livenessProbe: { tcpSocket: { port: "http" }, initialDelaySeconds: 5, periodSeconds: 10 },
      startupProbe: { grpc: { port: 5000, service: "shop.Api" }, failureThreshold: 30, periodSeconds: 1 },
    },
    {
      name: "worker",
      image: "ghcr.io/acme/worker:1.4",
      livenessProbe: { exec: { command: ["/bin/check"] }, periodSeconds: 30 },
    },
  ],
});

describe("components/inject probes of every kind", () => {
  it("rewrites a grpc probe to the admin port and hands the health check to workload.json", () => {
    const { container, probes } = rewriteProbes(grpcPod().containers[0]);
    assert.deepEqual(container.readinessProbe, { ...admin("/app-health/api/readyz"), periodSeconds: 2, failureThreshold: 2, timeoutSeconds: 3 });
    assert.deepEqual(container.startupProbe, { ...admin("/app-health/api/startupz"), failureThreshold: 30, periodSeconds: 1 });
    assert.deepEqual(
      probes.filter((p) => p.kind === "grpc"),
      [
        { kind: "grpc", path: "/app-health/api/readyz", port: 5000 },
        { kind: "grpc", path: "/app-health/api/startupz", port: 5000, service: "shop.Api" },
      ],
    );
  });

  it("rewrites a tcpSocket probe (named port resolved) to the admin port, which connects to the app", () => {
    const { container, probes } = rewriteProbes(grpcPod().containers[0]);
    assert.deepEqual(container.livenessProbe, { ...admin("/app-health/api/livez"), initialDelaySeconds: 5, periodSeconds: 10 });
    assert.deepEqual(probes.filter((p) => p.kind === "tcpSocket"), [{ kind: "tcpSocket", path: "/app-health/api/livez", port: 8080 }]);
  });

  it("leaves exec probes alone and gives them no admin path", () => {
    const { container, probes } = rewriteProbes(grpcPod().containers[1]);
    assert.deepEqual(container.livenessProbe, { exec: { command: ["/bin/check"] }, periodSeconds: 30 });
    assert.deepEqual(probes, []);
  });

  it("keeps httpGet probes as they were rewritten before (no kind in workload.json)", () => {
    const { container, probes } = rewriteProbes({
      name: "web",
      ports: [{ name: "http", containerPort: 8080 }],
      readinessProbe: { httpGet: { path: "/ready", port: "http", httpHeaders: [{ name: "X-Probe", value: "1" }] }, periodSeconds: 4 },
    });
    assert.deepEqual(container.readinessProbe, {
      httpGet: { httpHeaders: [{ name: "X-Probe", value: "1" }], path: "/app-health/web/readyz", port: 15021, scheme: "HTTP" },
      periodSeconds: 4,
    });
    assert.deepEqual(probes, [{ path: "/app-health/web/readyz", port: 8080, targetPath: "/ready", scheme: "HTTP", headers: [{ name: "X-Probe", value: "1" }] }]);
  });

  it("refuses a grpc probe whose port is not a number, naming the container", () => {
    const pod = grpcPod();
    pod.containers[0].readinessProbe = { grpc: { port: "grpc" as unknown as number } };
    assert.throws(() => injectSidecar(pod, options), (e: unknown) => e instanceof InjectionError && /container "api": grpc probe port "grpc" is not a number/.test(e.message));
  });

  it("renders a pod the Kubernetes schema accepts, with exactly one handler per probe", () => {
    const { podSpec } = injectSidecar(grpcPod(), options);
    new Pod({ metadata: { name: "api" }, spec: podSpec as never }).validate();
    for (const c of podSpec.containers) {
      for (const field of ["livenessProbe", "readinessProbe", "startupProbe"] as const) {
        const probe = c[field];
        if (probe) assert.equal(["httpGet", "grpc", "tcpSocket", "exec"].filter((k) => k in probe).length, 1, `${c.name} ${field}`);
      }
    }
  });

  it("writes workload.json probes the proxy's schema accepts, kinds included", () => {
    const { probes } = injectSidecar(grpcPod(), options);
    const text = renderWorkloadConfig({
      trustDomain: "cluster.local", namespace: "shop", name: "api", serviceAccount: "api",
      spiffeId: "spiffe://cluster.local/ns/shop/sa/api", defaultMode: "strict" as Mode,
      inboundPorts: [{ port: 5000, mode: "strict" as Mode }, { port: 8080, mode: "strict" as Mode }], rules: null, probes,
    });
    assert.deepEqual(parseWorkloadConfig(JSON.parse(text)).probes, [
      { kind: "tcpSocket", path: "/app-health/api/livez", port: 8080 },
      { kind: "grpc", path: "/app-health/api/readyz", port: 5000 },
      { kind: "grpc", path: "/app-health/api/startupz", port: 5000, service: "shop.Api" },
    ]);
  });
});
