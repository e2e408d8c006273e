// MeshedWorkload: a Deployment (or StatefulSet) with the proxy injected, plus its ServiceAccount,
// WorkloadIdentity, config (workload.json) and Service. The logic lives in pure functions
// (planPorts, injectSidecar, renderWorkloadConfig); this class wires resources together.
import * as pulumi from "@pulumi/pulumi";
import * as k8s from "@pulumi/kubernetes";
import { FILE_NAMES, LABELS, Mode } from "../proxy/wellknown";
import type { Mesh } from "./mesh";
import { WorkloadIdentity } from "./workload-identity";
import { ContainerLike, InjectionError, PodSpecLike, injectSidecar, meshPodLabels, INIT_CONTAINER_NAME, SIDECAR_NAME } from "./inject";
import { WorkloadPort, planPorts, PortPlan, renderServicePorts } from "./ports";
import { serviceAddresses, serviceHostnames } from "./render";
import { MeshInputError, checkAppPort, checkDns1035Label, checkDns1123Label, checkOptionalMode, componentLabel } from "./validate";
import { claimedName } from "./registry";

export type { WorkloadPort } from "./ports";

export interface MeshedWorkloadArgs {
  mesh: Mesh;
  namespace: string;
  /** Default: the workload's name. Its SPIFFE ID is spiffe://<trustDomain>/ns/<namespace>/sa/<serviceAccount>. */
  serviceAccount?: string;
  /** "Deployment" (default) or "StatefulSet". */
  kind?: "Deployment" | "StatefulSet";
  /** Default 1. */
  replicas?: number;
  /** App containers. name, ports and probes must be plain values (not Outputs). */
  containers: k8s.types.input.core.v1.Container[];
  /** Service ports; none = a client-only workload with no Service. */
  ports?: WorkloadPort[];
  /** Workload-level mode, overriding the namespace and mesh default. */
  mode?: Mode;
  /** Pod ports the proxy leaves alone (e.g. a metrics port scraped in plaintext). */
  excludeInboundPorts?: number[];
  /** Extra pod labels and annotations. */
  podLabels?: Record<string, string>;
  podAnnotations?: Record<string, string>;
  /** Further pod spec fields (volumes, nodeSelector, securityContext, ...). */
  podSpec?: Omit<k8s.types.input.core.v1.PodSpec, "containers" | "serviceAccountName">;
  /** Certificate lifetime and renewal (defaults: 720 h valid, renewed 240 h before expiry). */
  identity?: { validityHours?: number; renewBeforeHours?: number; dnsNames?: string[] };
}

/** What AuthorizationPolicy needs to know about the workload it protects. */
export interface MeshWorkloadRef {
  readonly mesh: Mesh;
  readonly namespace: string;
  readonly workloadName: string;
  readonly label: string;
  /** Service ports (with pod targetPorts) and pod ports, for translating policy ports. */
  readonly portPlan: PortPlan;
}

export class MeshedWorkload extends pulumi.ComponentResource implements MeshWorkloadRef {
  readonly mesh: Mesh;
  readonly namespace: string;
  readonly workloadName: string;
  readonly serviceAccountName: string;
  readonly label: string;
  readonly portPlan: PortPlan;
  readonly spiffeId: string;
  readonly identity: WorkloadIdentity;
  readonly serviceAccount: k8s.core.v1.ServiceAccount;
  readonly configMap: k8s.core.v1.ConfigMap;
  readonly workload: k8s.apps.v1.Deployment | k8s.apps.v1.StatefulSet;
  readonly service?: k8s.core.v1.Service;
  /** A StatefulSet's governing Service (headless, `<name>-headless`): it gives pods `<pod>.<name>-headless` DNS names. */
  readonly headlessService?: k8s.core.v1.Service;
  /** <name>.<namespace>.svc.<clusterDomain>, when there is a Service. */
  readonly serviceHost?: string;

