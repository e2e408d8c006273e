// examples/quickstart, unmodified, under the REAL Pulumi CLI and pulumi-kubernetes provider
// against the local control plane, with the node stand-in (./node) running the pods the real
// deployment, ReplicaSet, DaemonSet and EndpointSlice controllers make. `pulumi up` completes with
// the provider's own await logic (no skipAwait): Deployments available, DaemonSet rolled out,
// Services with endpoints. Then, on that one stack and in order:
//  - every object in the state is in the API server; preview and refresh --expect-no-changes pass;
//  - strict traffic on real API objects: web → api 200, reports → api refused (policy), the
//    legacy plaintext client refused;
//  - mode flips strict → permissive → strict by `pulumi up` while web sends requests: no failed
//    request, no container restarted (start times and restart counts read from the API);
//  - a leaf renewal (the clock past api's renewal boundary) while web sends requests;
//  - no private key in clear in `preview --diff`, `stack output --json` or `stack export`;
//  - destroy removes every object of the stack and nothing else (a namespace of the user's own,
//    with its workload, survives; the member namespace stays, without the mesh's labels).
// Root only (network namespaces). `npm run test:cluster`.
import { strict as assert } from "node:assert";
import { X509Certificate } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import * as k8s from "@kubernetes/client-node";
import { nextRenewalAt, renewalGeneration, DEFAULTS } from "../../components/identity";
import { skipUnlessRoot } from "../e2e/harness/cluster";
import { curlFrom } from "../e2e/harness/curl";
import { render } from "../e2e/engine/render";
import { REPO_ROOT } from "../e2e/harness/images";
import { proxyReloads, waitForReload } from "../e2e/harness/metrics";
import { presentedCertificate } from "../e2e/harness/openssl";
import type { Pod } from "../e2e/harness/pod";
import { start, ControlPlane } from "./control-plane";
import { engineStack, EngineStack, Steps, Timings } from "./engine";
import { eventually, Live, podsOf, StateObject, stateObjects } from "./live";
import { NodeStandIn } from "./node/node";
import { keysInClear, keysInSecrets, PRIVATE_KEY } from "./secrets";

const QUICKSTART = path.join(REPO_ROOT, "dist", "examples", "quickstart", "index.js");
const PROJECT = "pulumi-mtls-mesh-quickstart-example"; // examples/quickstart/Pulumi.yaml
const API_URL = "http://api.shop.svc.cluster.local:8080/";
const API_TEXT = "hello from api";
const PROXY_IMAGE = "ghcr.io/acme/mesh-proxy:0.1.0";
const MESH_NAMESPACES = ["shop", "legacy", "mesh-system"];
const HOUR = 3_600_000;
const LEAF = { validityHours: DEFAULTS.leafValidityHours, renewBeforeHours: DEFAULTS.leafRenewBeforeHours };
const ISSUER = { validityHours: DEFAULTS.issuerValidityHours, renewBeforeHours: DEFAULTS.issuerRenewBeforeHours };
const IDENTITIES: Record<string, string> = {
  api: "spiffe://cluster.local/ns/shop/sa/api",
  web: "spiffe://cluster.local/ns/shop/sa/web",
  reports: "spiffe://cluster.local/ns/shop/sa/reports",
  "mesh-proxy": "spiffe://cluster.local/ns/mesh-system/sa/mesh-proxy",
};

