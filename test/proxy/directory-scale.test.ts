// A mesh of 10,000 services: the directory arrives gzip-compressed (directory.json.gz) once its
// text would not fit a ConfigMap, the proxy reads either form, switches between them on reload,
// refuses a decompression bomb, and finds a destination without scanning every service.
import * as assert from "node:assert/strict";
import * as zlib from "node:zlib";
import { DirectoryConfigInput, ConfigError, stableStringify } from "../../proxy/config";
import { lookupDestination } from "../../proxy/directory";
import { loadMeshConfig } from "../../proxy/settings";
import { directoryData, DIRECTORY_TEXT_LIMIT, DirectoryTooLargeError } from "../../components/directory-data";
import { renderDirectoryConfig } from "../../components/render";
import { kubeletWrite, removeTmpDirs, tmpDir, workload } from "./support";

const CLIENT = "spiffe://cluster.local/ns/shop/sa/web";

function services(n: number) {
  return Array.from({ length: n }, (_, i) => {
    const ns = `team-${i % 100}`;
    const name = `service-${i}`;
    return {
      namespace: ns, name, spiffeId: `spiffe://cluster.local/ns/${ns}/sa/${name}`,
      addresses: [`10.${96 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`],
      hostnames: [name, `${name}.${ns}`, `${name}.${ns}.svc`, `${name}.${ns}.svc.cluster.local`],
      ports: [{ port: 8080, targetPort: 8080, mode: "strict" as const }],
    };
  });
}

describe("proxy/directory at scale", () => {
  after(removeTmpDirs);

  it("stays readable JSON for a small mesh and turns into deterministic gzip past the text limit", () => {
    const small = renderDirectoryConfig(services(100));
    assert.deepEqual(Object.keys(directoryData(small, 100).data), ["directory.json"]);
    const large = renderDirectoryConfig(services(10_000));
    assert.ok(Buffer.byteLength(large) > DIRECTORY_TEXT_LIMIT);
    const first = directoryData(large, 10_000);
    assert.deepEqual(first.data, {});
    assert.equal(first.binaryData["directory.json.gz"], directoryData(large, 10_000).binaryData["directory.json.gz"], "same text, same bytes: a re-run previews nothing");
    const bytes = Buffer.from(first.binaryData["directory.json.gz"], "base64");
    assert.ok(bytes.length < 1024 * 1024, `${bytes.length} bytes fit a ConfigMap`);
    assert.equal(zlib.gunzipSync(bytes).toString("utf8"), large);
  });

  it("refuses a directory that would not fit even compressed, saying what to do", () => {
    const random = Array.from({ length: 60_000 }, (_, i) => `${i}:${Math.random().toString(36)}${Math.random().toString(36)}`).join(",");
    assert.throws(() => directoryData(random, 60_000), (e: unknown) => e instanceof DirectoryTooLargeError && /60000 services .* over the .* split the services across meshes/.test((e as Error).message));
  });

  it("the proxy loads directory.json.gz, prefers it, and finds the 10,000th service through its address index", () => {
    const dir = tmpDir();
    const doc = JSON.parse(renderDirectoryConfig(services(10_000))) as DirectoryConfigInput;
    kubeletWrite(dir, { "workload.json": stableStringify(workload(CLIENT)), "directory.json.gz": zlib.gzipSync(stableStringify(doc)) });
    const config = loadMeshConfig({ kind: "directory", path: dir });
    assert.equal(config.directory.services.length, 10_000);
    const match = lookupDestination(config.directory, "10.96.39.15", 8080);
    assert.deepEqual(match, { service: "team-99/service-9999", spiffeId: "spiffe://cluster.local/ns/team-99/sa/service-9999", targetPort: 8080, mode: "strict", opaque: false });
    assert.equal(lookupDestination(config.directory, "::ffff:10.96.39.15", 8080)?.service, "team-99/service-9999", "IPv4-mapped form too");
    assert.equal(lookupDestination(config.directory, "10.96.39.15", 9090), undefined);
    // The kubelet swaps the keys when the ConfigMap switches forms: the text comes back.
    kubeletWrite(dir, { "workload.json": stableStringify(workload(CLIENT)), "directory.json": stableStringify({ version: 1, services: services(2) }) });
    assert.equal(loadMeshConfig({ kind: "directory", path: dir }).directory.services.length, 2);
  });

  it("refuses a decompression bomb and garbage with a config error, not a crash", () => {
    const bomb = tmpDir();
    kubeletWrite(bomb, { "workload.json": stableStringify(workload(CLIENT)), "directory.json.gz": zlib.gzipSync(Buffer.alloc(80 * 1024 * 1024, 32)) });
    assert.throws(() => loadMeshConfig({ kind: "directory", path: bomb }), (e: unknown) => e instanceof ConfigError && /cannot read .*directory\.json\.gz/.test((e as Error).message));
    const garbage = tmpDir();
    kubeletWrite(garbage, { "workload.json": stableStringify(workload(CLIENT)), "directory.json.gz": Buffer.from("not gzip at all") });
    assert.throws(() => loadMeshConfig({ kind: "directory", path: garbage }), ConfigError);
  });
});
