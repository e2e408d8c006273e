// e2e dual stack: the harness's pods have an IPv6 address next to their IPv4 one, as on a
// dual-stack cluster, and the mesh must hold on it exactly as on IPv4 (issue 12, item 3). In strict
// mode, on test/e2e/programs/matrix: a plaintext client dialling api's IPv6 address is refused,
// so is a meshed client the policy does not allow, and the allowed meshed client gets there with
// mTLS — TLS 1.3 only on the wire. Root only.
import { strict as assert } from "node:assert";
import * as path from "node:path";
import { stableStringify } from "../../proxy/config";
import { FILE_NAMES } from "../../proxy/wellknown";
import { skipUnlessRoot } from "./harness/cluster";
import { REPO_ROOT } from "./harness/images";
import type { KubeObject } from "./harness/kube";
import { wireReport } from "./harness/wire";
import { Client, MeshRun, Server } from "./mesh-run";

const PROGRAM = path.join(REPO_ROOT, "dist", "test", "e2e", "programs", "matrix", "index.js");
const api: Server = { label: "shop/api", namespace: "shop", service: "api", port: 8080, text: "hello from api" };
const web: Client = { label: "shop/web", namespace: "shop", workload: "web", container: "web", meshed: true, allowed: true };
const reports: Client = { label: "shop/reports", namespace: "shop", workload: "reports", container: "reports", meshed: true, allowed: false };
const legacy: Client = { label: "legacy/legacy-client", namespace: "legacy", workload: "legacy-client", container: "legacy-client", meshed: false, allowed: false };

/**
 * The directory as a dual-stack cluster gives it: the service's entry also lists an IPv6 address
 * (here api's pod address, a form directory.json allows), so meshed clients dialling it originate
 * mTLS. Every namespace's copy gets the same edit.
 */
function withAddress(objects: KubeObject[], namespace: string, service: string, address: string): KubeObject[] {
  return objects.map((o) => {
    const text = o.kind === "ConfigMap" ? (o.data as Record<string, string> | undefined)?.[FILE_NAMES.directory] : undefined;
    if (text === undefined) return o;
    const directory = JSON.parse(text) as { services: { namespace: string; name: string; addresses: string[] }[] };
    const entry = directory.services.find((s) => s.namespace === namespace && s.name === service);
    if (!entry) throw new Error(`no directory entry ${namespace}/${service} in ConfigMap ${o.metadata.namespace}/${o.metadata.name}`);
    entry.addresses = [...entry.addresses, address].sort();
    return { ...o, data: { ...(o.data as Record<string, string>), [FILE_NAMES.directory]: stableStringify(directory) } };
  });
}

describe("e2e dual stack: IPv6 is meshed like IPv4 (strict)", function () {
  this.timeout(120_000);
  let run: MeshRun | undefined;
  let apiIp6 = "";

  before(async function () {
    skipUnlessRoot(this);
    run = await MeshRun.up({ program: PROGRAM, mode: "strict" });
    apiIp6 = run.cluster.pod("shop", "api").ip6;
    const report = await run.applyObjects(withAddress(run.rendered.objects, "shop", "api", apiIp6));
    assert.ok(report.volumesUpdated.length > 0, "the directory edit reached the pods");
  });

  after(async () => {
    if (!run) return;
    const left = await run.down();
    assert.deepEqual(left, { namespaces: [], processes: [] });
  });

  it("every pod is dual-stack, and IPv4 still behaves (control)", async () => {
    assert.ok(run!.cluster.pods.every((p) => p.ip6.startsWith("fd00:e2e:234::")));
    assert.equal((await run!.curl(web, api)).ok, true);
    assert.equal((await run!.curl(legacy, api)).ok, false);
  });

  it("a plaintext client dialling the server pod's IPv6 address is refused", async () => {
    const outcome = await run!.curl(legacy, api, 3, `[${apiIp6}]`);
    assert.equal(outcome.ok, false, `legacy-client reached api over IPv6 around the mesh: ${outcome.detail}`);
  });

  it("a meshed client the policy does not allow is refused over IPv6 too", async () => {
    const outcome = await run!.curl(reports, api, 3, `[${apiIp6}]`);
    assert.equal(outcome.ok, false, `reports reached api over IPv6 around the policy: ${outcome.detail}`);
  });

  it("the allowed meshed client reaches it over IPv6 with mTLS: TLS 1.3 only on the wire", async () => {
    const capture = await run!.cluster.capture("ipv6-web");
    const outcome = await run!.curl(web, api, 3, `[${apiIp6}]`);
    const streams = await capture.stop();
    assert.equal(outcome.ok, true, outcome.detail);
    const wire = wireReport(streams, `[${run!.cluster.pod("shop", "web").ip6}]`, ["GET / HTTP/1.1", api.text]);
    assert.equal(wire.verdict, "TLS 1.3", JSON.stringify(wire));
    assert.ok(wire.allTls);
  });
});