describe("real engine: examples/quickstart with pods on the node stand-in", function () {
  let cp: ControlPlane | undefined;
  let node: NodeStandIn | undefined;
  let eng: EngineStack | undefined;
  let live: Live;
  let state: StateObject[] = [];
  /** How far the program's clock runs ahead of the wall clock (a renewal moves it). */
  let clockShiftMs = 0;
  const timings = new Timings();
  const log: string[] = [];

  // The compiled quickstart as an inline program (no language host here: see ./engine.ts),
  // evaluated afresh on every operation, as `pulumi up` runs index.js anew.
  const program = async () => {
    delete require.cache[QUICKSTART];
    const wallClock = Date.now;
    Date.now = () => wallClock() + clockShiftMs;
    try {
      return { ...require(QUICKSTART) };
    } finally {
      Date.now = wallClock;
    }
  };

  const pod = (ns: string, workload: string): Pod => {
    const pods = podsOf(node!, ns, workload);
    assert.ok(pods.length > 0, `no running pod of ${ns}/${workload}`);
    return pods[0];
  };
  const fromWeb = () => curlFrom(pod("shop", "web"), "web", API_URL, API_TEXT);

  /** `pulumi up` while web keeps calling api; returns the steps and every request's outcome. */
  async function upUnderTraffic(label: string, reloads: { pods: Pod[]; kind: "config" | "identity" }): Promise<{ steps: Steps; failures: string[]; requests: number }> {
    const before = new Map(await Promise.all(reloads.pods.map(async (p) => [p, (await proxyReloads(node!.nodeDialer, p))[reloads.kind]] as const)));
    const outcomes: { ok: boolean; detail: string }[] = [];
    let running = true;
    const traffic = (async () => {
      let after = 0;
      while (running || after++ < 5) outcomes.push(await fromWeb().catch((e: Error) => ({ ok: false, detail: e.message })));
    })();
    const steps = new Steps();
    try {
      await timings.time(label, () => eng!.stack.up({ onEvent: steps.onEvent }));
      // The node swaps the changed files into the pods' volumes; the proxies reload them.
      await Promise.all(reloads.pods.map((p) => waitForReload(node!.nodeDialer, p, reloads.kind, before.get(p)!)));
    } finally {
      running = false;
      await traffic;
    }
    const failures = outcomes.filter((o) => !o.ok).map((o) => o.detail);
    if (failures.length) {
      // What the proxies said meanwhile, for the assertion message.
      for (const p of [pod("shop", "web"), ...podsOf(node!, "shop", "api")]) {
        const lines = fs.readFileSync(p.containers.get("mesh-proxy")!.logFile, "utf8").split("\n").filter((l) => /"level":"(warn|error)"/.test(l));
        failures.push(`${p.name}: ${lines.slice(-8).join("\n")}`);
      }
    }
    return { steps, failures, requests: outcomes.length };
  }

  /** Resource name → its ops, for every resource that was not `same`. */
  const changed = (steps: Steps) =>
    Object.fromEntries([...steps.byUrn].filter(([, ops]) => ops.some((op) => op !== "same")).map(([urn, ops]) => [`${urn.split("::")[2].split("$").pop()}::${urn.split("::").pop()}`, ops.join(",")]));

  before(async function () {
    skipUnlessRoot(this);
    cp = await timings.time("control plane start", () => start());
    node = await timings.time("node start", () => NodeStandIn.start({ kubeconfigPath: cp!.kubeconfigPath, log: (l) => log.push(l) }));
    live = new Live(cp.kubeconfigPath);
    // The user's own namespace and workload, made outside Pulumi: destroy must leave them.
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(cp.kubeconfigPath);
    await live.core.createNamespace({ body: { metadata: { name: "team" } } });
    await kc.makeApiClient(k8s.AppsV1Api).createNamespacedDeployment({
      namespace: "team",
      body: {
        metadata: { name: "own" },
        spec: {
          selector: { matchLabels: { app: "own" } },
          template: { metadata: { labels: { app: "own" } }, spec: { containers: [{ name: "own", image: "curlimages/curl:8.11.1", command: ["sleep", "infinity"] }] } },
        },
      },
    });
    eng = await engineStack({
      projectName: PROJECT,
      stackName: "test",
      program,
      kubeconfigPath: cp.kubeconfigPath,
      standIns: true,
      config: { proxyImage: PROXY_IMAGE },
    });
  });

  let failed = false;
  afterEach(function () {
    if (this.currentTest?.state === "failed") failed = true;
  });

  after(async () => {
    console.log(`      timings (ms): ${JSON.stringify({ ...timings.ms, controlPlane: cp?.timings?.total })}`);
    if (failed || process.env.MESH_NODE_LOG) console.log(log.slice(-60).map((l) => `      node: ${l}`).join("\n"));
    await eng?.cleanup();
    const left = await node?.stop();
    await cp?.stop();
    if (left) assert.deepEqual(left, { namespaces: [], processes: [] }, "the node stand-in left something behind");
  });

  it("pulumi up succeeds with the provider's await logic, and every object of the state is in the API server", async () => {
    const steps = new Steps();
    let output = "";
    const r = await timings.time("up (create)", () => eng!.stack.up({ onEvent: steps.onEvent, onOutput: (s) => (output += s) }));
    assert.equal(r.summary.result, "succeeded");
    assert.doesNotMatch(output, /expected to have version|skipAwait/);
    assert.deepEqual([...steps.byUrn.values()].filter((ops) => ops.some((op) => op !== "create")), [], "a first up only creates");
    state = stateObjects((await eng!.stack.exportStack()).deployment);
    const kinds = new Set(state.map((o) => o.kind));
    for (const kind of ["Namespace", "ServiceAccount", "Secret", "ConfigMap", "Service", "Deployment", "DaemonSet", "NetworkPolicy"]) assert.ok(kinds.has(kind), `the state holds a ${kind}`);
    const missing: string[] = [];
    for (const o of state) if (!(await live.read(o))) missing.push(`${o.kind} ${o.namespace ?? ""}/${o.name}`);
    assert.deepEqual(missing, [], "objects in the state but not in the API server");
    // The pods the controllers made run on the node: api ×2, web, reports, legacy-client, mesh-proxy.
    for (const [ns, w, n] of [["shop", "api", 2], ["shop", "web", 1], ["shop", "reports", 1], ["legacy", "legacy-client", 1], ["mesh-system", "mesh-proxy", 1]] as const) {
      assert.equal(podsOf(node!, ns, w).length, n, `${ns}/${w} pods`);
    }
    assert.equal(r.outputs.mode.value, "strict");
    // The e2e suite's engine stand-in renders the same program into exactly these objects, so
    // what the netns suites run is what the real engine deploys.
    const rendered = await render({ program: QUICKSTART, config: { proxyImage: PROXY_IMAGE } });
    const key = (o: { kind: string; metadata?: { namespace?: string; name: string }; namespace?: string; name?: string }) => `${o.kind} ${o.metadata?.namespace ?? o.namespace ?? ""}/${o.metadata?.name ?? o.name}`;
    assert.deepEqual(rendered.objects.map(key).sort(), state.map(key).sort(), "the engine stand-in and the real engine disagree on the objects");
    console.log(`      ${state.length} Kubernetes objects, ${steps.byUrn.size} resources; ${node!.runningPods().length} pods running`);
  });

  it("is idempotent: preview --expect-no-changes and refresh --expect-no-changes pass", async () => {
    await timings.time("preview --expect-no-changes", () => eng!.stack.preview({ expectNoChanges: true }));
    await timings.time("refresh --expect-no-changes", () => eng!.stack.refresh({ expectNoChanges: true }));
    await timings.time("preview after refresh", () => eng!.stack.preview({ expectNoChanges: true }));
  });

  it("strict traffic through the pods the control plane made: web → api 200, reports refused by policy, legacy plaintext refused", async () => {
    await node!.settled();
    const web = await fromWeb();
    assert.equal(web.detail, `200 ${JSON.stringify(API_TEXT)}`);
    const reports = await curlFrom(pod("shop", "reports"), "reports", API_URL, API_TEXT);
    assert.equal(reports.ok, false, reports.detail);
    assert.match(reports.detail, /^refused/);
    const legacy = await curlFrom(pod("legacy", "legacy-client"), "legacy-client", API_URL, API_TEXT);
    assert.equal(legacy.ok, false, legacy.detail);
    assert.match(legacy.detail, /^refused/);
    // api's pods present the mesh leaf with its SPIFFE ID on the pod IP the API server reports.
    for (const p of podsOf(node!, "shop", "api")) {
      const leaf = new X509Certificate(await presentedCertificate(node!.name, p.ip, 8080));
      assert.equal(leaf.subjectAltName, `URI:${IDENTITIES.api}`);
      const apiPod = await live.core.readNamespacedPod({ name: p.name, namespace: "shop" });
      assert.equal(apiPod.status?.podIP, p.ip);
    }
  });

  for (const [from, to] of [["strict", "permissive"], ["permissive", "strict"]] as const) {
    it(`a mode flip ${from} → ${to} by pulumi up while web sends requests: config updates in place only, no failed request, no restart`, async () => {
      const starts = await live.containerStarts(MESH_NAMESPACES);
      await eng!.stack.setConfig("mode", { value: to });
      // What the pull request shows: the matrix's lines move from one mode to the other, edge by
      // edge. The CLI reads "<edge>: <verdict>" lines as YAML and diffs them per key (real engine):
      //   ~ shop/api:8080 from sa:shop/web : "strict, mtls, allow (…)" => "permissive, mtls, allow (…)"
      let diff = "";
      await eng!.stack.preview({ diff: true, color: "never", onOutput: (s) => (diff += s) });
      const matrixDiff = diff.split("\n").filter((l) => / from (sa|unmeshed):/.test(l));
      console.log(`      preview --diff, the matrix (${from} → ${to}):\n${matrixDiff.map((l) => `      ${l}`).join("\n")}`);
      for (const client of ["sa:shop/api", "sa:shop/reports", "sa:shop/web", "unmeshed:legacy-client"]) {
        const edge = `shop/api:8080 from ${client}`;
        const moved = matrixDiff.filter((l) => l.includes(`~ shop/api:8080 from ${client} `) || l.includes(`~ shop/api:8080 from ${client}:`));
        assert.equal(moved.length, 1, `one diff line for ${edge}:\n${matrixDiff.join("\n")}`);
        assert.match(moved[0], new RegExp(`: "${from}, [^"]*" => "${to}, `), `${edge} moves ${from} → ${to}`);
      }
      const { steps, failures, requests } = await upUnderTraffic(`up (${to})`, { pods: podsOf(node!, "shop", "api"), kind: "config" });
      const ops = changed(steps);
      console.log(`      ${from} → ${to}: ${JSON.stringify(ops)}; ${requests} requests`);
      for (const [resource, op] of Object.entries(ops)) {
        assert.match(resource, /^kubernetes:(core\/v1:ConfigMap|networking\.k8s\.io\/v1:NetworkPolicy)::/, `${resource} changed (${op})`);
        assert.equal(op, "update", `${resource}: ${op}`);
      }
      assert.ok(Object.keys(ops).length > 0, "the flip changed some config");
      assert.ok(requests >= 5, `only ${requests} requests ran during the flip`);
      assert.deepEqual(failures, [], "requests from web that failed during the flip");
      assert.deepEqual(await live.containerStarts(MESH_NAMESPACES), starts, "a container restarted or a pod was replaced");
      const legacy = await curlFrom(pod("legacy", "legacy-client"), "legacy-client", API_URL, API_TEXT);
      assert.equal(legacy.ok, false, `legacy-client in ${to}: ${legacy.detail} (api's policy admits identities only)`);
    });
  }

  it("a leaf renewal (the clock past api's renewal boundary) while web sends requests: new certificate, Secret updated in place, no failed request", async () => {
    const now = Date.now();
    let boundary = Date.parse(nextRenewalAt(now, LEAF, IDENTITIES.api));
    const gen = (t: number, s = ISSUER, stagger = "mesh-ca-issuer") => renewalGeneration(t, s, stagger);
    while (gen(now) !== gen(boundary + 60_000)) boundary = Date.parse(nextRenewalAt(boundary + 1, LEAF, IDENTITIES.api));
    const shift = boundary + 60_000 - now;
    // Which leaves this clock move renews (each identity's boundary is staggered by its SPIFFE ID).
    const renewed = Object.keys(IDENTITIES).filter((k) => renewalGeneration(now, LEAF, IDENTITIES[k]) !== renewalGeneration(now + shift, LEAF, IDENTITIES[k]));
    assert.ok(renewed.includes("api"));
    const secretUid = async () => (await live.core.readNamespacedSecret({ name: "mesh-identity-api", namespace: "shop" })).metadata!.uid;
    const uid = await secretUid();
    const apiPods = podsOf(node!, "shop", "api");
    const serialBefore = new X509Certificate(await presentedCertificate(node!.name, apiPods[0].ip, 8080)).serialNumber;
    const starts = await live.containerStarts(MESH_NAMESPACES);

    clockShiftMs = shift;
    let diff = "";
    const preview = new Steps();
    await eng!.stack.preview({ diff: true, onEvent: preview.onEvent, onOutput: (s) => (diff += s) });
    assert.doesNotMatch(diff, PRIVATE_KEY, "a private key in the renewal preview --diff");
    const { steps, failures, requests } = await upUnderTraffic("up (renewal)", { pods: apiPods, kind: "identity" });
    const ops = changed(steps);
    console.log(`      renewal (${renewed.join(", ")}; clock +${(shift / HOUR).toFixed(1)} h): ${JSON.stringify(ops)}; ${requests} requests`);
    for (const k of renewed) {
      for (const part of ["key", "csr", "cert"]) assert.equal(ops[`tls:index/${part === "key" ? "privateKey:PrivateKey" : part === "csr" ? "certRequest:CertRequest" : "locallySignedCert:LocallySignedCert"}::${k}-identity-${part}`], "create-replacement,replace,delete-replaced", `${k} ${part}`);
    }
    for (const [resource, op] of Object.entries(ops)) {
      if (resource.startsWith("tls:")) continue;
      assert.match(resource, /^kubernetes:core\/v1:Secret::/, `${resource} changed (${op})`);
      assert.equal(op, "update");
    }
    assert.equal(await secretUid(), uid, "the identity Secret was updated in place");
    assert.deepEqual(failures, [], "requests from web that failed during the renewal");
    assert.deepEqual(await live.containerStarts(MESH_NAMESPACES), starts, "a container restarted");
    for (const p of apiPods) assert.notEqual(new X509Certificate(await presentedCertificate(node!.name, p.ip, 8080)).serialNumber, serialBefore, `${p.name} still presents the old leaf`);
    await eng!.stack.preview({ expectNoChanges: true });
  });

  it("no private key in clear: stack output --json, stack export, preview --diff", async () => {
    const outputs = await eng!.cli(["stack", "output", "--json"]);
    assert.equal(outputs.code, 0, outputs.stderr);
    assert.doesNotMatch(outputs.stdout, PRIVATE_KEY);
    assert.ok(JSON.parse(outputs.stdout).trustBundle.includes("BEGIN CERTIFICATE"));
    const exported = (await eng!.stack.exportStack()).deployment;
    assert.deepEqual(keysInClear(exported), []);
    assert.ok(keysInSecrets(exported) >= 5, "the keys are in the export, as secrets");
    // `pulumi preview --diff` itself: the CLI needs the program, which only the Automation API
    // can serve here (no language host), so it runs through it; the output is the CLI's.
    let diff = "";
    await eng!.stack.preview({ diff: true, onOutput: (s) => (diff += s) });
    assert.match(diff, /Previewing update/);
    assert.doesNotMatch(diff, PRIVATE_KEY);
  });

  it("pulumi destroy removes every object of the stack and nothing else", async () => {
    const before = await live.containerStarts(["team"]);
    assert.equal(Object.keys(before).length, 1, "the user's own pod runs");
    await timings.time("destroy", () => eng!.stack.destroy());
    const left: string[] = [];
    for (const o of state) {
      const obj = await live.read(o);
      if (o.kind === "Namespace" && o.type.endsWith("NamespacePatch")) {
        // A member namespace is never deleted (components/README.md): only the mesh's labels go.
        assert.ok(obj, `member namespace ${o.name} is kept`);
        assert.deepEqual(Object.keys(obj!.metadata?.labels ?? {}).filter((l) => l.includes("mtls-mesh")), [], `${o.name} keeps mesh labels`);
        continue;
      }
      if (obj && !obj.metadata?.deletionTimestamp) left.push(`${o.kind} ${o.namespace ?? ""}/${o.name}`);
    }
    assert.deepEqual(left, [], "objects of the stack still in the API server");
    await eventually("the mesh's pods to stop", () => MESH_NAMESPACES.every((ns) => node!.runningPods(ns).length === 0));
    assert.equal((await live.core.readNamespace({ name: "team" })).status?.phase, "Active");
    assert.deepEqual(await live.containerStarts(["team"]), before, "the user's own workload was touched");
    assert.equal(podsOf(node!, "team", "own").length, 1);
  });
});
