// The reachability matrix: the pure resolver without mocks, then the matrix the examples render
// (every mode, every level override), what a policy edit changes, and the guard on a strict flip.
import * as assert from "node:assert/strict";
import * as mesh from "../../components";
import { MatrixClient, MatrixServer, breakingEdges, edgeLine, parseReachability, renderReachability, resolveReachability } from "../../components/reachability";
import { Resources, diff, matrixLines, mocks, object, renderExample, renderQuickstart } from "./harness";
import { render, settle } from "../support/pulumi-mocks";

const NOW = Date.parse("2026-03-01T00:00:00Z");

describe("components/reachability resolveReachability (pure)", () => {
  const web: MatrixClient = { key: "sa:shop/web", meshed: true, namespace: "shop", serviceAccount: "web" };
  const ops: MatrixClient = { key: "sa:ops/admin", meshed: true, namespace: "ops", serviceAccount: "admin" };
  const legacy: MatrixClient = { key: "unmeshed:legacy", meshed: false };
  const server = (mode: mesh.Mode, policies: MatrixServer["policies"] = []): MatrixServer => ({
    workload: "shop/api",
    ports: [{ port: 80, targetPort: 8080, mode }, { port: 9102, targetPort: 9102, mode: "permissive" }],
    policies,
  });
  const policy = {
    key: "shop/api-allow",
    rules: [
      { serviceAccounts: [{ namespace: "shop", serviceAccount: "web" }], namespaces: [], clients: [], ports: [8080] },
      { serviceAccounts: [], namespaces: ["ops"], clients: ["unmeshed:legacy"], ports: [9102] },
    ],
  };
  const lines = (mode: mesh.Mode, policies?: MatrixServer["policies"]) => resolveReachability([web, ops, legacy], [server(mode, policies)]).map(edgeLine);

  it("mirrors the proxy per mode: transport by the client's side, allow or deny by mode then rules, the deciding rule named", () => {
    assert.deepEqual(lines("strict", [policy]), [
      "shop/api:80 from sa:ops/admin: strict, mtls, deny (no rule of shop/api-allow names it)",
      "shop/api:80 from sa:shop/web: strict, mtls, allow (shop/api-allow rule 1)",
      "shop/api:80 from unmeshed:legacy: strict, plaintext, deny (strict refuses plaintext)",
      "shop/api:9102 from sa:ops/admin: permissive, mtls, allow (shop/api-allow rule 2)",
      "shop/api:9102 from sa:shop/web: permissive, mtls, deny (no rule of shop/api-allow names it)",
      "shop/api:9102 from unmeshed:legacy: permissive, plaintext, allow (shop/api-allow rule 2)",
    ]);
    assert.deepEqual(lines("permissive", [policy]).slice(0, 3), [
      "shop/api:80 from sa:ops/admin: permissive, mtls, deny (no rule of shop/api-allow names it)",
      "shop/api:80 from sa:shop/web: permissive, mtls, allow (shop/api-allow rule 1)",
      "shop/api:80 from unmeshed:legacy: permissive, plaintext, deny (no rule of shop/api-allow names it; plaintext has no identity)",
    ]);
    assert.deepEqual(lines("audit", [policy]).slice(0, 3), [
      "shop/api:80 from sa:ops/admin: audit, mtls, allow (audit admits; strict would refuse: no rule of shop/api-allow names it)",
      "shop/api:80 from sa:shop/web: audit, mtls, allow (shop/api-allow rule 1)",
      "shop/api:80 from unmeshed:legacy: audit, plaintext, allow (audit admits; strict would refuse: strict refuses plaintext)",
    ]);
    assert.deepEqual(lines("disabled", [policy]).slice(0, 3), [
      "shop/api:80 from sa:ops/admin: disabled, plaintext, allow (disabled: forwarded unchecked)",
      "shop/api:80 from sa:shop/web: disabled, plaintext, allow (disabled: forwarded unchecked)",
      "shop/api:80 from unmeshed:legacy: disabled, plaintext, allow (disabled: forwarded unchecked)",
    ]);
    assert.deepEqual(lines("permissive").slice(0, 3), [
      "shop/api:80 from sa:ops/admin: permissive, mtls, allow (no AuthorizationPolicy on shop/api)",
      "shop/api:80 from sa:shop/web: permissive, mtls, allow (no AuthorizationPolicy on shop/api)",
      "shop/api:80 from unmeshed:legacy: permissive, plaintext, allow (no AuthorizationPolicy on shop/api)",
    ]);
  });

  it("renders stable sorted text that reads back to the same edges", () => {
    const edges = resolveReachability([legacy, web, ops], [server("strict", [policy])]);
    assert.deepEqual(resolveReachability([ops, legacy, web], [server("strict", [policy])]), edges, "input order does not matter");
    assert.deepEqual(parseReachability(renderReachability(edges)), edges);
    assert.throws(() => parseReachability("shop/api:80 from sa:shop/web: strict"), /not a reachability line/);
  });

  it("guards: an edge a declared client needs and loses is breaking until acknowledged; stale acknowledgements are reported", () => {
    const edges = resolveReachability([legacy], [server("strict", [policy])]);
    const needs = [{ client: "unmeshed:legacy", servers: ["shop/api:80", "shop/api:9102"], because: "it calls them" }];
    const { breaking, unusedAcknowledgements } = breakingEdges(edges, needs, ["shop/api:9102 from unmeshed:legacy"]);
    assert.deepEqual(breaking.map((b) => edgeLine(b.edge)), ["shop/api:80 from unmeshed:legacy: strict, plaintext, deny (strict refuses plaintext)"]);
    assert.match(breaking[0].fix, /mesh the client; or keep port 80 of shop\/api permissive/);
    assert.deepEqual(unusedAcknowledgements, ["shop/api:9102 from unmeshed:legacy"], "9102 stays allowed, so its acknowledgement is stale");
    assert.deepEqual(breakingEdges(edges, needs, ["shop/api:80 from unmeshed:legacy"]), { breaking: [], unusedAcknowledgements: [] });
  });
});

