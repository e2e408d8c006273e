// meshTransform: meshes Deployments that a program declares with plain @pulumi/kubernetes.
//
// Pulumi runs `transforms` in the engine, asynchronously, after the program has declared its
// resources; by then the Mesh has sealed its registry. So the workloads to mesh are listed up
// front in the options: meshTransform creates each one's identity and config right away (and
// registers it, so the directory and AuthorizationPolicies see it), and the transform callback
// only rewrites the matching Deployment's pod spec. The pod-spec facts that only the Deployment
// knows (its container ports and kubelet probes) reach workload.json when the callback runs.
import * as pulumi from "@pulumi/pulumi";
import * as k8s from "@pulumi/kubernetes";
import { FILE_NAMES, LABELS, Mode } from "../proxy/wellknown";
import type { Probe } from "../proxy/config";
import type { Mesh } from "./mesh";
import type { MeshWorkloadRef } from "./meshed-workload";
import { WorkloadIdentity } from "./workload-identity";
import { InjectionError, PodSpecLike, containerPorts, injectSidecar, meshPodLabels } from "./inject";
import { PortPlan, PortPlanInput, WorkloadPort, planPorts } from "./ports";

/**
 * A transformed workload's Service is the program's own: the mesh cannot give it the tunnel port
 * that meshed clients of an opaque port dial, so its ports are never opaque.
 */
const TRANSFORM_PORTS: Pick<PortPlanInput, "opaquePorts" | "noOpaque"> = {
  opaquePorts: [],
  noOpaque: "meshTransform cannot add the mesh-tunnel port (15008) to the program's own Service",
};
import { serviceAddresses } from "./render";
import { checkDns1123Label, checkOptionalMode, componentLabel, MeshInputError } from "./validate";

/** Pods opt in with this label (on the Deployment or its pod template) unless `select` is given. */
export const INJECT_LABEL = "mtls-mesh.io/inject";

export interface TransformWorkload {
  namespace: string;
  /** metadata.name of the Deployment. */
  name: string;
  /** Default: the Deployment's name. The transform sets the pod's serviceAccountName to it. */
  serviceAccount?: string;
  /** Create the ServiceAccount (default true); false if the program declares it. */
  createServiceAccount?: boolean;
  mode?: Mode;
  /** The Service ports clients use (for the directory and policies). */
  ports?: WorkloadPort[];
  /** The Service the program declares for it: its name and ClusterIP go into the directory. */
  service?: { name: string; clusterIP: pulumi.Input<string>; /** Every family's ClusterIP on a dual-stack cluster (the Service's spec.clusterIPs). */ clusterIPs?: pulumi.Input<string[]> };
  identity?: { validityHours?: number; renewBeforeHours?: number; dnsNames?: string[] };
}

export interface MeshTransformOptions {
  workloads: TransformWorkload[];
  /** Which resources to mesh; default: Deployments labelled mtls-mesh.io/inject: "true". */
  select?: (args: pulumi.ResourceTransformArgs) => boolean;
  /**
   * How long workload.json waits for the transform to see its Deployment before failing the
   * update with an error naming it (a listed Deployment the transform never saw). The clock starts
   * when the mesh has rendered its config, but a Deployment reaches the transform only once all
   * its inputs resolved (an image built by docker-build, say), so leave room. Default 600 s, the
   * provider's own await for a Deployment; a forgotten transform holds the update that long.
   */
  waitSeconds?: number;
}

/** Identity and config of one workload meshed by the transform; a valid AuthorizationPolicy target. */
export class TransformedWorkload extends pulumi.ComponentResource implements MeshWorkloadRef {
  readonly mesh: Mesh;
  readonly namespace: string;
  readonly workloadName: string;
  readonly serviceAccountName: string;
  readonly label: string;
  readonly portPlan: PortPlan;
  readonly identity: WorkloadIdentity;
  readonly configMap: k8s.core.v1.ConfigMap;
  readonly configMapName: string;
  /**
   * What the Deployment must wait for: the identity Secret and the two ConfigMaps. Custom
   * resources, not this component: a transform's `dependsOn` reaches the engine as URNs, and a
   * component's URN does not stand for its children there (the SDK expands a component only for
   * resources it registers itself).
   */
  readonly podDependencies: pulumi.Resource[];
  /** workload.json; fails (naming the Deployment) if the transform never sees the Deployment. */
  readonly workloadConfig: pulumi.Output<string>;
  readonly mode?: Mode;
  readonly ports: WorkloadPort[];
  private podFacts!: { resolve: (v: { probes: Probe[]; containerPorts: number[] }) => void; reject: (e: Error) => void };
  private seen = false;

