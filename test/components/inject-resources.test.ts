// Resource requests of the containers the mesh adds (issue 12, item 11): without them a namespace
// with a ResourceQuota refuses the pod and an HPA on CPU cannot compute utilisation.
import * as assert from "node:assert/strict";
import { Pod } from "kubernetes-models/v1";
import { DEFAULT_INIT_RESOURCES, DEFAULT_PROXY_RESOURCES, injectSidecar, InjectOptions, INIT_CONTAINER_NAME, SIDECAR_NAME } from "../../components/inject";

const options: InjectOptions = {
  proxyImage: "ghcr.io/acme/mesh-proxy:0.1.0",
  inboundPorts: [8080],
  identitySecretName: "mesh-identity-api",
  workloadConfigMapName: "api-mesh-config",
  directoryConfigMapName: "mesh-directory",
};
const pod = () => ({ containers: [{ name: "api", image: "ghcr.io/acme/api:1.4", ports: [{ containerPort: 8080 }] }] });
const container = (spec: { initContainers?: unknown[] }, name: string) =>
  (spec.initContainers as { name: string; resources?: unknown }[]).find((c) => c.name === name)!;

describe("components/inject container resources", () => {
  it("gives the sidecar requests and mesh-init requests and limits by default, and the pod validates", () => {
    const { podSpec } = injectSidecar(pod(), options);
    assert.deepEqual(container(podSpec, SIDECAR_NAME).resources, { requests: { cpu: "50m", memory: "96Mi" } });
    assert.deepEqual(container(podSpec, INIT_CONTAINER_NAME).resources, {
      requests: { cpu: "10m", memory: "64Mi" },
      limits: { cpu: "500m", memory: "128Mi" },
    });
    assert.deepEqual(container(podSpec, SIDECAR_NAME).resources, DEFAULT_PROXY_RESOURCES);
    assert.deepEqual(container(podSpec, INIT_CONTAINER_NAME).resources, DEFAULT_INIT_RESOURCES);
    new Pod({ metadata: { name: "api" }, spec: podSpec as never }).validate();
  });

  it("takes the mesh's proxyResources and initResources as they are", () => {
    const proxyResources = { requests: { cpu: "200m", memory: "256Mi" }, limits: { memory: "1Gi" } };
    const initResources = { requests: { cpu: "20m", memory: "80Mi" }, limits: { cpu: "1", memory: "160Mi" } };
    const { podSpec } = injectSidecar(pod(), { ...options, proxyResources, initResources });
    assert.deepEqual(container(podSpec, SIDECAR_NAME).resources, proxyResources);
    assert.deepEqual(container(podSpec, INIT_CONTAINER_NAME).resources, initResources);
  });

  it("leaves the app containers' resources to the app", () => {
    const { podSpec } = injectSidecar(pod(), options);
    assert.equal("resources" in podSpec.containers[0], false);
  });
});
