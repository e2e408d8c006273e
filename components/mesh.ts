// Mesh: trust domain, CA, default mode, proxy image, the system namespace, the per-node proxy
// DaemonSet, and the mesh-wide config (modes and the directory of meshed services). Workloads and
// policies register with it; it renders their config once registration is complete.
import * as fs from "node:fs";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import * as k8s from "@pulumi/kubernetes";
import * as dockerbuild from "@pulumi/docker-build";
import { FILE_NAMES, LABELS, Mode, PROXY_UID } from "../proxy/wellknown";
import type { AuthorizationRule, DirectoryService, Probe, Transport } from "../proxy/config";
import { CertificateAuthority, CertificateAuthorityArgs } from "./ca";
import { makeConfigProvider } from "./config-provider";
import { checkRenewalSupport } from "./engine-check";
import { DirectoryData, directoryData } from "./directory-data";
import { WorkloadIdentity } from "./workload-identity";
import { resolveMode } from "./mode";
import { MeshRegistry, RegistrySnapshot } from "./registry";
import { renderAuthorizationRules } from "./policy";
import { DEFAULT_OPAQUE_PORTS } from "./ports";
import { renderDirectoryConfig, renderWorkloadConfig, serviceHostnames } from "./render";
import { InjectOptions, meshVolumes, sidecarContainer } from "./inject";
import { checkAcceptBreaking, meshReachability } from "./mesh-reachability";
import type { ReachabilityEdge } from "./reachability";
import { UnmeshedClient, UnmeshedClientArgs } from "./unmeshed-client";
import {
  MeshInputError,
  checkCidr,
  checkDns1123Label,
  checkMode,
  checkOneOf,
  checkPortList,
  checkTransport,
  checkTrustDomain,
  componentLabel,
} from "./validate";

const POD_SECURITY_ENFORCE = "pod-security.kubernetes.io/enforce";

/** Used when neither proxyImage nor proxyBuild is given. */
export const DEFAULT_PROXY_IMAGE = "ghcr.io/pulumi-mtls-mesh/mesh-proxy:0.1.0";

export interface ProxyBuildArgs {
  /** Repository to push to, e.g. "ghcr.io/acme/mesh-proxy". */
  repository: string;
  /** Image tag; default the package version. The output `proxyImage` is pinned by digest. */
  tag?: string;
  /** Registry credentials for the push. */
  registry?: { address: string; username?: pulumi.Input<string>; password?: pulumi.Input<string> };
  /** Default ["linux/amd64"]. */
  platforms?: string[];
  /** Default true; false builds without pushing (proxyImage is then the tag). */
  push?: boolean;
}

