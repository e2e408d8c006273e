// The mesh config format: defined once here, rendered by components/ and read by proxy/.
// Two JSON documents, mounted side by side in the pod at MOUNT_PATHS.config:
//   workload.json  — this workload: identity, inbound port modes, authorization, probes, limits
//   directory.json — the meshed services a client-side proxy may call, with the SPIFFE ID each
//                    must present (secure naming) and the mode of each port
// Mode and policy live here, not in pod specs, so a mode flip or a policy edit is a config change
// that the proxy hot-reloads: no pod restarts.
import { z } from "zod";
import { MODES } from "./wellknown";
import { parseSpiffeId, trustDomainProblem } from "./spiffe";

export const CONFIG_VERSION = 1;

const Dns1123Label = z
  .string()
  .max(63)
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, "must be a DNS-1123 label (lowercase letters, digits, '-')");

const Port = z.number().int().min(1).max(65535);

export const ModeSchema = z.enum(MODES);

const TrustDomain = z.string().superRefine((value, ctx) => {
  const problem = trustDomainProblem(value);
  if (problem) ctx.addIssue({ code: "custom", message: `trust domain ${problem}` });
});

const SpiffeIdString = z.string().superRefine((value, ctx) => {
  const parsed = parseSpiffeId(value);
  if (!parsed.ok) ctx.addIssue({ code: "custom", message: `invalid SPIFFE ID: ${parsed.reason}` });
});

const IpAddress = z.union([z.ipv4(), z.ipv6()]);

/**
 * `opaque`: no protocol detection on this port (server-first protocols such as MySQL or SMTP,
 * whose clients wait for the server to speak). A permissive or audit port forwards a plaintext
 * client at once instead of waiting `sniffTimeoutMs` for a ClientHello that cannot come; meshed
 * clients reach the port through the tunnel listener instead (PROXY_PORTS.tunnel).
 */
export const PortModeSchema = z.strictObject({ port: Port, mode: ModeSchema, opaque: z.boolean().optional() });

/**
 * One authorization rule. A connection matches when its port is in `ports` (absent: every port)
 * and its authenticated peer is one of `principals` or lives in one of `namespaces` (same trust
 * domain). A plaintext peer has no identity: it matches only a rule's `plaintextFrom`, by source
 * address (a declared unmeshed client; only a permissive or audit port admits plaintext at all).
 */
export const AuthorizationRuleSchema = z
  .strictObject({
    ports: z.array(Port).min(1).optional(),
    principals: z.array(SpiffeIdString).optional(),
    namespaces: z.array(Dns1123Label).optional(),
    plaintextFrom: z.array(z.union([z.cidrv4(), z.cidrv6()])).optional(),
  })
  .refine((r) => (r.principals?.length ?? 0) + (r.namespaces?.length ?? 0) + (r.plaintextFrom?.length ?? 0) > 0, {
    message: "a rule needs at least one principal, namespace or plaintextFrom block",
  });

export const LimitsSchema = z.strictObject({
  /** A TLS handshake (or a permissive sniff that saw TLS) must finish within this. */
  handshakeTimeoutMs: z.number().int().min(100).max(60_000).default(10_000),
  /** Permissive ports: if the client has sent nothing by then, treat it as plaintext (server-first protocols). */
  sniffTimeoutMs: z.number().int().min(10).max(10_000).default(200),
  /** Close connections idle in both directions for this long. 0 disables. */
  idleTimeoutMs: z.number().int().min(0).default(3_600_000),
  /** Connections beyond this many are refused. */
  maxConnections: z.number().int().min(1).default(10_000),
  /** On SIGTERM, open connections get this long to finish. */
  drainTimeoutMs: z.number().int().min(0).default(25_000),
});

/**
 * One rewritten kubelet probe: kubelet now GETs `path` on the admin port and the proxy runs the
 * app's real probe on localhost `port`. `kind` is the original probe kind (absent = httpGet, the
 * form written before grpc and tcpSocket probes were rewritten too).
 */
