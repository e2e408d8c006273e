// What a first `pulumi up` on a real cluster would hit (issue "Real-cluster correctness"), under
// mocks made faithful to the engine (whole-chain URNs, duplicate URNs refused) and to the
// providers' replace rules (test/support/provider-diff.ts).
import { diff, find, mocks, object, renderChecked } from "./harness";
import * as assert from "node:assert/strict";
import * as pulumi from "@pulumi/pulumi";
import * as k8s from "@pulumi/kubernetes";
import * as mesh from "../../components";
import { render, settle } from "../support/pulumi-mocks";
import { configProviderArgs } from "../../components/config-provider";

const NOW = Date.UTC(2026, 10, 28, 12);
const app = (name: string) => [{ name, image: "ghcr.io/acme/app:1.0", ports: [{ containerPort: 8080 }] }];

function members(namespaces: string[], args: mesh.MeshArgs = {}) {
  const m = new mesh.Mesh("mesh", { now: NOW, ...args });
  for (const ns of namespaces) new mesh.MeshedWorkload(`${ns}-api`, { mesh: m, namespace: ns, containers: app("api"), ports: [{ port: 8080 }] });
  return m;
}

describe("components/real-cluster namespaces", () => {
  it("a member namespace is a NamespacePatch: taking it out of the mesh deletes no Namespace", async () => {
    const before = await renderChecked(() => members(["shop", "billing"]));
    const after = await renderChecked(() => members(["shop"]));
    const deleted = diff(before.resources, after.resources).filter((c) => c.op === "delete");
    assert.ok(deleted.some((c) => c.type === "kubernetes:core/v1:NamespacePatch" && c.name === "mesh-ns-billing"), "the mesh lets go of billing");
    // Deleting a Patch resource relinquishes its fields (pulumi-kubernetes await.go), the namespace stays.
    assert.deepEqual(deleted.filter((c) => c.type === "kubernetes:core/v1:Namespace"), []);
    const moved = await renderChecked(() => members(["shop", "billing"], { existingNamespaces: ["default", "billing"] }));
    assert.deepEqual(diff(before.resources, moved.resources).filter((c) => /Namespace$/.test(c.type)), []);
  });

  it("a stack made by an earlier version (a Namespace per member) upgrades without deleting that Namespace", async () => {
    const current = await renderChecked(() => members(["shop"]));
    // The earlier version's state: the same resource as a Namespace, at the URN a Namespace had.
    const earlier = current.resources.map((r) =>
      r.type === "kubernetes:core/v1:NamespacePatch"
        ? { ...r, type: "kubernetes:core/v1:Namespace", urn: r.urn.replace("kubernetes:core/v1:NamespacePatch", "kubernetes:core/v1:Namespace"), aliasUrns: [] }
        : r,
    );
    const changes = diff(earlier, current.resources);
    assert.deepEqual(changes.filter((c) => c.op === "delete"), [], "nothing deleted: the patch takes over the Namespace's state through its alias");
  });

  it("labels member namespaces for Pod Security unless told to leave them", async () => {
    const labelled = await renderChecked(() => members(["shop"]));
    assert.equal(find(labelled.resources, "NamespacePatch", "mesh-ns-shop").inputs.metadata.labels["pod-security.kubernetes.io/enforce"], "privileged");
    const left = await renderChecked(() => members(["shop"], { podSecurity: "unmanaged" }));
    assert.equal(find(left.resources, "NamespacePatch", "mesh-ns-shop").inputs.metadata.labels["pod-security.kubernetes.io/enforce"], undefined);
    assert.throws(() => new mesh.Mesh("bad", { podSecurity: "baseline" as mesh.PodSecurity }), /field "podSecurity" is "baseline", not a Pod Security choice/);
    await settle();
    mocks.reset();
  });
});

