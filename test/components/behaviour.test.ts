// What users rely on: re-runs preview nothing, a policy edit or a mode flip touches only config
// objects (no pod restarts), bad input is refused at construction with a message naming the
// component, the field and the fix, and the transform meshes plain Deployments.
import { Change, assertSchemasValid, diff, directoryJson, find, mocks, object, renderChecked, renderQuickstart, workloadJson } from "./harness";
import * as assert from "node:assert/strict";
import * as pulumi from "@pulumi/pulumi";
import * as k8s from "@pulumi/kubernetes";
import * as mesh from "../../components";
import { parseWorkloadConfig } from "../../proxy/config";
import { clusterIpFor, forgetStrandedRegistrations, render, settle, valueOf } from "../support/pulumi-mocks";
import { renewalGeneration, DEFAULTS } from "../../components/identity";

const NOW = Date.UTC(2026, 10, 28, 12);

interface ShopOptions {
  mode?: mesh.Mode;
  allow?: string[];
  now?: number;
  namespaceModes?: Record<string, mesh.Mode>;
}

/** The quickstart's mesh, with the knobs the diffs turn. */
function shop(o: ShopOptions = {}) {
  const m = new mesh.Mesh("mesh", { trustDomain: "cluster.local", mode: o.mode ?? "strict", now: o.now ?? NOW, namespaceModes: o.namespaceModes });
  const api = new mesh.MeshedWorkload("api", {
    mesh: m, namespace: "shop", serviceAccount: "api", replicas: 2,
    containers: [{ name: "api", image: "ghcr.io/acme/api:1.4", ports: [{ containerPort: 8080 }] }],
    ports: [{ name: "http", port: 8080 }],
  });
  new mesh.MeshedWorkload("web", { mesh: m, namespace: "shop", containers: [{ name: "web", image: "ghcr.io/acme/web:2.0" }] });
  new mesh.AuthorizationPolicy("api-allow", {
    mesh: m, namespace: "shop", workload: api,
    rules: [{ from: { serviceAccounts: o.allow ?? ["shop/web"] }, ports: [8080] }],
  });
  return { m, api };
}

const describeChanges = (changes: Change[]) => changes.map((c) => `${c.op} ${c.type.split(":").pop()} ${c.name}`);
const POD_KINDS = /Deployment|StatefulSet|DaemonSet/;

