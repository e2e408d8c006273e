// Scenario helpers for the component tests: render a program under the shared mocks, check every
// Kubernetes object against the OpenAPI schemas, find resources, and diff two renders the way a
// preview would (matched by URN; update or replace by the providers' own rules, provider-diff.ts).
import * as assert from "node:assert/strict";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { RecordedResource, installMocks, kubernetesSchemaErrors, render } from "../support/pulumi-mocks";
import { DiffOp, ProviderSettings, diffStep } from "../support/provider-diff";

export const mocks = installMocks();

export type Resources = RecordedResource[];

/** Renders a program and checks every Kubernetes object it registered against the schemas. */
export async function renderChecked<T>(program: () => T): Promise<{ result: T; resources: Resources }> {
  const rendered = await render(program);
  assertSchemasValid(rendered.resources);
  return rendered;
}

export function assertSchemasValid(resources: Resources, requireSome = true): void {
  const errors = resources.flatMap(kubernetesSchemaErrors);
  assert.deepEqual(errors, [], "every Kubernetes object must validate against the Kubernetes OpenAPI schemas");
  if (requireSome) assert.ok(resources.some((r) => r.type.startsWith("kubernetes:")), "the scenario registered Kubernetes objects");
}

export function find(resources: Resources, type: string, name: string): RecordedResource {
  const found = resources.find((r) => r.type.endsWith(type) && r.name === name);
  assert.ok(found, `no ${type} named ${name}; have ${resources.map((r) => `${r.type} ${r.name}`).join(", ")}`);
  return found;
}

/** Kubernetes object by kind and metadata.name (and namespace). */
export function object(resources: Resources, kind: string, name: string, namespace?: string): RecordedResource {
  const found = resources.find((r) => r.type.startsWith("kubernetes:") && r.inputs.kind === kind && r.outputs.metadata?.name === name && (namespace === undefined || r.outputs.metadata?.namespace === namespace));
  assert.ok(found, `no ${kind} ${namespace ?? "*"}/${name}`);
  return found;
}

/** Everything registered below a component (children, grandchildren, ...). */
export function descendants(resources: Resources, root: RecordedResource): Resources {
  const out: Resources = [];
  const walk = (urn: string) => {
    for (const r of resources.filter((x) => x.parent === urn)) {
      out.push(r);
      walk(r.urn);
    }
  };
  walk(root.urn);
  return out;
}

export interface Change {
  type: string;
  name: string;
  op: "create" | "delete" | Exclude<DiffOp, "same">;
}

/** The settings of the provider a resource was registered with ({} for the default provider). */
function providerSettings(resources: Resources, r: RecordedResource): ProviderSettings {
  if (!r.provider) return {};
  const urn = r.provider.slice(0, r.provider.lastIndexOf("::"));
  return resources.find((p) => p.urn === urn)?.inputs ?? {};
}

/** What `pulumi preview` would report between two renders of a program (custom resources only). */
export function diff(before: Resources, after: Resources): Change[] {
  const old = new Map(before.filter((r) => r.custom).map((r) => [r.urn, r]));
  const changes: Change[] = [];
  for (const r of after.filter((x) => x.custom)) {
    // The engine matches a resource by its URN, then by its aliases.
    const was = [r.urn, ...r.aliasUrns].find((urn) => old.has(urn));
    const prev = was === undefined ? undefined : old.get(was);
    if (was !== undefined) old.delete(was);
    if (!prev) {
      changes.push({ type: r.type, name: r.name, op: "create" });
      continue;
    }
    const op = diffStep(prev, r, providerSettings(after, r));
    if (op !== "same") changes.push({ type: r.type, name: r.name, op });
  }
  for (const r of old.values()) changes.push({ type: r.type, name: r.name, op: "delete" });
  return changes.sort((a, b) => `${a.type}${a.name}`.localeCompare(`${b.type}${b.name}`));
}

/** The proxyImage the examples require; the tests set it as a user would (`pulumi config set`). */
export const EXAMPLE_PROXY_IMAGE = "ghcr.io/acme/mesh-proxy:0.1.0";

/** Evaluates examples/<name> unmodified, with the given stack config (e.g. { mode: "permissive" }). */
export async function renderExample(name: "quickstart" | "migration", config: Record<string, string> = {}) {
  const program = path.resolve(__dirname, `../../examples/${name}/index.js`);
  const all = { proxyImage: EXAMPLE_PROXY_IMAGE, ...config };
  pulumi.runtime.setAllConfig(Object.fromEntries(Object.entries(all).map(([k, v]) => [`${pulumi.getProject()}:${k}`, v])));
  delete require.cache[program];
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return renderChecked(() => require(program) as Record<string, unknown>);
}

export const renderQuickstart = (config: Record<string, string> = {}) => renderExample("quickstart", config);

/** The reachability matrix a render put into the system namespace, one line per edge (no header). */
export function matrixLines(resources: Resources, mesh = "mesh", namespace = "mesh-system"): string[] {
  const text: string = object(resources, "ConfigMap", `${mesh}-reachability`, namespace).outputs.data["reachability.txt"];
  return text.split("\n").filter((line) => line && !line.startsWith("#"));
}

/** The two config documents a pod mounts. */
export function workloadJson(resources: Resources, configMapName: string, namespace: string): any {
  return JSON.parse(object(resources, "ConfigMap", configMapName, namespace).outputs.data["workload.json"]);
}
export function directoryJson(resources: Resources, namespace: string, mesh = "mesh"): any {
  return JSON.parse(object(resources, "ConfigMap", `${mesh}-directory`, namespace).outputs.data["directory.json"]);
}
