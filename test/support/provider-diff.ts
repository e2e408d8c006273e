// What the real providers answer to Diff, for the resources this package registers, so the
// component tests' previews say "replace" exactly where `pulumi preview` would.
//
// pulumi-kubernetes (provider/pkg/provider/diff.go `forceNewProperties`, provider.go `Diff`):
//  - `.metadata.name` and `.metadata.namespace` always replace;
//  - a Secret's `.type` always replaces; its `.data`/`.stringData` replace unless the provider
//    sets `enableSecretMutable` and the Secret is not `immutable`;
//  - a ConfigMap's `.data`/`.binaryData` replace unless the provider sets
//    `enableConfigMapMutable` and the ConfigMap is not `immutable`;
//  - Deployment/DaemonSet `.spec.selector`; StatefulSet `.spec.selector`, `.serviceName`,
//    `.podManagementPolicy`, `.revisionHistoryLimit`, `.volumeClaimTemplates`; Service
//    `.spec.clusterIP`; (Cluster)RoleBinding `.roleRef`;
//  - Patch resources (`…Patch` types) replace only on name/namespace;
//  - a replace of an object with a fixed name in the same namespace is delete-before-replace.
// @pulumi/tls (bridged): every input of PrivateKey, SelfSignedCert, CertRequest and
// LocallySignedCert is ForceNew, so any input change replaces.
// The engine: a changed `replacementTrigger` replaces.
import { stableStringify } from "../../proxy/config";

export type DiffOp = "same" | "update" | "replace" | "delete-before-replace";

export interface DiffSide {
  type: string;
  inputs: Record<string, any>;
  replacementTrigger: unknown;
  /** The `ignoreChanges` paths (top-level and dotted): the engine keeps the old value there. */
  ignoreChanges?: string[];
}

/** The provider settings Diff depends on ("true" as Pulumi serializes provider inputs, or true). */
export interface ProviderSettings {
  enableConfigMapMutable?: unknown;
  enableSecretMutable?: unknown;
}

const isTrue = (v: unknown) => v === true || v === "true";

const FORCE_NEW: Record<string, string[]> = {
  Deployment: ["spec.selector"],
  DaemonSet: ["spec.selector"],
  StatefulSet: ["spec.selector", "spec.serviceName", "spec.podManagementPolicy", "spec.revisionHistoryLimit", "spec.volumeClaimTemplates"],
  Service: ["spec.clusterIP"],
  RoleBinding: ["roleRef"],
  ClusterRoleBinding: ["roleRef"],
};

function at(object: Record<string, any>, path: string): unknown {
  return path.split(".").reduce<any>((o, k) => (o == null ? undefined : o[k]), object);
}

/** The inputs' property paths whose change makes the provider replace the object. */
export function forceNewPaths(type: string, inputs: Record<string, any>, provider: ProviderSettings): string[] {
  const paths = ["metadata.name", "metadata.namespace"];
  if (type.endsWith("Patch")) return paths;
  const kind = inputs.kind as string;
  const immutable = inputs.immutable === true;
  if (kind === "Secret") {
    paths.push("type");
    if (!isTrue(provider.enableSecretMutable) || immutable) paths.push("data", "stringData");
  } else if (kind === "ConfigMap") {
    if (!isTrue(provider.enableConfigMapMutable) || immutable) paths.push("data", "binaryData");
  }
  return [...paths, ...(FORCE_NEW[kind] ?? [])];
}

/** `after` with the old value at each ignored path, as the engine sends it to Diff. */
function withIgnoredKept(before: Record<string, any>, after: Record<string, any>, ignored: string[]): Record<string, any> {
  const out = structuredClone(after);
  for (const path of ignored) {
    const keys = path.split(".");
    const last = keys.pop()!;
    const parent = keys.reduce<any>((o, k) => (o == null ? undefined : o[k]), out);
    if (parent == null) continue;
    const old = at(before, path);
    if (old === undefined) delete parent[last];
    else parent[last] = old;
  }
  return out;
}

/** The step `pulumi preview` takes for a resource present in both renders. */
export function diffStep(before: DiffSide, after: DiffSide, provider: ProviderSettings): DiffOp {
  if (stableStringify(before.replacementTrigger ?? null) !== stableStringify(after.replacementTrigger ?? null)) return "replace";
  after = { ...after, inputs: withIgnoredKept(before.inputs, after.inputs, after.ignoreChanges ?? []) };
  if (stableStringify(before.inputs) === stableStringify(after.inputs)) return "same";
  if (after.type.startsWith("tls:")) return "replace";
  if (!after.type.startsWith("kubernetes:")) return "update";
  const changed = forceNewPaths(after.type, after.inputs, provider).some(
    (p) => stableStringify(at(before.inputs, p) ?? null) !== stableStringify(at(after.inputs, p) ?? null),
  );
  if (!changed) return "update";
  const named = typeof at(after.inputs, "metadata.name") === "string";
  const sameName = at(before.inputs, "metadata.name") === at(after.inputs, "metadata.name") && at(before.inputs, "metadata.namespace") === at(after.inputs, "metadata.namespace");
  return named && sameName ? "delete-before-replace" : "replace";
}
