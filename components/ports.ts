// Port planning for one meshed workload, pure: which pod ports the proxy takes over, the mode and
// opacity of each, and the Service ports (with targetPort, effective mode and opacity) that go
// into the directory.
import { PROXY_PORTS, type Mode } from "../proxy/wellknown";
import { resolveMode } from "./mode";
import { MeshInputError, checkAppPort, checkDns1123Label, checkOptionalMode } from "./validate";

export interface WorkloadPort {
  /** Service port name; required when there is more than one port. */
  name?: string;
  /** The Service port clients dial. */
  port: number;
  /** The container port behind it; default `port`. */
  targetPort?: number;
  /** Port-level mode, the most specific level. */
  mode?: Mode;
  /**
   * Kubernetes `appProtocol` of the Service port. A server-first or opaque protocol
   * (OPAQUE_APP_PROTOCOLS: mysql, postgresql, redis, smtp, ...) makes the port opaque.
   */
  appProtocol?: string;
  /**
   * No protocol detection on this port: a permissive port forwards plaintext clients at once (a
   * server-first client such as MySQL's never waits the sniff window), meshed clients come
   * through the pods' tunnel port 15008. Default: from `appProtocol`, else whether the pod port
   * is in the Mesh's `opaquePorts`.
   */
  opaque?: boolean;
}

/**
 * Linkerd's default opaque ports: SMTP (25, 587), MySQL (3306), Galera (4444), PostgreSQL (5432),
 * Redis (6379), Elasticsearch (9300), Memcached (11211). `Mesh.opaquePorts` overrides the list.
 */
export const DEFAULT_OPAQUE_PORTS: readonly number[] = [25, 587, 3306, 4444, 5432, 6379, 9300, 11211];

/** `appProtocol` values that make a port opaque: protocols whose server speaks first, or that gain nothing from detection. */
export const OPAQUE_APP_PROTOCOLS: readonly string[] = ["mysql", "mariadb", "postgresql", "redis", "smtp", "submission", "memcache", "memcached", "mongodb", "amqp", "kafka"];

/** The Service port a MeshedWorkload's Service adds when it has opaque ports. */
export const TUNNEL_SERVICE_PORT = { name: "mesh-tunnel", port: PROXY_PORTS.tunnel, targetPort: PROXY_PORTS.tunnel } as const;

export interface PortPlanInput {
  label: string;
  /** Field prefix for messages, e.g. "ports". */
  field: string;
  ports: WorkloadPort[];
  /** Ports the app containers declare. */
  containerPorts: number[];
  /** Inbound ports left out of the mesh (workload and mesh exclusions). */
  excludeInboundPorts: number[];
  modes: { mesh: Mode; namespace?: Mode; workload?: Mode };
  /** Pod ports that are opaque unless a port says otherwise (Mesh.opaquePorts). */
  opaquePorts: readonly number[];
  /**
   * Why this workload cannot have opaque ports (meshTransform: the Service is the program's own,
   * and cannot be given the tunnel port); undefined when it can.
   */
  noOpaque?: string;
}

export interface PortPlan {
  /** Service ports with their effective mode and opacity. */
  servicePorts: { name?: string; port: number; targetPort: number; mode: Mode; opaque: boolean; appProtocol?: string }[];
  /** Pod ports the init container redirects to the proxy (sorted). */
  redirectPorts: number[];
  /** workload.json inbound.ports: every redirected port's effective mode, `opaque` on opaque ones (sorted). */
  inboundPorts: { port: number; mode: Mode; opaque?: true }[];
  /** workload.json inbound.defaultMode. */
  defaultMode: Mode;
}