describe("components/real-cluster config and identity Secrets are updated in place", () => {
  it("registers every mesh ConfigMap and Secret with a provider that sets both mutable flags", async () => {
    const { resources } = await renderChecked(() => members(["shop"]));
    const provider = find(resources, "kubernetes", "mesh-config-provider");
    assert.equal(provider.type, "pulumi:providers:kubernetes");
    const ref = (r: { provider: string }) => r.provider.slice(0, r.provider.lastIndexOf("::"));
    for (const r of resources.filter((x) => x.inputs.kind === "ConfigMap" || x.inputs.kind === "Secret")) {
      assert.equal(ref(r), provider.urn, `${r.inputs.kind} ${r.name} uses the mesh's provider`);
    }
    for (const r of resources.filter((x) => x.inputs.kind === "Deployment" || x.inputs.kind === "DaemonSet")) assert.equal(r.provider, "", `${r.name} keeps the user's provider`);
  });

  it("copies the stack's kubernetes:* cluster settings, so config lands in the same cluster", () => {
    const config: Record<string, string> = { context: "kind-dev", namespace: "apps", enableServerSideApply: "false", renderYamlToDirectory: "out" };
    assert.deepEqual(configProviderArgs((k) => config[k]), {
      context: "kind-dev", namespace: "apps", renderYamlToDirectory: "out", enableServerSideApply: false,
      enableConfigMapMutable: true, enableSecretMutable: true,
    });
  });

  it("stores no $KUBECONFIG path in the provider's inputs (a path list breaks the provider; another machine lacks the path)", async () => {
    const saved = process.env.KUBECONFIG;
    process.env.KUBECONFIG = "/home/alice/.kube/a.yaml:/home/alice/.kube/b.yaml";
    try {
      const { resources } = await renderChecked(() => members(["shop"]));
      assert.equal(find(resources, "kubernetes", "mesh-config-provider").inputs.kubeconfig, "", "empty: client-go's loading rules, as the default provider");
    } finally {
      if (saved === undefined) delete process.env.KUBECONFIG;
      else process.env.KUBECONFIG = saved;
    }
  });

  it("refuses a Mesh given a Kubernetes provider through its options without a configProvider, and takes one with it", async () => {
    const { resources } = await render(() => {
      const user = new k8s.Provider("user", { context: "prod" });
      assert.throws(() => new mesh.Mesh("mesh", { now: NOW }, { provider: user }), /field "configProvider" is not set, but the Mesh got a Kubernetes provider.*Fix: pass configProvider/);
      const configProvider = new k8s.Provider("user-config", { context: "prod", enableConfigMapMutable: true, enableSecretMutable: true });
      const m = new mesh.Mesh("mesh2", { now: NOW, configProvider }, { provider: user });
      new mesh.MeshedWorkload("api", { mesh: m, namespace: "shop", containers: app("api"), ports: [{ port: 8080 }] }, { provider: user });
    });
    const cm = resources.find((r) => r.inputs.kind === "ConfigMap" && r.name === "api-mesh-config");
    assert.ok(cm && cm.provider.includes("::user-config::"), "the given configProvider");
  });
});