export interface MeshArgs {
  /** SPIFFE trust domain; default "cluster.local". */
  trustDomain?: string;
  /** Default mode of every meshed port; default "permissive". */
  mode?: Mode;
  /** System namespace for the proxy DaemonSet and mesh config; default "mesh-system". */
  namespace?: string;
  /** The CA; created (as a child) when absent. */
  ca?: CertificateAuthority;
  /**
   * Settings of the CA the Mesh creates when `ca` is absent: `additionalTrustedRoots` to rotate its
   * root, `protect`, lifetimes. Use these rather than declaring the CA yourself: a CA declared
   * outside the Mesh has other URNs, so the engine would create a new root and delete the old one.
   */
  certificateAuthority?: Omit<CertificateAuthorityArgs, "now" | "existing">;
  /**
   * The Kubernetes provider for the mesh's ConfigMaps and Secrets. It must set
   * `enableConfigMapMutable` and `enableSecretMutable`, or every config change and renewal is a
   * delete-before-replace. Default: one the Mesh makes from the stack's `kubernetes:*` config plus
   * those two flags. Required when the Mesh gets a Kubernetes provider through its options.
   */
  configProvider?: k8s.Provider;
  /**
   * Pod Security Admission for the namespaces the mesh manages: "privileged" (default) labels them
   * `pod-security.kubernetes.io/enforce: privileged`, which the redirect init container
   * (NET_ADMIN, NET_RAW) needs; "unmanaged" leaves the label to you (an exemption, a policy engine).
   */
  podSecurity?: PodSecurity;
  /** Resources of every redirect init container (default: small requests and limits). */
  initResources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  /** The node proxy DaemonSet's rollout: maxUnavailable, default "10%" (at least one node). */
  nodeProxyMaxUnavailable?: number | string;
  /** Taints the node proxy tolerates besides the node conditions Kubernetes adds itself; default none. */
  nodeProxyTolerations?: k8s.types.input.core.v1.Toleration[];
  /** Per-namespace mode, overriding `mode`. */
  namespaceModes?: Record<string, Mode>;
  /** A pinned proxy image reference (tag or digest, not "latest"). */
  proxyImage?: string;
  /** Build proxy/Dockerfile and push it with @pulumi/docker-build. Excludes proxyImage. */
  proxyBuild?: ProxyBuildArgs;
  /** Resources of every proxy container (sidecars and the DaemonSet). */
  proxyResources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  /**
   * How proxies reach each other (`mesh-proxy run --transport`). "h2" (the proxy's default): four
   * pooled mTLS connections per destination, application connections multiplexed as HTTP/2
   * CONNECT streams; cheap new connections, but kube-proxy balances the four pooled connections,
   * not each request. "tcp": one mTLS connection per application connection, balanced per
   * connection like plain traffic, at one handshake each. Servers accept both, so a change rolls
   * out pod by pod; it is a container argument, so changing it restarts the meshed pods.
   */
  proxyTransport?: Transport;
  /** Outbound ports the sidecars never intercept (e.g. a database the mesh does not cover). */
  excludeOutboundPorts?: number[];
  /** Outbound destinations the sidecars never intercept. */
  excludeOutboundCidrs?: string[];
  /** Inbound ports no sidecar intercepts. */
  excludeInboundPorts?: number[];
  /**
   * Pod ports that are opaque (no protocol detection; meshed clients come through the tunnel port
   * 15008) unless a workload's port says otherwise with `opaque` or `appProtocol`. Default
   * DEFAULT_OPAQUE_PORTS (Linkerd's list: 25, 587, 3306, 4444, 5432, 6379, 9300, 11211); [] for none.
   */
  opaquePorts?: number[];
  /** Kubernetes DNS domain for the directory's host names; default "cluster.local". */
  clusterDomain?: string;
  /** Namespaces that already exist and that the Mesh must not create; default ["default"]. */
  existingNamespaces?: string[];
  /** Clock for certificate renewal schedules, ms since epoch. Tests pin it; programs leave it. */
  now?: number;
  /**
   * Deploy the per-node proxy DaemonSet (default true). A second program sharing a cluster with
   * a mesh that already runs it sets false.
   */
  nodeProxy?: boolean;
  /**
   * Edges of the reachability matrix this program may cut off although a declared unmeshed client
   * needs them, named as the matrix prints them: "<namespace>/<workload>:<port> from <client>".
   * Without them, such a program is refused (README, "Rolling out strict safely").
   */
  acceptBreaking?: string[];
  /**
   * Directory entries of services meshed by another program (its Mesh's `services` output, via a
   * StackReference), so this mesh's clients originate mTLS to them too.
   */
  importedServices?: pulumi.Input<DirectoryService[]>;
}

export const POD_SECURITY = ["privileged", "unmanaged"] as const;
export type PodSecurity = (typeof POD_SECURITY)[number];

/** The per-workload inputs of workload.json that are known at declaration time. */
export interface WorkloadConfigRequest {
  key: string;
  namespace: string;
  name: string;
  serviceAccount: string;
  spiffeId: string;
  defaultMode: Mode;
  inboundPorts: { port: number; mode: Mode; opaque?: true }[];
  /** Resolved when the pod spec is known (MeshedWorkload: at once; meshTransform: when it runs). */
  probes: Promise<Probe[]>;
}

function packageRoot(): string {
  let dir = __dirname;
  while (dir !== path.dirname(dir)) {
    const file = path.join(dir, "package.json");
    if (fs.existsSync(file) && JSON.parse(fs.readFileSync(file, "utf8")).name === "pulumi-mtls-mesh") return dir;
    dir = path.dirname(dir);
  }
  throw new Error("cannot find the pulumi-mtls-mesh package root (for proxy/Dockerfile)");
}

