// Sidecar injection as a pure function: pod spec in, pod spec out (kubernetesx's PodBuilder
// shape). It renders the pod contract of proxy/wellknown.ts: the redirect init container, the
// proxy as a native sidecar, the identity and config volumes, and kubelet probes (httpGet, grpc,
// tcpSocket) rewritten to the proxy's admin port. Mode and policy are NOT in here: they reach the
// proxy as config, so a mode flip or a policy edit never changes a pod template and never
// restarts a pod.
import { FILE_NAMES, MOUNT_PATHS, PROBE_PATH_PREFIX, PROXY_PORTS, PROXY_UID, LABELS } from "../proxy/wellknown";
import type { Input } from "@pulumi/pulumi";
import type * as k8s from "@pulumi/kubernetes";
import type { Probe, Transport } from "../proxy/config";

export const INIT_CONTAINER_NAME = "mesh-init";
export const SIDECAR_NAME = "mesh-proxy";
export const IDENTITY_VOLUME = "mesh-identity";
export const CONFIG_VOLUME = "mesh-config";
export const ADMIN_PORT_NAME = "mesh-admin";

/** The kubelet probe kinds we rewrite, and the name each gets under /app-health/<container>/. */
export const PROBE_KINDS = [
  ["livenessProbe", "livez"],
  ["readinessProbe", "readyz"],
  ["startupProbe", "startupz"],
] as const;

// Plain (Output-free) shapes of the Kubernetes objects injection reads. Everything else in a
// container or pod spec is carried through untouched.
export interface ContainerPortLike {
  containerPort: number;
  name?: string;
  [key: string]: unknown;
}
export interface HttpGetLike {
  path?: string;
  port: number | string;
  scheme?: string;
  [key: string]: unknown;
}
export interface ProbeLike {
  httpGet?: HttpGetLike;
  /** kubelet's gRPC health probe (grpc.health.v1.Health/Check); the port is a number in the API. */
  grpc?: { port: number; service?: string; [key: string]: unknown };
  tcpSocket?: { port: number | string; [key: string]: unknown };
  [key: string]: unknown;
}
export interface ContainerLike {
  name: string;
  ports?: ContainerPortLike[];
  livenessProbe?: ProbeLike;
  readinessProbe?: ProbeLike;
  startupProbe?: ProbeLike;
  [key: string]: unknown;
}
export interface PodSpecLike {
  containers: ContainerLike[];
  initContainers?: unknown[];
  volumes?: unknown[];
  [key: string]: unknown;
}

export interface InjectOptions {
  /** The mesh's proxy image (pinned). */
  proxyImage: Input<string>;
  /** App ports whose inbound connections the proxy takes over (container ports). */
  inboundPorts: number[];
  /** kubernetes.io/tls Secret holding tls.crt, tls.key, ca.crt. */
  identitySecretName: string;
  /** ConfigMap with key workload.json. */
  workloadConfigMapName: string;
  /** ConfigMap with key directory.json (one per namespace). */
  directoryConfigMapName: string;
  excludeOutboundPorts?: number[];
  excludeOutboundCidrs?: string[];
  excludeInboundPorts?: number[];
  /** Resources of the proxy sidecar; absent: DEFAULT_PROXY_RESOURCES. */
  proxyResources?: k8s.types.input.core.v1.ResourceRequirements;
  /** Resources of the mesh-init container; absent: DEFAULT_INIT_RESOURCES. */
  initResources?: k8s.types.input.core.v1.ResourceRequirements;
  /** `mesh-proxy run --transport`; absent: the proxy's default (h2). */
  proxyTransport?: Transport;
}

/**
 * The sidecar's requests when the mesh sets none. Without requests a namespace with a
 * ResourceQuota on requests refuses the pod, and an HPA on CPU cannot compute utilisation.
 * memory: an idle proxy (Node + its modules + config) has ~70 MB resident; 96Mi leaves room for
 * connection buffers and TLS state at moderate load. cpu: idle is ~1m; 50m reserves a slice for
 * the TLS and copy work under traffic without inflating the pod's share of the node.
 * No limits: a memory limit would OOM-kill the data plane at a traffic peak (every connection
 * through the pod drops) and a CPU limit throttles it into latency; set `proxyResources` where a
 * quota on limits needs them.
 */
export const DEFAULT_PROXY_RESOURCES = { requests: { cpu: "50m", memory: "96Mi" } } as const;

/**
 * mesh-init's resources when the mesh sets none: a run of `mesh-proxy init` peaks at ~70 MB
 * resident and ~0.5 CPU-seconds (Node start, then 30-odd iptables/ip6tables calls). Requests and
 * limits both, so quotas on either accept it. The request never grows the pod's: Kubernetes
 * counts the largest init container's request against the sidecar's plus the app's, and the
 * sidecar alone asks for more. The CPU limit only stretches that half-second.
 */
export const DEFAULT_INIT_RESOURCES = {
  requests: { cpu: "10m", memory: "64Mi" },
  limits: { cpu: "500m", memory: "128Mi" },
} as const;

export interface InjectResult {
  podSpec: PodSpecLike;
  /** The app probes the proxy's admin server must forward (workload.json `probes`). */
  probes: Probe[];
}

