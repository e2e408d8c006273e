// The slice of the Kubernetes object model the harness reads, and small pure helpers on it.
import type { KubeObject } from "../engine/mocks";

export type { KubeObject };

export interface HttpGet {
  path?: string;
  port: number | string;
  scheme?: string;
  host?: string;
  httpHeaders?: { name: string; value: string }[];
}

export interface Probe {
  httpGet?: HttpGet;
  tcpSocket?: { port: number | string };
  exec?: unknown;
  grpc?: { port: number; service?: string };
  initialDelaySeconds?: number;
  periodSeconds?: number;
  timeoutSeconds?: number;
  failureThreshold?: number;
}

export interface SecurityContext {
  runAsUser?: number;
  runAsGroup?: number;
  runAsNonRoot?: boolean;
  allowPrivilegeEscalation?: boolean;
  capabilities?: { add?: string[]; drop?: string[] };
  fsGroup?: number;
  supplementalGroups?: number[];
}

export interface Container {
  name: string;
  image?: string;
  command?: string[];
  args?: string[];
  env?: { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[];
  ports?: { name?: string; containerPort: number }[];
  volumeMounts?: { name: string; mountPath: string; subPath?: string }[];
  securityContext?: SecurityContext;
  restartPolicy?: string;
  startupProbe?: Probe;
  readinessProbe?: Probe;
  livenessProbe?: Probe;
}

export interface KeyToPath {
  key: string;
  path: string;
  mode?: number;
}

/** A projected volume's source; the last two are what the API server's ServiceAccount admission adds (kube-api-access-*). */
export interface ProjectedSource {
  secret?: { name: string; items?: KeyToPath[]; optional?: boolean };
  configMap?: { name: string; items?: KeyToPath[]; optional?: boolean };
  serviceAccountToken?: { path: string; audience?: string; expirationSeconds?: number };
  downwardAPI?: { items: { path: string; fieldRef?: { fieldPath: string }; mode?: number }[] };
}

export interface Volume {
  name: string;
  secret?: { secretName: string; items?: KeyToPath[]; defaultMode?: number; optional?: boolean };
  configMap?: { name: string; items?: KeyToPath[]; defaultMode?: number; optional?: boolean };
  projected?: {
    defaultMode?: number;
    sources: ProjectedSource[];
  };
  emptyDir?: Record<string, unknown>;
}

export interface PodSpec {
  containers: Container[];
  initContainers?: Container[];
  volumes?: Volume[];
  securityContext?: SecurityContext;
  serviceAccountName?: string;
}

export const objectKey = (o: { kind: string; metadata: { namespace?: string; name: string } }) =>
  `${o.kind}/${o.metadata.namespace ?? ""}/${o.metadata.name}`;

export function matchesSelector(labels: Record<string, string> | undefined, selector: Record<string, string> | undefined): boolean {
  if (!selector || Object.keys(selector).length === 0) return false;
  return Object.entries(selector).every(([k, v]) => labels?.[k] === v);
}

/** The data of a Secret or ConfigMap as bytes per key (Secret `data` is base64, `stringData` wins). */
export function objectData(o: KubeObject): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  if (o.kind === "Secret") {
    for (const [k, v] of Object.entries((o.data ?? {}) as Record<string, string>)) out.set(k, Buffer.from(v, "base64"));
  } else {
    for (const [k, v] of Object.entries((o.binaryData ?? {}) as Record<string, string>)) out.set(k, Buffer.from(v, "base64"));
    for (const [k, v] of Object.entries((o.data ?? {}) as Record<string, string>)) out.set(k, Buffer.from(v));
  }
  if (o.kind === "Secret") for (const [k, v] of Object.entries((o.stringData ?? {}) as Record<string, string>)) out.set(k, Buffer.from(v));
  return out;
}