function packageVersion(): string {
  return JSON.parse(fs.readFileSync(path.join(packageRoot(), "package.json"), "utf8")).version;
}

function checkPinnedImage(label: string, image: unknown): string {
  const ok = typeof image === "string" && (/@sha256:[0-9a-f]{64}$/.test(image) || /:[\w][\w.-]{0,127}$/.test(image.split("/").pop() ?? ""));
  if (!ok || (image as string).endsWith(":latest")) {
    throw new MeshInputError(label, "proxyImage", `is ${JSON.stringify(image)}, not a pinned image reference`, "give a tag other than \"latest\" or a digest, e.g. \"ghcr.io/acme/mesh-proxy:0.1.0\"");
  }
  return image as string;
}

export class Mesh extends pulumi.ComponentResource {
  readonly trustBundlePem: pulumi.Output<string>;
  readonly proxyImage: pulumi.Output<string>;
  readonly mode: pulumi.Output<Mode>;
  readonly ca: CertificateAuthority;
  readonly trustDomain: string;
  readonly defaultMode: Mode;
  readonly systemNamespace: string;
  readonly clusterDomain: string;
  readonly namespaceModes: Readonly<Record<string, Mode>>;
  readonly excludeOutboundPorts: number[];
  readonly excludeOutboundCidrs: string[];
  readonly excludeInboundPorts: number[];
  readonly opaquePorts: readonly number[];
  readonly proxyResources?: MeshArgs["proxyResources"];
  readonly proxyTransport?: Transport;
  readonly initResources?: MeshArgs["initResources"];
  readonly podSecurity: PodSecurity;
  /** The provider of every mesh ConfigMap and Secret (data changes are updates, not replaces). */
  readonly configProvider: k8s.Provider;
  readonly now: number;
  readonly registry: MeshRegistry;
  readonly daemonSet?: k8s.apps.v1.DaemonSet;
  /** Every client × server Service port, as the proxies will enforce it (components/reachability.ts). */
  readonly reachability: pulumi.Output<ReachabilityEdge[]>;
  /** The matrix as sorted text (reachability.txt) in the system namespace, for the preview's diff. */
  readonly reachabilityConfigMap: k8s.core.v1.ConfigMap;
  /**
   * Rejects when the program cuts off a declared unmeshed client (the guard). Left unhandled on
   * purpose: the rejection fails `pulumi preview` and `pulumi up` with the guard's message.
   */
  readonly reachabilityCheck: Promise<void>;
  /** This mesh's own directory entries, for another program's `importedServices`. */
  readonly services: pulumi.Output<DirectoryService[]>;
  private readonly importedServices: pulumi.Output<DirectoryService[]>;
  private readonly meshName: string;
  private readonly existingNamespaces: Set<string>;
  private readonly namespaces = new Map<string, pulumi.Resource | undefined>();
  private readonly directories = new Map<string, k8s.core.v1.ConfigMap>();
  private directoryText?: pulumi.Output<string>;
  private directoryContents?: pulumi.Output<DirectoryData>;

