// The pure functions behind the components: no Pulumi engine involved.
import * as assert from "node:assert/strict";
import { MODES, Mode, PROXY_UID } from "../../proxy/wellknown";
import { parseDirectoryConfig, parseWorkloadConfig } from "../../proxy/config";
import { resolveMode } from "../../components/mode";
import { injectSidecar, initArgs, InjectOptions, PodSpecLike, InjectionError } from "../../components/inject";
import { DEFAULT_OPAQUE_PORTS, planPorts, PortPlanInput, renderServicePorts, WorkloadPort } from "../../components/ports";
import { renderAuthorizationRules, renderNetworkPolicySpec } from "../../components/policy";
import { renderDirectoryConfig, renderWorkloadConfig } from "../../components/render";
import { DEFAULTS, LEAF_ALLOWED_USES, nextRenewalAt, renewalGeneration, trustBundle } from "../../components/identity";
import { MeshInputError } from "../../components/validate";

const HOUR = 3_600_000;

describe("components/mode resolveMode", () => {
  it("follows port > workload > namespace > mesh over the whole table", () => {
    const levels: (Mode | undefined)[] = [undefined, ...MODES];
    let rows = 0;
    for (const mesh of MODES) {
      for (const namespace of levels) {
        for (const workload of levels) {
          for (const port of levels) {
            const expected = port !== undefined ? port : workload !== undefined ? workload : namespace !== undefined ? namespace : mesh;
            assert.equal(resolveMode({ mesh, namespace, workload, port }), expected, JSON.stringify({ mesh, namespace, workload, port }));
            rows++;
          }
        }
      }
    }
    assert.equal(rows, MODES.length * (MODES.length + 1) ** 3);
  });

  it("lets a port relax a strict namespace and a namespace tighten a permissive mesh", () => {
    assert.equal(resolveMode({ mesh: "permissive", namespace: "strict" }), "strict");
    assert.equal(resolveMode({ mesh: "strict", namespace: "strict", workload: "strict", port: "disabled" }), "disabled");
    assert.equal(resolveMode({ mesh: "disabled", workload: "permissive" }), "permissive");
  });
});

const options: InjectOptions = {
  proxyImage: "ghcr.io/acme/mesh-proxy:0.1.0",
  inboundPorts: [9090, 8080, 8080],
  identitySecretName: "mesh-identity-api",
  workloadConfigMapName: "api-mesh-config",
  directoryConfigMapName: "mesh-directory",
};

const appPod = (): PodSpecLike => ({
  containers: [
    {
      name: "api",
      image: "ghcr.io/acme/api:1.4",
      ports: [{ name: "http", containerPort: 8080 }, { containerPort: 9090 }],
      livenessProbe: { httpGet: { path: "/live", port: "http" }, periodSeconds: 7 },
      readinessProbe: { httpGet: { path: "/ready", port: 9090, scheme: "HTTPS", httpHeaders: [{ name: "X-Probe", value: "1" }] } },
      startupProbe: { tcpSocket: { port: 8080 } },
    },
  ],
  volumes: [{ name: "data", emptyDir: {} }],
  nodeSelector: { disk: "ssd" },
});