  constructor(name: string, args: MeshedWorkloadArgs, opts?: pulumi.ComponentResourceOptions) {
    super("mtls-mesh:index:MeshedWorkload", claimedName(args?.mesh, "MeshedWorkload", name, args?.namespace, opts?.parent), {}, opts);
    const label = componentLabel("MeshedWorkload", name);
    this.label = label;
    const mesh = args.mesh;
    this.mesh = mesh;
    this.workloadName =
      (args.ports ?? []).length > 0 || args.kind === "StatefulSet"
        ? checkDns1035Label(label, "name", name, "it names the workload's Service")
        : checkDns1123Label(label, "name", name);
    if (this.getProvider("kubernetes:core/v1:ConfigMap") !== mesh?.getProvider?.("kubernetes:core/v1:ConfigMap")) {
      // Its ConfigMap and Secret go through the mesh's configProvider, its Deployment through
      // this provider: two clusters, unless they are one.
      throw new MeshInputError(label, "provider", "differs from its Mesh's Kubernetes provider", "give the MeshedWorkload the Mesh's provider (or none: it inherits), and the Mesh a configProvider for the same cluster");
    }
    this.namespace = checkDns1123Label(label, "namespace", args.namespace);
    this.serviceAccountName = checkDns1123Label(label, "serviceAccount", args.serviceAccount ?? name);
    const kind = args.kind ?? "Deployment";
    if (kind !== "Deployment" && kind !== "StatefulSet") {
      throw new MeshInputError(label, "kind", `is ${JSON.stringify(kind)}`, "use \"Deployment\" or \"StatefulSet\"");
    }
    if (kind === "StatefulSet" && name.length > 54) {
      throw new MeshInputError(label, "name", `is ${name.length} characters; a StatefulSet's governing Service "<name>-headless" must fit in 63`, "use a name of at most 54 characters");
    }
    const replicas = args.replicas ?? 1;
    if (!Number.isInteger(replicas) || replicas < 0) {
      throw new MeshInputError(label, "replicas", `is ${JSON.stringify(replicas)}, not a whole number >= 0`, "use e.g. 1 or 2");
    }
    const workloadMode = checkOptionalMode(label, "mode", args.mode);
    const containers = checkContainers(label, args.containers);
    const containerPorts = containers.flatMap((c) => (c.ports ?? []).map((p) => p.containerPort));
    const excludeInbound = [
      ...mesh.excludeInboundPorts,
      ...(args.excludeInboundPorts ?? []).map((p, i) => checkAppPort(label, `excludeInboundPorts[${i}]`, p)),
    ];
    this.portPlan = planPorts({
      label,
      field: "ports",
      ports: args.ports ?? [],
      containerPorts,
      excludeInboundPorts: excludeInbound,
      modes: { mesh: mesh.defaultMode, namespace: mesh.namespaceModes[this.namespace], workload: workloadMode },
      opaquePorts: mesh.opaquePorts,
    });

    const ns = mesh.namespaceResource(this.namespace);
    const inNamespace = { parent: this, dependsOn: ns ? [ns] : [] };
    const podLabels = { ...meshPodLabels(name, this.serviceAccountName) };
    const objectLabels = { [LABELS.managedBy]: "pulumi-mtls-mesh", [LABELS.workload]: name };

    this.serviceAccount = new k8s.core.v1.ServiceAccount(
      `${name}-sa`,
      { metadata: { name: this.serviceAccountName, namespace: this.namespace, labels: objectLabels } },
      inNamespace,
    );
    this.identity = new WorkloadIdentity(
      `${name}-identity`,
      {
        ca: mesh.ca,
        trustDomain: mesh.trustDomain,
        namespace: this.namespace,
        serviceAccount: this.serviceAccountName,
        dnsNames: args.identity?.dnsNames,
        validityHours: args.identity?.validityHours,
        renewBeforeHours: args.identity?.renewBeforeHours,
        now: mesh.now,
        secretProvider: mesh.configProvider,
      },
      inNamespace,
    );
    this.spiffeId = this.identity.spiffeId;

    const directory = mesh.directoryConfigMap(this.namespace);
    const configMapName = `${name}-mesh-config`;
    let injected;
    try {
      injected = injectSidecar({ ...(args.podSpec ?? {}), containers } as PodSpecLike, {
        ...mesh.injectDefaults(),
        inboundPorts: this.portPlan.redirectPorts,
        identitySecretName: this.identity.secretName,
        workloadConfigMapName: configMapName,
        excludeInboundPorts: excludeInbound,
      });
    } catch (e) {
      if (e instanceof InjectionError) throw new MeshInputError(label, "containers", e.message, e.fix ?? "fix the container spec");
      throw e;
    }

    if (this.portPlan.servicePorts.length > 0) {
      this.service = new k8s.core.v1.Service(
        `${name}-svc`,
        {
          metadata: { name, namespace: this.namespace, labels: objectLabels },
          spec: {
            type: "ClusterIP",
            selector: { [LABELS.workload]: name },
            ports: renderServicePorts(this.portPlan),
          },
        },
        inNamespace,
      );
      this.serviceHost = serviceHostnames(name, this.namespace, mesh.clusterDomain)[2];
    }

    // Register before rendering: the directory and policies are resolved once all are declared.
    mesh.registry.registerWorkload({
      key: `${this.namespace}/${name}`,
      label,
      namespace: this.namespace,
      name,
      serviceAccount: this.serviceAccountName,
      spiffeId: this.spiffeId,
      service: this.service
        ? { name, clusterIPs: pulumi.all([this.service.spec.clusterIP, this.service.spec.clusterIPs]).apply(([ip, ips]) => serviceAddresses(ip, ips)), ports: this.portPlan.servicePorts }
        : undefined,
    });

    this.configMap = new k8s.core.v1.ConfigMap(
      `${name}-mesh-config`,
      {
        metadata: { name: configMapName, namespace: this.namespace, labels: objectLabels },
        data: {
          [FILE_NAMES.workload]: mesh.workloadConfig({
            key: `${this.namespace}/${name}`,
            namespace: this.namespace,
            name,
            serviceAccount: this.serviceAccountName,
            spiffeId: this.spiffeId,
            defaultMode: this.portPlan.defaultMode,
            inboundPorts: this.portPlan.inboundPorts,
            probes: Promise.resolve(injected.probes),
          }),
        },
      },
      { ...inNamespace, provider: mesh.configProvider },
    );

    const template = {
      metadata: {
        labels: { ...(args.podLabels ?? {}), ...podLabels },
        ...(args.podAnnotations ? { annotations: args.podAnnotations } : {}),
      },
      spec: { ...injected.podSpec, serviceAccountName: this.serviceAccountName } as k8s.types.input.core.v1.PodSpec,
    };
    // Pods start only once their identity and config exist.
    const podDeps = { parent: this, dependsOn: [...(ns ? [ns] : []), this.serviceAccount, this.identity.secret, this.configMap, directory] };
    const metadata = { name, namespace: this.namespace, labels: objectLabels };
    const selector = { matchLabels: { [LABELS.workload]: name } };
    if (kind === "StatefulSet") {
      // serviceName must name a headless Service, or the pods get no stable DNS names; the
      // ClusterIP Service above stays the one clients dial (the directory maps its address).
      const headlessName = `${name}-headless`;
      this.headlessService = new k8s.core.v1.Service(
        `${name}-headless`,
        {
          metadata: { name: headlessName, namespace: this.namespace, labels: objectLabels },
          spec: {
            clusterIP: "None",
            selector: { [LABELS.workload]: name },
            publishNotReadyAddresses: true,
            // The pod ports, once each: two Service ports may share a targetPort, and a Service
            // refuses a repeated port.
            ports: [...new Map(this.portPlan.servicePorts.map((p) => [p.targetPort, p])).values()].map((p) => ({ ...(p.name !== undefined ? { name: p.name } : {}), port: p.targetPort, targetPort: p.targetPort, protocol: "TCP" })),
          },
        },
        inNamespace,
      );
      this.workload = new k8s.apps.v1.StatefulSet(`${name}-sts`, { metadata, spec: { replicas, selector, serviceName: headlessName, template } }, { ...podDeps, dependsOn: [...podDeps.dependsOn, this.headlessService] });
    } else {
      this.workload = new k8s.apps.v1.Deployment(`${name}-deploy`, { metadata, spec: { replicas, selector, template } }, podDeps);
    }

    this.registerOutputs({
      spiffeId: this.spiffeId,
      serviceAccountName: this.serviceAccountName,
      secretName: this.identity.secretName,
      serviceHost: this.serviceHost,
    });
  }
}

/** App containers must be plain where the mesh reads them (name, ports, probes). */
function checkContainers(label: string, containers: unknown): ContainerLike[] {
  if (!Array.isArray(containers) || containers.length === 0) {
    throw new MeshInputError(label, "containers", "is empty", "give at least one container");
  }
  return containers.map((c: ContainerLike, i) => {
    const at = `containers[${i}]`;
    checkDns1123Label(label, `${at}.name`, c?.name);
    if (c.name === INIT_CONTAINER_NAME || c.name === SIDECAR_NAME) {
      throw new MeshInputError(label, `${at}.name`, `is ${JSON.stringify(c.name)}, a name the mesh uses`, "rename the container");
    }
    if (c.ports !== undefined && !Array.isArray(c.ports)) {
      throw new MeshInputError(label, `${at}.ports`, "is not a plain list", "give the ports as a plain array, not an Output");
    }
    (c.ports ?? []).forEach((p, j) => checkAppPort(label, `${at}.ports[${j}].containerPort`, p?.containerPort));
    return c;
  });
}