  constructor(name: string, mesh: Mesh, w: TransformWorkload, waitSeconds: number, opts?: pulumi.ComponentResourceOptions) {
    super("mtls-mesh:index:TransformedWorkload", name, {}, opts);
    const label = componentLabel("meshTransform workload", `${w.namespace}/${w.name}`);
    this.label = label;
    this.mesh = mesh;
    this.namespace = checkDns1123Label(label, "namespace", w.namespace);
    this.workloadName = checkDns1123Label(label, "name", w.name);
    this.serviceAccountName = checkDns1123Label(label, "serviceAccount", w.serviceAccount ?? w.name);
    this.mode = checkOptionalMode(label, "mode", w.mode);
    this.ports = w.ports ?? [];
    const modes = { mesh: mesh.defaultMode, namespace: mesh.namespaceModes[this.namespace], workload: this.mode };
    // Provisional plan (container ports unknown until the transform runs): enough for policies.
    this.portPlan = planPorts({ label, field: "ports", ports: this.ports, containerPorts: [], excludeInboundPorts: mesh.excludeInboundPorts, modes, ...TRANSFORM_PORTS });
    if (w.service) checkDns1123Label(label, "service.name", w.service.name);

    const ns = mesh.namespaceResource(this.namespace);
    const inNamespace = { parent: this, dependsOn: ns ? [ns] : [] };
    if (w.createServiceAccount ?? true) {
      new k8s.core.v1.ServiceAccount(`${name}-sa`, { metadata: { name: this.serviceAccountName, namespace: this.namespace } }, inNamespace);
    }
    this.identity = new WorkloadIdentity(
      `${name}-identity`,
      { ca: mesh.ca, trustDomain: mesh.trustDomain, namespace: this.namespace, serviceAccount: this.serviceAccountName, now: mesh.now, ...w.identity, secretProvider: mesh.configProvider },
      inNamespace,
    );
    const directory = mesh.directoryConfigMap(this.namespace);
    mesh.registry.registerWorkload({
      key: `${this.namespace}/${this.workloadName}`,
      label,
      namespace: this.namespace,
      name: this.workloadName,
      serviceAccount: this.serviceAccountName,
      spiffeId: this.identity.spiffeId,
      service: w.service
        ? { name: w.service.name, clusterIPs: pulumi.all([w.service.clusterIP, w.service.clusterIPs]).apply(([ip, ips]) => serviceAddresses(ip, ips)), ports: this.portPlan.servicePorts }
        : undefined,
    });

    const facts = new Promise<{ probes: Probe[]; containerPorts: number[] }>((resolve, reject) => (this.podFacts = { resolve, reject }));
    // Counted from the sealing of the registry (the program's synchronous part is done), not from
    // construction. unref: the timer alone never keeps the program alive.
    void mesh.registry.snapshot.then(() => {
      if (this.seen) return;
      const timer = setTimeout(
        () =>
          this.podFacts.reject(
            new MeshInputError(label, "workloads", `lists a Deployment that the transform never saw within ${waitSeconds} s`, `attach the transform to Deployment ${this.namespace}/${this.workloadName} (transforms: [t] or pulumi.runtime.registerResourceTransform(t)) and label it ${INJECT_LABEL}: "true", or remove it from the list, or raise waitSeconds if its inputs take longer to resolve`),
          ),
        waitSeconds * 1000,
      );
      timer.unref();
      facts.finally(() => clearTimeout(timer)).catch(() => undefined);
    });

    this.configMapName = `${this.workloadName}-mesh-config`;
    const plan = facts.then((f) => planPorts({ label, field: "ports", ports: this.ports, containerPorts: f.containerPorts, excludeInboundPorts: mesh.excludeInboundPorts, modes, ...TRANSFORM_PORTS }));
    this.workloadConfig = pulumi.all([plan, facts]).apply(([p, f]) =>
      mesh.workloadConfig({
        key: `${this.namespace}/${this.workloadName}`,
        namespace: this.namespace,
        name: this.workloadName,
        serviceAccount: this.serviceAccountName,
        spiffeId: this.identity.spiffeId,
        defaultMode: p.defaultMode,
        inboundPorts: p.inboundPorts,
        probes: Promise.resolve(f.probes),
      }),
    );
    this.configMap = new k8s.core.v1.ConfigMap(
      `${name}-mesh-config`,
      {
        metadata: { name: this.configMapName, namespace: this.namespace, labels: { [LABELS.managedBy]: "pulumi-mtls-mesh", [LABELS.workload]: this.workloadName } },
        data: { [FILE_NAMES.workload]: this.workloadConfig },
      },
      { ...inNamespace, provider: mesh.configProvider },
    );
    this.podDependencies = [...(ns ? [ns] : []), this.identity.secret, this.configMap, directory];
    this.registerOutputs({ spiffeId: this.identity.spiffeId });
  }