describe("components/inject injectSidecar", () => {
  it("puts the redirect init container first, with the contract's args and NET_ADMIN/NET_RAW only there", () => {
    const { podSpec } = injectSidecar(appPod(), { ...options, excludeOutboundPorts: [5432], excludeOutboundCidrs: ["169.254.169.254/32"], excludeInboundPorts: [9100] });
    const init = podSpec.initContainers![0] as Record<string, any>;
    assert.equal(init.name, "mesh-init");
    assert.equal(init.image, options.proxyImage);
    assert.equal(init.command, undefined, "the image entrypoint is mesh-proxy");
    assert.deepEqual(init.args, [
      "init", "--inbound-ports", "8080,9090", "--proxy-uid", "1337",
      "--exclude-outbound-ports", "5432", "--exclude-outbound-cidrs", "169.254.169.254/32", "--exclude-inbound-ports", "9100",
    ]);
    assert.deepEqual(init.securityContext, {
      runAsUser: 0, runAsNonRoot: false, allowPrivilegeEscalation: false,
      capabilities: { add: ["NET_ADMIN", "NET_RAW"], drop: ["ALL"] },
    });
    const others = [...podSpec.containers, ...podSpec.initContainers!.slice(1)] as Record<string, any>[];
    for (const c of others) assert.equal(c.securityContext?.capabilities?.add, undefined, `${c.name} must not gain capabilities`);
  });

  it("adds the proxy as a native sidecar running as the fixed non-root UID", () => {
    const { podSpec } = injectSidecar(appPod(), options);
    const proxy = podSpec.initContainers![1] as Record<string, any>;
    assert.equal(proxy.name, "mesh-proxy");
    assert.equal(proxy.restartPolicy, "Always");
    assert.deepEqual(proxy.args, ["run", "--config", "/etc/mesh", "--identity", "/var/run/mesh/identity"]);
    assert.deepEqual(proxy.securityContext, {
      runAsUser: PROXY_UID, runAsGroup: PROXY_UID, runAsNonRoot: true, readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"] },
    });
    assert.deepEqual(proxy.ports, [{ name: "mesh-admin", containerPort: 15021, protocol: "TCP" }]);
    assert.deepEqual(proxy.startupProbe.httpGet, { path: "/readyz", port: 15021, scheme: "HTTP" });
    assert.deepEqual(proxy.readinessProbe.httpGet, { path: "/readyz", port: 15021, scheme: "HTTP" });
    assert.deepEqual(proxy.livenessProbe.httpGet, { path: "/healthz", port: 15021, scheme: "HTTP" });
    assert.deepEqual(proxy.volumeMounts, [
      { name: "mesh-identity", mountPath: "/var/run/mesh/identity", readOnly: true },
      { name: "mesh-config", mountPath: "/etc/mesh", readOnly: true },
    ]);
  });

  it("mounts the identity Secret and a projected volume of the two ConfigMaps, keeping the pod's own volumes", () => {
    const { podSpec } = injectSidecar(appPod(), options);
    assert.deepEqual(podSpec.volumes, [
      { name: "mesh-identity", secret: { secretName: "mesh-identity-api" } },
      {
        name: "mesh-config",
        projected: {
          sources: [
            { configMap: { name: "api-mesh-config", items: [{ key: "workload.json", path: "workload.json" }] } },
            // Every key: directory.json or, for a large mesh, directory.json.gz, without a template change.
            { configMap: { name: "mesh-directory" } },
          ],
        },
      },
      { name: "data", emptyDir: {} },
    ]);
    assert.deepEqual(podSpec.nodeSelector, { disk: "ssd" });
  });

  it("rewrites httpGet probes to the admin port and hands their real target to workload.json", () => {
    const { podSpec, probes } = injectSidecar(appPod(), options);
    const app = podSpec.containers[0] as Record<string, any>;
    assert.deepEqual(app.livenessProbe, { httpGet: { path: "/app-health/api/livez", port: 15021, scheme: "HTTP" }, periodSeconds: 7 });
    assert.deepEqual(app.readinessProbe, { httpGet: { path: "/app-health/api/readyz", port: 15021, scheme: "HTTP", httpHeaders: [{ name: "X-Probe", value: "1" }] } }, "headers stay: kubelet sends them to the proxy, which passes them on");
    assert.deepEqual(app.startupProbe, { httpGet: { path: "/app-health/api/startupz", port: 15021, scheme: "HTTP" } }, "tcpSocket probes go through the admin port too");
    assert.deepEqual(probes, [
      { path: "/app-health/api/livez", port: 8080, targetPath: "/live", scheme: "HTTP" },
      { path: "/app-health/api/readyz", port: 9090, targetPath: "/ready", scheme: "HTTPS", headers: [{ name: "X-Probe", value: "1" }] },
      { kind: "tcpSocket", path: "/app-health/api/startupz", port: 8080 },
    ]);
    // Everything else about the app container is untouched.
    const { livenessProbe: _l, readinessProbe: _r, startupProbe: _s, ...rest } = app;
    const { livenessProbe: _ol, readinessProbe: _or, startupProbe: _os, ...original } = appPod().containers[0];
    assert.deepEqual(rest, original);
  });

  it("does not touch its input and gives the same output for the same input", () => {
    const input = appPod();
    const before = JSON.stringify(input);
    const a = injectSidecar(input, options);
    const b = injectSidecar(appPod(), options);
    assert.equal(JSON.stringify(input), before);
    assert.equal(JSON.stringify(a), JSON.stringify(b));
  });

  it("refuses to inject twice and names the clash", () => {
    const { podSpec } = injectSidecar(appPod(), options);
    assert.throws(() => injectSidecar(podSpec, options), (e: Error) => e instanceof InjectionError && /mesh-init/.test(e.message));
  });

  it("omits --inbound-ports for an outbound-only client", () => {
    assert.deepEqual(initArgs({ ...options, inboundPorts: [] }), ["init", "--proxy-uid", "1337"]);
  });
});