describe("components/real-cluster names the engine would refuse", () => {
  const twoApis = (policy: boolean) => () => {
    const m = new mesh.Mesh("mesh", { now: NOW });
    const shop = new mesh.MeshedWorkload("api", { mesh: m, namespace: "shop", containers: app("api"), ports: [{ port: 8080 }] });
    new mesh.MeshedWorkload(policy ? "api2" : "api", { mesh: m, namespace: "billing", containers: app("api"), ports: [{ port: 8080 }] });
    if (policy) {
      new mesh.AuthorizationPolicy("allow", { mesh: m, namespace: "shop", workload: shop, rules: [{ from: { namespaces: ["shop"] } }] });
      const billing = new mesh.MeshedWorkload("other", { mesh: m, namespace: "billing", containers: app("api"), ports: [{ port: 8080 }] });
      new mesh.AuthorizationPolicy("allow", { mesh: m, namespace: "billing", workload: billing, rules: [{ from: { namespaces: ["shop"] } }] });
    }
  };

  it("the same workload or policy name in two namespaces: our error with the fix, before the engine's Duplicate resource URN", async () => {
    for (const [policy, kind] of [[false, "MeshedWorkload"], [true, "AuthorizationPolicy"]] as const) {
      let error: unknown;
      try {
        twoApis(policy)();
      } catch (e) {
        error = e;
      }
      assert.ok(error instanceof mesh.MeshInputError, `${kind}: ${error}`);
      assert.match((error as Error).message, new RegExp(`^${kind} "(api|allow)": field "name" is already the name of the ${kind} in namespace "shop".*Duplicate resource URN.*Fix: give this one another name, e.g. "billing-`));
      await settle();
      mocks.reset();
    }
  });

  it("the same name under parents of different types is fine (URNs carry the parents' type chain)", async () => {
    const { resources } = await renderChecked(() => {
      const m = new mesh.Mesh("mesh", { now: NOW });
      const teamA = new pulumi.ComponentResource("acme:index:Shop", "a");
      const teamB = new pulumi.ComponentResource("acme:index:Billing", "b");
      new mesh.MeshedWorkload("api", { mesh: m, namespace: "shop", containers: app("api"), ports: [{ port: 8080 }] }, { parent: teamA });
      new mesh.MeshedWorkload("api", { mesh: m, namespace: "billing", serviceAccount: "api", containers: app("api"), ports: [{ port: 8080 }] }, { parent: teamB });
    }).catch((e) => assert.fail(String(e)));
    const urns = resources.filter((r) => r.type === "mtls-mesh:index:MeshedWorkload").map((r) => r.urn);
    assert.equal(new Set(urns).size, 2);
    assert.ok(urns.some((u) => u.includes("::acme:index:Shop$mtls-mesh:index:MeshedWorkload::api")), urns.join(" "));
    assert.ok(urns.some((u) => u.includes("::acme:index:Billing$mtls-mesh:index:MeshedWorkload::api")), urns.join(" "));
    // Parents of one type do not tell URNs apart: refused, with our message.
    assert.throws(() => {
      const m = new mesh.Mesh("mesh", { now: NOW });
      for (const team of ["a", "b"]) {
        const parent = new pulumi.ComponentResource("acme:index:Team", team);
        new mesh.MeshedWorkload("api", { mesh: m, namespace: team, containers: app("api") }, { parent });
      }
    }, /MeshedWorkload "api": field "name" is already the name of the MeshedWorkload in namespace "a"/);
    await settle();
    mocks.reset();
  });

  it("the mocks refuse a duplicate URN as the engine does", async () => {
    await assert.rejects(
      render(() => {
        new k8s.core.v1.ConfigMap("same", { metadata: { name: "a" } });
        new k8s.core.v1.ConfigMap("same", { metadata: { name: "b" } });
      }),
      /Duplicate resource URN 'urn:pulumi:test::mesh-test::kubernetes:core\/v1:ConfigMap::same'/,
    );
  });

  it("a workload with a Service must start with a letter (DNS-1035); long service accounts fit their Secret", async () => {
    assert.throws(
      () => new mesh.MeshedWorkload("1api", { mesh: new mesh.Mesh("m1", { now: NOW }), namespace: "shop", containers: app("api"), ports: [{ port: 8080 }] }),
      /MeshedWorkload "1api": field "name" is "1api", which starts with a digit.*DNS-1035.*Fix: start the name with a letter/,
    );
    await settle();
    const sa = "a-service-account-name-that-is-sixty-characters-long-xxxxxxx";
    assert.equal(sa.length, 60);
    const { resources } = await renderChecked(() =>
      new mesh.MeshedWorkload("api", { mesh: new mesh.Mesh("mesh", { now: NOW }), namespace: "shop", serviceAccount: sa, containers: app("api"), ports: [{ port: 8080 }] }),
    );
    object(resources, "Secret", `mesh-identity-${sa}`, "shop");
  });
});

describe("components/real-cluster root rotation keeps the Mesh's CA", () => {
  it("certificateAuthority.additionalTrustedRoots adds a root to every bundle without replacing the root, and protect guards it", async () => {
    const before = await renderChecked(() => members(["shop"], { certificateAuthority: { protect: true } }));
    const next = find(before.resources, "SelfSignedCert", "mesh-ca-root").outputs.certPem as string;
    const after = await renderChecked(() => members(["shop"], { certificateAuthority: { protect: true, additionalTrustedRoots: [next] } }));
    const changes = diff(before.resources, after.resources);
    assert.deepEqual(changes.filter((c) => c.type.startsWith("tls:")), [], "no key or certificate is replaced or created");
    assert.ok(changes.every((c) => c.op === "update" && c.type === "kubernetes:core/v1:Secret"), JSON.stringify(changes));
    assert.equal(find(after.resources, "PrivateKey", "mesh-ca-root-key").protect, true);
    assert.ok(find(after.resources, "PrivateKey", "mesh-ca-root-key").urn.endsWith("::mtls-mesh:index:Mesh$mtls-mesh:index:CertificateAuthority$tls:index/privateKey:PrivateKey::mesh-ca-root-key"));
    assert.throws(() => new mesh.Mesh("twice", { ca: new mesh.CertificateAuthority("ca", { now: NOW }), certificateAuthority: {} }), /field "certificateAuthority" and "ca" are both set/);
    await settle();
    mocks.reset();
  });
});

