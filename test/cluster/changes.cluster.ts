// The preview steps of every kind of change the package promises about, on the REAL engine,
// provider and API server, with the node stand-in running the pods (each `up` must also finish
// with the provider's await). One stack of a small shop (api serving, web calling, an optional
// batch workload), changed one step at a time, in order:
//   re-run · mode flip · policy edit · workload added · leaf renewal · workload removed ·
//   a server with an opaque port added · its opacity turned off
// Each row records the real preview's steps (same / update / replace / create / delete ...) and
// asserts the promise: config and identity Secrets updated in place; no Deployment or DaemonSet
// template change for a mode flip or a policy edit. components/README.md "What a preview changes"
// is this suite's table. Also: the guard refuses a strict flip that cuts off a declared plaintext
// client, and the same workload name in two namespaces fails with our own error.
// Root only (network namespaces). `npm run test:cluster`.
import { strict as assert } from "node:assert";
import * as k8s from "@pulumi/kubernetes";
import * as mesh from "../../components";
import { DEFAULTS, nextRenewalAt, renewalGeneration } from "../../components/identity";
import { skipUnlessRoot } from "../e2e/harness/cluster";
import { start, ControlPlane } from "./control-plane";
import { engineStack, EngineStack, Steps } from "./engine";
import { eventually, Live, podsOf } from "./live";
import { NodeStandIn } from "./node/node";

const PROXY_IMAGE = "ghcr.io/acme/mesh-proxy:0.1.0";
const IDS: Record<string, string> = {
  api: "spiffe://cluster.local/ns/shop/sa/api",
  web: "spiffe://cluster.local/ns/shop/sa/web",
  batch: "spiffe://cluster.local/ns/shop/sa/batch",
  "mesh-proxy": "spiffe://cluster.local/ns/mesh-system/sa/mesh-proxy",
};
const LEAF = { validityHours: DEFAULTS.leafValidityHours, renewBeforeHours: DEFAULTS.leafRenewBeforeHours };
const ISSUER = { validityHours: DEFAULTS.issuerValidityHours, renewBeforeHours: DEFAULTS.issuerRenewBeforeHours };

interface Knobs {
  mode: mesh.Mode;
  /** Service accounts the policy on api admits. */
  allowed: string[];
  batch: boolean;
  clockShiftMs: number;
  /** A PostgreSQL-style server: absent, its port opaque (from appProtocol), or detected (opaque: false). */
  db: "off" | "opaque" | "detected";
}

const curl = (name: string): k8s.types.input.core.v1.Container => ({ name, image: "curlimages/curl:8.11.1", command: ["sleep", "infinity"] });

function shop(knobs: Knobs): void {
  const m = new mesh.Mesh("mesh", { mode: knobs.mode, proxyImage: PROXY_IMAGE, now: Date.now() + knobs.clockShiftMs });
  const api = new mesh.MeshedWorkload("api", {
    mesh: m,
    namespace: "shop",
    containers: [
      {
        name: "api",
        image: "hashicorp/http-echo:1.0",
        args: ["-listen=:8080", "-text=hello from api"],
        ports: [{ name: "http", containerPort: 8080 }],
        readinessProbe: { httpGet: { path: "/", port: 8080 }, periodSeconds: 5 },
      },
    ],
    ports: [{ name: "http", port: 8080 }],
  });
  new mesh.MeshedWorkload("web", { mesh: m, namespace: "shop", containers: [curl("web")] });
  if (knobs.batch) new mesh.MeshedWorkload("batch", { mesh: m, namespace: "shop", containers: [curl("batch")] });
  if (knobs.db !== "off") {
    new mesh.MeshedWorkload("db", {
      mesh: m,
      namespace: "shop",
      containers: [{ name: "db", image: "hashicorp/http-echo:1.0", args: ["-listen=:5432", "-text=db"], ports: [{ containerPort: 5432 }] }],
      ports: [{ name: "pg", port: 5432, appProtocol: "postgresql", ...(knobs.db === "detected" ? { opaque: false } : {}) }],
    });
  }
  new mesh.AuthorizationPolicy("api-allow", { mesh: m, namespace: "shop", workload: api, rules: [{ from: { serviceAccounts: knobs.allowed }, ports: [8080] }] });
}