describe("components/ports planPorts", () => {
  const modes = { mesh: "strict" as Mode, namespace: "permissive" as Mode };
  it("maps Service ports to pod ports with the effective mode of each", () => {
    const plan = planPorts({
      label: "T", field: "ports", containerPorts: [8080, 9090, 9100], excludeInboundPorts: [9100], modes, opaquePorts: DEFAULT_OPAQUE_PORTS,
      ports: [{ name: "http", port: 80, targetPort: 8080 }, { name: "grpc", port: 9090, mode: "strict" }],
    });
    assert.deepEqual(plan.servicePorts, [
      { name: "http", port: 80, targetPort: 8080, mode: "permissive", opaque: false },
      { name: "grpc", port: 9090, targetPort: 9090, mode: "strict", opaque: false },
    ]);
    assert.deepEqual(plan.redirectPorts, [8080, 9090]);
    assert.deepEqual(plan.inboundPorts, [{ port: 8080, mode: "permissive" }, { port: 9090, mode: "strict" }]);
    assert.equal(plan.defaultMode, "permissive");
  });

  const refuses = (ports: any[], field: RegExp, containerPorts = [8080]) =>
    assert.throws(
      () => planPorts({ label: 'MeshedWorkload "api"', field: "ports", ports, containerPorts, excludeInboundPorts: [], modes, opaquePorts: DEFAULT_OPAQUE_PORTS }),
      (e: Error) => e instanceof MeshInputError && /^MeshedWorkload "api": field "/.test(e.message) && field.test(e.message) && /Fix: /.test(e.message),
    );
  it("refuses proxy ports, unknown modes, unnamed multi-ports, duplicates, conflicting modes and stray targets", () => {
    refuses([{ port: 15001 }], /ports\[0\]\.port.*15001.*proxy owns/);
    refuses([{ port: 8080, targetPort: 15006 }], /ports\[0\]\.targetPort.*15006/);
    refuses([{ port: 15021 }], /15021/);
    refuses([{ port: 8080, mode: "enforced" }], /ports\[0\]\.mode.*"enforced".*not a mesh mode/);
    refuses([{ port: 8080 }, { name: "b", port: 81, targetPort: 8080 }], /ports\[0\]\.name.*missing/);
    refuses([{ name: "a", port: 8080 }, { name: "b", port: 8080 }], /ports\[1\]\.port.*repeats/);
    refuses([{ name: "a", port: 80, targetPort: 8080 }, { name: "b", port: 81, targetPort: 8080, mode: "disabled" }], /ports\[1\]\.mode/);
    refuses([{ port: 8081 }], /ports\[0\]\.targetPort.*8081.*no container/);
    refuses([{ port: 0 }], /ports\[0\]\.port.*not a port number/);
    refuses([{ port: 15008 }], /ports\[0\]\.port.*15008.*proxy owns/);
    refuses([{ name: "mesh-tunnel", port: 8080 }], /ports\[0\]\.name.*mesh-tunnel/);
    refuses([{ port: 8080, appProtocol: "my protocol" }], /ports\[0\]\.appProtocol.*not an application protocol/);
    refuses([{ port: 8080, opaque: "yes" }], /ports\[0\]\.opaque.*not true or false/);
    refuses([{ name: "a", port: 3306 }, { name: "b", port: 3307, targetPort: 3306, opaque: false }], /ports\[1\]\.opaque.*opposite/, [3306]);
  });

  describe("opaque ports", () => {
    const plan = (ports: WorkloadPort[], containerPorts: number[], extra: Partial<PortPlanInput> = {}) =>
      planPorts({ label: "T", field: "ports", ports, containerPorts, excludeInboundPorts: [], modes, opaquePorts: DEFAULT_OPAQUE_PORTS, ...extra });
    it("come from the Mesh's list (Linkerd's defaults), from appProtocol, or from the port's own flag, which wins", () => {
      const p = plan([
        { name: "mysql", port: 3306 },
        { name: "pg", port: 15432, targetPort: 5432, appProtocol: "postgresql" },
        { name: "smtp", port: 2525, appProtocol: "smtp" },
        { name: "web", port: 8080, appProtocol: "http" },
        { name: "redis", port: 6379, opaque: false },
        { name: "custom", port: 7000, opaque: true },
      ], [3306, 5432, 2525, 8080, 6379, 7000, 11211]);
      assert.deepEqual(p.servicePorts.map((s) => `${s.name}:${s.opaque}`), ["mysql:true", "pg:true", "smtp:true", "web:false", "redis:false", "custom:true"]);
      // workload.json: the container-only 11211 is opaque by the list; 6379 was declared not opaque.
      assert.deepEqual(p.inboundPorts.filter((i) => i.opaque).map((i) => i.port), [2525, 3306, 5432, 7000, 11211]);
      assert.deepEqual(plan([{ port: 3306 }], [3306], { opaquePorts: [] }).servicePorts[0].opaque, false, "an empty list turns the defaults off");
    });
    it("give the Service a mesh-tunnel port 15008, naming an unnamed port as Kubernetes then requires", () => {
      assert.deepEqual(renderServicePorts(plan([{ port: 5432, appProtocol: "postgresql" }], [5432])), [
        { name: "port-5432", port: 5432, targetPort: 5432, protocol: "TCP", appProtocol: "postgresql" },
        { name: "mesh-tunnel", port: 15008, targetPort: 15008, protocol: "TCP" },
      ]);
      assert.deepEqual(renderServicePorts(plan([{ port: 8080 }], [8080])), [{ port: 8080, targetPort: 8080, protocol: "TCP" }], "no opaque port, no tunnel port");
    });
    it("are refused, with a reason, where the mesh cannot add the tunnel port (meshTransform); the defaults just do not apply there", () => {
      const noOpaque = "meshTransform cannot add the mesh-tunnel port (15008) to the program's own Service";
      assert.equal(plan([{ port: 5432 }], [5432], { noOpaque }).servicePorts[0].opaque, false);
      assert.deepEqual(plan([{ port: 5432 }], [5432], { noOpaque }).inboundPorts, [{ port: 5432, mode: "permissive" }]);
      assert.throws(() => plan([{ port: 5432, opaque: true }], [5432], { noOpaque }), /ports\[0\]\.opaque.*meshTransform cannot add/);
    });
  });
});

