// The reachability matrix, pure: for every client (each meshed workload's service account, each
// declared unmeshed client) × every server Service port, what the proxies will do: the effective
// mode, the transport the client uses, allowed or denied, and by which rule or default. It mirrors
// the proxy's own decision (proxy/policy.ts decide) on the rendered config, so a preview of the
// matrix ConfigMap shows which edges a change opens, closes or moves between plaintext and mTLS.
import type { Mode } from "../proxy/wellknown";
import type { RegistrySnapshot } from "./registry";

export interface MatrixClient {
  /** "sa:<namespace>/<serviceAccount>" or "unmeshed:<name>". */
  key: string;
  meshed: boolean;
  /** A meshed client's identity. */
  namespace?: string;
  serviceAccount?: string;
}

export interface MatrixRule {
  serviceAccounts: { namespace: string; serviceAccount: string }[];
  namespaces: string[];
  /** Keys of the unmeshed clients the rule names. */
  clients: string[];
  /** Pod ports; undefined = every port. */
  ports?: number[];
}

export interface MatrixServer {
  /** "<namespace>/<name>" of the workload behind the Service. */
  workload: string;
  /** Service ports, the pod port behind each, and its effective mode. */
  ports: { port: number; targetPort: number; mode: Mode }[];
  /** Every AuthorizationPolicy on the workload, sorted by key; empty = no policy (everyone allowed). */
  policies: { key: string; rules: MatrixRule[] }[];
}

export interface ReachabilityEdge {
  /** "<namespace>/<name>:<service port>". */
  server: string;
  client: string;
  mode: Mode;
  transport: "mtls" | "plaintext";
  allowed: boolean;
  /** The rule or default that decided it. */
  reason: string;
}

const STRICT_REFUSES = "strict refuses plaintext";

/** One line per edge: `<server> from <client>: <mode>, <transport>, <allow|deny> (<reason>)`. */
export const edgeKey = (e: Pick<ReachabilityEdge, "server" | "client">): string => `${e.server} from ${e.client}`;

function ruleMatches(rule: MatrixRule, client: MatrixClient, podPort: number): boolean {
  if (rule.ports && !rule.ports.includes(podPort)) return false;
  if (!client.meshed) return rule.clients.includes(client.key);
  return (
    rule.serviceAccounts.some((sa) => sa.namespace === client.namespace && sa.serviceAccount === client.serviceAccount) ||
    rule.namespaces.includes(client.namespace!)
  );
}

/** The decision strict would make, as the proxy's decide() does: plaintext first, then the rules. */
function strictDecision(server: MatrixServer, client: MatrixClient, podPort: number, strict: boolean): { allowed: boolean; reason: string } {
  if (strict && !client.meshed) return { allowed: false, reason: STRICT_REFUSES };
  if (server.policies.length === 0) return { allowed: true, reason: `no AuthorizationPolicy on ${server.workload}` };
  for (const policy of server.policies) {
    const i = policy.rules.findIndex((rule) => ruleMatches(rule, client, podPort));
    if (i >= 0) return { allowed: true, reason: `${policy.key} rule ${i + 1}` };
  }
  const names = server.policies.map((p) => p.key).join(", ");
  return { allowed: false, reason: client.meshed ? `no rule of ${names} names it` : `no rule of ${names} names it; plaintext has no identity` };
}

/** Every edge, sorted by server then client: stable, so an unchanged program renders identical text. */
export function resolveReachability(clients: MatrixClient[], servers: MatrixServer[]): ReachabilityEdge[] {
  const edges: ReachabilityEdge[] = [];
  for (const server of servers) {
    for (const p of server.ports) {
      for (const client of clients) {
        const base = { server: `${server.workload}:${p.port}`, client: client.key, mode: p.mode };
        // A client's proxy originates mTLS to every meshed port that is not disabled (proxy/outbound.ts).
        const transport = client.meshed && p.mode !== "disabled" ? "mtls" : "plaintext";
        if (p.mode === "disabled") {
          edges.push({ ...base, transport, allowed: true, reason: "disabled: forwarded unchecked" });
          continue;
        }
        const decision = strictDecision(server, client, p.targetPort, p.mode !== "permissive");
        const audited = p.mode === "audit" && !decision.allowed;
        edges.push({ ...base, transport, allowed: decision.allowed || audited, reason: audited ? `audit admits; strict would refuse: ${decision.reason}` : decision.reason });
      }
    }
  }
  const byKey = (a: ReachabilityEdge, b: ReachabilityEdge) => compare(a.server, b.server) || compare(a.client, b.client);
  return edges.sort(byKey);
}

const compare = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

export function edgeLine(e: ReachabilityEdge): string {
  return `${edgeKey(e)}: ${e.mode}, ${e.transport}, ${e.allowed ? "allow" : "deny"} (${e.reason})`;
}

/** The matrix ConfigMap's text: a header that says how to read it, then one line per edge. */
export function renderReachability(edges: ReachabilityEdge[]): string {
  const header = [
    "# Reachability as the proxies will enforce it: <server Service port> from <client>: <mode>, <transport>, <allow|deny> (<why>).",
    "# Rendered by the Mesh from the program; the proxies do not read it. Review its diff in `pulumi preview --diff`.",
  ];
  return [...header, ...edges.map(edgeLine)].join("\n") + "\n";
}

const LINE = /^(\S+) from (\S+): (\S+), (mtls|plaintext), (allow|deny) \((.*)\)$/;