export class InjectionError extends Error {
  constructor(
    message: string,
    /** How to fix it, when the caller's generic advice would not do. */
    readonly fix?: string,
  ) {
    super(message);
  }
}

/**
 * App containers must not run as the proxy's UID: the redirect rules skip that UID, so such a
 * container's outbound traffic would leave the pod unmeshed (Istio reserves its UID the same way).
 */
function checkAppUids(podSpec: PodSpecLike): void {
  const podUid = (podSpec.securityContext as { runAsUser?: unknown } | undefined)?.runAsUser;
  // The app's own init containers run after the redirect is installed: they count too.
  for (const c of [...podSpec.containers, ...((podSpec.initContainers ?? []) as ContainerLike[])]) {
    const uid = (c.securityContext as { runAsUser?: unknown } | undefined)?.runAsUser ?? podUid;
    if (uid === PROXY_UID) {
      throw new InjectionError(
        `container "${c.name}" runs as UID ${PROXY_UID}, the proxy's UID, whose traffic the redirect skips (it would bypass the mesh)`,
        `run it as another UID (securityContext.runAsUser)`,
      );
    }
  }
}

const sortedUnique = (ports: number[]) => [...new Set(ports)].sort((a, b) => a - b);

/** The init container's arguments (`mesh-proxy init ...`), exactly as the pod contract says. */
export function initArgs(options: InjectOptions): string[] {
  const args = ["init"];
  const inbound = sortedUnique(options.inboundPorts);
  // An outbound-only workload (a client with no ports) gets no --inbound-ports: nothing to take over.
  if (inbound.length > 0) args.push("--inbound-ports", inbound.join(","));
  args.push("--proxy-uid", String(PROXY_UID));
  if (options.excludeOutboundPorts?.length) args.push("--exclude-outbound-ports", sortedUnique(options.excludeOutboundPorts).join(","));
  if (options.excludeOutboundCidrs?.length) args.push("--exclude-outbound-cidrs", [...new Set(options.excludeOutboundCidrs)].sort().join(","));
  if (options.excludeInboundPorts?.length) args.push("--exclude-inbound-ports", sortedUnique(options.excludeInboundPorts).join(","));
  return args;
}

export function initContainer(options: InjectOptions): k8s.types.input.core.v1.Container {
  return {
    name: INIT_CONTAINER_NAME,
    image: options.proxyImage,
    args: initArgs(options),
    // The only container with network privileges: it installs iptables rules and exits.
    securityContext: {
      runAsUser: 0,
      runAsNonRoot: false,
      allowPrivilegeEscalation: false,
      capabilities: { add: ["NET_ADMIN", "NET_RAW"], drop: ["ALL"] },
    },
    resources: options.initResources ?? DEFAULT_INIT_RESOURCES,
  };
}

export function sidecarContainer(options: InjectOptions): k8s.types.input.core.v1.Container {
  const adminGet = (path: string) => ({ httpGet: { path, port: PROXY_PORTS.admin, scheme: "HTTP" } });
  return {
    name: SIDECAR_NAME,
    image: options.proxyImage,
    args: [
      "run", "--config", MOUNT_PATHS.config, "--identity", MOUNT_PATHS.identity,
      // Only when set, so that adopting a release with this option restarts no pod.
      ...(options.proxyTransport ? ["--transport", options.proxyTransport] : []),
    ],
    // Native sidecar: starts before the app containers, stops after them.
    restartPolicy: "Always",
    ports: [{ name: ADMIN_PORT_NAME, containerPort: PROXY_PORTS.admin, protocol: "TCP" }],
    startupProbe: { ...adminGet("/readyz"), periodSeconds: 1, failureThreshold: 60 },
    readinessProbe: { ...adminGet("/readyz"), periodSeconds: 5 },
    livenessProbe: { ...adminGet("/healthz"), periodSeconds: 10 },
    securityContext: {
      runAsUser: PROXY_UID,
      runAsGroup: PROXY_UID,
      runAsNonRoot: true,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ["ALL"] },
    },
    volumeMounts: [
      { name: IDENTITY_VOLUME, mountPath: MOUNT_PATHS.identity, readOnly: true },
      { name: CONFIG_VOLUME, mountPath: MOUNT_PATHS.config, readOnly: true },
    ],
    resources: options.proxyResources ?? DEFAULT_PROXY_RESOURCES,
  };
}

export function meshVolumes(options: InjectOptions): k8s.types.input.core.v1.Volume[] {
  return [
    { name: IDENTITY_VOLUME, secret: { secretName: options.identitySecretName } },
    {
      name: CONFIG_VOLUME,
      projected: {
        sources: [
          { configMap: { name: options.workloadConfigMapName, items: [{ key: FILE_NAMES.workload, path: FILE_NAMES.workload }] } },
          // Every key: the directory is directory.json or, past a size, directory.json.gz, and
          // switching must not change the pod template.
          { configMap: { name: options.directoryConfigMapName } },
        ],
      },
    },
  ];
}

/** The admin-port path kubelet calls for one app probe. */
export function probePath(container: string, kind: string): string {
  return `${PROBE_PATH_PREFIX}/${container}/${kind}`;
}