const ProbeTarget = {
  /** Path on the admin port that kubelet now calls: /app-health/<container>/<probe>. */
  path: z.string().startsWith("/"),
  /** Where the app really serves the probe (on localhost). */
  port: Port,
};
export const ProbeSchema = z.union([
  z.strictObject({
    ...ProbeTarget,
    kind: z.literal("httpGet").optional(),
    targetPath: z.string().startsWith("/"),
    scheme: z.enum(["HTTP", "HTTPS"]).default("HTTP"),
    /** The probe's httpHeaders: the only caller-independent headers the app gets. */
    headers: z.array(z.strictObject({ name: z.string().min(1), value: z.string() })).optional(),
  }),
  /** grpc.health.v1.Health/Check over h2c; `service` is the probe's `grpc.service` (absent = ""). */
  z.strictObject({ ...ProbeTarget, kind: z.literal("grpc"), service: z.string().optional() }),
  /** A TCP connect. */
  z.strictObject({ ...ProbeTarget, kind: z.literal("tcpSocket") }),
]);

export const WorkloadConfigSchema = z.strictObject({
  version: z.literal(CONFIG_VERSION),
  trustDomain: TrustDomain,
  workload: z.strictObject({
    namespace: Dns1123Label,
    name: Dns1123Label,
    serviceAccount: Dns1123Label,
    spiffeId: SpiffeIdString,
  }),
  inbound: z.strictObject({
    /** Mode for an inbound port that is redirected but not listed below. */
    defaultMode: ModeSchema,
    ports: z.array(PortModeSchema).default([]),
  }),
  /** null: no policy targets this workload, every peer allowed. Otherwise default deny. */
  authorization: z.strictObject({ rules: z.array(AuthorizationRuleSchema) }).nullable().default(null),
  probes: z.array(ProbeSchema).default([]),
  limits: LimitsSchema.default(LimitsSchema.parse({})),
});

export const DirectoryServiceSchema = z.strictObject({
  namespace: Dns1123Label,
  name: Dns1123Label,
  /** The identity the server-side proxy must present (secure naming). */
  spiffeId: SpiffeIdString,
  /** ClusterIPs (and/or pod IPs) a client may dial. */
  addresses: z.array(IpAddress).default([]),
  /** DNS names of the service, e.g. api.shop.svc.cluster.local. */
  hostnames: z.array(z.string().min(1)).default([]),
  ports: z
    /** `opaque`: clients reach this port through the pods' tunnel port (PROXY_PORTS.tunnel on the same addresses). */
    .array(z.strictObject({ port: Port, targetPort: Port, mode: ModeSchema, opaque: z.boolean().optional() }))
    .min(1),
});

export const DirectoryConfigSchema = z.strictObject({
  version: z.literal(CONFIG_VERSION),
  services: z.array(DirectoryServiceSchema).default([]),
});

export type PortMode = z.infer<typeof PortModeSchema>;
export type AuthorizationRule = z.infer<typeof AuthorizationRuleSchema>;
export type Limits = z.infer<typeof LimitsSchema>;
export type Probe = z.infer<typeof ProbeSchema>;
export type HttpProbe = Extract<Probe, { targetPath: string }>;
export type WorkloadConfig = z.infer<typeof WorkloadConfigSchema>;
/** What the components write; defaults may be omitted. */
export type WorkloadConfigInput = z.input<typeof WorkloadConfigSchema>;
export type DirectoryService = z.infer<typeof DirectoryServiceSchema>;
export type DirectoryConfig = z.infer<typeof DirectoryConfigSchema>;
export type DirectoryConfigInput = z.input<typeof DirectoryConfigSchema>;

export class ConfigError extends Error {}

/** Validates one document; the error names the file and every bad field. */
export function parseConfig<T extends z.ZodType>(schema: T, value: unknown, source: string): z.infer<T> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => {
    const field = issue.path.length ? issue.path.join(".") : "(document)";
    return `  ${field}: ${issue.message}`;
  });
  throw new ConfigError(`invalid config in ${source}:\n${problems.join("\n")}`);
}

export const parseWorkloadConfig = (value: unknown, source = "workload.json") =>
  parseConfig(WorkloadConfigSchema, value, source);
export const parseDirectoryConfig = (value: unknown, source = "directory.json") =>
  parseConfig(DirectoryConfigSchema, value, source);