describe("components/reachability in the examples", function () {
  this.timeout(60_000);

  it("quickstart: the matrix in every mode, and only the ConfigMaps a flip already changes plus the matrix change", async () => {
    const byMode: Record<string, string[]> = {};
    const renders: Record<string, Resources> = {};
    for (const mode of mesh.MODES) {
      const { resources } = await renderQuickstart({ mode });
      renders[mode] = resources;
      byMode[mode] = matrixLines(resources);
    }
    assert.deepEqual(byMode.strict, [
      "shop/api:8080 from sa:shop/api: strict, mtls, deny (no rule of shop/api-allow names it)",
      "shop/api:8080 from sa:shop/reports: strict, mtls, deny (no rule of shop/api-allow names it)",
      "shop/api:8080 from sa:shop/web: strict, mtls, allow (shop/api-allow rule 1)",
      "shop/api:8080 from unmeshed:legacy-client: strict, plaintext, deny (strict refuses plaintext)",
    ]);
    assert.deepEqual(byMode.permissive, [
      "shop/api:8080 from sa:shop/api: permissive, mtls, deny (no rule of shop/api-allow names it)",
      "shop/api:8080 from sa:shop/reports: permissive, mtls, deny (no rule of shop/api-allow names it)",
      "shop/api:8080 from sa:shop/web: permissive, mtls, allow (shop/api-allow rule 1)",
      "shop/api:8080 from unmeshed:legacy-client: permissive, plaintext, deny (no rule of shop/api-allow names it; plaintext has no identity)",
    ]);
    assert.ok(byMode.audit.every((line) => line.includes(", allow (")), "audit admits every edge");
    assert.ok(byMode.disabled.every((line) => line.endsWith("disabled, plaintext, allow (disabled: forwarded unchecked)")));
    // The flip's preview: the six config ConfigMaps it always changed, plus the matrix, all updates.
    const changes = diff(renders.permissive, renders.strict);
    assert.deepEqual(
      changes.map((c) => `${c.op} ${c.name}`),
      ["update api-mesh-config", "update mesh-directory-mesh-system", "update mesh-directory-shop", "update mesh-proxy-config", "update mesh-reachability", "update reports-mesh-config", "update web-mesh-config"],
    );
    const cm = object(renders.strict, "ConfigMap", "mesh-reachability", "mesh-system");
    assert.deepEqual(Object.keys(cm.outputs.data), ["reachability.txt"]);
  });

  it("quickstart: the legacy client is declared from its Deployment; its NetworkPolicy peers follow a rule that names it", async () => {
    const { resources } = await render(() => {
      const m = new mesh.Mesh("mesh", { mode: "permissive", now: NOW, proxyImage: "ghcr.io/acme/mesh-proxy:0.1.0" });
      const api = new mesh.MeshedWorkload("api", { mesh: m, namespace: "shop", containers: [{ name: "api", image: "ghcr.io/acme/api:1", ports: [{ containerPort: 8080 }] }], ports: [{ name: "http", port: 8080 }] });
      const legacy = m.unmeshedClient("legacy-client", { namespace: "legacy", podSelector: { app: "legacy-client" } });
      const ingress = m.unmeshedClient("ingress", { cidrs: ["10.8.0.0/16"] });
      new mesh.AuthorizationPolicy("api-allow", { mesh: m, namespace: "shop", workload: api, rules: [{ from: { clients: [legacy, ingress] }, ports: [8080] }] });
    });
    const workloadJson = JSON.parse(object(resources, "ConfigMap", "api-mesh-config", "shop").outputs.data["workload.json"]);
    assert.deepEqual(workloadJson.authorization.rules, [{ ports: [8080], plaintextFrom: ["0.0.0.0/0", "10.8.0.0/16", "::/0"] }], "the proxy admits the pod client from anywhere (the NetworkPolicy narrows it) and the CIDR client from its block");
    const netpol = object(resources, "NetworkPolicy", "api-allow", "shop").outputs.spec;
    assert.deepEqual(netpol.ingress[0].from, [
      { ipBlock: { cidr: "10.8.0.0/16" } },
      { namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "legacy" } }, podSelector: { matchLabels: { app: "legacy-client" } } },
    ]);
    assert.deepEqual(matrixLines(resources), [
      "shop/api:8080 from sa:shop/api: permissive, mtls, deny (no rule of shop/api-allow names it)",
      "shop/api:8080 from unmeshed:ingress: permissive, plaintext, allow (shop/api-allow rule 1)",
      "shop/api:8080 from unmeshed:legacy-client: permissive, plaintext, allow (shop/api-allow rule 1)",
    ]);
  });

  it("migration: each stage's matrix moves exactly the edges its overrides move (mesh, namespace, port levels)", async () => {
    const stages: string[][] = [];
    for (const stage of ["0", "1", "2", "3", "4"]) stages.push(matrixLines((await renderExample("migration", { stage })).resources));
    const changed = (a: string[], b: string[]) => b.filter((line) => !a.includes(line)).map((line) => line.slice(0, line.indexOf(": ")));
    // Port level: the metrics port stays permissive at every stage, so the plaintext Prometheus keeps it.
    for (const lines of stages) assert.ok(lines.includes("payments/payments:9102 from unmeshed:prometheus: permissive, plaintext, allow (payments/payments-from-shop rule 2)"));
    // Mesh level: 0 → 1 meshes everything but 9102 (already permissive).
    assert.deepEqual(changed(stages[0], stages[1]).sort(), [
      "payments/payments:443 from sa:payments/payments", "payments/payments:443 from sa:shop/storefront", "payments/payments:443 from unmeshed:prometheus",
      "shop/storefront:80 from sa:payments/payments", "shop/storefront:80 from sa:shop/storefront", "shop/storefront:80 from unmeshed:prometheus",
    ]);
    // Namespace level: 1 → 2 makes only payments' 443 strict.
    assert.deepEqual(changed(stages[1], stages[2]).sort(), ["payments/payments:443 from sa:payments/payments", "payments/payments:443 from sa:shop/storefront", "payments/payments:443 from unmeshed:prometheus"]);
    assert.ok(stages[2].includes("payments/payments:443 from unmeshed:prometheus: strict, plaintext, deny (strict refuses plaintext)"));
    // 2 → 3 makes shop strict: Prometheus loses the storefront (it never declared it needs it).
    assert.deepEqual(changed(stages[2], stages[3]).sort(), ["shop/storefront:80 from sa:payments/payments", "shop/storefront:80 from sa:shop/storefront", "shop/storefront:80 from unmeshed:prometheus"]);
    // 3 → 4 moves the strictness from the namespaces to the mesh default: no edge changes.
    assert.deepEqual(stages[4], stages[3]);
  });

  it("the workload level beats the namespace level, and the port level beats both, edge by edge", async () => {
    const { resources } = await render(() => {
      const m = new mesh.Mesh("mesh", { mode: "permissive", namespaceModes: { shop: "strict" }, now: NOW, proxyImage: "ghcr.io/acme/mesh-proxy:0.1.0" });
      new mesh.MeshedWorkload("api", {
        mesh: m, namespace: "shop", mode: "audit",
        containers: [{ name: "api", image: "ghcr.io/acme/api:1", ports: [{ containerPort: 8080 }, { containerPort: 9090 }] }],
        ports: [{ name: "http", port: 8080 }, { name: "admin", port: 9090, mode: "disabled" }],
      });
      new mesh.MeshedWorkload("cart", { mesh: m, namespace: "shop", containers: [{ name: "cart", image: "ghcr.io/acme/cart:1", ports: [{ containerPort: 80 }] }], ports: [{ name: "http", port: 80 }] });
      m.unmeshedClient("legacy", { namespace: "legacy" });
    });
    const modes = Object.fromEntries(matrixLines(resources).filter((l) => l.includes("from unmeshed:legacy")).map((l) => [l.split(" from ")[0], l.split(": ")[1].split(",")[0]]));
    assert.deepEqual(modes, { "shop/api:8080": "audit", "shop/api:9090": "disabled", "shop/cart:80": "strict" });
  });

  it("a policy edit changes exactly the edges it names", async () => {
    const program = (peers: string[]) => () => {
      const m = new mesh.Mesh("mesh", { mode: "strict", now: NOW, proxyImage: "ghcr.io/acme/mesh-proxy:0.1.0" });
      const api = new mesh.MeshedWorkload("api", { mesh: m, namespace: "shop", containers: [{ name: "api", image: "ghcr.io/acme/api:1", ports: [{ containerPort: 8080 }, { containerPort: 9090 }] }], ports: [{ name: "http", port: 8080 }, { name: "grpc", port: 9090 }] });
      for (const name of ["web", "reports"]) new mesh.MeshedWorkload(name, { mesh: m, namespace: "shop", containers: [{ name, image: "ghcr.io/acme/curl:1" }] });
      new mesh.AuthorizationPolicy("api-allow", { mesh: m, namespace: "shop", workload: api, rules: [{ from: { serviceAccounts: peers }, ports: [8080] }] });
    };
    const before = matrixLines((await render(program(["shop/web"]))).resources);
    const after = matrixLines((await render(program(["shop/web", "shop/reports"]))).resources);
    assert.deepEqual(after.filter((l) => !before.includes(l)), ["shop/api:8080 from sa:shop/reports: strict, mtls, allow (shop/api-allow rule 1)"]);
    assert.deepEqual(before.filter((l) => !after.includes(l)), ["shop/api:8080 from sa:shop/reports: strict, mtls, deny (no rule of shop/api-allow names it)"]);
  });
});