  /** Rewrites the Deployment's pod spec (pure apart from handing the pod facts to workload.json). */
  meshPodSpec(podSpec: PodSpecLike): PodSpecLike {
    const label = this.label;
    if (podSpec.serviceAccountName !== undefined && podSpec.serviceAccountName !== this.serviceAccountName) {
      throw new MeshInputError(label, "serviceAccount", `is ${JSON.stringify(this.serviceAccountName)}, but the Deployment runs as ${JSON.stringify(podSpec.serviceAccountName)}`, "list the Deployment's service account, or drop serviceAccountName from it");
    }
    const ports = containerPorts(podSpec);
    const plan = planPorts({ label, field: "ports", ports: this.ports, containerPorts: ports, excludeInboundPorts: this.mesh.excludeInboundPorts, modes: { mesh: this.mesh.defaultMode, namespace: this.mesh.namespaceModes[this.namespace], workload: this.mode }, ...TRANSFORM_PORTS });
    const inject = () => injectSidecar(podSpec, {
      ...this.mesh.injectDefaults(),
      inboundPorts: plan.redirectPorts,
      identitySecretName: this.identity.secretName,
      workloadConfigMapName: this.configMapName,
    });
    let injected;
    try {
      injected = inject();
    } catch (e) {
      if (e instanceof InjectionError) throw new MeshInputError(label, "spec.template.spec", e.message, e.fix ?? "remove the clashing container or volume, or do not mesh this Deployment twice");
      throw e;
    }
    if (!this.seen) {
      this.seen = true;
      this.podFacts.resolve({ probes: injected.probes, containerPorts: ports });
    }
    return { ...injected.podSpec, serviceAccountName: this.serviceAccountName };
  }
}

/** The transform callback, with the workloads it meshes (policy targets). */
export interface MeshTransform {
  (args: pulumi.ResourceTransformArgs): pulumi.ResourceTransformResult | undefined;
  readonly workloads: ReadonlyMap<string, TransformedWorkload>;
  /** The workload listed as "<namespace>/<name>". */
  workload(key: string): TransformedWorkload;
}

const DEPLOYMENT_TYPE = "kubernetes:apps/v1:Deployment";

function optedIn(args: pulumi.ResourceTransformArgs): boolean {
  const props = args.props as { metadata?: { labels?: Record<string, string> }; spec?: { template?: { metadata?: { labels?: Record<string, string> } } } };
  return props.metadata?.labels?.[INJECT_LABEL] === "true" || props.spec?.template?.metadata?.labels?.[INJECT_LABEL] === "true";
}

