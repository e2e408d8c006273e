// Part of `npm test`: the SDK users get and the provider the real-engine suite builds are one
// version, so what that suite proves is what a user's engine runs (see ./engine.ts).
import { strict as assert } from "node:assert";
import { k8sProviderVersion, k8sSdkVersion } from "./versions";

describe("real-engine versions", () => {
  it("@pulumi/kubernetes is pinned to exactly the provider build.sh builds", () => {
    assert.equal(k8sSdkVersion(), k8sProviderVersion());
  });
});
