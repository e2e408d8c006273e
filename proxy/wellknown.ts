// The pod contract shared by the control plane (components/, which renders pod specs) and the
// data plane (proxy/, which runs inside them). Change a value here and both sides follow.

/** The proxy's fixed non-root UID; the redirect rules skip its traffic so it never loops. */
export const PROXY_UID = 1337;

/** Ports the proxy owns inside a pod. Applications must not use them. */
export const PROXY_PORTS = {
  /** Outbound listener: the app's redirected outgoing TCP arrives here. */
  outbound: 15001,
  /** Inbound listener: connections to the app's ports are redirected here. */
  inbound: 15006,
  /** Admin: /healthz, /readyz, /metrics and the rewritten kubelet probes. Never redirected. */
  admin: 15021,
  /**
   * Tunnel: mTLS HTTP/2 CONNECT only, each stream naming the app port (Istio's HBONE port number).
   * Meshed clients reach opaque ports here, so those ports need no protocol detection. Never
   * redirected; a MeshedWorkload's Service exposes it as "mesh-tunnel" when it has opaque ports.
   */
  tunnel: 15008,
} as const;

export const RESERVED_PORTS: readonly number[] = Object.values(PROXY_PORTS);

/** Where the pod mounts the proxy's inputs (read-only). */
export const MOUNT_PATHS = {
  /** kubernetes.io/tls Secret: tls.crt, tls.key, ca.crt. */
  identity: "/var/run/mesh/identity",
  /** Projected ConfigMaps: workload.json and directory.json. */
  config: "/etc/mesh",
} as const;

export const FILE_NAMES = {
  cert: "tls.crt",
  key: "tls.key",
  trustBundle: "ca.crt",
  workload: "workload.json",
  directory: "directory.json",
  /** The directory gzip-compressed, when its text would not fit a ConfigMap (components/directory-data.ts). */
  directoryGzip: "directory.json.gz",
} as const;

/** Kubelet probes are rewritten to the admin port under this prefix: /app-health/<container>/<probe>. */
export const PROBE_PATH_PREFIX = "/app-health";

/**
 * Mesh modes, from least to most strict. "audit" is strict in audit: the proxy admits what strict
 * would refuse (plaintext, unauthorized peers) and logs and counts each such connection, so the
 * traffic nobody declared shows up before the flip to strict.
 */
export const MODES = ["disabled", "permissive", "audit", "strict"] as const;
export type Mode = (typeof MODES)[number];

/** Labels and annotations the components put on meshed objects. */
export const LABELS = {
  managedBy: "app.kubernetes.io/managed-by",
  meshed: "mtls-mesh.io/meshed",
  workload: "mtls-mesh.io/workload",
} as const;