describe("components/policy rendering", () => {
  const rules = [
    { serviceAccounts: [{ namespace: "shop", serviceAccount: "web" }, { namespace: "ops", serviceAccount: "admin" }], namespaces: [], clients: [], ports: [8080] },
    { serviceAccounts: [], namespaces: ["monitoring"], clients: [] },
  ];
  it("turns service accounts into SPIFFE principals, sorted, with ports kept", () => {
    const rendered = renderAuthorizationRules(rules, "cluster.local");
    assert.deepEqual(rendered, [
      { ports: [8080], principals: ["spiffe://cluster.local/ns/ops/sa/admin", "spiffe://cluster.local/ns/shop/sa/web"] },
      { namespaces: ["monitoring"] },
    ]);
  });

  it("renders a NetworkPolicy for the same peers and ports", () => {
    assert.deepEqual(renderNetworkPolicySpec({ workload: "api", rules }), {
      podSelector: { matchLabels: { "mtls-mesh.io/workload": "api" } },
      policyTypes: ["Ingress"],
      ingress: [
        {
          from: [
            { namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "ops" } }, podSelector: { matchLabels: { "mtls-mesh.io/service-account": "admin" } } },
            { namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "shop" } }, podSelector: { matchLabels: { "mtls-mesh.io/service-account": "web" } } },
          ],
          ports: [{ protocol: "TCP", port: 8080 }],
        },
        { from: [{ namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "monitoring" } } }] },
        { ports: [{ protocol: "TCP", port: 15021 }] }, // the admin port: health and metrics for everyone
      ],
    });
  });

  it("admits a rule's peers to the tunnel port too when one of its ports is opaque, and only then", () => {
    const spec = renderNetworkPolicySpec({ workload: "db", rules: [{ ...rules[0], ports: [3306] }, { ...rules[0], ports: [8080] }], openPorts: [5432], opaquePorts: [3306, 5432] });
    const ingress = spec.ingress as Array<{ ports?: Array<{ port: number }> }>;
    assert.deepEqual(ingress.map((i) => i.ports?.map((p) => p.port)), [[3306, 15008], [8080], [5432, 15008], [15021]]);
  });
});

