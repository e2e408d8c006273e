// Workload identities under the REAL Pulumi CLI and pulumi-kubernetes provider against a real
// kube-apiserver, with the TypeScript stand-in for the tls provider (./providers/tls.ts: the real
// one cannot be built here). A Mesh with its own CA (root + intermediate) and a WorkloadIdentity:
//  - `up` creates the identity Secret, its tls.crt chaining to the root with the SPIFFE URI SAN;
//  - no private key is ever in clear in the state or in the CLI's output (`--diff` included);
//  - a re-run is all `same`;
//  - a renewal (the clock past the leaf's boundary: replacementTrigger) replaces key, CSR and leaf
//    create-before-delete and updates the Secret in place (same uid): no moment without the
//    Secret, "a renewal has no gap", on the real engine;
//  - destroy removes the Secret.
// The steps share one stack and run in order.
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import { createPrivateKey, createPublicKey, X509Certificate } from "node:crypto";
import * as mesh from "../../components";
import { DEFAULTS, nextRenewalAt, renewalGeneration } from "../../components/identity";
import { start, ControlPlane } from "./control-plane";
import { engineStack, EngineStack, Steps, Timings } from "./engine";
import { TLS_STAND_IN_VERSION } from "./providers/tls";
import { keysInClear, keysInSecrets, PRIVATE_KEY, SECRET_SIG, SIG } from "./secrets";

const SPIFFE_ID = "spiffe://cluster.local/ns/shop/sa/api";
const SECRET_PATH = "/api/v1/namespaces/shop/secrets/mesh-identity-api";
const LEAF = { validityHours: DEFAULTS.leafValidityHours, renewBeforeHours: DEFAULTS.leafRenewBeforeHours };
const ISSUER = { validityHours: DEFAULTS.issuerValidityHours, renewBeforeHours: DEFAULTS.issuerRenewBeforeHours };
const ISSUER_STAGGER = "mesh-ca-issuer"; // CertificateAuthority `${name}-issuer`, name "mesh-ca"
const MINUTE = 60_000;
const IDENTITY_TLS = ["api-identity-key", "api-identity-csr", "api-identity-cert"];

/**
 * A leaf renewal boundary that no issuer boundary is near, so that moving the clock across it
 * renews the leaf alone: the clock starts a minute before it and the renewal moves it a minute past.
 */
function leafBoundary(): number {
  let boundary = Date.parse(nextRenewalAt(Date.now(), LEAF, SPIFFE_ID));
  while (renewalGeneration(boundary - MINUTE, ISSUER, ISSUER_STAGGER) !== renewalGeneration(boundary + MINUTE, ISSUER, ISSUER_STAGGER)) {
    boundary = Date.parse(nextRenewalAt(boundary + 1, LEAF, SPIFFE_ID));
  }
  return boundary;
}


const pems = (bundle: string): string[] => bundle.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
const b64 = (s: string) => Buffer.from(s, "base64").toString("utf8");