  constructor(name: string, args: MeshArgs = {}, opts?: pulumi.ComponentResourceOptions) {
    super("mtls-mesh:index:Mesh", name, {}, opts);
    const label = componentLabel("Mesh", name);
    this.meshName = checkDns1123Label(label, "name", name);
    this.trustDomain = checkTrustDomain(label, "trustDomain", args.trustDomain ?? "cluster.local");
    this.defaultMode = checkMode(label, "mode", args.mode ?? "permissive");
    this.systemNamespace = checkDns1123Label(label, "namespace", args.namespace ?? "mesh-system");
    this.clusterDomain = checkTrustDomain(label, "clusterDomain", args.clusterDomain ?? "cluster.local");
    const namespaceModes: Record<string, Mode> = {};
    for (const [ns, mode] of Object.entries(args.namespaceModes ?? {}).sort(([a], [b]) => a.localeCompare(b))) {
      checkDns1123Label(label, `namespaceModes (key ${JSON.stringify(ns)})`, ns);
      namespaceModes[ns] = checkMode(label, `namespaceModes.${ns}`, mode);
    }
    this.namespaceModes = Object.freeze(namespaceModes);
    if (args.proxyImage !== undefined && args.proxyBuild !== undefined) {
      throw new MeshInputError(label, "proxyImage", "and \"proxyBuild\" are both set", "set proxyImage to use a published image, or proxyBuild to build proxy/Dockerfile; not both");
    }
    this.excludeOutboundPorts = checkPortList(label, "excludeOutboundPorts", args.excludeOutboundPorts ?? []);
    this.excludeInboundPorts = checkPortList(label, "excludeInboundPorts", args.excludeInboundPorts ?? []);
    this.opaquePorts = checkPortList(label, "opaquePorts", args.opaquePorts ?? DEFAULT_OPAQUE_PORTS);
    this.excludeOutboundCidrs = (args.excludeOutboundCidrs ?? []).map((c, i) => checkCidr(label, `excludeOutboundCidrs[${i}]`, c));
    this.existingNamespaces = new Set((args.existingNamespaces ?? ["default"]).map((ns, i) => checkDns1123Label(label, `existingNamespaces[${i}]`, ns)));
    this.proxyResources = args.proxyResources;
    this.proxyTransport = args.proxyTransport === undefined ? undefined : checkTransport(label, "proxyTransport", args.proxyTransport);
    this.initResources = args.initResources;
    this.podSecurity = checkOneOf(label, "podSecurity", args.podSecurity ?? "privileged", POD_SECURITY, "Pod Security choice");
    if (args.configProvider === undefined && this.getProvider("kubernetes:core/v1:ConfigMap") !== undefined) {
      throw new MeshInputError(
        label,
        "configProvider",
        "is not set, but the Mesh got a Kubernetes provider through its options, and it cannot copy that provider's cluster settings",
        "pass configProvider: a kubernetes Provider with the same cluster settings plus enableConfigMapMutable: true and enableSecretMutable: true (it may be the same provider, if it sets both)",
      );
    }
    this.configProvider = args.configProvider ?? makeConfigProvider(`${name}-config-provider`, this);
    this.now = args.now ?? Date.now();
    this.registry = new MeshRegistry(label);
    this.importedServices = pulumi.output(args.importedServices ?? []) as pulumi.Output<DirectoryService[]>;
    this.services = this.ownServices();

    if (args.proxyImage === undefined && args.proxyBuild === undefined) {
      // Loud on every run: nothing is published under this name yet, so pods would sit in
      // ImagePullBackOff until the provider's 10-minute await gives up.
      pulumi.log.warn(`${label}: proxyImage is not set, so pods use ${DEFAULT_PROXY_IMAGE}, which is not published yet and will not pull. Build proxy/Dockerfile and push it (or \`kind load docker-image\` it), then set proxyImage; or set proxyBuild (README, "Building the proxy image").`, this);
    }
    this.proxyImage = args.proxyBuild ? this.buildProxy(name, label, args.proxyBuild) : pulumi.output(checkPinnedImage(label, args.proxyImage ?? DEFAULT_PROXY_IMAGE));
    if (args.ca !== undefined && args.certificateAuthority !== undefined) {
      throw new MeshInputError(label, "certificateAuthority", "and \"ca\" are both set", "configure the CA the Mesh makes with certificateAuthority, or pass your own with ca; not both");
    }
    // Unhandled on purpose when it rejects: that fails the update (engine-check.ts).
    void checkRenewalSupport(this);
    this.ca = args.ca ?? new CertificateAuthority(`${name}-ca`, { ...args.certificateAuthority, now: this.now }, { parent: this });
    this.trustBundlePem = this.ca.trustBundlePem;
    this.mode = pulumi.output(this.defaultMode);

    const system = new k8s.core.v1.Namespace(
      `${name}-system`,
      { metadata: { name: this.systemNamespace, labels: { [LABELS.managedBy]: "pulumi-mtls-mesh" } } },
      { parent: this },
    );
    this.namespaces.set(this.systemNamespace, system);
    if (args.nodeProxy ?? true) this.daemonSet = this.nodeProxy(name, system, args);
    const reachability = meshReachability({
      mesh: this,
      meshName: name,
      label,
      registry: this.registry,
      systemNamespace: this.systemNamespace,
      system,
      configProvider: this.configProvider,
      acceptBreaking: checkAcceptBreaking(label, args.acceptBreaking),
    });
    this.reachability = reachability.edges;
    this.reachabilityConfigMap = reachability.configMap;
    this.reachabilityCheck = reachability.check;

    this.registerOutputs({ trustBundlePem: this.trustBundlePem, proxyImage: this.proxyImage, mode: this.mode, services: this.services, reachability: this.reachability });
  }