describe("components/reachability the guarded strict flip", function () {
  this.timeout(60_000);
  beforeEach(() => mocks.reset());
  afterEach(() => settle());

  /** The quickstart's cast with the legacy client admitted on api in plaintext, and what the guard says. */
  const flip = (opts: { mode: mesh.Mode; acceptBreaking?: string[]; legacy?: "declared" | "removed" | "meshed"; calls?: boolean }) => async () => {
    let check!: Promise<unknown>;
    const { resources } = await render(() => {
      const m = new mesh.Mesh("mesh", { mode: opts.mode, now: NOW, proxyImage: "ghcr.io/acme/mesh-proxy:0.1.0", acceptBreaking: opts.acceptBreaking });
      check = m.reachabilityCheck.then(() => undefined, (e: Error) => e);
      const api = new mesh.MeshedWorkload("api", { mesh: m, namespace: "shop", containers: [{ name: "api", image: "ghcr.io/acme/api:1", ports: [{ containerPort: 8080 }] }], ports: [{ name: "http", port: 8080 }] });
      new mesh.MeshedWorkload("web", { mesh: m, namespace: "shop", containers: [{ name: "web", image: "ghcr.io/acme/curl:1" }] });
      const legacy = opts.legacy ?? "declared";
      const clients = legacy === "declared" ? [m.unmeshedClient("legacy-client", { namespace: "legacy", ...(opts.calls ? { calls: [api] } : {}) })] : [];
      if (legacy === "meshed") new mesh.MeshedWorkload("legacy-client", { mesh: m, namespace: "legacy", containers: [{ name: "legacy-client", image: "ghcr.io/acme/curl:1" }] });
      const serviceAccounts = legacy === "meshed" ? ["shop/web", "legacy/legacy-client"] : ["shop/web"];
      new mesh.AuthorizationPolicy("api-allow", { mesh: m, namespace: "shop", workload: api, rules: [{ from: { serviceAccounts, ...(clients.length && !opts.calls ? { clients } : {}) }, ports: [8080] }] });
    });
    return { error: (await check) as Error | undefined, lines: matrixLines(resources) };
  };

  it("refuses a flip to strict while a rule admits a declared plaintext client, listing the edge and the fixes", async () => {
    assert.equal((await flip({ mode: "permissive" })()).error, undefined, "permissive: the client is admitted");
    const { error } = await flip({ mode: "strict" })();
    assert.ok(error instanceof Error);
    assert.equal(error.message, [
      'Mesh "mesh": this program cuts off 1 edge(s) a declared client needs:',
      "  shop/api:8080 from unmeshed:legacy-client: strict, plaintext, deny (strict refuses plaintext)",
      "    needed: rule 1 of shop/api-allow admits it. Fix: mesh the client; or keep port 8080 of shop/api permissive (ports[].mode) or in audit until it is; or acknowledge the edge.",
      'To accept the break, list the edge(s) in the Mesh\'s acceptBreaking: ["shop/api:8080 from unmeshed:legacy-client"]; or remove the client, or mesh it.',
    ].join("\n"));
    assert.equal((await flip({ mode: "audit" })()).error, undefined, "audit admits it, so audit is the safe step before strict");
  });

  it("refuses a policy that denies what a client declares it calls", async () => {
    const { error } = await flip({ mode: "permissive", calls: true })();
    assert.match(error?.message ?? "", /shop\/api:8080 from unmeshed:legacy-client: permissive, plaintext, deny \(no rule of shop\/api-allow names it; plaintext has no identity\)\n    needed: UnmeshedClient "legacy-client" lists it in calls\. Fix: name unmeshed:legacy-client in a rule \(from\.clients\)/);
  });

  it("lets the flip through when the edge is acknowledged, the client removed, or the client meshed", async () => {
    const acknowledged = await flip({ mode: "strict", acceptBreaking: ["shop/api:8080 from unmeshed:legacy-client"] })();
    assert.equal(acknowledged.error, undefined);
    assert.ok(acknowledged.lines.includes("shop/api:8080 from unmeshed:legacy-client: strict, plaintext, deny (strict refuses plaintext)"), "the matrix still shows the edge it cuts");
    assert.equal((await flip({ mode: "strict", legacy: "removed" })()).error, undefined);
    const meshed = await flip({ mode: "strict", legacy: "meshed" })();
    assert.equal(meshed.error, undefined);
    assert.ok(meshed.lines.includes("shop/api:8080 from sa:legacy/legacy-client: strict, mtls, allow (shop/api-allow rule 1)"));
  });

  it("refuses a malformed acceptBreaking entry at construction", () => {
    assert.throws(() => new mesh.Mesh("mesh", { now: NOW, acceptBreaking: ["legacy -> api"] }), /acceptBreaking\[0\]" is "legacy -> api", not an edge of the matrix\. Fix: write "<namespace>\/<workload>:<port> from <client>"/);
  });
});
