// Input validation for every component. A bad input is a user error, not a crash: it fails at
// construction with one line naming the component, the field and the fix, logged by the Pulumi
// runtime without a stack trace (RunError).
import { isIP } from "node:net";
import * as pulumi from "@pulumi/pulumi";
import { MODES, Mode, RESERVED_PORTS } from "../proxy/wellknown";
import { TRANSPORTS, Transport } from "../proxy/config";
import { trustDomainProblem } from "../proxy/spiffe";

/** A refused input. `pulumi up` prints the message and exits cleanly, no stack trace. */
export class MeshInputError extends pulumi.RunError {
  constructor(
    readonly component: string,
    readonly field: string,
    problem: string,
    fix: string,
  ) {
    super(`${component}: field "${field}" ${problem}. Fix: ${fix}`);
    this.name = "MeshInputError";
  }
}

/** Names a component instance in messages: `MeshedWorkload "api"`. */
export function componentLabel(kind: string, name: string): string {
  return `${kind} ${JSON.stringify(name)}`;
}

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

export function checkDns1123Label(component: string, field: string, value: unknown): string {
  if (typeof value !== "string" || value.length === 0 || value.length > 63 || !DNS1123_LABEL.test(value)) {
    throw new MeshInputError(
      component,
      field,
      `is ${JSON.stringify(value)}, not a DNS-1123 label`,
      "use 1-63 lowercase letters, digits or '-', starting and ending with a letter or digit (e.g. \"my-app\")",
    );
  }
  return value;
}

const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** Names of Secrets and ConfigMaps: DNS-1123 subdomains, up to 253 characters. */
export function checkDns1123Subdomain(component: string, field: string, value: unknown): string {
  if (typeof value !== "string" || value.length === 0 || value.length > 253 || !DNS1123_SUBDOMAIN.test(value)) {
    throw new MeshInputError(component, field, `is ${JSON.stringify(value)}, not a DNS-1123 subdomain`, "use up to 253 lowercase letters, digits, '-' or '.', starting and ending with a letter or digit");
  }
  return value;
}

/** Service names are DNS-1035 labels: a DNS-1123 label that starts with a letter. */
export function checkDns1035Label(component: string, field: string, value: unknown, why: string): string {
  checkDns1123Label(component, field, value);
  if (!/^[a-z]/.test(value as string)) {
    throw new MeshInputError(component, field, `is ${JSON.stringify(value)}, which starts with a digit; ${why}, and Service names must start with a letter (DNS-1035)`, "start the name with a letter, e.g. \"w-" + value + "\"");
  }
  return value as string;
}

/** `value` must be one of `allowed` (`what` names the kind, e.g. "mesh mode"). */
export function checkOneOf<T extends string>(component: string, field: string, value: unknown, allowed: readonly T[], what: string): T {
  if (typeof value !== "string" || !(allowed as readonly string[]).includes(value)) {
    throw new MeshInputError(component, field, `is ${JSON.stringify(value)}, not a ${what}`, `use one of ${allowed.map((a) => JSON.stringify(a)).join(", ")}`);
  }
  return value as T;
}

export function checkMode(component: string, field: string, value: unknown): Mode {
  return checkOneOf(component, field, value, MODES, "mesh mode");
}

export function checkOptionalMode(component: string, field: string, value: unknown): Mode | undefined {
  return value === undefined ? undefined : checkMode(component, field, value);
}

export function checkTransport(component: string, field: string, value: unknown): Transport {
  return checkOneOf(component, field, value, TRANSPORTS, "proxy transport");
}

export function checkTrustDomain(component: string, field: string, value: unknown): string {
  const problem = typeof value === "string" ? trustDomainProblem(value) : "is not a string";
  if (problem) {
    throw new MeshInputError(
      component,
      field,
      `(${JSON.stringify(value)}) ${problem}`,
      "use a lowercase DNS-like name such as \"cluster.local\" or \"prod.example.com\"",
    );
  }
  return value as string;
}

/** A port number an application may use: 1-65535 and not one of the proxy's own ports. */
export function checkAppPort(component: string, field: string, value: unknown): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1 || value > 65535) {
    throw new MeshInputError(component, field, `is ${JSON.stringify(value)}, not a port number`, "use an integer 1-65535");
  }
  if (RESERVED_PORTS.includes(value)) {
    throw new MeshInputError(
      component,
      field,
      `is ${value}, a port the mesh proxy owns (${RESERVED_PORTS.join(", ")})`,
      "move the application to another port",
    );
  }
  return value;
}

/** A list of app ports: an array, each a port the proxy does not own, none twice. */
export function checkPortList(component: string, field: string, value: unknown): number[] {
  if (!Array.isArray(value)) throw new MeshInputError(component, field, `is ${JSON.stringify(value)}, not a list of ports`, "give an array such as [3306, 5432], or [] for none");
  const ports = value.map((p, i) => checkAppPort(component, `${field}[${i}]`, p));
  const repeated = ports.find((p, i) => ports.indexOf(p) !== i);
  if (repeated !== undefined) throw new MeshInputError(component, field, `lists port ${repeated} twice`, "list each port once");
  return ports;
}

export function checkPositiveHours(component: string, field: string, value: unknown): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1) {
    throw new MeshInputError(component, field, `is ${JSON.stringify(value)}, not a positive whole number of hours`, "use an integer >= 1");
  }
  return value;
}

/** "namespace/serviceAccount", both DNS-1123 labels. */
export function checkServiceAccountRef(component: string, field: string, value: unknown): { namespace: string; serviceAccount: string } {
  const parts = typeof value === "string" ? value.split("/") : [];
  if (parts.length !== 2 || !parts.every((p) => p.length <= 63 && DNS1123_LABEL.test(p))) {
    throw new MeshInputError(
      component,
      field,
      `is ${JSON.stringify(value)}, not a service account reference`,
      "write \"<namespace>/<serviceAccount>\" with DNS-1123 labels, e.g. \"shop/web\"",
    );
  }
  return { namespace: parts[0], serviceAccount: parts[1] };
}

/** CIDR like 10.0.0.0/8 or fd00::/8. */
export function checkCidr(component: string, field: string, value: unknown): string {
  const [address, bits, extra] = typeof value === "string" ? value.split("/") : [];
  const family = address ? isIP(address) : 0;
  const maxBits = family === 4 ? 32 : 128;
  const ok = family !== 0 && extra === undefined && /^\d{1,3}$/.test(bits ?? "") && Number(bits) <= maxBits;
  if (!ok) throw new MeshInputError(component, field, `is ${JSON.stringify(value)}, not a CIDR`, "write an address block such as \"10.0.0.0/8\"");
  return value as string;
}