  /**
   * Declares a plaintext client known to exist (a Deployment, a namespace's pods, address blocks):
   * it shows up in the reachability matrix, rules may name it, and the guard protects what it calls.
   */
  unmeshedClient(name: string, args: UnmeshedClientArgs): UnmeshedClient {
    const client = new UnmeshedClient(this, name, args);
    this.registry.registerUnmeshedClient(client);
    return client;
  }

  /** Effective mode: port > workload > namespace > mesh. */
  modeFor(namespace: string, workload?: Mode, port?: Mode): Mode {
    return resolveMode({ mesh: this.defaultMode, namespace: this.namespaceModes[namespace], workload, port });
  }

  /**
   * The mesh's hold on member namespace `namespace` (declared once), unless it is one of
   * `existingNamespaces`. It is a NamespacePatch, not a Namespace: server-side apply creates the
   * namespace when it is missing and adopts it when it exists (a Namespace would fail with
   * AlreadyExists), and deleting the patch only takes the mesh's labels back
   * (pulumi-kubernetes await.go: a Patch resource's delete relinquishes its fields). So a namespace
   * that leaves the mesh, or the whole mesh's `pulumi destroy`, never deletes the namespace and
   * everything in it.
   */
  namespaceResource(namespace: string): pulumi.Resource | undefined {
    if (!this.namespaces.has(namespace)) {
      const labels: Record<string, string> = { [LABELS.managedBy]: "pulumi-mtls-mesh", [LABELS.meshed]: "true" };
      if (this.podSecurity === "privileged") labels[POD_SECURITY_ENFORCE] = "privileged";
      const managed = this.existingNamespaces.has(namespace)
        ? undefined
        : new k8s.core.v1.NamespacePatch(
            `${this.meshName}-ns-${namespace}`,
            { metadata: { name: namespace, labels } },
            // Earlier versions declared a Namespace under this name. Without the alias the engine
            // would delete that Namespace (and everything in it) on the first `up` after upgrading;
            // with it, the old state becomes this patch's.
            { parent: this, aliases: [{ type: "kubernetes:core/v1:Namespace" }] },
          );
      this.namespaces.set(namespace, managed);
    }
    return this.namespaces.get(namespace);
  }

  /** The mesh-wide part of every proxy's injection options; each caller adds its workload's own. */
  injectDefaults(): Pick<InjectOptions, "proxyImage" | "directoryConfigMapName" | "excludeOutboundPorts" | "excludeOutboundCidrs" | "excludeInboundPorts" | "proxyResources" | "initResources" | "proxyTransport"> {
    return {
      proxyImage: this.proxyImage,
      directoryConfigMapName: this.directoryConfigMapName,
      excludeOutboundPorts: this.excludeOutboundPorts,
      excludeOutboundCidrs: this.excludeOutboundCidrs,
      excludeInboundPorts: this.excludeInboundPorts,
      proxyResources: this.proxyResources,
      initResources: this.initResources,
      proxyTransport: this.proxyTransport,
    };
  }

  /** Name of the per-namespace ConfigMap holding directory.json. */
  get directoryConfigMapName(): string {
    return `${this.meshName}-directory`;
  }

