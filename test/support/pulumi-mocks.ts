// The shared Pulumi engine stand-in for tests (pulumi.runtime.setMocks). It behaves like the real
// providers where the product depends on it:
//  - @pulumi/tls mints REAL keys, CSRs and certificates exactly as the inputs say (algorithm,
//    curve, subject, URI/DNS SANs, allowed uses, CA flag, path length, validity): tls-provider.ts,
//    the same minting the e2e engine uses, so tests parse what the components asked for. Like
//    the provider, LocallySignedCert copies SANs from the CSR and does not backdate notBefore.
//  - Kubernetes objects echo their inputs with server-side metadata (auto-names, namespace);
//    Services get a deterministic ClusterIP; Secrets get `data` from `stringData`.
//  - every registration is recorded with its options (parent, dependencies, protect,
//    ignoreChanges, replacementTrigger, retainOnDelete, provider), for assertions and diffs.
//  - URNs are built like the engine builds them: the WHOLE parent type chain
//    (`Mesh$CertificateAuthority$tls:index/privateKey:PrivateKey`), not only the last parent's type
//    as the SDK's own MockMonitor does (@pulumi/pulumi's resource.ts createUrn mirrors the engine);
//    and a render that registered one URN twice fails with the engine's "Duplicate resource URN"
//    error (the SDK's mocks accept it). The error comes from render(), after the registrations
//    settled: failing the registration itself would leave the SDK's RPC queue waiting forever.
import { createHash } from "node:crypto";
import * as pulumi from "@pulumi/pulumi";
import { isMintedType, mint } from "./tls-provider";

export interface RecordedResource {
  urn: string;
  type: string;
  name: string;
  custom: boolean;
  inputs: Record<string, any>;
  outputs: Record<string, any>;
  parent: string;
  dependencies: string[];
  protect: boolean;
  ignoreChanges: string[];
  replacementTrigger: unknown;
  retainOnDelete: boolean;
  /** URNs this resource answers to besides its own (its `aliases`, as the engine resolves them). */
  aliasUrns: string[];
  /** The provider reference ("<urn>::<id>"), or "" for the default provider. */
  provider: string;
  /** Dotted paths of inputs that arrived as Pulumi secrets, e.g. "stringData.tls.key". */
  secretInputs: string[];
}

/** Pulumi's wire marker for a secret value. */
const SECRET_SIG = "4dabf18193072939515e22adb298388d";
const SECRET_VALUE = "1b47061264138c4ac30d75fd1eb44270";

/** Unwraps secret markers, noting where they were. */
function unwrapSecrets(value: unknown, path: string, secrets: string[]): any {
  if (Array.isArray(value)) return value.map((v, i) => unwrapSecrets(v, `${path}[${i}]`, secrets));
  if (value && typeof value === "object") {
    const obj = value as Record<string, unknown>;
    if (obj[SECRET_SIG] === SECRET_VALUE) {
      secrets.push(path);
      return unwrapSecrets(obj.value, path, secrets);
    }
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(obj)) out[k] = unwrapSecrets(v, path ? `${path}.${k}` : k, secrets);
    return out;
  }
  return value;
}

const NAMESPACED_KINDS = new Set(["Secret", "ConfigMap", "Service", "ServiceAccount", "Deployment", "StatefulSet", "DaemonSet", "NetworkPolicy", "Role", "RoleBinding", "Pod", "Job"]);

const shortHash = (text: string) => createHash("sha256").update(text).digest("hex").slice(0, 8);

/** A ClusterIP in 10.96.0.0/16, stable per namespace/name (as stable as a real one in state). */
export function clusterIpFor(namespace: string, name: string): string {
  const h = createHash("sha256").update(`${namespace}/${name}`).digest();
  return `10.96.${h[0]}.${(h[1] % 253) + 1}`;
}

function kubernetesObject(name: string, inputs: Record<string, any>): Record<string, unknown> {
  const metadata = { ...(inputs.metadata ?? {}) };
  // Pulumi auto-names with a random suffix; a stable one keeps renders comparable.
  metadata.name ??= `${name}-${shortHash(name)}`;
  if (NAMESPACED_KINDS.has(inputs.kind)) metadata.namespace ??= "default";
  const out: Record<string, any> = { ...inputs, metadata };
  if (inputs.kind === "Service" && inputs.spec?.type !== "ExternalName" && inputs.spec?.clusterIP === undefined) {
    const ip = clusterIpFor(metadata.namespace, metadata.name);
    out.spec = { ...inputs.spec, clusterIP: ip, clusterIPs: [ip] };
  }
  if (inputs.kind === "Secret" && inputs.stringData) {
    const data: Record<string, string> = { ...(inputs.data ?? {}) };
    for (const [k, v] of Object.entries(inputs.stringData as Record<string, string>)) data[k] = Buffer.from(v).toString("base64");
    out.data = data;
    delete out.stringData;
  }
  return out;
}