describe("components/render config documents", () => {
  const parts = {
    trustDomain: "cluster.local", namespace: "shop", name: "api", serviceAccount: "api",
    spiffeId: "spiffe://cluster.local/ns/shop/sa/api", defaultMode: "strict" as Mode,
    inboundPorts: [{ port: 9090, mode: "permissive" as Mode }, { port: 8080, mode: "strict" as Mode }],
    rules: null, probes: [],
  };
  it("renders workload.json the proxy's schema accepts, sorted, byte-identical for equal input", () => {
    const text = renderWorkloadConfig(parts);
    const doc = parseWorkloadConfig(JSON.parse(text));
    assert.deepEqual(doc.inbound.ports.map((p) => p.port), [8080, 9090]);
    assert.equal(doc.authorization, null);
    assert.equal(renderWorkloadConfig({ ...parts, inboundPorts: [...parts.inboundPorts].reverse() }), text);
    assert.ok(text.endsWith("\n"));
  });

  it("renders directory.json sorted by namespace/name whatever the input order", () => {
    const a = { namespace: "shop", name: "api", spiffeId: "spiffe://cluster.local/ns/shop/sa/api", addresses: ["10.96.0.10"], hostnames: ["api.shop"], ports: [{ port: 80, targetPort: 8080, mode: "strict" as Mode }] };
    const b = { ...a, namespace: "billing", spiffeId: "spiffe://cluster.local/ns/billing/sa/api", addresses: ["10.96.0.11"] };
    const text = renderDirectoryConfig([a, b]);
    assert.equal(renderDirectoryConfig([b, a]), text);
    assert.deepEqual(parseDirectoryConfig(JSON.parse(text)).services.map((s) => s.namespace), ["billing", "shop"]);
  });

  it("refuses to render a document the proxy would refuse", () => {
    assert.throws(() => renderWorkloadConfig({ ...parts, spiffeId: "spiffe://Cluster.local/ns/shop/sa/api" }), /invalid config/);
  });
});

describe("components/identity renewal schedule", () => {
  const schedule = { validityHours: DEFAULTS.leafValidityHours, renewBeforeHours: DEFAULTS.leafRenewBeforeHours };
  const period = (schedule.validityHours - schedule.renewBeforeHours) * HOUR;
  const id = "spiffe://cluster.local/ns/shop/sa/api";

  it("keeps the generation for a whole period, then moves to the next", () => {
    const start = Date.UTC(2026, 0, 1);
    const g = renewalGeneration(start, schedule, id);
    const boundary = Date.parse(nextRenewalAt(start, schedule, id));
    assert.ok(boundary > start && boundary <= start + period);
    assert.equal(renewalGeneration(boundary - 1, schedule, id), g);
    assert.equal(renewalGeneration(boundary, schedule, id), g + 1);
    assert.equal(renewalGeneration(boundary + period - 1, schedule, id), g + 1);
  });

  it("always renews at least renewBeforeHours before expiry, if `pulumi up` runs at the boundary", () => {
    for (let t = Date.UTC(2026, 0, 1); t < Date.UTC(2026, 3, 1); t += 7 * HOUR) {
      const expiry = t + schedule.validityHours * HOUR;
      const renewal = Date.parse(nextRenewalAt(t, schedule, id));
      assert.ok(expiry - renewal >= schedule.renewBeforeHours * HOUR, new Date(t).toISOString());
    }
  });

  it("staggers different identities", () => {
    const t = Date.UTC(2026, 0, 1);
    const a = nextRenewalAt(t, schedule, "spiffe://cluster.local/ns/shop/sa/api");
    const b = nextRenewalAt(t, schedule, "spiffe://cluster.local/ns/shop/sa/web");
    assert.notEqual(a, b);
  });

  it("pins leaf allowed uses to signing and TLS server+client, never a CA", () => {
    assert.deepEqual([...LEAF_ALLOWED_USES], ["digital_signature", "server_auth", "client_auth"]);
  });

  it("builds a deduplicated trust bundle, current root first", () => {
    const r1 = "-----BEGIN CERTIFICATE-----\nA\n-----END CERTIFICATE-----";
    const r2 = "-----BEGIN CERTIFICATE-----\nB\n-----END CERTIFICATE-----\n";
    assert.equal(trustBundle([r1, r2, r1 + "\n"]), `${r1}\n${r2}`);
  });
});