  /** The directory ConfigMap in `namespace` (created once): pods mount it next to workload.json. */
  directoryConfigMap(namespace: string): k8s.core.v1.ConfigMap {
    let cm = this.directories.get(namespace);
    if (!cm) {
      const ns = this.namespaceResource(namespace);
      cm = new k8s.core.v1.ConfigMap(
        `${this.meshName}-directory-${namespace}`,
        {
          metadata: { name: this.directoryConfigMapName, namespace, labels: { [LABELS.managedBy]: "pulumi-mtls-mesh" } },
          data: this.directoryData().apply((d) => d.data),
          binaryData: this.directoryData().apply((d) => d.binaryData),
        },
        { parent: this, dependsOn: ns ? [ns] : [], provider: this.configProvider },
      );
      this.directories.set(namespace, cm);
    }
    return cm;
  }

  /** The directory ConfigMaps' contents: directory.json, or directory.json.gz when large. */
  private directoryData(): pulumi.Output<DirectoryData> {
    this.directoryContents ??= pulumi.all([this.directory(), this.services, this.importedServices]).apply(([text, own, imported]) => directoryData(text, own.length + imported.length));
    return this.directoryContents;
  }

  /** directory.json: every meshed Service (this mesh's and imported ones) with its ClusterIP, names, port modes, SPIFFE ID. */
  directory(): pulumi.Output<string> {
    this.directoryText ??= pulumi.all([this.services, this.importedServices]).apply(([own, imported]) => {
      const ownKeys = new Set(own.map((s) => `${s.namespace}/${s.name}`));
      return renderDirectoryConfig([...own, ...imported.filter((s) => !ownKeys.has(`${s.namespace}/${s.name}`))]);
    });
    return this.directoryText;
  }

  private ownServices(): pulumi.Output<DirectoryService[]> {
    return pulumi.output(this.registry.snapshot).apply((snapshot: RegistrySnapshot) => {
      const served = snapshot.workloads.filter((w) => w.service);
      return pulumi
        .all(served.map((w) => pulumi.output(w.service!.clusterIPs as pulumi.Input<string[]>)))
        .apply((ips) =>
          served.map((w, i) => ({
            namespace: w.namespace,
            name: w.service!.name,
            spiffeId: w.spiffeId,
            addresses: ips[i] ?? [],
            hostnames: serviceHostnames(w.service!.name, w.namespace, this.clusterDomain),
            ports: w.service!.ports.map((p) => ({ port: p.port, targetPort: p.targetPort, mode: p.mode, ...(p.opaque ? { opaque: true } : {}) })),
          })),
        );
    });
  }

  /** The authorization rules of every policy targeting `workloadKey`, or null when none does. */
  authorizationFor(workloadKey: string): pulumi.Output<AuthorizationRule[] | null> {
    return pulumi.output(
      this.registry.snapshot.then((snapshot) => {
        const policies = snapshot.policiesByWorkload.get(workloadKey);
        return policies ? policies.flatMap((p) => renderAuthorizationRules(p.rules, this.trustDomain)) : null;
      }),
    );
  }

  /** workload.json for one member, rendered once policies and probes are known. */
  workloadConfig(request: WorkloadConfigRequest): pulumi.Output<string> {
    return pulumi.all([this.authorizationFor(request.key), pulumi.output(request.probes)]).apply(([rules, probes]) =>
      renderWorkloadConfig({
        trustDomain: this.trustDomain,
        namespace: request.namespace,
        name: request.name,
        serviceAccount: request.serviceAccount,
        spiffeId: request.spiffeId,
        defaultMode: request.defaultMode,
        inboundPorts: request.inboundPorts,
        rules,
        probes,
      }),
    );
  }

  private buildProxy(name: string, label: string, build: ProxyBuildArgs): pulumi.Output<string> {
    if (!/^[a-z0-9]+([._\/:-][a-z0-9]+)*$/.test(build.repository ?? "")) {
      throw new MeshInputError(label, "proxyBuild.repository", `is ${JSON.stringify(build.repository)}, not an image repository`, "give e.g. \"ghcr.io/acme/mesh-proxy\" (no tag)");
    }
    const tag = build.tag ?? packageVersion();
    if (tag === "latest" || !/^[\w][\w.-]{0,127}$/.test(tag)) {
      throw new MeshInputError(label, "proxyBuild.tag", `is ${JSON.stringify(tag)}, not a pinned tag`, "use a version tag such as \"0.1.0\"");
    }
    const root = packageRoot();
    const push = build.push ?? true;
    const image = new dockerbuild.Image(
      `${name}-proxy-image`,
      {
        context: { location: root },
        dockerfile: { location: path.join(root, "proxy", "Dockerfile") },
        tags: [`${build.repository}:${tag}`],
        platforms: (build.platforms ?? ["linux/amd64"]) as dockerbuild.Platform[],
        push,
        registries: build.registry ? [build.registry] : undefined,
      },
      { parent: this },
    );
    // `ref` is tag@digest once pushed: pods pin exactly the bytes that were built.
    return push ? image.ref : pulumi.output(`${build.repository}:${tag}`);
  }