describe("components/behaviour previews", () => {
  it("a re-run of the quickstart previews zero changes (byte-identical specs and config)", async () => {
    const first = await renderQuickstart();
    const second = await renderQuickstart();
    assert.deepEqual(diff(first.resources, second.resources), []);
    const shopA = await renderChecked(() => shop());
    const shopB = await renderChecked(() => shop());
    assert.deepEqual(diff(shopA.resources, shopB.resources), []);
  });

  it("a mode flip changes only ConfigMaps and restarts no pod", async () => {
    const strict = await renderQuickstart({ mode: "strict" });
    const permissive = await renderQuickstart({ mode: "permissive" });
    const changes = diff(strict.resources, permissive.resources);
    console.log(`      mode flip strict→permissive: ${changes.length} changes: ${describeChanges(changes).join(", ")}`);
    assert.ok(changes.length > 0);
    for (const c of changes) {
      assert.equal(c.op, "update");
      assert.match(c.type, /ConfigMap$/, `${c.type} ${c.name} must not change`);
    }
    assert.equal(parseWorkloadConfig(workloadJson(permissive.resources, "api-mesh-config", "shop")).inbound.defaultMode, "permissive");
    assert.equal(directoryJson(permissive.resources, "shop").services[0].ports[0].mode, "permissive");
  });

  it("a policy edit changes only the protected workload's ConfigMap and the NetworkPolicy", async () => {
    const before = await renderChecked(() => shop({ allow: ["shop/web"] }));
    const after = await renderChecked(() => shop({ allow: ["shop/web", "ops/admin"] }));
    const changes = diff(before.resources, after.resources);
    console.log(`      policy edit: ${changes.length} changes: ${describeChanges(changes).join(", ")}`);
    assert.deepEqual(describeChanges(changes), ["update ConfigMap api-mesh-config", "update NetworkPolicy api-allow-netpol"]);
    assert.deepEqual(
      parseWorkloadConfig(workloadJson(after.resources, "api-mesh-config", "shop")).authorization?.rules[0].principals,
      ["spiffe://cluster.local/ns/ops/sa/admin", "spiffe://cluster.local/ns/shop/sa/web"],
    );
  });

  it("a namespace mode flip (migration step) changes only config and keeps port overrides", async () => {
    const before = await renderChecked(() => shop({ mode: "permissive" }));
    const after = await renderChecked(() => shop({ mode: "permissive", namespaceModes: { shop: "strict" } }));
    const changes = diff(before.resources, after.resources);
    assert.ok(changes.every((c) => c.op === "update" && /ConfigMap$/.test(c.type)), describeChanges(changes).join(", "));
    assert.equal(parseWorkloadConfig(workloadJson(after.resources, "api-mesh-config", "shop")).inbound.defaultMode, "strict");
    assert.equal(parseWorkloadConfig(workloadJson(after.resources, "mesh-proxy-config", "mesh-system")).inbound.defaultMode, "permissive");
  });

  it("renewal: past the schedule's boundary key, CSR and leaf are replaced; the Secret keeps its name; no pod template changes", async () => {
    const schedule = { validityHours: DEFAULTS.leafValidityHours, renewBeforeHours: DEFAULTS.leafRenewBeforeHours };
    const later = NOW + (schedule.validityHours - schedule.renewBeforeHours) * 3_600_000;
    const before = await renderChecked(() => shop());
    const after = await renderChecked(() => shop({ now: later }));
    const changes = diff(before.resources, after.resources);
    const replaced = changes.filter((c) => c.op === "replace").map((c) => c.name).sort();
    assert.deepEqual(
      replaced.filter((n) => n.startsWith("api-identity")),
      ["api-identity-cert", "api-identity-csr", "api-identity-key"],
    );
    assert.ok(changes.every((c) => !POD_KINDS.test(c.type)), describeChanges(changes).join(", "));
    assert.equal(find(after.resources, "Secret", "api-identity-secret").inputs.metadata.name, "mesh-identity-api");
    // In place: the mesh's provider sets enableSecretMutable (the default provider would delete it first).
    assert.deepEqual(changes.filter((c) => c.name === "api-identity-secret").map((c) => c.op), ["update"]);
    assert.equal(
      find(after.resources, "PrivateKey", "api-identity-key").replacementTrigger,
      String(renewalGeneration(later, schedule, "spiffe://cluster.local/ns/shop/sa/api")),
    );
  });
});

/** Asserts the program is refused at construction with one message naming component, field and fix. */
function refuses(program: () => unknown, component: RegExp, field: string, problem: RegExp) {
  let error: unknown;
  try {
    program();
  } catch (e) {
    error = e;
  }
  assert.ok(error instanceof mesh.MeshInputError, `expected a MeshInputError, got ${error}`);
  assert.ok(error instanceof pulumi.RunError, "a RunError: the CLI prints it without a stack trace");
  const message = (error as Error).message;
  assert.match(message, component);
  assert.ok(message.includes(`field "${field}"`), `${message} names field ${field}`);
  assert.match(message, problem);
  assert.match(message, /Fix: \S/);
  assert.ok(!message.includes("\n"), "one line");
}

