// Part of `npm test` (no root, no cluster): the node stand-in's pure parts: kube-proxy's rules
// from Services and EndpointSlices, the pod status it writes, and the projected volume sources
// the API server's ServiceAccount admission adds to every pod.
import { strict as assert } from "node:assert";
import type { V1EndpointSlice, V1Service } from "@kubernetes/client-node";
import { volumeFiles } from "../e2e/harness/pod";
import { serviceRules } from "./node/endpoints";
import { ContainerView, PodView, podStatus } from "./node/status";

const service = (name: string, clusterIP: string, ports: { name?: string; port: number }[]): V1Service => ({ metadata: { name, namespace: "shop" }, spec: { clusterIP, ports } });
const slice = (svc: string, addressType: string, ports: { name?: string; port: number }[], endpoints: { addresses: string[]; ready?: boolean }[]): V1EndpointSlice => ({
  metadata: { namespace: "shop", labels: { "kubernetes.io/service-name": svc } },
  addressType,
  ports,
  endpoints: endpoints.map((e) => ({ addresses: e.addresses, conditions: e.ready === undefined ? {} : { ready: e.ready } })),
});

describe("node stand-in: kube-proxy rules from EndpointSlices", () => {
  it("takes the ready IPv4 endpoints of the Service's slices, matching ports by name, and skips headless Services", () => {
    const rules = serviceRules(
      [service("api", "10.96.0.20", [{ name: "http", port: 8080 }, { name: "grpc", port: 9090 }]), service("db", "None", [{ port: 5432 }]), service("lonely", "10.96.0.30", [{ port: 80 }])],
      [
        slice("api", "IPv4", [{ name: "http", port: 18080 }], [{ addresses: ["10.234.0.11"], ready: true }, { addresses: ["10.234.0.10"] }, { addresses: ["10.234.0.12"], ready: false }]),
        slice("api", "IPv6", [{ name: "http", port: 18080 }], [{ addresses: ["fd00::11"], ready: true }]),
        slice("other", "IPv4", [{ name: "http", port: 1 }], [{ addresses: ["10.234.0.99"], ready: true }]),
      ],
    );
    assert.deepEqual(rules, [
      { name: "shop/api:8080", clusterIP: "10.96.0.20", port: 8080, endpoints: [{ ip: "10.234.0.10", port: 18080 }, { ip: "10.234.0.11", port: 18080 }] },
      { name: "shop/api:9090", clusterIP: "10.96.0.20", port: 9090, endpoints: [] },
      { name: "shop/lonely:80", clusterIP: "10.96.0.30", port: 80, endpoints: [] },
    ]);
  });
});

describe("node stand-in: pod status", () => {
  const t0 = "2026-12-07T10:00:00.000Z";
  const view = (over: Partial<PodView> = {}): PodView => {
    const started = new Map<string, ContainerView>([
      ["mesh-init", { name: "mesh-init", image: "proxy:1", init: true, sidecar: false, startedAt: t0, finishedAt: t0, exit: { code: 0, signal: null }, ready: false }],
      ["mesh-proxy", { name: "mesh-proxy", image: "proxy:1", init: true, sidecar: true, startedAt: t0, ready: true }],
      ["app", { name: "app", image: "app:1", init: false, sidecar: false, startedAt: t0, ready: true }],
    ]);
    return {
      ready: true,
      ip: "10.234.0.10",
      ip6: "fd00:e2e:234::10",
      hostIP: "10.234.0.1",
      startTime: t0,
      initContainers: [{ name: "mesh-init", image: "proxy:1" }, { name: "mesh-proxy", image: "proxy:1" }],
      containers: [{ name: "app", image: "app:1" }],
      started,
      ...over,
    };
  };
  const condition = (s: ReturnType<typeof podStatus>, type: string) => s.conditions!.find((c) => c.type === type)!;

  it("reports a running, ready pod: both IPs, the completed init container, the running sidecar and app", () => {
    const s = podStatus(view(), undefined, new Date(t0));
    assert.equal(s.phase, "Running");
    assert.deepEqual(s.podIPs, [{ ip: "10.234.0.10" }, { ip: "fd00:e2e:234::10" }]);
    assert.deepEqual(s.conditions!.map((c) => `${c.type}=${c.status}`), ["PodReadyToStartContainers=True", "Initialized=True", "ContainersReady=True", "Ready=True", "PodScheduled=True"]);
    assert.equal(s.initContainerStatuses![0].state!.terminated!.reason, "Completed");
    assert.ok(s.initContainerStatuses![1].started && s.initContainerStatuses![1].state!.running);
    assert.deepEqual(s.containerStatuses!.map((c) => [c.name, c.ready, c.restartCount]), [["app", true, 0]]);
  });

  it("keeps a condition's transition time while its status holds, and moves it when it flips", () => {
    const first = podStatus(view(), undefined, new Date(t0));
    const later = new Date("2026-12-07T10:05:00.000Z");
    assert.deepEqual(condition(podStatus(view(), first.conditions, later), "Ready").lastTransitionTime, new Date(t0));
    const unready = podStatus(view({ ready: false }), first.conditions, later);
    assert.equal(condition(unready, "Ready").status, "False");
    assert.deepEqual(condition(unready, "Ready").lastTransitionTime, later);
  });

  it("a pod still waiting for its volumes is Pending, with the reason in its containers' state", () => {
    const s = podStatus(view({ waiting: { reason: "ContainerCreating", message: 'secret "x" not found' }, ip: undefined, ip6: undefined, started: new Map() }), undefined, new Date(t0));
    assert.equal(s.phase, "Pending");
    assert.equal(s.podIP, undefined);
    assert.equal(condition(s, "Ready").status, "False");
    assert.deepEqual(s.containerStatuses![0].state, { waiting: { reason: "ContainerCreating", message: 'secret "x" not found' } });
  });
});

describe("harness volumes: what the ServiceAccount admission projects into every pod", () => {
  const kubeApiAccess = {
    name: "kube-api-access-abcde",
    projected: {
      defaultMode: 0o644,
      sources: [
        { serviceAccountToken: { path: "token", expirationSeconds: 3607 } },
        { configMap: { name: "kube-root-ca.crt", items: [{ key: "ca.crt", path: "ca.crt" }] } },
        { downwardAPI: { items: [{ path: "namespace", fieldRef: { fieldPath: "metadata.namespace" } }] } },
      ],
    },
  };
  const pod = { name: "api-0", namespace: "shop", labels: {} };
  const lookup = (kind: string, ns: string, name: string) =>
    kind === "ConfigMap" && ns === "shop" && name === "kube-root-ca.crt" ? ({ kind, metadata: { name, namespace: ns }, data: { "ca.crt": "PEM" } } as never) : undefined;

  it("writes the token TokenRequest gave, the cluster CA and the namespace", () => {
    const files = volumeFiles(kubeApiAccess, pod, { lookup, serviceAccountToken: (s) => `token for ${s.path}` });
    assert.deepEqual(
      (files as { path: string; content: Buffer }[]).map((f) => [f.path, f.content.toString()]),
      [["token", "token for token"], ["ca.crt", "PEM"], ["namespace", "shop"]],
    );
  });

  it("refuses a token source without an API server to sign it (the engine stand-in)", () => {
    assert.throws(() => volumeFiles(kubeApiAccess, pod, { lookup }), /serviceAccountToken source needs an API server/);
  });
});