  /**
   * The per-node proxy (the ztunnel placement) with its ServiceAccount and identity.
   * hostNetwork is off on purpose: taking over other pods' traffic from the node is the
   * node-placement issue; until then the DaemonSet runs as an ordinary unprivileged pod (no host
   * network, no capabilities, no API token and no RBAC: it reads nothing from the API server), so
   * deploying it changes nothing on the node.
   */
  private nodeProxy(name: string, system: k8s.core.v1.Namespace, args: MeshArgs): k8s.apps.v1.DaemonSet {
    const ns = this.systemNamespace;
    const proxyName = "mesh-proxy";
    const child = { parent: this, dependsOn: [system] };
    const sa = new k8s.core.v1.ServiceAccount(`${name}-proxy`, { metadata: { name: proxyName, namespace: ns }, automountServiceAccountToken: false }, child);
    const identity = new WorkloadIdentity(
      `${name}-proxy-identity`,
      { ca: this.ca, trustDomain: this.trustDomain, namespace: ns, serviceAccount: proxyName, now: this.now, secretProvider: this.configProvider },
      child,
    );
    const key = `${ns}/${proxyName}`;
    const configName = `${proxyName}-config`;
    const config = new k8s.core.v1.ConfigMap(
      `${name}-proxy-config`,
      {
        metadata: { name: configName, namespace: ns, labels: { [LABELS.managedBy]: "pulumi-mtls-mesh" } },
        data: {
          [FILE_NAMES.workload]: this.workloadConfig({
            key,
            namespace: ns,
            name: proxyName,
            serviceAccount: proxyName,
            spiffeId: identity.spiffeId,
            defaultMode: this.modeFor(ns),
            inboundPorts: [],
            probes: Promise.resolve([]),
          }),
        },
      },
      { ...child, provider: this.configProvider },
    );
    const directory = this.directoryConfigMap(ns);
    const labels = { [LABELS.managedBy]: "pulumi-mtls-mesh", "app.kubernetes.io/name": proxyName };
    const options = { ...this.injectDefaults(), inboundPorts: [], identitySecretName: identity.secretName, workloadConfigMapName: configName };
    const container = { ...sidecarContainer(options) };
    delete container.restartPolicy; // a regular container here, not a native sidecar
    return new k8s.apps.v1.DaemonSet(
      `${name}-proxy`,
      {
        metadata: { name: proxyName, namespace: ns, labels },
        spec: {
          selector: { matchLabels: { "app.kubernetes.io/name": proxyName } },
          // A fixed 1 rolls one node at a time: past ~60-100 nodes that outlasts the provider's
          // 10-minute await. A share of the nodes (rounded up, so at least one) scales with them.
          updateStrategy: { type: "RollingUpdate", rollingUpdate: { maxUnavailable: args.nodeProxyMaxUnavailable ?? "10%" } },
          template: {
            metadata: { labels },
            spec: {
              serviceAccountName: proxyName,
              automountServiceAccountToken: false,
              // The DaemonSet controller already tolerates the node conditions (not-ready,
              // unreachable, pressure, unschedulable); other taints are the user's to opt into.
              ...(args.nodeProxyTolerations ? { tolerations: args.nodeProxyTolerations } : {}),
              securityContext: { runAsNonRoot: true, runAsUser: PROXY_UID, runAsGroup: PROXY_UID, seccompProfile: { type: "RuntimeDefault" } },
              containers: [container],
              volumes: meshVolumes(options),
            },
          },
        },
      },
      { parent: this, dependsOn: [system, sa, identity.secret, config, directory] },
    );
  }
}