describe("components/behaviour bad input fails at construction", () => {
  beforeEach(() => mocks.reset());
  // Whatever was registered before the refusal is still schema-valid.
  afterEach(async () => {
    await settle();
    assertSchemasValid(mocks.resources, false);
  });
  const m = () => new mesh.Mesh("mesh", { now: NOW });
  const workload = (args: Partial<mesh.MeshedWorkloadArgs> & { name?: string }, owner = m()) =>
    new mesh.MeshedWorkload(args.name ?? "api", {
      mesh: owner, namespace: "shop",
      containers: [{ name: "api", image: "ghcr.io/acme/api:1.4", ports: [{ containerPort: 8080 }] }],
      ports: [{ name: "http", port: 8080 }],
      ...args,
    });

  it("an unknown mode, at every level", () => {
    refuses(() => new mesh.Mesh("mesh", { mode: "enforced" as mesh.Mode }), /^Mesh "mesh"/, "mode", /"enforced", not a mesh mode.*use one of "disabled", "permissive", "audit", "strict"/);
    refuses(() => new mesh.Mesh("mesh", { namespaceModes: { shop: "STRICT" as mesh.Mode } }), /^Mesh "mesh"/, "namespaceModes.shop", /not a mesh mode/);
    refuses(() => new mesh.Mesh("mesh", { proxyTransport: "http2" as mesh.Transport }), /^Mesh "mesh"/, "proxyTransport", /"http2", not a proxy transport.*use one of "h2", "tcp"/);
    refuses(() => workload({ mode: "basic" as mesh.Mode }), /^MeshedWorkload "api"/, "mode", /not a mesh mode/);
    refuses(() => workload({ ports: [{ name: "http", port: 8080, mode: "mtls" as mesh.Mode }] }), /^MeshedWorkload "api"/, "ports[0].mode", /not a mesh mode/);
  });

  it("names that are not DNS-1123", () => {
    refuses(() => workload({ name: "Api" }), /^MeshedWorkload "Api"/, "name", /"Api", not a DNS-1123 label/);
    refuses(() => workload({ namespace: "shop_1" }), /^MeshedWorkload "api"/, "namespace", /"shop_1"/);
    refuses(() => workload({ serviceAccount: "web!" }), /^MeshedWorkload "api"/, "serviceAccount", /"web!"/);
    refuses(() => workload({ containers: [{ name: "API", image: "x:1" }], ports: [] }), /^MeshedWorkload "api"/, "containers[0].name", /"API"/);
    refuses(() => new mesh.Mesh("mesh", { namespace: "-system" }), /^Mesh "mesh"/, "namespace", /not a DNS-1123 label/);
  });

  it("an invalid trust domain", () => {
    refuses(() => new mesh.Mesh("mesh", { trustDomain: "Cluster.Local" }), /^Mesh "mesh"/, "trustDomain", /lowercase/);
    refuses(() => new mesh.Mesh("mesh", { trustDomain: "" }), /^Mesh "mesh"/, "trustDomain", /empty/);
  });

  it("both proxyImage and proxyBuild, or an unpinned image", () => {
    refuses(
      () => new mesh.Mesh("mesh", { proxyImage: "ghcr.io/acme/mesh-proxy:0.1.0", proxyBuild: { repository: "ghcr.io/acme/mesh-proxy" } }),
      /^Mesh "mesh"/, "proxyImage", /both set.*/,
    );
    refuses(() => new mesh.Mesh("mesh", { proxyImage: "ghcr.io/acme/mesh-proxy:latest" }), /^Mesh "mesh"/, "proxyImage", /not a pinned/);
    refuses(() => new mesh.Mesh("mesh", { proxyImage: "ghcr.io/acme/mesh-proxy" }), /^Mesh "mesh"/, "proxyImage", /not a pinned/);
  });

  it("an app port that collides with a proxy port", () => {
    refuses(() => workload({ containers: [{ name: "api", image: "x:1", ports: [{ containerPort: 15021 }] }], ports: [] }), /^MeshedWorkload "api"/, "containers[0].ports[0].containerPort", /15021, a port the mesh proxy owns/);
    refuses(() => workload({ ports: [{ name: "http", port: 15001, targetPort: 8080 }] }), /^MeshedWorkload "api"/, "ports[0].port", /15001/);
    refuses(() => workload({ ports: [{ name: "http", port: 8080, targetPort: 15006 }] }), /^MeshedWorkload "api"/, "ports[0].targetPort", /15006/);
  });

  it("an app container running as the proxy's UID (its traffic would bypass the redirect)", () => {
    refuses(
      () => workload({ containers: [{ name: "api", image: "x:1", securityContext: { runAsUser: 1337 } }], ports: [] }),
      /^MeshedWorkload "api"/, "containers", /container "api" runs as UID 1337, the proxy's UID.*Fix: run it as another UID/,
    );
    refuses(
      () => workload({ containers: [{ name: "api", image: "x:1" }], ports: [], podSpec: { securityContext: { runAsUser: 1337 } } }),
      /^MeshedWorkload "api"/, "containers", /runs as UID 1337/,
    );
    refuses(
      () => workload({ containers: [{ name: "api", image: "x:1" }], ports: [], podSpec: { initContainers: [{ name: "migrate", image: "x:1", securityContext: { runAsUser: 1337 } }] } }),
      /^MeshedWorkload "api"/, "containers", /container "migrate" runs as UID 1337/,
    );
  });

  it("an authorization rule naming a malformed service account", () => {
    const owner = m();
    const api = workload({}, owner);
    for (const [sa, field] of [["web", "rules[0].from.serviceAccounts[0]"], ["shop/Web", "rules[0].from.serviceAccounts[0]"], ["a/b/c", "rules[0].from.serviceAccounts[0]"]]) {
      refuses(
        () => new mesh.AuthorizationPolicy(`p-${sa.replace(/[^a-z]/gi, "").toLowerCase()}`, { mesh: owner, namespace: "shop", workload: api, rules: [{ from: { serviceAccounts: [sa] } }] }),
        /^AuthorizationPolicy "p-/, field, /not a service account reference.*"<namespace>\/<serviceAccount>"/,
      );
    }
    refuses(() => new mesh.AuthorizationPolicy("p-port", { mesh: owner, namespace: "shop", workload: api, rules: [{ from: { namespaces: ["ops"] }, ports: [9999] }] }), /^AuthorizationPolicy "p-port"/, "rules[0].ports[0]", /9999, not a port of MeshedWorkload "api".*use one of 8080/);
    refuses(() => new mesh.AuthorizationPolicy("p-ns", { mesh: owner, namespace: "other", workload: api, rules: [{ from: { namespaces: ["ops"] } }] }), /^AuthorizationPolicy "p-ns"/, "namespace", /lives in "shop"/);
  });

  it("a policy on a workload of another mesh", () => {
    const a = new mesh.Mesh("mesh-a", { now: NOW, namespace: "mesh-a" });
    const b = new mesh.Mesh("mesh-b", { now: NOW, namespace: "mesh-b" });
    const api = workload({}, a);
    refuses(
      () => new mesh.AuthorizationPolicy("allow", { mesh: b, namespace: "shop", workload: api, rules: [{ from: { serviceAccounts: ["shop/web"] } }] }),
      /^AuthorizationPolicy "allow"/, "workload", /MeshedWorkload "api", which belongs to another mesh/,
    );
  });

  it("a renewal window longer than the certificate, and a leaf that could outlive its issuer", () => {
    refuses(() => workload({ identity: { validityHours: 24, renewBeforeHours: 48 } }), /^WorkloadIdentity "api-identity"/, "renewBeforeHours", /not less than validityHours/);
    refuses(() => workload({ identity: { validityHours: 24 * 365 } }), /^WorkloadIdentity "api-identity"/, "validityHours", /outlive its issuer/);
  });

  it("the same service account for two workloads, and a workload declared after the mesh rendered", async () => {
    const owner = m();
    workload({ name: "api" }, owner);
    refuses(() => workload({ name: "api2", serviceAccount: "api" }, owner), /^MeshedWorkload "api2"/, "serviceAccount", /already the identity of MeshedWorkload "api"/);
    await settle();
    refuses(() => workload({ name: "late" }, owner), /^MeshedWorkload "late"/, "mesh", /declared after Mesh "mesh" rendered its config.*Fix: declare meshed workloads, unmeshed clients and authorization policies synchronously at the top level/);
  });
});

