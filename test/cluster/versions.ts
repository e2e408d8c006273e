// The versions the real-engine suite runs, read from where they are pinned.
import * as fs from "node:fs";
import * as path from "node:path";

const ROOT = path.resolve(__dirname, "..", "..", "..");

/** The provider version build.sh builds (its K8S_PROVIDER_VERSION), e.g. "4.25.0". */
export function k8sProviderVersion(): string {
  const script = fs.readFileSync(path.join(ROOT, "test", "cluster", "tools", "build.sh"), "utf8");
  const m = /^K8S_PROVIDER_VERSION=(\S+)\s*$/m.exec(script);
  if (!m) throw new Error("test/cluster/tools/build.sh sets no K8S_PROVIDER_VERSION");
  return m[1];
}

/** The @pulumi/kubernetes SDK package.json pins. */
export function k8sSdkVersion(): string {
  return JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8")).dependencies["@pulumi/kubernetes"];
}