/** "Kind name" of a URN (its last type and its name). */
const label = (urn: string) => `${urn.split("::")[2].split("$").pop()!.split(":").pop()} ${urn.split("::").pop()}`;

/** The non-same steps of a preview, "Kind name" → ops. */
const changes = (steps: Steps) => Object.fromEntries([...steps.byUrn].filter(([, ops]) => ops.some((op) => op !== "same")).map(([urn, ops]) => [label(urn), ops.join(", ")]));

describe("real engine: the preview steps of each kind of change (table in components/README.md)", function () {
  let cp: ControlPlane | undefined;
  let node: NodeStandIn | undefined;
  let eng: EngineStack | undefined;
  let live: Live;
  const knobs: Knobs = { mode: "strict", allowed: ["shop/web"], batch: false, clockShiftMs: 0, db: "off" };
  const table: string[] = [];

  /** Previews the change, records its row, applies it; returns the row's steps. */
  async function change(row: string, edit: () => void): Promise<Record<string, string>> {
    edit();
    const steps = new Steps();
    await eng!.stack.preview({ onEvent: steps.onEvent });
    const ops = changes(steps);
    table.push(`| ${row} | ${Object.entries(ops).map(([r, op]) => `${r}: ${op}`).join("; ") || "all same"} |`);
    const up = await eng!.stack.up();
    assert.equal(up.summary.result, "succeeded");
    return ops;
  }

  /** A second stack on the same control plane, for previews only; removed afterwards. */
  async function withPreviewStack(projectName: string, program: () => Promise<void>, use: (stack: EngineStack["stack"]) => Promise<void>): Promise<void> {
    const other = await engineStack({ projectName, stackName: "test", kubeconfigPath: cp!.kubeconfigPath, standIns: true, program });
    try {
      await use(other.stack);
    } finally {
      await other.cleanup();
    }
  }

  /** The output of a preview that must fail on a user mistake: the package's message, never a stack trace. */
  async function failedPreview(stack: EngineStack["stack"]): Promise<string> {
    let output = "";
    await assert.rejects(stack.preview({ color: "never", onOutput: (s) => (output += s) }));
    assert.doesNotMatch(output, /at .*\.js:\d+/, "a stack trace for a user mistake");
    return output;
  }

  const noWorkloadChange = (ops: Record<string, string>) =>
    assert.deepEqual(Object.keys(ops).filter((r) => /^(Deployment|DaemonSet|StatefulSet|ReplicaSet) /.test(r)), [], "a workload changed: its pods would restart");

  before(async function () {
    skipUnlessRoot(this);
    cp = await start();
    node = await NodeStandIn.start({ kubeconfigPath: cp.kubeconfigPath });
    live = new Live(cp.kubeconfigPath);
    eng = await engineStack({ projectName: "real-engine-changes", stackName: "test", program: async () => shop(knobs), kubeconfigPath: cp.kubeconfigPath, standIns: true });
    const up = await eng.stack.up();
    assert.equal(up.summary.result, "succeeded");
  });

  after(async () => {
    if (table.length) console.log(["      | change | real preview steps (everything else: same) |", "      |---|---|", ...table.map((r) => `      ${r}`)].join("\n"));
    try {
      await eng?.cleanup();
    } finally {
      const left = await node?.stop();
      await cp?.stop();
      if (left) assert.deepEqual(left, { namespaces: [], processes: [] }, "the node stand-in left something behind");
    }
  });

  it("re-run: nothing changes", async () => {
    assert.deepEqual(await change("re-run, nothing changed", () => {}), {});
  });

  it("mode flip (strict → permissive): the workload.json and directory ConfigMaps update in place, nothing else", async () => {
    const ops = await change("mode flip (strict → permissive)", () => (knobs.mode = "permissive"));
    noWorkloadChange(ops);
    const update = (names: string[]) => Object.fromEntries(names.map((n) => [`ConfigMap ${n}`, "update"]));
    assert.deepEqual(ops, update(["api-mesh-config", "web-mesh-config", "mesh-proxy-config", "mesh-directory-shop", "mesh-directory-mesh-system", "mesh-reachability"]));
  });

  it("policy edit (a peer added): api's ConfigMap and the policy's NetworkPolicy update in place", async () => {
    const ops = await change("policy edit (add a peer)", () => knobs.allowed.push("shop/reports"));
    noWorkloadChange(ops);
    assert.deepEqual(ops, { "ConfigMap api-mesh-config": "update", "NetworkPolicy api-allow-netpol": "update" });
  });

  it("workload added: its objects are created, the others' directory ConfigMaps untouched unless it serves", async () => {
    const ops = await change("workload added (a client)", () => (knobs.batch = true));
    // The matrix gains the new client's edges; everything else of the change is new.
    assert.equal(ops["ConfigMap mesh-reachability"], "update");
    for (const [r, op] of Object.entries(ops)) {
      if (op !== "create" && r !== "ConfigMap mesh-reachability") assert.fail(`${r}: ${op}`);
    }
    assert.ok(ops["Deployment batch-deploy"] === "create" && ops["Secret batch-identity-secret"] === "create", JSON.stringify(ops));
    await eventually("batch's pod to run", () => podsOf(node!, "shop", "batch").length === 1);
  });

  it("leaf renewal (the clock past the first leaf's boundary): key, CSR and leaf replaced create-before-delete, the Secret updated in place", async () => {
    // The leaf that renews first (boundaries are staggered by SPIFFE ID), with no issuer boundary on the way.
    const now = Date.now();
    const issuerGen = (t: number) => renewalGeneration(t, ISSUER, "mesh-ca-issuer");
    const [first, boundary] = Object.entries(IDS)
      .map(([name, id]) => [name, Date.parse(nextRenewalAt(now, LEAF, id))] as const)
      .sort((a, b) => a[1] - b[1])[0];
    assert.equal(issuerGen(now), issuerGen(boundary + 60_000), "an issuer renewal falls in the window: rerun later");
    const secret = `mesh-identity-${first}`; // each workload here runs as a service account of its own name
    const ns = first === "mesh-proxy" ? "mesh-system" : "shop";
    const uid = (await live.core.readNamespacedSecret({ name: secret, namespace: ns })).metadata!.uid;
    const ops = await change("leaf renewal (the clock just past one leaf's boundary)", () => (knobs.clockShiftMs = boundary + 60_000 - now));
    noWorkloadChange(ops);
    const replaced = "create-replacement, replace, delete-replaced";
    assert.deepEqual(ops, {
      [`PrivateKey ${first}-identity-key`]: replaced,
      [`CertRequest ${first}-identity-csr`]: replaced,
      [`LocallySignedCert ${first}-identity-cert`]: replaced,
      [`Secret ${first}-identity-secret`]: "update",
    });
    assert.equal((await live.core.readNamespacedSecret({ name: secret, namespace: ns })).metadata!.uid, uid, "the Secret is the same object");
  });

  it("workload removed: its objects are deleted, its pod stops", async () => {
    const ops = await change("workload removed (the client)", () => (knobs.batch = false));
    assert.equal(ops["ConfigMap mesh-reachability"], "update");
    for (const [r, op] of Object.entries(ops)) {
      if (op !== "delete" && r !== "ConfigMap mesh-reachability") assert.fail(`${r}: ${op}`);
    }
    assert.equal(ops["Deployment batch-deploy"], "delete");
    await eventually("batch's pod to stop", () => podsOf(node!, "shop", "batch").length === 0);
    await eng!.stack.preview({ expectNoChanges: true });
  });

  it("an opaque port (a workload whose port has appProtocol postgresql): the real API server takes the Service with its mesh-tunnel port", async () => {
    const ops = await change("workload added (a server with an opaque port)", () => (knobs.db = "opaque"));
    assert.equal(ops["Service db-svc"], "create", JSON.stringify(ops));
    const svc = await live.core.readNamespacedService({ name: "db", namespace: "shop" });
    assert.deepEqual(svc.spec!.ports!.map((p) => `${p.name}:${p.port}->${p.targetPort}/${p.appProtocol ?? "-"}`), ["pg:5432->5432/postgresql", "mesh-tunnel:15008->15008/-"]);
    const config = await live.core.readNamespacedConfigMap({ name: "db-mesh-config", namespace: "shop" });
    assert.deepEqual(JSON.parse(config.data!["workload.json"]).inbound.ports, [{ port: 5432, mode: "permissive", opaque: true }]);
    await eventually("db's pod to run", () => podsOf(node!, "shop", "db").length === 1);
  });

  it("opacity off (opaque: false): the Service and the ConfigMaps update in place, no pod restarts", async () => {
    const before = await live.core.readNamespacedService({ name: "db", namespace: "shop" });
    const ops = await change("a port's opacity turned off", () => (knobs.db = "detected"));
    noWorkloadChange(ops);
    const update = (names: string[]) => Object.fromEntries(names.map((n) => [n, "update"]));
    assert.deepEqual(ops, update(["ConfigMap db-mesh-config", "ConfigMap mesh-directory-shop", "ConfigMap mesh-directory-mesh-system", "Service db-svc"]));
    const after = await live.core.readNamespacedService({ name: "db", namespace: "shop" });
    assert.equal(after.metadata!.uid, before.metadata!.uid, "the Service is the same object");
    assert.deepEqual(after.spec!.ports!.map((p) => p.name), ["pg"]);
    knobs.db = "off";
    await eng!.stack.up();
    await eventually("db's pod to stop", () => podsOf(node!, "shop", "db").length === 0);
  });

  it("the guard: a strict flip that cuts off a declared plaintext client fails the preview with its edge and fix; acknowledged, it previews", async () => {
    const flipKnobs = { mode: "permissive" as mesh.Mode, acceptBreaking: [] as string[] };
    await withPreviewStack("real-engine-guard", async () => {
      const m = new mesh.Mesh("mesh", { mode: flipKnobs.mode, proxyImage: PROXY_IMAGE, nodeProxy: false, acceptBreaking: flipKnobs.acceptBreaking });
      const api = new mesh.MeshedWorkload("api", { mesh: m, namespace: "shop", containers: [{ name: "api", image: "hashicorp/http-echo:1.0", ports: [{ containerPort: 8080 }] }], ports: [{ name: "http", port: 8080 }] });
      const legacy = m.unmeshedClient("legacy-client", { namespace: "legacy" });
      new mesh.AuthorizationPolicy("api-allow", { mesh: m, namespace: "shop", workload: api, rules: [{ from: { clients: [legacy] }, ports: [8080] }] });
    }, async (stack) => {
      await stack.preview();
      flipKnobs.mode = "strict";
      const output = await failedPreview(stack);
      assert.match(output, /Mesh "mesh": this program cuts off 1 edge\(s\) a declared client needs:/);
      assert.match(output, /shop\/api:8080 from unmeshed:legacy-client: strict, plaintext, deny \(strict refuses plaintext\)/);
      assert.match(output, /acceptBreaking: \["shop\/api:8080 from unmeshed:legacy-client"\]/);
      flipKnobs.acceptBreaking = ["shop/api:8080 from unmeshed:legacy-client"];
      await stack.preview();
    });
  });

  it("the same workload name in two namespaces fails with the package's own error, not the engine's Duplicate resource URN", async () => {
    await withPreviewStack("real-engine-duplicates", async () => {
      const m = new mesh.Mesh("mesh", { proxyImage: PROXY_IMAGE, nodeProxy: false });
      for (const namespace of ["shop", "billing"]) new mesh.MeshedWorkload("api", { mesh: m, namespace, containers: [curl("api")] });
    }, async (stack) => {
      const output = await failedPreview(stack);
      assert.match(output, /MeshedWorkload "api": field "name" .*namespace "shop"/);
      // The engine's own message would be "Duplicate resource URN 'urn:pulumi:…'" (ours explains it).
      assert.doesNotMatch(output, /Duplicate resource URN '/);
    });
  });
});
