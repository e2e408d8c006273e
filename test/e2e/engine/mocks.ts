// Pulumi mocks that act as the engine and providers the e2e run needs: @pulumi/tls mints real
// material (test/support/tls-provider.ts), Services get ClusterIPs, Kubernetes objects are autonamed and kept.
// Like the real engine, a resource whose inputs did not change since the previous render keeps
// its outputs (state), so a re-render with another mode changes only what the mode touches; a
// resource named in `replace` is recreated (`pulumi up --replace`).
import { createHash } from "node:crypto";
import * as pulumi from "@pulumi/pulumi";
import { stableStringify } from "../../../proxy/config";
import * as tlsProvider from "../../support/tls-provider";

export interface StateEntry {
  type: string;
  name: string;
  inputsDigest: string;
  id: string;
  outputs: Record<string, any>;
}

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [field: string]: any;
}

export interface Registered {
  type: string;
  name: string;
  /** Resolved outputs (for Kubernetes objects: the object as the API server would store it). */
  outputs: Record<string, any>;
}

export interface MockEngineOptions {
  /** Outputs of the previous render, by "<type>::<name>". */
  state: Record<string, StateEntry>;
  /** Resource names (regular expressions) to recreate even if their inputs did not change. */
  replace: string[];
  serviceCidrBase: string;
}

const SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270";

/** Mocked inputs carry Pulumi secrets as wrapped values; the object store wants plain values. */
export function unwrapSecrets(value: any): any {
  if (Array.isArray(value)) return value.map(unwrapSecrets);
  if (value && typeof value === "object") {
    if (value["4dabf18193072939515e22adb298388d"] === SECRET_SIG) return unwrapSecrets(value.value);
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, unwrapSecrets(v)]));
  }
  return value;
}

const digest = (text: string) => createHash("sha256").update(text).digest("hex");

export class MockEngine implements pulumi.runtime.Mocks {
  readonly registered: Registered[] = [];
  readonly state: Record<string, StateEntry> = {};
  readonly unmodelled = new Set<string>();
  private readonly usedClusterIps = new Set<string>();

  constructor(private readonly opts: MockEngineOptions) {
    for (const entry of Object.values(opts.state)) {
      const ip = entry.outputs?.spec?.clusterIP;
      if (ip) this.usedClusterIps.add(ip);
    }
  }

  async newResource(args: pulumi.runtime.MockResourceArgs): Promise<{ id: string; state: Record<string, any> }> {
    const inputs = unwrapSecrets(args.inputs ?? {});
    let key = `${args.type}::${args.name}`;
    for (let n = 2; key in this.state; n++) key = `${args.type}::${args.name}#${n}`;
    const inputsDigest = digest(stableStringify(inputs));
    const previous = this.opts.state[key];
    const replace = this.opts.replace.some((re) => new RegExp(re).test(args.name));
    let entry: StateEntry;
    if (previous && previous.inputsDigest === inputsDigest && !replace) {
      entry = previous;
    } else {
      const { id, outputs } = await this.create(args.type, args.name, inputs, previous);
      entry = { type: args.type, name: args.name, inputsDigest, id, outputs };
    }
    this.state[key] = entry;
    if (args.custom !== false) this.registered.push({ type: args.type, name: args.name, outputs: entry.outputs });
    return { id: entry.id, state: entry.outputs };
  }

  async call(args: pulumi.runtime.MockCallArgs): Promise<Record<string, any>> {
    this.unmodelled.add(`invoke ${args.token}`);
    return args.inputs;
  }

  private async create(type: string, name: string, inputs: Record<string, any>, previous?: StateEntry) {
    if (tlsProvider.isMintedType(type)) {
      return { id: digest(name + Math.random()).slice(0, 16), outputs: await tlsProvider.mint(type, inputs) };
    }
    if (type.startsWith("kubernetes:")) return this.createKube(type, name, inputs, previous);
    if (!type.startsWith("pulumi:")) this.unmodelled.add(type);
    return { id: `${name}-id`, outputs: inputs };
  }

  private createKube(type: string, name: string, inputs: Record<string, any>, previous?: StateEntry) {
    const [, group, token] = /^kubernetes:([^:]+):(.+)$/.exec(type) ?? [];
    // A `…Patch` resource's outputs are the patched object: kind Namespace for a NamespacePatch,
    // as the real provider reports it (seen in test/cluster/quickstart.cluster.ts).
    const kind = token?.replace(/Patch$/, "");
    if (!group || !kind) throw new tlsProvider.StandInError(`unexpected Kubernetes type token ${type}`);
    const apiVersion = group.startsWith("core/") ? group.slice("core/".length) : group;
    // Pulumi autonames objects without metadata.name: "<resource name>-<random suffix>".
    const metadata = { ...(inputs.metadata ?? {}) };
    metadata.name ??= previous?.outputs?.metadata?.name ?? `${name}-${digest(name).slice(0, 8)}`;
    const namespaced = !["Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "PersistentVolume", "StorageClass"].includes(kind);
    if (namespaced) metadata.namespace ??= "default";
    const outputs: Record<string, any> = { ...inputs, apiVersion, kind, metadata };
    if (kind === "Service") {
      const spec = { ...(inputs.spec ?? {}) };
      if (spec.clusterIP !== "None") {
        spec.clusterIP = previous?.outputs?.spec?.clusterIP ?? this.allocateClusterIp(`${metadata.namespace}/${metadata.name}`);
        spec.clusterIPs = [spec.clusterIP];
      }
      outputs.spec = spec;
    }
    return { id: namespaced ? `${metadata.namespace}/${metadata.name}` : metadata.name, outputs };
  }

  /** A stable address per Service name (so renders without state agree), probing on collision. */
  private allocateClusterIp(serviceKey: string): string {
    let h = parseInt(digest(serviceKey).slice(0, 8), 16);
    for (;;) {
      const a = ((h >>> 8) & 0xff) % 256;
      const b = (h & 0xff) % 254 + 1;
      const ip = `${this.opts.serviceCidrBase}.${a}.${b}`;
      if (!this.usedClusterIps.has(ip)) {
        this.usedClusterIps.add(ip);
        return ip;
      }
      h = (h + 1) >>> 0;
    }
  }
}