/** JSON with keys sorted at every level, so identical inputs render byte-identical config. */
export function stableStringify(value: unknown): string {
  return JSON.stringify(sortKeys(value), null, 2) + "\n";
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort()) {
      const v = (value as Record<string, unknown>)[key];
      if (v !== undefined) out[key] = sortKeys(v);
    }
    return out;
  }
  return value;
}

// ---------------------------------------------------------------------------------------------
// The single-file form of the proxy's config (`mesh-proxy run --config proxy.json`): the two
// documents above plus EXPLICIT listeners, for running the proxy without iptables (benchmarks,
// tests, a VM). Pods use the directory form (workload.json + directory.json, transparent mode).

/** Transports between proxy pairs, chosen by ALPN: HTTP/2 CONNECT streams over one pooled mTLS
 * connection ("h2"), or one mTLS connection per application connection ("tcp"). */
export const TRANSPORTS = ["h2", "tcp"] as const;
export const TransportSchema = z.enum(TRANSPORTS);
export type Transport = (typeof TRANSPORTS)[number];

const ListenHost = z.string().min(1).refine((h) => h === "localhost" || z.union([z.ipv4(), z.ipv6()]).safeParse(h).success, {
  message: "must be an IP address or localhost",
});

/** Listen on host:port and forward to 127.0.0.1:targetPort, applying the mode of that port. */
export const InboundListenerSchema = z.strictObject({
  port: Port,
  host: ListenHost.default("0.0.0.0"),
  /** The app's port on 127.0.0.1. */
  targetPort: Port,
  /** Pins the mode for this listener; absent: workload.inbound's mode for targetPort. */
  mode: ModeSchema.optional(),
});

/** Listen on host:port and forward to target, with mTLS expecting spiffeId (null: plaintext). */
export const OutboundListenerSchema = z.strictObject({
  port: Port,
  host: ListenHost.default("127.0.0.1"),
  /** Where the server-side proxy (or, for plaintext, the server) listens. */
  target: z.strictObject({ host: z.string().min(1), port: Port }),
  /** The identity the server must present (secure naming); null sends plaintext. */
  spiffeId: SpiffeIdString.nullable(),
  /** The app port the server-side proxy should reach (the tunnel's CONNECT target); default target.port. */
  targetPort: Port.optional(),
  /** `target` is the server proxy's tunnel listener (an opaque port): always HTTP/2 CONNECT, whatever `transport` says. */
  tunnel: z.boolean().default(false),
});

/** The tunnel listener: mTLS HTTP/2 CONNECT only; each stream names a port of workload.inbound.ports. */
export const TunnelListenerSchema = z.strictObject({
  port: Port,
  host: ListenHost.default("0.0.0.0"),
});

export const AdminListenerSchema = z.strictObject({
  host: ListenHost.default("0.0.0.0"),
  port: Port.default(15021),
});

export const ProxyFileConfigSchema = z.strictObject({
  version: z.literal(CONFIG_VERSION),
  /** Directory with tls.crt, tls.key and ca.crt; relative paths are resolved from this file's directory. */
  identity: z.string().min(1).optional(),
  workload: WorkloadConfigSchema,
  directory: DirectoryConfigSchema.default({ version: CONFIG_VERSION, services: [] }),
  listeners: z
    .strictObject({
      inbound: z.array(InboundListenerSchema).default([]),
      outbound: z.array(OutboundListenerSchema).default([]),
      tunnel: TunnelListenerSchema.optional(),
      /** Also open the transparent listeners (15006 inbound, 15001 outbound, 15008 tunnel) that pods use. */
      transparent: z.boolean().default(false),
    })
    .default({ inbound: [], outbound: [], transparent: false }),
  admin: AdminListenerSchema.default({ host: "0.0.0.0", port: 15021 }),
  /** How this proxy reaches other proxies (it accepts both). */
  transport: TransportSchema.default("h2"),
});

export type InboundListenerConfig = z.infer<typeof InboundListenerSchema>;
export type OutboundListenerConfig = z.infer<typeof OutboundListenerSchema>;
export type ProxyFileConfig = z.infer<typeof ProxyFileConfigSchema>;
export type ProxyFileConfigInput = z.input<typeof ProxyFileConfigSchema>;

export const parseProxyFileConfig = (value: unknown, source = "proxy config") =>
  parseConfig(ProxyFileConfigSchema, value, source);
