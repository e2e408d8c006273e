// Port planning for one meshed workload, pure: which pod ports the proxy takes over, the mode of
// each, and the Service ports (with targetPort and effective mode) that go into the directory.
import type { Mode } from "../proxy/wellknown";
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
}

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
}

export interface PortPlan {
  /** Service ports with their effective mode. */
  servicePorts: { name?: string; port: number; targetPort: number; mode: Mode }[];
  /** Pod ports the init container redirects to the proxy (sorted). */
  redirectPorts: number[];
  /** workload.json inbound.ports: every redirected port's effective mode (sorted). */
  inboundPorts: { port: number; mode: Mode }[];
  /** workload.json inbound.defaultMode. */
  defaultMode: Mode;
}

export function planPorts(input: PortPlanInput): PortPlan {
  const { label, field } = input;
  const defaultMode = resolveMode(input.modes);
  const modeOfPodPort = new Map<number, Mode>();
  const seenServicePorts = new Set<number>();
  const seenNames = new Set<string>();
  const servicePorts = input.ports.map((p, i) => {
    const at = `${field}[${i}]`;
    const port = checkAppPort(label, `${at}.port`, p.port);
    const targetPort = checkAppPort(label, `${at}.targetPort`, p.targetPort ?? p.port);
    const portMode = checkOptionalMode(label, `${at}.mode`, p.mode);
    if (p.name !== undefined) {
      checkDns1123Label(label, `${at}.name`, p.name);
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
    return { ...(p.name !== undefined ? { name: p.name } : {}), port, targetPort, mode };
  });
  const redirectPorts = [...new Set([...input.containerPorts, ...servicePorts.map((p) => p.targetPort)])]
    .filter((p) => !input.excludeInboundPorts.includes(p))
    .sort((a, b) => a - b);
  const inboundPorts = redirectPorts.map((port) => ({ port, mode: modeOfPodPort.get(port) ?? defaultMode }));
  return { servicePorts, redirectPorts, inboundPorts, defaultMode };
}