describe("real engine: a workload identity with the tls stand-in (Pulumi CLI + pulumi-kubernetes + pulumi-resource-tls stand-in)", function () {
  let cp: ControlPlane | undefined;
  let eng: EngineStack | undefined;
  const boundary = leafBoundary();
  const clock = { now: boundary - MINUTE };
  const timings = new Timings();
  let first: { uid: string; leafKey: string } | undefined;

  const short = (steps: Steps) => steps.order.map((s) => `${s.urn.split("::").pop()}:${s.op}`);

  /** The identity Secret from the API server, its chain checked against the root in ca.crt. */
  const identitySecret = async () => {
    const r = await cp!.request("GET", SECRET_PATH);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const [leafPem, issuerPem, ...rest] = pems(b64(r.body.data["tls.crt"]));
    const roots = pems(b64(r.body.data["ca.crt"]));
    assert.equal(rest.length, 0, "tls.crt is the leaf and the intermediate");
    assert.equal(roots.length, 1);
    const [leaf, issuer, root] = [leafPem, issuerPem, roots[0]].map((p) => new X509Certificate(p));
    assert.ok(root.checkIssued(root) && root.verify(root.publicKey), "ca.crt is a self-signed root");
    assert.ok(issuer.checkIssued(root) && issuer.verify(root.publicKey), "the intermediate is signed by the root");
    assert.ok(issuer.ca && !leaf.ca);
    assert.ok(leaf.checkIssued(issuer) && leaf.verify(issuer.publicKey), "the leaf is signed by the intermediate");
    assert.equal(leaf.subjectAltName, `URI:${SPIFFE_ID}`);
    const leafKey = leaf.publicKey.export({ format: "der", type: "spki" }).toString("base64");
    const tlsKey = createPublicKey(createPrivateKey(b64(r.body.data["tls.key"]))).export({ format: "der", type: "spki" }).toString("base64");
    assert.equal(tlsKey, leafKey, "tls.key is the leaf's key");
    assert.equal(r.body.type, "kubernetes.io/tls");
    return { uid: r.body.metadata.uid as string, leafKey, leaf };
  };

  before(async () => {
    cp = await timings.time("control plane start", () => start());
    const program = async () => {
      const m = new mesh.Mesh("mesh", { nodeProxy: false, proxyImage: "registry.example/mesh-proxy:0.1.0", now: clock.now });
      // The Secret goes into "shop": the mesh's NamespacePatch creates it first.
      const ns = m.namespaceResource("shop");
      const id = new mesh.WorkloadIdentity(
        "api-identity",
        { ca: m.ca, trustDomain: "cluster.local", namespace: "shop", serviceAccount: "api", now: clock.now, secretProvider: m.configProvider },
        { dependsOn: ns ? [ns] : [] },
      );
      return { spiffeId: id.spiffeId, renewsAt: id.renewsAt };
    };
    eng = await timings.time("workspace + stack init", () =>
      engineStack({ projectName: "real-engine-identity", stackName: "test", program, kubeconfigPath: cp!.kubeconfigPath, standIns: true }),
    );
  });

  after(async () => {
    console.log(`      timings (ms): ${JSON.stringify({ ...timings.ms, controlPlane: cp?.timings })}`);
    await eng?.cleanup();
    await cp?.stop();
  });

  it("pulumi up creates the CA and the identity: the Secret's tls.crt chains to the root and names the SPIFFE ID", async () => {
    const steps = new Steps();
    let output = "";
    const warnings: string[] = [];
    const r = await timings.time("up (create)", () =>
      eng!.stack.up({
        diff: true,
        onEvent: (e) => {
          steps.onEvent(e);
          if (e.diagnosticEvent?.severity === "warning") warnings.push(e.diagnosticEvent.message.trim());
        },
        onOutput: (s) => (output += s),
      }),
    );
    console.log(`      up steps: ${JSON.stringify(short(steps))}; summary ${JSON.stringify(r.summary.resourceChanges)}`);
    console.log(`      up warnings: ${JSON.stringify(warnings)}`);
    // The engine ran the stand-in from the generated wrapper (an ambient plugin: one warning
    // saying so) and took it as the 5.6.1 asked for: no "expected to have version" for tls.
    assert.deepEqual(
      warnings.filter((w) => /pulumi-resource-tls|plugin tls\b/.test(w)),
      [`using pulumi-resource-tls from $PATH at ${path.join(eng!.dir, "stand-ins", "pulumi-resource-tls")}`],
    );
    for (const name of [...IDENTITY_TLS, "api-identity-secret", "mesh-ca-root-key", "mesh-ca-root", "mesh-ca-issuer-key", "mesh-ca-issuer-csr", "mesh-ca-issuer"]) {
      assert.deepEqual(steps.of(name), ["create"], name);
    }
    assert.doesNotMatch(output, PRIVATE_KEY, "no private key in the up --diff output");
    const { uid, leafKey, leaf } = await identitySecret();
    first = { uid, leafKey };
    assert.equal(r.outputs.spiffeId.value, SPIFFE_ID);
    // Validity is the provider's (wall clock), 30 days.
    assert.equal(Date.parse(leaf.validTo) - Date.parse(leaf.validFrom), DEFAULTS.leafValidityHours * 3_600_000);
    const deployment = (await eng!.stack.exportStack()).deployment;
    const tlsProviders = deployment.resources.filter((res: any) => res.type === "pulumi:providers:tls").map((p: any) => p.urn.split("::").pop());
    assert.deepEqual(tlsProviders, [`default_${TLS_STAND_IN_VERSION.replace(/\./g, "_")}`]);
  });

  it("no private key in clear: the state holds them as ciphertext, the export marks each one secret, and preview --diff shows none", async () => {
    // The state at rest (the file backend's checkpoint): keys only as ciphertext.
    const stateFile = path.join(eng!.dir, "state", ".pulumi", "stacks", "real-engine-identity", "test.json");
    const stored = fs.readFileSync(stateFile, "utf8");
    assert.doesNotMatch(stored, /PRIVATE KEY/, "a private key in clear in the stored state");
    const resources = JSON.parse(stored).checkpoint.latest.resources;
    const byName = (name: string) => resources.find((res: any) => res.urn.endsWith(`::${name}`));
    for (const [name, field] of [["api-identity-key", "privateKeyPem"], ["api-identity-key", "privateKeyPemPkcs8"], ["mesh-ca-root-key", "privateKeyPem"], ["mesh-ca-issuer-key", "privateKeyPem"], ["api-identity-csr", "privateKeyPem"], ["api-identity-cert", "caPrivateKeyPem"], ["api-identity-secret", "data"]]) {
      const value = byName(name)?.outputs?.[field];
      assert.equal(value?.[SIG], SECRET_SIG, `${name}.${field} is a secret`);
      assert.equal(typeof value.ciphertext, "string", `${name}.${field} is ciphertext`);
    }
    // `stack export --show-secrets` (what exportStack runs) decrypts, and every key it shows sits
    // inside a secret.
    const exported = (await eng!.stack.exportStack()).deployment;
    const clear = keysInClear(exported);
    assert.deepEqual(clear, [], `private keys outside secrets in the export: ${clear.join(", ")}`);
    assert.ok(keysInSecrets(exported) >= 8, "the export holds the keys, as secrets");
    let output = "";
    const r = await timings.time("preview --diff (re-run)", () => eng!.stack.preview({ diff: true, onOutput: (s) => (output += s) }));
    assert.doesNotMatch(output, PRIVATE_KEY, "a private key in the preview --diff output");
    assert.deepEqual(Object.keys(r.changeSummary), ["same"], JSON.stringify(r.changeSummary));
  });

  it("a re-run previews only `same`", async () => {
    const steps = new Steps();
    const r = await timings.time("preview (re-run)", () => eng!.stack.preview({ onEvent: steps.onEvent }));
    assert.deepEqual(Object.keys(r.changeSummary), ["same"], JSON.stringify(r.changeSummary));
    assert.ok(steps.order.length > 0 && steps.order.every((s) => s.op === "same"), JSON.stringify(short(steps)));
  });

  it("renewal: past the leaf's boundary, key, CSR and leaf are replaced create-before-delete and the Secret is updated in place (same uid, new key)", async () => {
    assert.equal(renewalGeneration(boundary + MINUTE, LEAF, SPIFFE_ID), renewalGeneration(clock.now, LEAF, SPIFFE_ID) + 1);
    clock.now = boundary + MINUTE;
    const steps = new Steps();
    let output = "";
    const p = await timings.time("preview --diff (renewal)", () => eng!.stack.preview({ diff: true, onEvent: steps.onEvent, onOutput: (s) => (output += s) }));
    const perResource: Record<string, string[]> = {};
    for (const [urn, ops] of steps.byUrn) perResource[urn.split("::").pop()!] = ops;
    console.log(`      renewal preview: ${JSON.stringify(perResource)}; summary ${JSON.stringify(p.changeSummary)}`);
    assert.doesNotMatch(output, PRIVATE_KEY, "a private key in the renewal preview --diff output");
    for (const name of IDENTITY_TLS) {
      const ops = steps.of(name);
      assert.ok(ops.includes("create-replacement") && ops.includes("replace"), `${name}: ${JSON.stringify(ops)}`);
      // Create-before-delete: the replacement first, the old one's delete (if listed) after.
      assert.ok(!ops.includes("delete-replaced") || ops.indexOf("create-replacement") < ops.indexOf("delete-replaced"), `${name} is not create-before-delete: ${JSON.stringify(ops)}`);
    }
    assert.deepEqual(steps.of("api-identity-secret"), ["update"], "the Secret is updated, not replaced");
    for (const [name, ops] of Object.entries(perResource)) {
      if (!IDENTITY_TLS.includes(name) && name !== "api-identity-secret") assert.deepEqual(ops, ["same"], `${name} is untouched`);
    }

    const upSteps = new Steps();
    let upOutput = "";
    const r = await timings.time("up (renewal)", () => eng!.stack.up({ diff: true, onEvent: upSteps.onEvent, onOutput: (s) => (upOutput += s) }));
    console.log(`      renewal up: ${JSON.stringify(short(upSteps).filter((s) => !s.endsWith(":same")))}; summary ${JSON.stringify(r.summary.resourceChanges)}`);
    assert.doesNotMatch(upOutput, PRIVATE_KEY, "a private key in the renewal up --diff output");
    for (const name of IDENTITY_TLS) {
      const ops = upSteps.of(name);
      assert.ok(ops.indexOf("create-replacement") < ops.indexOf("delete-replaced"), `${name}: ${JSON.stringify(ops)}`);
    }
    // The old leaf's delete comes after the Secret already holds the new one.
    const at = (name: string, op: string) => upSteps.order.findIndex((s) => s.urn.endsWith(`::${name}`) && s.op === op);
    assert.ok(at("api-identity-secret", "update") < at("api-identity-cert", "delete-replaced"), JSON.stringify(short(upSteps)));
    const renewed = await identitySecret();
    assert.equal(renewed.uid, first!.uid, "the Secret was updated in place, never deleted");
    assert.notEqual(renewed.leafKey, first!.leafKey, "the renewed leaf has a new key");
    assert.deepEqual(keysInClear((await eng!.stack.exportStack()).deployment), []);
    assert.doesNotMatch(fs.readFileSync(path.join(eng!.dir, "state", ".pulumi", "stacks", "real-engine-identity", "test.json"), "utf8"), /PRIVATE KEY/);
  });

  it("a re-run after the renewal previews only `same`", async () => {
    const r = await timings.time("preview (after renewal)", () => eng!.stack.preview());
    assert.deepEqual(Object.keys(r.changeSummary), ["same"], JSON.stringify(r.changeSummary));
  });

  it("pulumi destroy removes the Secret", async () => {
    const steps = new Steps();
    const r = await timings.time("destroy", () => eng!.stack.destroy({ onEvent: steps.onEvent }));
    console.log(`      destroy steps: ${JSON.stringify(short(steps))}; summary ${JSON.stringify(r.summary.resourceChanges)}`);
    assert.deepEqual(steps.of("api-identity-secret"), ["delete"]);
    assert.equal((await cp!.request("GET", SECRET_PATH)).status, 404);
  });
});
