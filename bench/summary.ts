// From raw rounds to medians with min–max, ratios against the HAProxy pair, and the targets of
// the issue (met / missed by how much). Pure functions over the results JSON.
import { SystemName } from "./systems";
import { SystemMeasurements } from "./workloads";
import { TopologyName } from "./topology";

export interface RoundRun {
  round: number;
  topology: TopologyName;
  system: SystemName;
  tls?: { protocol: string; cipher: string; peerVerified: boolean; peer: string };
  measurements?: SystemMeasurements;
  error?: string;
}

export interface Stat {
  median: number;
  min: number;
  max: number;
  n: number;
}

export function stat(values: number[]): Stat | undefined {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return undefined;
  const mid = Math.floor(v.length / 2);
  const median = v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
  return { median, min: v[0], max: v[v.length - 1], n: v.length };
}

export const PERCENTILES = ["p50", "p90", "p99", "p999", "max"] as const;
type Pct = (typeof PERCENTILES)[number];

export interface SystemSummary {
  keepAliveRps?: Stat;
  keepAliveCpuMsPer1k?: Stat;
  churnConnPerS?: Stat;
  churnCpuMsPerConn?: Stat;
  bulkMBps?: Stat;
  bulkCpuSPerGB?: Stat;
  /** The larger of the two sides, MB. */
  idleRssMB?: Stat;
  idleRssClientMB?: Stat;
  idleRssServerMB?: Stat;
  /** The larger of the two sides, KB per open proxied connection. */
  perConnectionKB?: Stat;
  /** rate → percentile → latency (ms). */
  latencyMs: Record<number, Partial<Record<Pct, Stat>>>;
  /** rate → percentile → latency added over direct in the same round (ms). */
  addedMs: Record<number, Partial<Record<Pct, Stat>>>;
  errors: string[];
}

const MB = 1e6;

export function summarize(runs: RoundRun[], topology: TopologyName, system: SystemName): SystemSummary {
  const mine = runs.filter((r) => r.topology === topology && r.system === system);
  const ok = mine.filter((r) => r.measurements).map((r) => ({ round: r.round, m: r.measurements! }));
  const of = (f: (m: SystemMeasurements) => number | undefined) => stat(ok.map(({ m }) => f(m) ?? NaN));
  // "direct" has no proxies: no proxy CPU or memory to report.
  const proxyOf = (f: (m: SystemMeasurements) => number | undefined) => (system === "direct" ? undefined : of(f));
  const s: SystemSummary = {
    keepAliveRps: of((m) => m.saturation?.requestsPerSecond),
    keepAliveCpuMsPer1k: proxyOf((m) => m.saturation && (m.saturation.cpuMs.total / m.saturation.requests) * 1000),
    churnConnPerS: of((m) => m.churn?.requestsPerSecond),
    churnCpuMsPerConn: proxyOf((m) => m.churn && m.churn.cpuMs.total / m.churn.requests),
    bulkMBps: of((m) => m.bulk && m.bulk.bytes / m.bulk.seconds / MB),
    bulkCpuSPerGB: proxyOf((m) => m.bulk && m.bulk.cpuMs.total / 1000 / (m.bulk.bytes / 1e9)),
    idleRssMB: of((m) => m.idleRssKB && Math.max(m.idleRssKB.client, m.idleRssKB.server) / 1024),
    idleRssClientMB: of((m) => m.idleRssKB && m.idleRssKB.client / 1024),
    idleRssServerMB: of((m) => m.idleRssKB && m.idleRssKB.server / 1024),
    perConnectionKB: of((m) => m.memory && Math.max(m.memory.perConnectionKB.client, m.memory.perConnectionKB.server)),
    latencyMs: {},
    addedMs: {},
    errors: mine.filter((r) => r.error).map((r) => `round ${r.round}: ${r.error}`),
  };
  const direct = runs.filter((r) => r.topology === topology && r.system === "direct" && r.measurements);
  const rates = [...new Set(ok.flatMap(({ m }) => m.latency.map((l) => l.rate)))];
  for (const rate of rates) {
    s.latencyMs[rate] = {};
    s.addedMs[rate] = {};
    for (const p of PERCENTILES) {
      const at = (m: SystemMeasurements | undefined) => m?.latency.find((l) => l.rate === rate)?.latencyMs[p] ?? NaN;
      s.latencyMs[rate][p] = stat(ok.map(({ m }) => at(m)));
      s.addedMs[rate][p] = stat(ok.map(({ round, m }) => at(m) - at(direct.find((d) => d.round === round)?.measurements)));
    }
  }
  return s;
}