/** The user's dependsOn (one resource, a list, or an output of either) plus `extra`. */
function withDependencies(existing: pulumi.ResourceOptions["dependsOn"], extra: pulumi.Resource[]): pulumi.ResourceOptions["dependsOn"] {
  if (existing === undefined) return extra;
  if (Array.isArray(existing)) return [...existing, ...extra];
  if (pulumi.Resource.isInstance(existing)) return [existing, ...extra];
  return pulumi.output(existing as pulumi.Input<pulumi.Resource | pulumi.Resource[]>).apply((deps) => [...(Array.isArray(deps) ? deps : [deps]), ...extra]);
}

/**
 * A Pulumi `transforms` callback meshing the listed Deployments:
 *   const t = meshTransform(mesh, { workloads: [{ namespace: "billing", name: "invoices", ports: [...] }] });
 *   new k8s.apps.v1.Deployment("invoices", {...}, { transforms: [t] });
 */
export function meshTransform(mesh: Mesh, options: MeshTransformOptions): MeshTransform {
  const label = componentLabel("meshTransform", "options");
  if (!options || !Array.isArray(options.workloads)) {
    throw new MeshInputError(label, "workloads", "is missing", "list the Deployments to mesh: [{ namespace, name, ports }]");
  }
  const waitSeconds = options.waitSeconds ?? 600;
  const workloads = new Map<string, TransformedWorkload>();
  for (const w of options.workloads) {
    const key = `${w.namespace}/${w.name}`;
    workloads.set(key, new TransformedWorkload(`${w.namespace}-${w.name}`, mesh, w, waitSeconds, { parent: mesh }));
  }
  const select = options.select ?? optedIn;

  const transform = ((args: pulumi.ResourceTransformArgs) => {
    if (args.type !== DEPLOYMENT_TYPE || !select(args)) return undefined;
    const props = args.props as { metadata?: { name?: string; namespace?: string; labels?: Record<string, string> }; spec?: { template?: { metadata?: Record<string, unknown>; spec?: PodSpecLike } } };
    const namespace = props.metadata?.namespace;
    if (namespace === undefined) {
      // Its namespace would come from the provider's `namespace` setting (or the kubeconfig's), which
      // a transform cannot read; guessing "default" would mesh it with the wrong identity.
      throw new MeshInputError(componentLabel("meshTransform", args.name), "metadata.namespace", "is not set on a Deployment that opted in to the mesh", "set metadata.namespace on the Deployment explicitly");
    }
    const name = props.metadata?.name ?? args.name;
    const member = workloads.get(`${namespace}/${name}`);
    if (!member) {
      throw new MeshInputError(componentLabel("meshTransform", args.name), "workloads", `does not list Deployment ${namespace}/${name}, which opted in to the mesh`, `add { namespace: ${JSON.stringify(namespace)}, name: ${JSON.stringify(name)} } to the meshTransform options (with metadata.name set on the Deployment)`);
    }
    const template = props.spec?.template ?? {};
    if (!template.spec) throw new MeshInputError(member.label, "spec.template.spec", "is missing", "give the Deployment a pod template");
    const templateMeta = (template.metadata ?? {}) as { labels?: Record<string, string> };
    return {
      props: {
        ...props,
        spec: {
          ...props.spec,
          template: {
            ...template,
            metadata: { ...templateMeta, labels: { ...(templateMeta.labels ?? {}), ...meshPodLabels(member.workloadName, member.serviceAccountName) } },
            spec: member.meshPodSpec(template.spec),
          },
        },
      },
      // Like MeshedWorkload's Deployment: created only once its identity Secret and ConfigMap exist.
      opts: { ...args.opts, dependsOn: withDependencies(args.opts.dependsOn, member.podDependencies) },
    };
  }) as MeshTransform;
  Object.defineProperty(transform, "workloads", { value: workloads });
  Object.defineProperty(transform, "workload", {
    value: (key: string) => {
      const found = workloads.get(key);
      if (!found) throw new MeshInputError(label, "workloads", `does not list ${JSON.stringify(key)}`, `use one of ${[...workloads.keys()].join(", ")}`);
      return found;
    },
  });
  return transform;
}