describe("components/real-cluster NetworkPolicies enforce only where the mode does", () => {
  const policy = (mode: mesh.Mode) => () => {
    const m = new mesh.Mesh("mesh", { now: NOW, mode });
    const api = new mesh.MeshedWorkload("api", { mesh: m, namespace: "shop", containers: app("api"), ports: [{ name: "http", port: 8080 }] });
    new mesh.AuthorizationPolicy("api-allow", { mesh: m, namespace: "shop", workload: api, rules: [{ from: { serviceAccounts: ["shop/web"] } }] });
  };

  it("disabled: the NetworkPolicy admits everyone, as the proxy does; permissive and strict: only the rule's peers", async () => {
    const disabled = object((await renderChecked(policy("disabled"))).resources, "NetworkPolicy", "api-allow", "shop").inputs.spec;
    assert.deepEqual(disabled.ingress, [{}]);
    for (const mode of ["permissive", "strict"] as const) {
      const spec = object((await renderChecked(policy(mode))).resources, "NetworkPolicy", "api-allow", "shop").inputs.spec;
      assert.ok(spec.ingress.every((rule: object) => Object.keys(rule).length > 0), `${mode}: no allow-all rule`);
      assert.ok(spec.ingress.some((rule: { from?: unknown[] }) => rule.from?.length === 1), `${mode}: shop/web`);
    }
  });
});

/** An opted-in Deployment as a transform receives it. */
const deployment = (metadata: Record<string, unknown>) => ({
  custom: true,
  type: "kubernetes:apps/v1:Deployment",
  name: "invoices",
  props: { metadata: { labels: { "mtls-mesh.io/inject": "true" }, ...metadata }, spec: { selector: { matchLabels: { app: "invoices" } }, template: { metadata: { labels: { app: "invoices" } }, spec: { containers: [{ name: "app", image: "x:1", ports: [{ containerPort: 8080 }] }] } } } },
  opts: {},
}) as unknown as pulumi.ResourceTransformArgs;

describe("components/real-cluster meshTransform under the real engine", () => {

  it("hands the engine custom resources to wait for (a transform's dependsOn travels as URNs; a component's would not cover its children)", async () => {
    await renderChecked(() => {
      const m = members(["shop"]);
      const t = mesh.meshTransform(m, { workloads: [{ namespace: "billing", name: "invoices", ports: [{ port: 8080 }] }] });
      const out = t(deployment({ name: "invoices", namespace: "billing" }));
      const deps = out!.opts!.dependsOn as pulumi.Resource[];
      assert.ok(deps.length >= 3 && deps.every((d) => pulumi.CustomResource.isInstance(d)), "custom resources only");
      assert.ok(deps.includes(m.directoryConfigMap("billing")), "the directory ConfigMap too");
    });
  });

  it("refuses an opted-in Deployment without metadata.namespace (the provider's namespace is unknown to a transform)", async () => {
    await renderChecked(() => {
      const t = mesh.meshTransform(members(["shop"]), { workloads: [{ namespace: "billing", name: "invoices" }] });
      assert.throws(() => t(deployment({ name: "invoices" })), /field "metadata.namespace" is not set.*Fix: set metadata.namespace/);
      t(deployment({ name: "invoices", namespace: "billing" }));
    });
  });
});

describe("components/real-cluster renewal needs Pulumi 3.208", () => {
  it("fails the update (a ResourceError, not only an error log) on an engine without replacementTrigger, and passes on one with it", async () => {
    const { checkRenewalSupport, engineSupports, renewalProblem } = await import("../../components/engine-check");
    assert.match(renewalProblem(false)!, /ignores the replacementTrigger option.*Fix: upgrade the Pulumi CLI to 3\.208\.0 or later/);
    assert.equal(renewalProblem(true), undefined);
    const m = members([]);
    await assert.rejects(checkRenewalSupport(m, async (feature) => feature !== "replacementTrigger"), (e: unknown) => e instanceof pulumi.ResourceError && /3\.208\.0/.test((e as Error).message));
    await checkRenewalSupport(m, async () => true);
    // The mock monitor answers like a current engine.
    assert.equal(await engineSupports("replacementTrigger"), true);
    await settle();
    mocks.reset();
  });
});