export interface TargetCheck {
  target: string;
  /** Ours (median). */
  value?: number;
  /** What it is compared with: HAProxy's median, or an absolute limit. */
  reference?: number;
  unit: string;
  /** ours / HAProxy where the target is a ratio. */
  ratio?: number;
  met?: boolean;
  /** e.g. "needs 1.32× more", "34% over". */
  gap: string;
}

const fmt = (x: number, digits = 2) => (Math.abs(x) >= 100 ? x.toFixed(0) : x.toFixed(digits));

/** A target "ours ≥ k × HAProxy" (higher is better). */
function atLeastTimes(target: string, unit: string, k: number, ours?: Stat, haproxy?: Stat): TargetCheck {
  if (!ours || !haproxy) return { target, unit, gap: "not measured" };
  const ratio = ours.median / haproxy.median;
  const met = ratio >= k;
  // Near the target two decimals would print "1.00×, missed"; show three.
  const fmt = (x: number) => (Math.abs(x - k) < 0.01 || Math.abs(k / x - 1) < 0.01 ? x.toFixed(3) : x.toFixed(2));
  return {
    target, unit, value: ours.median, reference: haproxy.median, ratio, met,
    gap: met ? `${fmt(ratio)}×` : `${fmt(ratio)}× of HAProxy, needs ${fmt(k / ratio)}× more`,
  };
}

/** A target "ours ≤ limit" (lower is better). */
function atMost(target: string, unit: string, limit: number, ours?: Stat): TargetCheck {
  if (!ours) return { target, unit, gap: "not measured" };
  const met = ours.median <= limit;
  return {
    target, unit, value: ours.median, reference: limit, met,
    gap: met ? `${fmt(ours.median)} ${unit} ≤ ${fmt(limit)}` : `${fmt(ours.median)} ${unit} vs ≤ ${fmt(limit)} (${fmt((ours.median / limit - 1) * 100, 0)}% over)`,
  };
}

export function checkTargets(ours: SystemSummary, haproxy: SystemSummary): TargetCheck[] {
  const p99 = (s: SystemSummary) => s.addedMs[1000]?.p99;
  const added = p99(ours);
  const addedH = p99(haproxy);
  let latency: TargetCheck;
  if (!added || !addedH) latency = { target: "added p99 @1k req/s ≤ 1.0× HAProxy and ≤ 0.3 ms", unit: "ms", gap: "not measured" };
  else {
    // Added latency can be ≤ 0 (within noise of direct); compare with a floor so ratios stay meaningful.
    const limit = Math.min(0.3, Math.max(addedH.median, 0));
    const met = added.median <= limit;
    latency = {
      target: "added p99 @1k req/s ≤ 1.0× HAProxy and ≤ 0.3 ms",
      unit: "ms",
      value: added.median,
      reference: addedH.median,
      ratio: addedH.median > 0 ? added.median / addedH.median : undefined,
      met,
      gap: met ? `${fmt(added.median, 3)} ms ≤ ${fmt(limit, 3)} ms` : `over by ${fmt(added.median - limit, 3)} ms (limit ${fmt(limit, 3)} ms)`,
    };
  }
  return [
    atLeastTimes("keep-alive req/s ≥ 1.0× HAProxy", "req/s", 1.0, ours.keepAliveRps, haproxy.keepAliveRps),
    latency,
    atLeastTimes("new connections/s ≥ 3× HAProxy", "conn/s", 3.0, ours.churnConnPerS, haproxy.churnConnPerS),
    atLeastTimes("bulk MB/s ≥ 0.8× HAProxy", "MB/s", 0.8, ours.bulkMBps, haproxy.bulkMBps),
    atMost("idle RSS ≤ 40 MB per proxy", "MB", 40, ours.idleRssMB),
    atMost("≤ 50 KB per open proxied connection", "KB", 50, ours.perConnectionKB),
  ];
}