export function planPorts(input: PortPlanInput): PortPlan {
  const { label, field } = input;
  const defaultMode = resolveMode(input.modes);
  const modeOfPodPort = new Map<number, Mode>();
  const opaqueOfPodPort = new Map<number, boolean>();
  const seenServicePorts = new Set<number>();
  const seenNames = new Set<string>();
  const servicePorts = input.ports.map((p, i) => {
    const at = `${field}[${i}]`;
    const port = checkAppPort(label, `${at}.port`, p.port);
    const targetPort = checkAppPort(label, `${at}.targetPort`, p.targetPort ?? p.port);
    const portMode = checkOptionalMode(label, `${at}.mode`, p.mode);
    const appProtocol = checkAppProtocol(label, `${at}.appProtocol`, p.appProtocol);
    if (p.opaque !== undefined && typeof p.opaque !== "boolean") {
      throw new MeshInputError(label, `${at}.opaque`, `is ${JSON.stringify(p.opaque)}, not true or false`, "set opaque: true for a server-first protocol, or leave it out");
    }
    if (p.name !== undefined) {
      checkDns1123Label(label, `${at}.name`, p.name);
      if (p.name === TUNNEL_SERVICE_PORT.name) throw new MeshInputError(label, `${at}.name`, `is "${TUNNEL_SERVICE_PORT.name}", the Service port the mesh adds for opaque ports`, "choose another name");
      if (seenNames.has(p.name)) throw new MeshInputError(label, `${at}.name`, `repeats the port name ${JSON.stringify(p.name)}`, "give every port a unique name");
      seenNames.add(p.name);
    } else if (input.ports.length > 1) {
      throw new MeshInputError(label, `${at}.name`, "is missing; Kubernetes requires names when a Service has several ports", "name every port, e.g. \"http\"");
    }
    if (seenServicePorts.has(port)) throw new MeshInputError(label, `${at}.port`, `repeats port ${port}`, "list each Service port once");
    seenServicePorts.add(port);
    if (input.containerPorts.length > 0 && !input.containerPorts.includes(targetPort)) {
      throw new MeshInputError(label, `${at}.targetPort`, `is ${targetPort}, which no container declares`, `add containerPort ${targetPort} to a container, or point targetPort at one of ${input.containerPorts.join(", ")}`);
    }
    if (input.excludeInboundPorts.includes(targetPort) && portMode !== undefined) {
      throw new MeshInputError(label, `${at}.mode`, `is set, but pod port ${targetPort} is excluded from the mesh`, "drop the mode, or stop excluding the port");
    }
    const mode = resolveMode({ ...input.modes, port: portMode });
    const previous = modeOfPodPort.get(targetPort);
    if (previous !== undefined && previous !== mode) {
      throw new MeshInputError(label, `${at}.mode`, `gives pod port ${targetPort} mode ${mode}, but another Service port gives it ${previous}`, "use one mode per pod port");
    }
    modeOfPodPort.set(targetPort, mode);
    const opaque = p.opaque ?? (appProtocol !== undefined ? OPAQUE_APP_PROTOCOLS.includes(appProtocol.toLowerCase()) : input.opaquePorts.includes(targetPort));
    if (opaque && input.noOpaque !== undefined) {
      if (p.opaque === true || appProtocol !== undefined) throw new MeshInputError(label, p.opaque === true ? `${at}.opaque` : `${at}.appProtocol`, `makes pod port ${targetPort} opaque, but ${input.noOpaque}`, "leave the port not opaque (opaque: false), or mesh the workload with MeshedWorkload");
    }
    const effective = opaque && input.noOpaque === undefined;
    const previousOpaque = opaqueOfPodPort.get(targetPort);
    if (previousOpaque !== undefined && previousOpaque !== effective) {
      throw new MeshInputError(label, `${at}.opaque`, `makes pod port ${targetPort} ${effective ? "opaque" : "not opaque"}, but another Service port does the opposite`, "declare the pod port opaque (or not) on every Service port that targets it");
    }
    opaqueOfPodPort.set(targetPort, effective);
    return { ...(p.name !== undefined ? { name: p.name } : {}), port, targetPort, mode, opaque: effective, ...(appProtocol !== undefined ? { appProtocol } : {}) };
  });
  const redirectPorts = [...new Set([...input.containerPorts, ...servicePorts.map((p) => p.targetPort)])]
    .filter((p) => !input.excludeInboundPorts.includes(p))
    .sort((a, b) => a - b);
  const opaquePodPort = (port: number) => opaqueOfPodPort.get(port) ?? (input.noOpaque === undefined && input.opaquePorts.includes(port));
  const inboundPorts = redirectPorts.map((port) => ({ port, mode: modeOfPodPort.get(port) ?? defaultMode, ...(opaquePodPort(port) ? { opaque: true as const } : {}) }));
  return { servicePorts, redirectPorts, inboundPorts, defaultMode };
}

/** The Service's ports: the declared ones, plus the tunnel port when one is opaque (unnamed ones get names then, as Kubernetes requires). */
export function renderServicePorts(plan: PortPlan): { name?: string; port: number; targetPort: number; protocol: "TCP"; appProtocol?: string }[] {
  const tunnel = plan.servicePorts.some((p) => p.opaque);
  const ports = plan.servicePorts.map((p) => ({
    ...(p.name !== undefined ? { name: p.name } : tunnel ? { name: `port-${p.port}` } : {}),
    port: p.port,
    targetPort: p.targetPort,
    protocol: "TCP" as const,
    ...(p.appProtocol !== undefined ? { appProtocol: p.appProtocol } : {}),
  }));
  return tunnel ? [...ports, { ...TUNNEL_SERVICE_PORT, protocol: "TCP" as const }] : ports;
}

/** A Kubernetes appProtocol: an IANA service name, or a domain-prefixed name such as kubernetes.io/h2c. */
function checkAppProtocol(label: string, field: string, value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "string" || !/^([a-z0-9]([-a-z0-9.]*[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/.test(value) || value.length > 63) {
    throw new MeshInputError(label, field, `is ${JSON.stringify(value)}, not an application protocol name`, "use an IANA service name such as \"mysql\" or \"postgresql\", or a prefixed one such as \"kubernetes.io/h2c\"");
  }
  return value;
}
