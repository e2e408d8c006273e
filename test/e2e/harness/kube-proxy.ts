// kube-proxy's job in iptables mode, in the node namespace: a packet to ClusterIP:port is DNATed
// to one ready endpoint (random, with kube-proxy's 1/n, 1/(n-1), ... probabilities). Conntrack
// keeps an open connection on its endpoint while the rules change. Traffic to a ClusterIP port
// without endpoints is rejected, as kube-proxy does.
import { run } from "./exec";

export interface Endpoint {
  ip: string;
  port: number;
}

export interface ServicePortRule {
  /** "<namespace>/<name>:<port>" — for comments and errors. */
  name: string;
  clusterIP: string;
  port: number;
  endpoints: Endpoint[];
}

export function chainNames(runId: string) {
  return { services: `e2e-${runId}-SERVICES`, port: (i: number) => `e2e-${runId}-SVC${i}` };
}

/** The iptables-restore input for the nat and filter tables (pure: tested without root). */
export function renderRules(runId: string, rules: ServicePortRule[], previousPortChains: number): string {
  const chains = chainNames(runId);
  const nat: string[] = ["*nat", `:${chains.services} - [0:0]`];
  const body: string[] = [];
  const count = Math.max(rules.length, previousPortChains);
  for (let i = 0; i < count; i++) nat.push(`:${chains.port(i)} - [0:0]`);
  const filter: string[] = ["*filter", `:${chains.services} - [0:0]`];
  rules.forEach((rule, i) => {
    const match = `-d ${rule.clusterIP}/32 -p tcp -m tcp --dport ${rule.port}`;
    const comment = `-m comment --comment "${rule.name}"`;
    if (rule.endpoints.length === 0) {
      filter.push(`-A ${chains.services} ${match} ${comment} -j REJECT --reject-with icmp-port-unreachable`);
      return;
    }
    body.push(`-A ${chains.services} ${match} ${comment} -j ${chains.port(i)}`);
    const n = rule.endpoints.length;
    rule.endpoints.forEach((ep, k) => {
      const remaining = n - k;
      const pick = remaining > 1 ? `-m statistic --mode random --probability ${(1 / remaining).toFixed(11)} ` : "";
      body.push(`-A ${chains.port(i)} ${pick}-p tcp -j DNAT --to-destination ${ep.ip}:${ep.port}`);
    });
  });
  return [...nat, ...body, "COMMIT", ...filter, "COMMIT", ""].join("\n");
}

export class KubeProxy {
  private portChains = 0;
  private hooked = false;

  constructor(
    private readonly nodeNs: string,
    private readonly runId: string,
  ) {}

  async sync(rules: ServicePortRule[]): Promise<void> {
    const iptables = (...args: string[]) => run("ip", ["netns", "exec", this.nodeNs, "iptables", "-w", ...args]);
    await run("ip", ["netns", "exec", this.nodeNs, "iptables-restore", "-w", "--noflush"], {
      input: renderRules(this.runId, rules, this.portChains),
    });
    // Chains of services that went away stay, empty and unreferenced, until the namespace goes.
    this.portChains = Math.max(this.portChains, rules.length);
    if (!this.hooked) {
      const chain = chainNames(this.runId).services;
      await iptables("-t", "nat", "-A", "PREROUTING", "-j", chain);
      await iptables("-t", "nat", "-A", "OUTPUT", "-j", chain);
      await iptables("-t", "filter", "-A", "FORWARD", "-j", chain);
      await iptables("-t", "filter", "-A", "OUTPUT", "-j", chain);
      this.hooked = true;
    }
  }
}
