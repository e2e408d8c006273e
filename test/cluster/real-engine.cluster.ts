// What the component tests' mocks claim about ConfigMap data changes (test/support/provider-diff.ts,
// components/README.md "Config updates in place"), checked with the REAL Pulumi CLI and the REAL
// pulumi-kubernetes provider against a real kube-apiserver (issue "Real engine"):
//  - through the default provider, a fixed-name ConfigMap whose `data` changes is replaced,
//    delete-before-replace (the object is deleted, then created: a new uid);
//  - through a provider with `enableConfigMapMutable: true`, the same change is an update in place
//    (same uid);
//  - a re-run changes nothing; destroy removes the objects.
// The steps below share one stack and run in order. Not part of `npm test` (the file name does not
// end in .test.ts): `npm run test:cluster`. The engine setup and the SDK/provider versions are
// explained in ./engine.ts.
import { strict as assert } from "node:assert";
import * as k8s from "@pulumi/kubernetes";
import { start, ControlPlane } from "./control-plane";
import { engineStack, EngineStack, Steps, Timings } from "./engine";
import { k8sProviderVersion } from "./versions";

const NS = "default";
const DEFAULT_NAME = "real-engine-default";
const MUTABLE_NAME = "real-engine-mutable";

describe("real engine: ConfigMap data changes (Pulumi CLI + pulumi-kubernetes from the tools cache)", function () {
  let cp: ControlPlane | undefined;
  let eng: EngineStack | undefined;
  const data = { mode: "strict" };
  const uids: Record<string, string> = {};
  const timings = new Timings();


  const get = async (name: string) => cp!.request("GET", `/api/v1/namespaces/${NS}/configmaps/${name}`);

  before(async () => {
    cp = await timings.time("control plane start", () => start());
    const kubeconfig = cp.kubeconfigPath;
    const program = async () => {
      new k8s.core.v1.ConfigMap("cm-default", { metadata: { name: DEFAULT_NAME, namespace: NS }, data: { ...data } });
      const mutable = new k8s.Provider("mutable", { kubeconfig, enableConfigMapMutable: true });
      new k8s.core.v1.ConfigMap("cm-mutable", { metadata: { name: MUTABLE_NAME, namespace: NS }, data: { ...data } }, { provider: mutable });
    };
    eng = await timings.time("workspace + stack init", () => engineStack({ projectName: "real-engine", stackName: "test", program, kubeconfigPath: kubeconfig }));
  });

  after(async () => {
    console.log(`      timings (ms): ${JSON.stringify({ ...timings.ms, controlPlane: cp?.timings })}`);
    await eng?.cleanup();
    await cp?.stop();
  });

  it("pulumi up creates both ConfigMaps in the API server", async () => {
    const steps = new Steps();
    let output = "";
    const r = await timings.time("up (create)", () => eng!.stack.up({ onEvent: steps.onEvent, onOutput: (s) => (output += s) }));
    // The SDK is pinned to the provider we have: the engine asked for that version (it still says
    // it used the binary from PATH, which is the tools bin dir).
    assert.doesNotMatch(output, /expected to have version/, output);
    console.log(`      up steps: ${JSON.stringify(steps.order.map((s) => `${s.urn.split("::").pop()}:${s.op}`))}; summary ${JSON.stringify(r.summary.resourceChanges)}`);
    assert.deepEqual(steps.of("cm-default"), ["create"]);
    assert.deepEqual(steps.of("cm-mutable"), ["create"]);
    for (const name of [DEFAULT_NAME, MUTABLE_NAME]) {
      const cm = await get(name);
      assert.equal(cm.status, 200, `${name}: ${JSON.stringify(cm.body)}`);
      assert.deepEqual(cm.body.data, { mode: "strict" });
      uids[name] = cm.body.metadata.uid;
    }
    const providers = (await eng!.stack.exportStack()).deployment.resources.filter((res: any) => res.type === "pulumi:providers:kubernetes");
    assert.deepEqual(providers.map((p: any) => p.urn.split("::").pop()).sort(), [`default_${k8sProviderVersion().replace(/\./g, "_")}`, "mutable"]);
  });

  it("a data change previews as delete-before-replace through the default provider, as an update with enableConfigMapMutable", async () => {
    data.mode = "permissive";
    const steps = new Steps();
    const r = await timings.time("preview (data change)", () => eng!.stack.preview({ onEvent: steps.onEvent }));
    const dflt = steps.of("cm-default");
    const mutable = steps.of("cm-mutable");
    console.log(`      preview steps: cm-default ${JSON.stringify(dflt)}, cm-mutable ${JSON.stringify(mutable)}; summary ${JSON.stringify(r.changeSummary)}`);
    // Delete-before-replace: the old object's delete comes before the replacement's create
    // (a create-before-delete replace would list create-replacement first).
    assert.ok(dflt.includes("delete-replaced") && dflt.includes("create-replacement") && dflt.includes("replace"), JSON.stringify(dflt));
    assert.ok(dflt.indexOf("delete-replaced") < dflt.indexOf("create-replacement"), `not delete-before-replace: ${JSON.stringify(dflt)}`);
    assert.deepEqual(mutable, ["update"]);
  });

  it("pulumi up applies it: the default provider recreates the object (new uid), the mutable one updates it in place (same uid)", async () => {
    const steps = new Steps();
    const r = await timings.time("up (data change)", () => eng!.stack.up({ onEvent: steps.onEvent }));
    console.log(`      up steps: cm-default ${JSON.stringify(steps.of("cm-default"))}, cm-mutable ${JSON.stringify(steps.of("cm-mutable"))}; summary ${JSON.stringify(r.summary.resourceChanges)}`);
    assert.equal(r.summary.resourceChanges?.replace, 1);
    assert.equal(r.summary.resourceChanges?.update, 1);
    const dflt = await get(DEFAULT_NAME);
    const mutable = await get(MUTABLE_NAME);
    assert.deepEqual(dflt.body.data, { mode: "permissive" });
    assert.deepEqual(mutable.body.data, { mode: "permissive" });
    assert.notEqual(dflt.body.metadata.uid, uids[DEFAULT_NAME], "the default provider's replace made a new object");
    assert.equal(mutable.body.metadata.uid, uids[MUTABLE_NAME], "enableConfigMapMutable kept the object");
  });

  it("a re-run previews no changes", async () => {
    const r = await timings.time("preview (re-run)", () => eng!.stack.preview());
    assert.deepEqual(Object.keys(r.changeSummary), ["same"], JSON.stringify(r.changeSummary));
  });

  it("pulumi destroy removes both ConfigMaps", async () => {
    const steps = new Steps();
    const r = await timings.time("destroy", () => eng!.stack.destroy({ onEvent: steps.onEvent }));
    console.log(`      destroy steps: ${JSON.stringify(steps.order.map((s) => `${s.urn.split("::").pop()}:${s.op}`))}; summary ${JSON.stringify(r.summary.resourceChanges)}`);
    assert.deepEqual(steps.of("cm-default"), ["delete"]);
    assert.deepEqual(steps.of("cm-mutable"), ["delete"]);
    for (const name of [DEFAULT_NAME, MUTABLE_NAME]) assert.equal((await get(name)).status, 404, name);
  });
});