/** The engine stand-in. One instance per process; `reset()` between scenarios. */
export class MeshMocks implements pulumi.runtime.Mocks {
  readonly resources: RecordedResource[] = [];
  /**
   * Minted tls material by resource and inputs, standing in for Pulumi state: rendering the same
   * program again returns the same keys and certificates, as a re-run against a stack does.
   */
  private readonly state = new Map<string, Record<string, unknown>>();
  
  /** Warnings the program logged (`pulumi.log.warn`), which the engine would show as diagnostics. */
  readonly warnings: string[] = [];
  /** URNs registered in the current render, for the engine's duplicate check. */
  readonly urns = new Set<string>();
  /** URNs registered more than once in the current render. */
  readonly duplicateUrns: string[] = [];

  reset(): void {
    this.resources.length = 0;
    this.urns.clear();
    this.duplicateUrns.length = 0;
    this.warnings.length = 0;
  }

  /** Throws the engine's error if the render registered a URN twice. */
  assertNoDuplicateUrns(): void {
    if (this.duplicateUrns.length > 0) throw new Error(`Duplicate resource URN '${this.duplicateUrns[0]}'; try giving it a unique name`);
  }

  /** Forgets minted keys and certificates (a fresh stack). */
  forgetState(): void {
    this.state.clear();
  }

  /**
   * replacementTrigger per "type::name" of the registration in flight: a replace mints anew even
   * when the inputs are the same (the engine creates a new key), so minting keys on it too.
   */
  readonly triggers = new Map<string, string>();

  private async minted(type: string, name: string, inputs: Record<string, any>): Promise<Record<string, unknown>> {
    const key = `${type}::${name}::${this.triggers.get(`${type}::${name}`) ?? ""}::${JSON.stringify(inputs)}`;
    let outputs = this.state.get(key);
    if (!outputs) {
      outputs = await mint(type, inputs);
      this.state.set(key, outputs);
    }
    return outputs;
  }

  async newResource(raw: pulumi.runtime.MockResourceArgs): Promise<{ id: string | undefined; state: Record<string, any> }> {
    const secretInputs: string[] = [];
    const args = { ...raw, inputs: unwrapSecrets(raw.inputs, "", secretInputs) };
    const outputs = isMintedType(args.type)
      ? await this.minted(args.type, args.name, args.inputs)
      : args.type.startsWith("kubernetes:")
        ? kubernetesObject(args.name, args.inputs)
        : args.type === "docker-build:index:Image"
          ? { ...args.inputs, digest: `sha256:${shortHash(args.name).repeat(8)}`, ref: `${args.inputs.tags?.[0]}@sha256:${shortHash(args.name).repeat(8)}` }
          : args.inputs;
    this.resources.push({
      urn: "",
      type: args.type,
      name: args.name,
      custom: args.custom ?? true,
      inputs: args.inputs,
      outputs,
      parent: "",
      dependencies: [],
      protect: false,
      ignoreChanges: [],
      replacementTrigger: undefined,
      retainOnDelete: false,
      aliasUrns: [],
      provider: args.provider ?? "",
      secretInputs,
    });
    const id = args.custom === false ? undefined : `${args.name}-id`;
    return { id, state: outputs };
  }

  call(args: pulumi.runtime.MockCallArgs): Record<string, any> {
    return args.inputs;
  }

  /** Attaches the registration options the engine received to the recorded resources. */
  captureOptions(urn: string, type: string, name: string, options: CapturedOptions): void {
    const recorded = this.resources.find((r) => r.type === type && r.name === name && r.urn === "");
    if (recorded) Object.assign(recorded, options, { urn });
  }
}

export const mocks = new MeshMocks();

type CapturedOptions = Pick<RecordedResource, "parent" | "dependencies" | "protect" | "ignoreChanges" | "replacementTrigger" | "retainOnDelete" | "aliasUrns">;

interface AliasProto {
  getUrn(): string;
  getSpec(): { getName(): string; getType(): string; getParenturn(): string; getNoparent(): boolean } | undefined;
}

interface ProtoValue {
  toJavaScript(): unknown;
}
interface RegisterRequest {
  getType(): string;
  getName(): string;
  getParent(): string;
  getDependenciesList(): string[];
  getProtect(): boolean;
  getIgnorechangesList(): string[];
  getReplacementTrigger(): ProtoValue | undefined;
  getRetainondelete(): boolean | undefined;
  getAliasesList(): AliasProto[];
}

/**
 * The engine's URN: urn:pulumi:<stack>::<project>::<parent's whole type chain>$<type>::<name>
 * (the stack itself is left out of the chain).
 */
export function engineUrn(stack: string, project: string, parentUrn: string, type: string, name: string): string {
  let chain = type;
  if (parentUrn) {
    const parentChain = parentUrn.split("::")[2];
    if (parentChain !== "pulumi:pulumi:Stack") chain = `${parentChain}$${type}`;
  }
  return `urn:pulumi:${stack}::${project}::${chain}::${name}`;
}

