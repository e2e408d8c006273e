// Authorization rendering, pure: AuthorizationPolicy rules → the proxy's rules (enforced on the
// peer's SPIFFE ID) and → a Kubernetes NetworkPolicy for the same ports (defence in depth: it
// stops packets from pods that could not present the identity anyway).
import type * as k8s from "@pulumi/kubernetes";
import { spiffeId } from "../proxy/spiffe";
import { LABELS, PROXY_PORTS } from "../proxy/wellknown";
import type { AuthorizationRule } from "../proxy/config";
import { SERVICE_ACCOUNT_LABEL } from "./inject";

/** A declared unmeshed client as a rule sees it (components/unmeshed-client.ts). */
export interface RuleClient {
  key: string;
  /** Source blocks the proxy admits its plaintext from. */
  plaintextFrom: string[];
  /** Its pods, namespace or blocks, for the NetworkPolicy. */
  networkPolicyPeers: k8s.types.input.networking.v1.NetworkPolicyPeer[];
}

/** A rule after validation: service accounts split, ports already translated to pod ports. */
export interface ResolvedRule {
  serviceAccounts: { namespace: string; serviceAccount: string }[];
  namespaces: string[];
  /** Declared unmeshed clients the rule admits (by address; only a permissive port takes plaintext). */
  clients: RuleClient[];
  /** Pod (container) ports; undefined = every port of the workload. */
  ports?: number[];
}

const uniqueSorted = <T extends string | number>(values: T[]): T[] =>
  [...new Set(values)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));

/** One policy's rules in workload.json form. */
export function renderAuthorizationRules(rules: ResolvedRule[], trustDomain: string): AuthorizationRule[] {
  return rules.map((rule) => {
    const out: AuthorizationRule = {};
    if (rule.ports) out.ports = uniqueSorted(rule.ports);
    if (rule.serviceAccounts.length) {
      out.principals = uniqueSorted(rule.serviceAccounts.map((sa) => spiffeId(trustDomain, sa.namespace, sa.serviceAccount)));
    }
    if (rule.namespaces.length) out.namespaces = uniqueSorted(rule.namespaces);
    if (rule.clients.length) out.plaintextFrom = uniqueSorted(rule.clients.flatMap((c) => c.plaintextFrom));
    return out;
  });
}

export interface NetworkPolicyInput {
  /** The workload the policy protects (its pods carry mtls-mesh.io/workload=<name>). */
  workload: string;
  rules: ResolvedRule[];
  /** Pod ports whose effective mode is disabled or audit: the proxy lets everyone through, so must this. */
  openPorts?: number[];
  /** Every port of the workload is disabled or audit: the policy admits everyone (it only waits for a mode). */
  allOpen?: boolean;
  /** Opaque pod ports: their meshed clients come through the tunnel port, so whoever may reach one may reach that too. */
  opaquePorts?: number[];
}

/** The label Kubernetes puts on every namespace: NetworkPolicy peers select namespaces by name with it. */
export const NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name";

/**
 * The NetworkPolicy spec for one AuthorizationPolicy. Several policies on one workload are
 * additive, exactly like the proxy's rules. Service accounts are matched through the label every
 * meshed pod carries (NetworkPolicy cannot select by service account). The proxy's admin port
 * stays open to everyone: it serves only health and metrics, and Prometheus must still scrape it.
 * A peer admitted to an opaque port is admitted to the tunnel port too; the proxy still authorizes
 * each tunnel stream for the port it names.
 */
export function renderNetworkPolicySpec(input: NetworkPolicyInput): k8s.types.input.networking.v1.NetworkPolicySpec {
  const podSelector = { matchLabels: { [LABELS.workload]: input.workload } };
  // In "disabled" the mesh changes nothing on the wire, and "audit" admits everyone to see who
  // comes, so the NetworkPolicy must not refuse either: it enforces exactly where the proxy does.
  if (input.allOpen) return { podSelector, policyTypes: ["Ingress"], ingress: [{}] };
  const opaque = input.opaquePorts ?? [];
  const withTunnel = (ports: number[]) => (ports.some((p) => opaque.includes(p)) ? uniqueSorted([...ports, PROXY_PORTS.tunnel]) : ports);
  const open = withTunnel(uniqueSorted(input.openPorts ?? []));
  const openRule = open.length ? [{ ports: open.map((port) => ({ protocol: "TCP", port })) }] : [];
  return {
    podSelector,
    policyTypes: ["Ingress"],
    ingress: [...input.rules.map((rule) => ruleIngress(rule, withTunnel)), ...openRule, { ports: [{ protocol: "TCP", port: PROXY_PORTS.admin }] }],
  };
}

function ruleIngress(rule: ResolvedRule, withTunnel: (ports: number[]) => number[]): k8s.types.input.networking.v1.NetworkPolicyIngressRule {
  const from = [
    ...[...rule.serviceAccounts]
      .sort((a, b) => `${a.namespace}/${a.serviceAccount}`.localeCompare(`${b.namespace}/${b.serviceAccount}`))
      .map((sa) => ({
        namespaceSelector: { matchLabels: { [NAMESPACE_NAME_LABEL]: sa.namespace } },
        podSelector: { matchLabels: { [SERVICE_ACCOUNT_LABEL]: sa.serviceAccount } },
      })),
    ...uniqueSorted(rule.namespaces).map((ns) => ({ namespaceSelector: { matchLabels: { [NAMESPACE_NAME_LABEL]: ns } } })),
    ...[...rule.clients].sort((a, b) => a.key.localeCompare(b.key)).flatMap((c) => c.networkPolicyPeers),
  ];
  return rule.ports ? { from, ports: withTunnel(uniqueSorted(rule.ports)).map((port) => ({ protocol: "TCP", port })) } : { from };
}
