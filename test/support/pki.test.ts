import { strict as assert } from "node:assert";
import { X509Certificate } from "node:crypto";
import { createTestMesh } from "./pki";
import { parseSpiffeId } from "../../proxy/spiffe";
import { parseWorkloadConfig, stableStringify } from "../../proxy/config";

describe("test PKI and shared contract", () => {
  it("mints a chain Node's own X.509 parser verifies", async () => {
    const mesh = await createTestMesh();
    const leaf = await mesh.leaf("shop", "api");
    const leafCert = new X509Certificate(leaf.certPem);
    assert.ok(leafCert.verify(new X509Certificate(mesh.issuer.certPem).publicKey));
    assert.ok(new X509Certificate(mesh.issuer.certPem).verify(new X509Certificate(mesh.root.certPem).publicKey));
    assert.equal(leafCert.subjectAltName, "URI:spiffe://cluster.local/ns/shop/sa/api");
    assert.equal(leafCert.ca, false);
  });

  it("parses SPIFFE IDs strictly", () => {
    const good = parseSpiffeId("spiffe://cluster.local/ns/shop/sa/api");
    assert.ok(good.ok && good.id.namespace === "shop" && good.id.serviceAccount === "api");
    for (const bad of [
      "spiffe://Cluster.local/ns/a/sa/b",
      "spiffe://cluster.local/ns/%2e/sa/b",
      "spiffe://cluster.local//ns/a",
      "spiffe://cluster.local/ns/a/",
      "spiffe://cluster.local/ns/a?x=1",
      "spiffe://cluster.local:443/ns/a",
      "spiffe://cluster.local/ns/a\u0000b",
      "spiffe://cluster.local/" + "a".repeat(2100),
      "https://cluster.local/ns/a/sa/b",
      "spiffe://cluster.local",
    ]) {
      assert.equal(parseSpiffeId(bad).ok, false, bad);
    }
  });

  it("validates config and names the bad field", () => {
    const cfg = {
      version: 1,
      trustDomain: "cluster.local",
      workload: { namespace: "shop", name: "api", serviceAccount: "api", spiffeId: "spiffe://cluster.local/ns/shop/sa/api" },
      inbound: { defaultMode: "strict", ports: [{ port: 8080, mode: "strict" }] },
    };
    const parsed = parseWorkloadConfig(cfg);
    assert.equal(parsed.limits.handshakeTimeoutMs, 10000);
    assert.equal(parsed.authorization, null);
    assert.throws(
      () => parseWorkloadConfig({ ...cfg, inbound: { defaultMode: "enforced", ports: [] } }),
      /inbound\.defaultMode/,
    );
    assert.equal(stableStringify({ b: 1, a: { d: 2, c: 3 } }), stableStringify({ a: { c: 3, d: 2 }, b: 1 }));
  });
});
