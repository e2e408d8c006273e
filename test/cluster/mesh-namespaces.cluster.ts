// The Mesh component itself under the REAL Pulumi CLI and pulumi-kubernetes provider against a real
// kube-apiserver: what issue "Real-cluster correctness" items 1 and 2 promise, beyond the mocks.
//  - A stack made by an earlier version (a Namespace per member namespace) upgrades to the
//    NamespacePatch without deleting the namespace or the user's objects in it (the alias).
//  - A namespace that already exists is adopted (no AlreadyExists) and labelled.
//  - The directory ConfigMap goes through the Mesh's configProvider: a data change is an update
//    in place (same uid), not the default provider's delete-before-replace.
//  - A namespace leaving the mesh, and `pulumi destroy`, keep the namespace and its content; only
//    the mesh's own system namespace goes.
// The Mesh runs without the node proxy and with an `existing` CA, so the program registers no
// @pulumi/tls resources (identity.cluster.ts covers those, with the tls stand-in).
import { strict as assert } from "node:assert";
import * as pulumi from "@pulumi/pulumi";
import * as k8s from "@pulumi/kubernetes";
import * as mesh from "../../components";
import type { DirectoryService } from "../../proxy/config";
import { createTestMesh } from "../support/pki";
import { start, ControlPlane } from "./control-plane";
import { engineStack, EngineStack, Steps } from "./engine";

/** What the program declares in the current step. */
interface Program {
  earlierVersion: boolean;
  members: string[];
  imported: DirectoryService[];
}

const service = (name: string): DirectoryService => ({
  namespace: "other", name, spiffeId: `spiffe://cluster.local/ns/other/sa/${name}`, addresses: ["10.96.50.5"], hostnames: [], ports: [{ port: 80, targetPort: 8080, mode: "strict" }],
});

describe("real engine: the Mesh's namespaces and config provider", function () {
  let cp: ControlPlane | undefined;
  let eng: EngineStack | undefined;
  const step: Program = { earlierVersion: true, members: ["shop"], imported: [] };
  const uids: Record<string, string> = {};

  const get = (apiPath: string) => cp!.request("GET", apiPath);
  const namespace = (name: string) => get(`/api/v1/namespaces/${name}`);
  const userConfigMap = (ns: string) => get(`/api/v1/namespaces/${ns}/configmaps/user-data`);
  const createUserConfigMap = async (ns: string) => {
    const r = await cp!.request("POST", `/api/v1/namespaces/${ns}/configmaps`, { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "user-data" }, data: { keep: "me" } });
    assert.equal(r.status, 201, JSON.stringify(r.body));
  };

  before(async () => {
    cp = await start();
    const pki = await createTestMesh();
    const program = async () => {
      if (step.earlierVersion) {
        // What versions before the NamespacePatch declared: a Namespace, child of the Mesh.
        const parent = new pulumi.ComponentResource("mtls-mesh:index:Mesh", "mesh");
        for (const ns of step.members) new k8s.core.v1.Namespace(`mesh-ns-${ns}`, { metadata: { name: ns, labels: { "mtls-mesh.io/meshed": "true" } } }, { parent });
        return;
      }
      const ca = new mesh.CertificateAuthority("ca", { existing: { rootCertPem: pki.root.certPem, issuerCertPem: pki.issuer.certPem, issuerKeyPem: pki.issuer.keyPem } });
      const m = new mesh.Mesh("mesh", { ca, nodeProxy: false, proxyImage: "registry.example/mesh-proxy:0.1.0", importedServices: step.imported });
      for (const ns of step.members) m.directoryConfigMap(ns);
    };
    eng = await engineStack({ projectName: "real-engine-mesh", stackName: "test", program, kubeconfigPath: cp.kubeconfigPath });
  });

  after(async () => {
    await eng?.cleanup();
    await cp?.stop();
  });

  it("an earlier version's stack: a Namespace per member, with the user's objects in it", async () => {
    await eng!.stack.up();
    const shop = await namespace("shop");
    assert.equal(shop.status, 200);
    uids.shop = shop.body.metadata.uid;
    await createUserConfigMap("shop");
    // A namespace the user made before the mesh, with content.
    assert.equal((await cp!.request("POST", "/api/v1/namespaces", { apiVersion: "v1", kind: "Namespace", metadata: { name: "billing" } })).status, 201);
    await createUserConfigMap("billing");
    uids.billing = (await namespace("billing")).body.metadata.uid;
  });

  it("upgrading: the Namespace becomes the mesh's NamespacePatch in place (alias), and an existing namespace is adopted", async () => {
    Object.assign(step, { earlierVersion: false, members: ["shop", "billing"] });
    const steps = new Steps();
    await eng!.stack.up({ onEvent: steps.onEvent });
    console.log(`      upgrade steps: ${JSON.stringify(steps.order.map((s) => `${s.urn.split("::").pop()}:${s.op}`))}`);
    assert.ok(!steps.of("mesh-ns-shop").some((op) => /delete|replace/.test(op)), `no delete of the old Namespace: ${JSON.stringify(steps.of("mesh-ns-shop"))}`);
    for (const ns of ["shop", "billing"]) {
      const live = await namespace(ns);
      assert.equal(live.body.metadata.uid, uids[ns], `${ns} is the same namespace`);
      assert.equal(live.body.metadata.labels["mtls-mesh.io/meshed"], "true");
      assert.equal(live.body.metadata.labels["pod-security.kubernetes.io/enforce"], "privileged");
      assert.equal((await userConfigMap(ns)).status, 200, `the user's ConfigMap in ${ns} survived`);
      assert.equal((await get(`/api/v1/namespaces/${ns}/configmaps/mesh-directory`)).status, 200);
    }
  });

  it("a directory change is an update in place through the Mesh's configProvider (same uid)", async () => {
    const before = await get("/api/v1/namespaces/shop/configmaps/mesh-directory");
    step.imported = [service("payments")];
    const steps = new Steps();
    await eng!.stack.up({ onEvent: steps.onEvent });
    assert.deepEqual(steps.of("mesh-directory-shop"), ["update"]);
    const after = await get("/api/v1/namespaces/shop/configmaps/mesh-directory");
    assert.equal(after.body.metadata.uid, before.body.metadata.uid);
    assert.equal(JSON.parse(after.body.data["directory.json"]).services[0].name, "payments");
  });

  it("a re-run changes nothing", async () => {
    const r = await eng!.stack.preview();
    assert.deepEqual(Object.keys(r.changeSummary), ["same"], JSON.stringify(r.changeSummary));
  });

  it("a namespace leaving the mesh keeps the namespace and its content; only the mesh's labels go", async () => {
    step.members = ["shop"];
    await eng!.stack.up();
    const billing = await namespace("billing");
    assert.equal(billing.status, 200);
    assert.equal(billing.body.metadata.uid, uids.billing);
    assert.equal(billing.body.metadata.labels?.["mtls-mesh.io/meshed"], undefined, "the patch's fields were relinquished");
    assert.equal((await userConfigMap("billing")).status, 200);
  });

  it("pulumi destroy removes the mesh's own objects and system namespace, and keeps the member namespace with its content", async () => {
    await eng!.stack.destroy();
    assert.equal((await namespace("shop")).body.metadata.uid, uids.shop);
    assert.equal((await userConfigMap("shop")).status, 200);
    assert.equal((await get("/api/v1/namespaces/shop/configmaps/mesh-directory")).status, 404);
    const system = await namespace("mesh-system");
    assert.ok(system.status === 404 || system.body.status?.phase === "Terminating", `mesh-system: ${system.status}`);
  });
});