/**
 * Installs the mocks (once per process; later calls reset the recorded resources and switch
 * preview on or off). Import components only after calling this.
 */
export function installMocks(preview = false): MeshMocks {
  mocks.reset();
  pulumi.runtime.setMocks(mocks, "mesh-test", "test", preview);
  // Without an engine the SDK prints warnings to stderr; keep them for assertions instead.
  pulumi.log.warn = async (message: string) => void mocks.warnings.push(message);
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const settings = require("@pulumi/pulumi/runtime/settings");
  const monitor = settings.getMonitor() as {
    newUrn: (parent: string, type: string, name: string) => string;
    registerResource: (req: RegisterRequest, cb: (err: unknown, res: { getUrn(): string } | undefined) => void) => void;
  };
  // registerResource and readResource both name the resource through newUrn.
  monitor.newUrn = (parent, type, name) => {
    const urn = engineUrn(pulumi.getStack(), pulumi.getProject(), parent, type, name);
    if (mocks.urns.has(urn)) mocks.duplicateUrns.push(urn);
    mocks.urns.add(urn);
    return urn;
  };
  const original = monitor.registerResource.bind(monitor);
  monitor.registerResource = (req, cb) => {
    mocks.triggers.set(`${req.getType()}::${req.getName()}`, JSON.stringify(req.getReplacementTrigger()?.toJavaScript() ?? null));
    return original(req, (err, res) => {
      if (!err && res) {
        mocks.captureOptions(res.getUrn(), req.getType(), req.getName(), {
          parent: req.getParent(),
          dependencies: req.getDependenciesList(),
          protect: req.getProtect(),
          ignoreChanges: req.getIgnorechangesList(),
          replacementTrigger: req.getReplacementTrigger()?.toJavaScript(),
          retainOnDelete: req.getRetainondelete() ?? false,
          // An alias spec leaves out what stays the same (name, type, parent), as the engine fills it in.
          aliasUrns: req.getAliasesList().map((alias) => {
            const spec = alias.getSpec();
            if (!spec) return alias.getUrn();
            const parent = spec.getNoparent() ? "" : spec.getParenturn() || req.getParent();
            return engineUrn(pulumi.getStack(), pulumi.getProject(), parent, spec.getType() || req.getType(), spec.getName() || req.getName());
          }),
        });
      }
      cb(err, res);
    });
  };
  return mocks;
}

/** Waits until every registration the program started has completed (the engine's RPC queue). */
export async function settle(): Promise<void> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const settings = require("@pulumi/pulumi/runtime/settings");
  await settings.waitForRPCs();
}

/**
 * For a test that makes a registration fail on purpose: the engine would abort the update there,
 * but under mocks that registration's promises stay pending forever, and Pulumi's exit-time leak
 * check would then print its "promises were still active" banner at the end of `npm test`.
 * Forgets the promises pending now, so a real leak later in the run is still reported.
 */
export function forgetStrandedRegistrations(): void {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const debuggable = require("@pulumi/pulumi/runtime/debuggable");
  debuggable.leakedPromises();
}

/**
 * Runs a program under the mocks and returns every resource it registered, once all are done.
 * Errors thrown by the program (e.g. a refused input) propagate.
 */
export async function render<T>(program: () => T): Promise<{ result: T; resources: RecordedResource[] }> {
  mocks.reset();
  const result = program();
  await settle();
  mocks.assertNoDuplicateUrns();
  return { result, resources: [...mocks.resources] };
}

/** Resolves an Output's value (mocks run applies, so it is known). */
export function valueOf<T>(output: pulumi.Output<T>): Promise<T> {
  return new Promise((resolve) => output.apply((v) => resolve(v)));
}

/**
 * Schema problems of one recorded Kubernetes object against the Kubernetes OpenAPI schemas
 * (kubernetes-models); [] when valid or when the resource is not a Kubernetes object.
 */
export function kubernetesSchemaErrors(resource: RecordedResource): string[] {
  if (!resource.type.startsWith("kubernetes:")) return [];
  const { apiVersion, kind } = resource.inputs as { apiVersion?: string; kind?: string };
  if (!apiVersion || !kind) return [`${resource.type} ${resource.name}: no apiVersion/kind`];
  const modulePath = apiVersion.includes("/") ? `kubernetes-models/${apiVersion}` : `kubernetes-models/${apiVersion}`;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const models = require(modulePath) as Record<string, new (data: unknown) => { validate(): void }>;
  const Model = models[kind];
  if (!Model) return [`${apiVersion} ${kind}: no schema in kubernetes-models`];
  // Validate what the API server would receive: the inputs with server-side metadata filled in.
  const object = { ...resource.outputs, apiVersion, kind };
  try {
    new Model(object).validate();
    return [];
  } catch (e) {
    return [`${kind} ${resource.name}: ${(e as Error).message}`];
  }
}