describe("components/behaviour meshTransform", () => {
  const plainDeployment = (labels: Record<string, string>) => ({
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name: "invoices", namespace: "billing", labels },
    spec: {
      replicas: 1,
      selector: { matchLabels: { app: "invoices" } },
      template: {
        metadata: { labels: { app: "invoices" } },
        spec: {
          containers: [{
            name: "invoices", image: "ghcr.io/acme/invoices:3.1",
            ports: [{ name: "http", containerPort: 8080 }],
            livenessProbe: { httpGet: { path: "/healthz", port: "http" } },
          }],
        },
      },
    },
  });

  it("meshes a labelled Deployment: same pod contract, identity, config with its probes, a directory entry, a policy target", async () => {
    const { resources, result } = await renderChecked(() => {
      const m = new mesh.Mesh("mesh", { mode: "strict", now: NOW, existingNamespaces: ["billing"] });
      const svc = new k8s.core.v1.Service("invoices", { metadata: { name: "invoices", namespace: "billing" }, spec: { selector: { app: "invoices" }, ports: [{ name: "http", port: 80, targetPort: 8080 }] } });
      const transform = mesh.meshTransform(m, {
        workloads: [{ namespace: "billing", name: "invoices", ports: [{ name: "http", port: 80, targetPort: 8080 }], service: { name: "invoices", clusterIP: svc.spec.clusterIP } }],
      });
      new mesh.AuthorizationPolicy("invoices-allow", { mesh: m, namespace: "billing", workload: transform.workload("billing/invoices"), rules: [{ from: { namespaces: ["shop"] }, ports: [80] }] });
      // What the engine does with `transforms: [transform]`: call it with the Deployment's inputs.
      const out = transform({ custom: true, type: "kubernetes:apps/v1:Deployment", name: "invoices", props: plainDeployment({ [mesh.INJECT_LABEL]: "true" }), opts: {} });
      assert.ok(out, "an opted-in Deployment is transformed");
      new k8s.apps.v1.Deployment("invoices", out.props as k8s.apps.v1.DeploymentArgs, out.opts);
      return {
        skipped: transform({ custom: true, type: "kubernetes:apps/v1:Deployment", name: "other", props: plainDeployment({}), opts: {} }),
        notDeployment: transform({ custom: true, type: "kubernetes:core/v1:ConfigMap", name: "c", props: { metadata: { labels: { [mesh.INJECT_LABEL]: "true" } } }, opts: {} }),
        unlisted: () => transform({ custom: true, type: "kubernetes:apps/v1:Deployment", name: "ghost", props: { ...plainDeployment({ [mesh.INJECT_LABEL]: "true" }), metadata: { name: "ghost", namespace: "billing", labels: { [mesh.INJECT_LABEL]: "true" } } }, opts: {} }),
      };
    });
    assert.equal(result.skipped, undefined, "no opt-in label: untouched");
    assert.equal(result.notDeployment, undefined);
    assert.throws(result.unlisted, /meshTransform "ghost": field "workloads" does not list Deployment billing\/ghost.*Fix: add \{ namespace: "billing", name: "ghost" \}/);

    const pod = object(resources, "Deployment", "invoices", "billing").inputs.spec.template.spec;
    assert.deepEqual(pod.initContainers.map((c: any) => c.name), ["mesh-init", "mesh-proxy"]);
    assert.deepEqual(pod.initContainers[0].args, ["init", "--inbound-ports", "8080", "--proxy-uid", "1337"]);
    assert.equal(pod.serviceAccountName, "invoices");
    assert.deepEqual(pod.containers[0].livenessProbe, { httpGet: { path: "/app-health/invoices/livez", port: 15021, scheme: "HTTP" } });
    assert.equal(object(resources, "Deployment", "invoices", "billing").inputs.spec.template.metadata.labels["mtls-mesh.io/workload"], "invoices");

    const config = parseWorkloadConfig(workloadJson(resources, "invoices-mesh-config", "billing"));
    assert.deepEqual(config.probes, [{ path: "/app-health/invoices/livez", port: 8080, targetPath: "/healthz", scheme: "HTTP" }]);
    assert.deepEqual(config.inbound.ports, [{ port: 8080, mode: "strict" }]);
    assert.deepEqual(config.authorization, { rules: [{ ports: [8080], namespaces: ["shop"] }] });
    const dir = directoryJson(resources, "billing");
    assert.deepEqual(dir.services[0].addresses, [clusterIpFor("billing", "invoices")]);
    assert.deepEqual(dir.services[0].ports, [{ port: 80, targetPort: 8080, mode: "strict" }]);
    const deployment = object(resources, "Deployment", "invoices", "billing");
    for (const [kind, name] of [["Secret", "mesh-identity-invoices"], ["ConfigMap", "invoices-mesh-config"]]) {
      assert.ok(deployment.dependencies.includes(object(resources, kind, name, "billing").urn), `the transformed Deployment waits for ${kind} ${name}`);
    }
    object(resources, "ServiceAccount", "invoices", "billing");
    assert.ok(!resources.some((r) => r.inputs.kind === "Namespace" && r.outputs.metadata.name === "billing"), "existing namespaces are not created");
  });

  it("fails the update with a clear error when a listed Deployment never passes through the transform", async () => {
    let forgotten: mesh.TransformedWorkload | undefined;
    const settled = render(() => {
      const m = new mesh.Mesh("mesh", { now: NOW, existingNamespaces: ["billing"] });
      forgotten = mesh.meshTransform(m, { workloads: [{ namespace: "billing", name: "forgotten" }], waitSeconds: 0.2 }).workload("billing/forgotten");
    });
    // The engine would fail the ConfigMap's registration with this error.
    const config = (forgotten!.workloadConfig as unknown as { promise(): Promise<string> }).promise();
    await assert.rejects(config, /meshTransform workload "billing\/forgotten": field "workloads" lists a Deployment that the transform never saw within 0.2 s. Fix: attach the transform/);
    assertSchemasValid((await settled).resources);
    forgetStrandedRegistrations();
  });
});