function resolveProbePort(container: ContainerLike, port: number | string): number {
  if (typeof port === "number") return port;
  const named = container.ports?.find((p) => p.name === port);
  if (!named) throw new InjectionError(`container "${container.name}": probe port "${port}" names no port of the container`);
  return named.containerPort;
}

/**
 * What the proxy must run for one kubelet probe (workload.json `probes`), or undefined for an exec
 * probe (it runs inside the container, the mesh is not in its way). Every network probe is taken
 * over: the kubelet has no mesh certificate, so in strict mode it cannot reach a redirected port,
 * and a tcpSocket probe that did reach one would only prove the proxy's listener is up.
 */
function proxiedProbe(container: ContainerLike, probe: ProbeLike, path: string): Probe | undefined {
  if (probe.httpGet) {
    const { path: targetPath, port, scheme } = probe.httpGet;
    const headers = (probe.httpGet.httpHeaders ?? []) as { name: string; value: string }[];
    return {
      path,
      port: resolveProbePort(container, port),
      targetPath: targetPath ?? "/",
      scheme: scheme === "HTTPS" ? "HTTPS" : "HTTP",
      ...(headers.length ? { headers: headers.map(({ name, value }) => ({ name, value })) } : {}),
    };
  }
  if (probe.grpc) {
    const { port, service } = probe.grpc;
    if (typeof port !== "number") {
      throw new InjectionError(`container "${container.name}": grpc probe port ${JSON.stringify(port)} is not a number (the Kubernetes API allows no named port here)`);
    }
    return { kind: "grpc", path, port, ...(service ? { service } : {}) };
  }
  if (probe.tcpSocket) return { kind: "tcpSocket", path, port: resolveProbePort(container, probe.tcpSocket.port) };
  return undefined;
}

/**
 * Rewrites one container's httpGet, grpc and tcpSocket probes into httpGet probes of the proxy's
 * admin port; timing fields (period, thresholds, timeout) stay as they were. exec probes are left
 * alone.
 */
export function rewriteProbes(container: ContainerLike): { container: ContainerLike; probes: Probe[] } {
  const probes: Probe[] = [];
  const out: ContainerLike = { ...container };
  for (const [field, kind] of PROBE_KINDS) {
    const probe = container[field];
    if (!probe) continue;
    const path = probePath(container.name, kind);
    const proxied = proxiedProbe(container, probe, path);
    if (!proxied) continue;
    probes.push(proxied);
    const { httpGet, grpc: _grpc, tcpSocket: _tcpSocket, ...timing } = probe;
    // An httpGet keeps its other fields (httpHeaders: kubelet still sends them, the proxy ignores them).
    const { path: _path, port: _port, scheme: _scheme, host: _host, ...httpRest } = httpGet ?? ({} as Partial<HttpGetLike>);
    out[field] = { ...timing, httpGet: { ...httpRest, path, port: PROXY_PORTS.admin, scheme: "HTTP" } };
  }
  return { container: out, probes };
}

/** Pod spec in, meshed pod spec out. Existing init containers and volumes are kept after ours. */
export function injectSidecar(podSpec: PodSpecLike, options: InjectOptions): InjectResult {
  for (const name of [INIT_CONTAINER_NAME, SIDECAR_NAME]) {
    if ([...podSpec.containers, ...((podSpec.initContainers ?? []) as ContainerLike[])].some((c) => c.name === name)) {
      throw new InjectionError(`the pod already has a container named "${name}" (already meshed, or a name clash)`);
    }
  }
  for (const name of [IDENTITY_VOLUME, CONFIG_VOLUME]) {
    if (((podSpec.volumes ?? []) as { name?: string }[]).some((v) => v.name === name)) {
      throw new InjectionError(`the pod already has a volume named "${name}"`);
    }
  }
  checkAppUids(podSpec);
  const probes: Probe[] = [];
  const containers = podSpec.containers.map((c) => {
    const rewritten = rewriteProbes(c);
    probes.push(...rewritten.probes);
    return rewritten.container;
  });
  return {
    podSpec: {
      ...podSpec,
      containers,
      initContainers: [initContainer(options), sidecarContainer(options), ...(podSpec.initContainers ?? [])],
      volumes: [...meshVolumes(options), ...(podSpec.volumes ?? [])],
    },
    probes,
  };
}

/** Container ports declared by the app containers, the default inbound set. */
export function containerPorts(podSpec: PodSpecLike): number[] {
  return sortedUnique(podSpec.containers.flatMap((c) => (c.ports ?? []).map((p) => p.containerPort)));
}

/** NetworkPolicy cannot select by service account, so meshed pods carry theirs as a label. */
export const SERVICE_ACCOUNT_LABEL = "mtls-mesh.io/service-account";

/** Labels every meshed pod carries (selectors and NetworkPolicy peers use them). */
export function meshPodLabels(workload: string, serviceAccount: string): Record<string, string> {
  return { [LABELS.meshed]: "true", [LABELS.workload]: workload, [SERVICE_ACCOUNT_LABEL]: serviceAccount };
}