describe("components/real-cluster dual-stack Services", () => {
  it("lists every ClusterIP of a Service in the directory, so a client dialing the IPv6 one is meshed too", async () => {
    const { resources } = await renderChecked(() => {
      const m = members([]);
      const t = mesh.meshTransform(m, { workloads: [{ namespace: "billing", name: "invoices", ports: [{ port: 8080 }], service: { name: "invoices", clusterIP: "10.96.7.7", clusterIPs: ["10.96.7.7", "fd00:96::7"] } }] });
      // The mocks run no transforms: hand the Deployment through it as the engine would.
      const out = t(deployment({ name: "invoices", namespace: "billing" }))!;
      new k8s.apps.v1.Deployment("invoices", out.props as k8s.apps.v1.DeploymentArgs, out.opts);
    });
    const directory = JSON.parse(object(resources, "ConfigMap", "mesh-directory", "billing").outputs.data["directory.json"]);
    assert.deepEqual(directory.services[0].addresses, ["10.96.7.7", "fd00:96::7"]);
  });
});

describe("components/real-cluster the examples fail fast without an image", () => {
  it("a Mesh without proxyImage or proxyBuild warns that the default image is not published, on every run", async () => {
    await renderChecked(() => members(["shop"]));
    assert.equal(mocks.warnings.filter((w) => /Mesh "mesh": proxyImage is not set, so pods use ghcr\.io\/pulumi-mtls-mesh\/mesh-proxy:0\.1\.0, which is not published yet.*kind load docker-image/.test(w)).length, 1);
    await renderChecked(() => members(["shop"], { proxyImage: "registry.example/mesh-proxy:1.0" }));
    assert.deepEqual(mocks.warnings, []);
  });

  it("the quickstart stops on the missing proxyImage before it declares anything (no ImagePullBackOff await)", async () => {
    pulumi.runtime.setAllConfig({});
    const quickstart = require.resolve("../../examples/quickstart/index.js");
    delete require.cache[quickstart];
    const { resources } = await render(() => assert.throws(() => require(quickstart), /Missing required configuration variable 'mesh-test:proxyImage'/));
    assert.deepEqual(resources, []);
  });
});

describe("components/real-cluster meshTransform waits from the end of the program", () => {
  it("a program whose synchronous part outlasts waitSeconds still meshes a Deployment that arrives right after", async () => {
    const { resources } = await renderChecked(() => {
      const t = mesh.meshTransform(members([]), { workloads: [{ namespace: "billing", name: "invoices" }], waitSeconds: 0.3 });
      const busyUntil = Date.now() + 500; // the rest of a large program, declared synchronously
      while (Date.now() < busyUntil);
      // The engine runs transforms only after the program has declared its resources.
      setTimeout(() => {
        const out = t(deployment({ name: "invoices", namespace: "billing" }))!;
        new k8s.apps.v1.Deployment("invoices", out.props as k8s.apps.v1.DeploymentArgs, out.opts);
      }, 100);
    });
    object(resources, "ConfigMap", "invoices-mesh-config", "billing");
  });
});

describe("components/real-cluster objects the API server would refuse", () => {
  it("a StatefulSet's headless Service lists each pod port once, and its name is a DNS-1035 label even without ports", async () => {
    const { resources } = await renderChecked(() =>
      new mesh.MeshedWorkload("db", {
        mesh: members([]), namespace: "data", kind: "StatefulSet",
        containers: [{ name: "db", image: "x:1", ports: [{ containerPort: 5432 }] }],
        ports: [{ name: "a", port: 5432 }, { name: "b", port: 15432, targetPort: 5432 }],
      }),
    );
    assert.deepEqual(object(resources, "Service", "db-headless", "data").inputs.spec.ports.map((p: { port: number }) => p.port), [5432]);
    assert.throws(
      () => new mesh.MeshedWorkload("1db", { mesh: new mesh.Mesh("m2", { now: NOW }), namespace: "data", kind: "StatefulSet", containers: [{ name: "db", image: "x:1" }] }),
      /MeshedWorkload "1db": field "name" is "1db", which starts with a digit/,
    );
    await settle();
    mocks.reset();
  });

  it("a MeshedWorkload on another Kubernetes provider than its Mesh is refused (its config would land on the Mesh's cluster)", async () => {
    await render(() => {
      const m = members([]);
      const other = new k8s.Provider("other", { context: "staging" });
      assert.throws(() => new mesh.MeshedWorkload("api", { mesh: m, namespace: "shop", containers: app("api") }, { provider: other }), /MeshedWorkload "api": field "provider" differs from its Mesh's Kubernetes provider/);
    });
  });
});