describe("components/behaviour mesh options", () => {
  it("builds and pins the proxy image with @pulumi/docker-build when proxyBuild is set", async () => {
    const { resources } = await renderChecked(() => {
      const m = new mesh.Mesh("mesh", { now: NOW, proxyBuild: { repository: "ghcr.io/acme/mesh-proxy", tag: "0.1.0" } });
      new mesh.MeshedWorkload("api", { mesh: m, namespace: "shop", containers: [{ name: "api", image: "x:1" }] });
    });
    const image = find(resources, "docker-build:index:Image", "mesh-proxy-image").inputs;
    assert.match(image.context.location, /\/main$|pulumi-mtls-mesh$|[^/]+$/);
    assert.equal(image.dockerfile.location, `${image.context.location}/proxy/Dockerfile`);
    assert.deepEqual(image.tags, ["ghcr.io/acme/mesh-proxy:0.1.0"]);
    assert.equal(image.push, true);
    const ref = find(resources, "docker-build:index:Image", "mesh-proxy-image").outputs.ref;
    assert.match(ref, /^ghcr\.io\/acme\/mesh-proxy:0\.1\.0@sha256:/);
    assert.equal(object(resources, "Deployment", "api", "shop").inputs.spec.template.spec.initContainers[0].image, ref);
    assert.equal(object(resources, "DaemonSet", "mesh-proxy", "mesh-system").inputs.spec.template.spec.containers[0].image, ref);
  });

  it("passes exclusions and proxy resources into every injected pod", async () => {
    const { resources } = await renderChecked(() => {
      const m = new mesh.Mesh("mesh", {
        now: NOW, excludeOutboundPorts: [5432], excludeOutboundCidrs: ["169.254.169.254/32"], excludeInboundPorts: [9100],
        proxyResources: { requests: { cpu: "50m", memory: "32Mi" }, limits: { memory: "128Mi" } },
      });
      new mesh.MeshedWorkload("api", { mesh: m, namespace: "shop", containers: [{ name: "api", image: "x:1", ports: [{ containerPort: 8080 }, { containerPort: 9100 }] }], ports: [{ port: 8080 }] });
    });
    const pod = object(resources, "Deployment", "api", "shop").inputs.spec.template.spec;
    assert.deepEqual(pod.initContainers[0].args, ["init", "--inbound-ports", "8080", "--proxy-uid", "1337", "--exclude-outbound-ports", "5432", "--exclude-outbound-cidrs", "169.254.169.254/32", "--exclude-inbound-ports", "9100"]);
    assert.deepEqual(pod.initContainers[1].resources, { requests: { cpu: "50m", memory: "32Mi" }, limits: { memory: "128Mi" } });
  });

  it("passes proxyTransport to every proxy (sidecars, transformed pods, the DaemonSet), and nothing when unset", async () => {
    const run = ["run", "--config", "/etc/mesh", "--identity", "/var/run/mesh/identity"];
    const sidecarArgs = (spec: any) => spec.initContainers.find((c: any) => c.name === "mesh-proxy").args;
    const meshed = (proxyTransport?: mesh.Transport) =>
      renderChecked(() => {
        const m = new mesh.Mesh("mesh", { now: NOW, proxyTransport });
        new mesh.MeshedWorkload("api", { mesh: m, namespace: "shop", containers: [{ name: "api", image: "x:1" }] });
      });
    const tcp = (await meshed("tcp")).resources;
    assert.deepEqual(sidecarArgs(object(tcp, "Deployment", "api", "shop").inputs.spec.template.spec), [...run, "--transport", "tcp"]);
    assert.deepEqual(object(tcp, "DaemonSet", "mesh-proxy", "mesh-system").inputs.spec.template.spec.containers[0].args, [...run, "--transport", "tcp"]);
    assert.deepEqual(sidecarArgs(object((await meshed()).resources, "Deployment", "api", "shop").inputs.spec.template.spec), run);

    const transformed = await render(() => {
      const m = new mesh.Mesh("mesh", { now: NOW, proxyTransport: "h2", existingNamespaces: ["billing"] });
      const transform = mesh.meshTransform(m, { workloads: [{ namespace: "billing", name: "invoices" }] });
      const labels = { app: "invoices" };
      const out = transform({
        custom: true, type: "kubernetes:apps/v1:Deployment", name: "invoices", opts: {},
        props: { metadata: { name: "invoices", namespace: "billing", labels: { [mesh.INJECT_LABEL]: "true" } }, spec: { selector: { matchLabels: labels }, template: { metadata: { labels }, spec: { containers: [{ name: "invoices", image: "x:1" }] } } } },
      });
      new k8s.apps.v1.Deployment("invoices", out!.props as k8s.apps.v1.DeploymentArgs, out!.opts);
    });
    assert.deepEqual(sidecarArgs(object(transformed.resources, "Deployment", "invoices", "billing").inputs.spec.template.spec), [...run, "--transport", "h2"]);
  });

  it("renders a StatefulSet with the same pod contract", async () => {
    const { resources } = await renderChecked(() => {
      const m = new mesh.Mesh("mesh", { now: NOW });
      new mesh.MeshedWorkload("db", { mesh: m, namespace: "data", kind: "StatefulSet", containers: [{ name: "db", image: "x:1", ports: [{ containerPort: 5432 }] }], ports: [{ name: "pg", port: 5432, mode: "permissive" }] });
    });
    const sts = object(resources, "StatefulSet", "db", "data").inputs.spec;
    // The governing Service is headless (pods get db-0.db-headless.data.svc); clients keep the ClusterIP one.
    assert.equal(sts.serviceName, "db-headless");
    assert.equal(object(resources, "Service", "db-headless", "data").inputs.spec.clusterIP, "None");
    assert.notEqual(object(resources, "Service", "db", "data").outputs.spec.clusterIP, "None");
    assert.deepEqual(sts.template.spec.initContainers.map((c: any) => c.name), ["mesh-init", "mesh-proxy"]);
    assert.equal(directoryJson(resources, "data").services[0].ports[0].mode, "permissive");
  });

  it("makes a PostgreSQL port opaque by default: tunnel port on the Service, opaque in workload.json and the directory, the tunnel admitted where the port is", async () => {
    const { resources } = await renderChecked(() => {
      const m = new mesh.Mesh("mesh", { now: NOW });
      const db = new mesh.MeshedWorkload("db", { mesh: m, namespace: "data", containers: [{ name: "db", image: "x:1", ports: [{ containerPort: 5432 }, { containerPort: 9187 }] }], ports: [{ name: "pg", port: 5432 }, { name: "metrics", port: 9187 }] });
      new mesh.AuthorizationPolicy("db-allow", { mesh: m, namespace: "data", workload: db, rules: [{ from: { serviceAccounts: ["shop/api"] }, ports: [5432] }, { from: { namespaces: ["monitoring"] }, ports: [9187] }] });
    });
    assert.deepEqual(object(resources, "Service", "db", "data").inputs.spec.ports.map((p: any) => `${p.name}:${p.port}->${p.targetPort}`), ["pg:5432->5432", "metrics:9187->9187", "mesh-tunnel:15008->15008"]);
    assert.deepEqual(workloadJson(resources, "db-mesh-config", "data").inbound.ports, [{ port: 5432, mode: "permissive", opaque: true }, { port: 9187, mode: "permissive" }]);
    assert.deepEqual(directoryJson(resources, "data").services[0].ports, [{ port: 5432, targetPort: 5432, mode: "permissive", opaque: true }, { port: 9187, targetPort: 9187, mode: "permissive" }]);
    const ingress = object(resources, "NetworkPolicy", "db-allow", "data").inputs.spec.ingress;
    assert.deepEqual(ingress.map((i: any) => i.ports?.map((p: any) => p.port)), [[5432, 15008], [9187], [15021]]);
  });

  it("joins another program's mesh: existing CA, no second node proxy, the other program's services in the directory", async () => {
    const { resources, result } = await renderChecked(() => {
      const platformCa = new mesh.CertificateAuthority("platform-ca", { now: NOW });
      const platform = new mesh.Mesh("platform", { now: NOW, ca: platformCa });
      new mesh.MeshedWorkload("accounts", { mesh: platform, namespace: "identity", containers: [{ name: "accounts", image: "x:1", ports: [{ containerPort: 8080 }] }], ports: [{ port: 8080 }] });
      // What the apps program receives through a StackReference: plain outputs.
      const ca = new mesh.CertificateAuthority("shared-ca", {
        existing: { rootCertPem: platformCa.rootCertPem, issuerCertPem: platformCa.issuerCertPem, issuerKeyPem: platformCa.issuerKeyPem },
      });
      const apps = new mesh.Mesh("apps", { now: NOW, ca, nodeProxy: false, namespace: "apps-mesh", importedServices: platform.services });
      new mesh.MeshedWorkload("invoices", { mesh: apps, namespace: "billing", containers: [{ name: "invoices", image: "x:1", ports: [{ containerPort: 8080 }] }], ports: [{ port: 8080 }] });
      return { ca };
    });
    assert.equal(resources.filter((r) => r.inputs.kind === "DaemonSet").length, 1, "only the platform runs the node proxy");
    assert.ok(!resources.some((r) => r.type.startsWith("tls:") && r.name.startsWith("shared-ca")), "an existing CA creates nothing");
    assert.equal(await pulumi.isSecret(result.ca.issuerKeyPem), true);
    assert.deepEqual(directoryJson(resources, "billing", "apps").services.map((s: any) => `${s.namespace}/${s.name}`), ["billing/invoices", "identity/accounts"]);
    const chain = find(resources, "Secret", "invoices-identity-secret").inputs.stringData["tls.crt"].match(/BEGIN CERTIFICATE/g);
    assert.equal(chain.length, 2, "leaf + the platform's issuer");
  });

  it("rotates a root with an overlapping trust bundle and keeps issuer keys secret", async () => {
    const { resources, result } = await renderChecked(() => {
      const next = new mesh.CertificateAuthority("ca-2027", { now: NOW, protect: true });
      const current = new mesh.CertificateAuthority("ca-2026", { now: NOW, additionalTrustedRoots: [next.rootCertPem] });
      const m = new mesh.Mesh("mesh", { now: NOW, ca: current });
      new mesh.MeshedWorkload("api", { mesh: m, namespace: "shop", containers: [{ name: "api", image: "x:1" }] });
      return { current, next };
    });
    const bundle = find(resources, "Secret", "api-identity-secret").inputs.stringData["ca.crt"];
    const roots = bundle.match(/BEGIN CERTIFICATE/g);
    assert.equal(roots.length, 2, "ca.crt trusts the current and the next root");
    assert.ok(bundle.startsWith((await valueOf(result.current.rootCertPem)).trim()));
    assert.equal(find(resources, "SelfSignedCert", "ca-2027-root").protect, true);
    assert.equal(find(resources, "PrivateKey", "ca-2027-root-key").protect, true);
    assert.equal(await pulumi.isSecret(result.current.issuerKeyPem), true);
    assert.ok(!resources.some((r) => r.type === "tls:index/privateKey:PrivateKey" && r.name.startsWith("ca-2026") && r.protect), "protect is opt-in");
    mocks.forgetState();
  });
});
