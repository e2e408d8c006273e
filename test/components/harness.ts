// Scenario helpers for the component tests: render a program under the shared mocks, check every
// Kubernetes object against the OpenAPI schemas, find resources, and diff two renders the way a
// preview would (same URN, inputs compared byte for byte; a changed replacementTrigger replaces).
import * as assert from "node:assert/strict";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { stableStringify } from "../../proxy/config";
import { RecordedResource, installMocks, kubernetesSchemaErrors, render } from "../support/pulumi-mocks";

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
  op: "create" | "delete" | "update" | "replace";
}

/** What `pulumi preview` would report between two renders of a program (custom resources only). */
export function diff(before: Resources, after: Resources): Change[] {
  const key = (r: RecordedResource) => `${r.type}::${r.name}`;
  const old = new Map(before.filter((r) => r.custom).map((r) => [key(r), r]));
  const changes: Change[] = [];
  for (const r of after.filter((x) => x.custom)) {
    const prev = old.get(key(r));
    old.delete(key(r));
    if (!prev) changes.push({ type: r.type, name: r.name, op: "create" });
    else if (stableStringify(prev.replacementTrigger ?? null) !== stableStringify(r.replacementTrigger ?? null)) changes.push({ type: r.type, name: r.name, op: "replace" });
    else if (stableStringify(prev.inputs) !== stableStringify(r.inputs)) changes.push({ type: r.type, name: r.name, op: "update" });
  }
  for (const r of old.values()) changes.push({ type: r.type, name: r.name, op: "delete" });
  return changes.sort((a, b) => `${a.type}${a.name}`.localeCompare(`${b.type}${b.name}`));
}

const QUICKSTART = path.resolve(__dirname, "../../examples/quickstart/index.js");

/** Evaluates examples/quickstart unmodified, with the given stack config (e.g. { mode: "permissive" }). */
export async function renderQuickstart(config: Record<string, string> = {}) {
  pulumi.runtime.setAllConfig(Object.fromEntries(Object.entries(config).map(([k, v]) => [`${pulumi.getProject()}:${k}`, v])));
  delete require.cache[QUICKSTART];
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return renderChecked(() => require(QUICKSTART) as Record<string, unknown>);
}

/** The two config documents a pod mounts. */
export function workloadJson(resources: Resources, configMapName: string, namespace: string): any {
  return JSON.parse(object(resources, "ConfigMap", configMapName, namespace).outputs.data["workload.json"]);
}
export function directoryJson(resources: Resources, namespace: string, mesh = "mesh"): any {
  return JSON.parse(object(resources, "ConfigMap", `${mesh}-directory`, namespace).outputs.data["directory.json"]);
}