/** Reads renderReachability's text back (the demo compares the wire against it). */
export function parseReachability(text: string): ReachabilityEdge[] {
  return text
    .split("\n")
    .filter((line) => line && !line.startsWith("#"))
    .map((line) => {
      const m = LINE.exec(line);
      if (!m) throw new Error(`not a reachability line: ${JSON.stringify(line)}`);
      return { server: m[1], client: m[2], mode: m[3] as Mode, transport: m[4] as "mtls" | "plaintext", allowed: m[5] === "allow", reason: m[6] };
    });
}

/** What a declared unmeshed client needs: the edges it must keep (it calls them, or a rule names it). */
export interface ClientExpectation {
  client: string;
  /** Server keys ("<namespace>/<name>:<port>") it must reach. */
  servers: string[];
  /** Where the expectation comes from, for the message, e.g. "rule 1 of shop/api-allow admits it". */
  because: string;
}

export interface BreakingEdge {
  edge: ReachabilityEdge;
  because: string;
  fix: string;
}

/**
 * The guard: every edge a declared unmeshed client must keep but that the matrix denies, unless
 * `acknowledged` names it. Also returns acknowledgements that match no breaking edge (stale ones
 * would silently cover a later break of the same edge).
 */
export function breakingEdges(edges: ReachabilityEdge[], expectations: ClientExpectation[], acknowledged: string[]): { breaking: BreakingEdge[]; unusedAcknowledgements: string[] } {
  const byKey = new Map(edges.map((e) => [edgeKey(e), e]));
  const acks = new Set(acknowledged);
  const used = new Set<string>();
  const breaking = new Map<string, BreakingEdge>();
  for (const expectation of expectations) {
    for (const server of expectation.servers) {
      const key = `${server} from ${expectation.client}`;
      const edge = byKey.get(key);
      if (!edge || edge.allowed || breaking.has(key)) continue;
      if (acks.has(key)) {
        used.add(key);
        continue;
      }
      breaking.set(key, { edge, because: expectation.because, fix: fixFor(edge) });
    }
  }
  return { breaking: [...breaking.values()], unusedAcknowledgements: acknowledged.filter((a) => !used.has(a)) };
}

function fixFor(edge: ReachabilityEdge): string {
  const [workload, port] = [edge.server.slice(0, edge.server.lastIndexOf(":")), edge.server.slice(edge.server.lastIndexOf(":") + 1)];
  if (edge.reason === STRICT_REFUSES) {
    return `mesh the client; or keep port ${port} of ${workload} permissive (ports[].mode) or in audit until it is; or acknowledge the edge`;
  }
  return `name ${edge.client} in a rule (from.clients) of the policy on ${workload}; or acknowledge the edge`;
}

/** The guard's refusal, listing every breaking edge and how to let it through. */
export function breakingMessage(meshLabel: string, breaking: BreakingEdge[]): string {
  const lines = breaking.map((b) => `  ${edgeLine(b.edge)}\n    needed: ${b.because}. Fix: ${b.fix}.`);
  const keys = breaking.map((b) => JSON.stringify(edgeKey(b.edge))).join(", ");
  return (
    `${meshLabel}: this program cuts off ${breaking.length} edge(s) a declared client needs:\n${lines.join("\n")}\n` +
    `To accept the break, list the edge(s) in the Mesh's acceptBreaking: [${keys}]; or remove the client, or mesh it.`
  );
}

/** The matrix's inputs from the Mesh's sealed registry. */
export function matrixInput(snapshot: RegistrySnapshot): { clients: MatrixClient[]; servers: MatrixServer[] } {
  const clients: MatrixClient[] = [
    ...snapshot.workloads.map((w) => ({ key: `sa:${w.namespace}/${w.serviceAccount}`, meshed: true, namespace: w.namespace, serviceAccount: w.serviceAccount })),
    ...snapshot.unmeshedClients.map((c) => ({ key: c.key, meshed: false })),
  ];
  const servers = snapshot.workloads
    .filter((w) => w.service)
    .map((w) => ({
      workload: w.key,
      ports: w.service!.ports.map((p) => ({ port: p.port, targetPort: p.targetPort, mode: p.mode })),
      policies: (snapshot.policiesByWorkload.get(w.key) ?? []).map((p) => ({
        key: p.key,
        rules: p.rules.map((r) => ({ serviceAccounts: r.serviceAccounts, namespaces: r.namespaces, clients: r.clients.map((c) => c.key), ...(r.ports ? { ports: r.ports } : {}) })),
      })),
    }));
  return { clients, servers };
}

/** What each declared unmeshed client must keep: the workloads it calls, and the ports rules admit it to. */
export function clientExpectations(snapshot: RegistrySnapshot): ClientExpectation[] {
  const servicePorts = new Map(snapshot.workloads.filter((w) => w.service).map((w) => [w.key, w.service!.ports]));
  const serverKeys = (workload: string, podPorts?: number[]) =>
    (servicePorts.get(workload) ?? []).filter((p) => !podPorts || podPorts.includes(p.targetPort)).map((p) => `${workload}:${p.port}`);
  const expectations: ClientExpectation[] = [];
  for (const c of snapshot.unmeshedClients) {
    for (const call of c.calls) {
      expectations.push({ client: c.key, servers: call.ports.map((p) => `${call.workload}:${p}`), because: `${c.label} lists it in calls` });
    }
  }
  for (const [workload, policies] of snapshot.policiesByWorkload) {
    for (const policy of policies) {
      policy.rules.forEach((rule, i) => {
        for (const c of rule.clients) expectations.push({ client: c.key, servers: serverKeys(workload, rule.ports), because: `rule ${i + 1} of ${policy.key} admits it` });
      });
    }
  }
  return expectations;
}
