// From raw rounds to medians with min–max, ratios against the HAProxy pair, and the targets of
// the issue (met / missed by how much). Pure functions over the results JSON.
import { SystemName } from "./systems";
import { SystemMeasurements } from "./workloads";
import { TopologyName } from "./topology";
import { PROTOCOLS, PROTOCOL_LABELS, ProtocolName, ROUND_TRIPS, RoundTripId, RoundTripMeasurements, roundTripKind } from "./roundtrip-kinds";

export interface RoundRun {
  round: number;
  topology: TopologyName;
  system: SystemName;
  tls?: { protocol: string; cipher: string; peerVerified: boolean; peer: string };
  measurements?: SystemMeasurements;
  /** The real-protocol rows (their failures are in roundTrips.errors). */
  roundTrips?: RoundTripMeasurements;
  error?: string;
}

export interface Stat {
  median: number;
  min: number;
  max: number;
  n: number;
  /** The value of each round (when the rounds are known): verdicts compare round by round. */
  byRound?: Record<number, number>;
}

/** Median, min, max of the finite values; `rounds[i]` is the round of `values[i]`. */
export function stat(values: number[], rounds?: number[]): Stat | undefined {
  const kept = values.map((value, i) => ({ value, round: rounds?.[i] })).filter((x) => Number.isFinite(x.value));
  const v = kept.map((x) => x.value).sort((a, b) => a - b);
  if (!v.length) return undefined;
  const mid = Math.floor(v.length / 2);
  const median = v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
  const s: Stat = { median, min: v[0], max: v[v.length - 1], n: v.length };
  if (rounds) s.byRound = Object.fromEntries(kept.map((x) => [x.round!, x.value]));
  return s;
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
  /** The real-protocol rows, when they ran. */
  roundTrips?: RoundTripSummary;
  errors: string[];
}

export interface RoundTripSummary {
  /** Operations per second (GET/s, tx/s, INSERT/s). */
  throughput: Partial<Record<RoundTripId, Stat>>;
  /** Time added per round trip over direct in the same round, µs: connections / throughput per
   * operation, divided by the round trips an operation takes. */
  addedUs: Partial<Record<RoundTripId, Stat>>;
  /** connect() to the server's first byte, median of the round's fresh connections, ms. */
  setupMs: Partial<Record<ProtocolName, Stat>>;
  /** Setup time added over direct in the same round, ms. */
  addedSetupMs: Partial<Record<ProtocolName, Stat>>;
  errors: string[];
}

const MB = 1e6;

export function summarize(runs: RoundRun[], topology: TopologyName, system: SystemName): SystemSummary {
  const mine = runs.filter((r) => r.topology === topology && r.system === system);
  const ok = mine.filter((r) => r.measurements).map((r) => ({ round: r.round, m: r.measurements! }));
  const rounds = ok.map(({ round }) => round);
  const of = (f: (m: SystemMeasurements) => number | undefined) => stat(ok.map(({ m }) => f(m) ?? NaN), rounds);
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
  if (mine.some((r) => r.roundTrips)) s.roundTrips = summarizeRoundTrips(runs, topology, system);
  const direct = runs.filter((r) => r.topology === topology && r.system === "direct" && r.measurements);
  const rates = [...new Set(ok.flatMap(({ m }) => m.latency.map((l) => l.rate)))];
  for (const rate of rates) {
    s.latencyMs[rate] = {};
    s.addedMs[rate] = {};
    for (const p of PERCENTILES) {
      const at = (m: SystemMeasurements | undefined) => m?.latency.find((l) => l.rate === rate)?.latencyMs[p] ?? NaN;
      s.latencyMs[rate][p] = stat(ok.map(({ m }) => at(m)), rounds);
      s.addedMs[rate][p] = stat(ok.map(({ round, m }) => at(m) - at(direct.find((d) => d.round === round)?.measurements)), rounds);
    }
  }
  return s;
}

export function summarizeRoundTrips(runs: RoundTripRunsLike, topology: TopologyName, system: SystemName): RoundTripSummary {
  const of = (sys: SystemName) => runs.filter((r) => r.topology === topology && r.system === sys && r.roundTrips);
  const mine = of(system);
  const direct = of("direct");
  const rounds = mine.map((r) => r.round);
  const directIn = (round: number) => direct.find((d) => d.round === round)?.roundTrips;
  const s: RoundTripSummary = { throughput: {}, addedUs: {}, setupMs: {}, addedSetupMs: {}, errors: [] };
  for (const kind of ROUND_TRIPS) {
    const ops = (m?: RoundTripMeasurements) => m?.workloads[kind.id]?.opsPerSecond ?? NaN;
    // Little's law: each of `connections` closed-loop clients spends connections / throughput
    // seconds per operation.
    const perRoundTripUs = (m?: RoundTripMeasurements) => (kind.connections / ops(m) / kind.roundTripsPerOp) * 1e6;
    s.throughput[kind.id] = stat(mine.map((r) => ops(r.roundTrips)), rounds);
    if (kind.addedPerRoundTrip && system !== "direct") {
      s.addedUs[kind.id] = stat(mine.map((r) => perRoundTripUs(r.roundTrips) - perRoundTripUs(directIn(r.round))), rounds);
    }
  }
  for (const protocol of PROTOCOLS) {
    const setup = (m?: RoundTripMeasurements) => m?.setup[protocol]?.medianMs ?? NaN;
    s.setupMs[protocol] = stat(mine.map((r) => setup(r.roundTrips)), rounds);
    if (system !== "direct") s.addedSetupMs[protocol] = stat(mine.map((r) => setup(r.roundTrips) - setup(directIn(r.round))), rounds);
  }
  s.errors = mine.flatMap((r) => r.roundTrips!.errors.map((e) => `round ${r.round}: ${e}`));
  return s;
}

type RoundTripRunsLike = Pick<RoundRun, "round" | "topology" | "system" | "roundTrips">[];

/** "inconclusive": the rounds disagree with each other (the figure is within the run-to-run
 * noise), or an added latency came out ≤ 0 (the direct path measured slower). Never "met". */
export type Verdict = "met" | "missed" | "inconclusive" | "not measured";

export interface TargetCheck {
  target: string;
  /** Ours (median). */
  value?: number;
  /** What it is compared with: HAProxy's median, or an absolute limit. */
  reference?: number;
  unit: string;
  /** ours / HAProxy where the target is a ratio. */
  ratio?: number;
  verdict: Verdict;
  /** true when met, false when missed, undefined when inconclusive or not measured. */
  met?: boolean;
  /** e.g. "needs 1.32× more", "34% over", "rounds 0.91–1.05× straddle 1.0×". */
  gap: string;
}

const fmt = (x: number, digits = 2) => (Math.abs(x) >= 100 ? x.toFixed(0) : x.toFixed(digits));
const notMeasured = (target: string, unit: string): TargetCheck => ({ target, unit, verdict: "not measured", gap: "not measured" });

/** Per-round values of two figures, for the rounds both have. */
function paired(a: Stat, b?: Stat): [number, number][] {
  if (!a.byRound || (b && !b.byRound)) return [];
  return Object.entries(a.byRound)
    .filter(([r]) => !b || b.byRound![Number(r)] !== undefined)
    .map(([r, v]) => [v, b ? b.byRound![Number(r)] : NaN]);
}

/** The verdict of the medians, unless the rounds (with more than one) do not all agree with it. */
function decide(medianMet: boolean, roundsMet: boolean[]): "met" | "missed" | "inconclusive" {
  if (roundsMet.length > 1 && roundsMet.some((m) => m !== medianMet)) return "inconclusive";
  return medianMet ? "met" : "missed";
}

const check = (c: Omit<TargetCheck, "met">): TargetCheck => ({ ...c, met: c.verdict === "met" ? true : c.verdict === "missed" ? false : undefined });

/** A target "ours ≥ k × HAProxy" (higher is better); the ratio is also taken round by round. */
function atLeastTimes(target: string, unit: string, k: number, ours?: Stat, haproxy?: Stat): TargetCheck {
  if (!ours || !haproxy) return notMeasured(target, unit);
  const ratio = ours.median / haproxy.median;
  const perRound = paired(ours, haproxy).map(([o, h]) => o / h);
  const verdict = decide(ratio >= k, perRound.map((r) => r >= k));
  // Near the target two decimals would print "1.00×, missed"; show three.
  const fmt = (x: number) => (Math.abs(x - k) < 0.01 || Math.abs(k / x - 1) < 0.01 ? x.toFixed(3) : x.toFixed(2));
  const gap = verdict === "met" ? `${fmt(ratio)}×`
    : verdict === "missed" ? `${fmt(ratio)}× of HAProxy, needs ${fmt(k / ratio)}× more`
    : `${fmt(ratio)}× (median), rounds ${fmt(Math.min(...perRound))}–${fmt(Math.max(...perRound))}× straddle ${k}×: within run-to-run noise`;
  return check({ target, unit, value: ours.median, reference: haproxy.median, ratio, verdict, gap });
}

/** A target "ours ≤ limit" (lower is better). */
function atMost(target: string, unit: string, limit: number, ours?: Stat): TargetCheck {
  if (!ours) return notMeasured(target, unit);
  const perRound = paired(ours).map(([o]) => o);
  const verdict = decide(ours.median <= limit, perRound.map((v) => v <= limit));
  const gap = verdict === "met" ? `${fmt(ours.median)} ${unit} ≤ ${fmt(limit)}`
    : verdict === "missed" ? `${fmt(ours.median)} ${unit} vs ≤ ${fmt(limit)} (${fmt((ours.median / limit - 1) * 100, 0)}% over)`
    : `${fmt(ours.median)} ${unit} (median), rounds ${fmt(Math.min(...perRound))}–${fmt(Math.max(...perRound))} straddle ${fmt(limit)}: within run-to-run noise`;
  return check({ target, unit, value: ours.median, reference: limit, verdict, gap });
}

/** A target on time added over direct: "ours ≤ k × HAProxy's (and ≤ cap)", lower is better.
 * An added time ≤ 0 means direct measured slower than a proxied path: noise, so inconclusive
 * (unless ours is over the absolute cap in every round, which is a miss whatever HAProxy did). */
function addedAtMost(target: string, unit: string, digits: number, ours?: Stat, haproxy?: Stat, cap = Infinity): TargetCheck {
  if (!ours || !haproxy) return notMeasured(target, unit);
  const limitOf = (h: number) => Math.min(cap, h);
  const limit = limitOf(haproxy.median);
  const rounds = paired(ours, haproxy);
  const base = { target, unit, value: ours.median, reference: haproxy.median, ratio: haproxy.median > 0 && ours.median > 0 ? ours.median / haproxy.median : undefined };
  const f = (x: number) => fmt(x, digits);
  if (ours.median > cap && rounds.every(([o]) => o > cap)) {
    return check({ ...base, verdict: "missed", gap: `${f(ours.median)} ${unit}, over the ${f(cap)} ${unit} cap by ${f(ours.median - cap)} ${unit}` });
  }
  if (ours.median <= 0 || haproxy.median <= 0) {
    const who = ours.median <= 0 ? "ours" : "HAProxy's";
    return check({ ...base, verdict: "inconclusive", gap: `${who} added time ≤ 0 (${f(ours.median <= 0 ? ours.median : haproxy.median)} ${unit}: direct measured slower): within noise` });
  }
  const verdict = decide(ours.median <= limit, rounds.map(([o, h]) => o <= limitOf(h)));
  const gap = verdict === "met" ? `${f(ours.median)} ${unit} ≤ ${f(limit)} ${unit}`
    : verdict === "missed" ? `over by ${f(ours.median - limit)} ${unit} (limit ${f(limit)} ${unit})`
    : `${f(ours.median)} vs ${f(limit)} ${unit} (medians), but the rounds disagree: within run-to-run noise`;
  return check({ ...base, verdict, gap });
}

export type WorkloadGroup = "http" | "protocols";

/** Connection setup a plaintext client of a server-first protocol may lose to our permissive, opaque port. */
export const PERMISSIVE_SETUP_LIMIT_MS = 1;

export function checkTargets(
  ours: SystemSummary,
  haproxy: SystemSummary,
  groups: WorkloadGroup[] = ["http", "protocols"],
  /** Our server side alone, permissive, opaque port, plaintext client (the "ours-permissive" system). */
  permissive?: SystemSummary,
): TargetCheck[] {
  const checks: TargetCheck[] = [];
  if (groups.includes("http")) {
    const p99 = (s: SystemSummary) => s.addedMs[1000]?.p99;
    checks.push(
      atLeastTimes("keep-alive req/s ≥ 1.0× HAProxy", "req/s", 1.0, ours.keepAliveRps, haproxy.keepAliveRps),
      addedAtMost("added p99 @1k req/s ≤ 1.0× HAProxy and ≤ 0.3 ms", "ms", 3, p99(ours), p99(haproxy), 0.3),
      atLeastTimes("new connections/s ≥ 3× HAProxy", "conn/s", 3.0, ours.churnConnPerS, haproxy.churnConnPerS),
      atLeastTimes("bulk MB/s ≥ 0.8× HAProxy", "MB/s", 0.8, ours.bulkMBps, haproxy.bulkMBps),
      atMost("idle RSS ≤ 40 MB per proxy", "MB", 40, ours.idleRssMB),
      atMost("≤ 50 KB per open proxied connection", "KB", 50, ours.perConnectionKB),
    );
  }
  if (groups.includes("protocols")) {
    const o = ours.roundTrips;
    const h = haproxy.roundTrips;
    const tp = (id: RoundTripId) => [o?.throughput[id], h?.throughput[id]] as const;
    checks.push(
      atLeastTimes("redis-benchmark -c 1 GET/s ≥ 1.0× HAProxy", "GET/s", 1.0, ...tp("redis-get-c1")),
      atLeastTimes("pgbench select-only tx/s ≥ 1.0× HAProxy", "tx/s", 1.0, ...tp("pgbench-select")),
      atLeastTimes("pgbench TPC-B-like tx/s ≥ 1.0× HAProxy", "tx/s", 1.0, ...tp("pgbench-tpcb")),
      ...ROUND_TRIPS.filter((k) => k.addedPerRoundTrip).map((k) =>
        addedAtMost(`added round-trip time ≤ 1.0× HAProxy's: ${roundTripKind(k.id).label}`, "µs", 1, o?.addedUs[k.id], h?.addedUs[k.id])),
      ...(["mariadb", "postgres"] as const).map((p) =>
        atMost(`permissive opaque port, plaintext ${PROTOCOL_LABELS[p]} client: added setup ≤ ${PERMISSIVE_SETUP_LIMIT_MS} ms`, "ms", PERMISSIVE_SETUP_LIMIT_MS, permissive?.roundTrips?.addedSetupMs[p])),
    );
  }
  return checks;
}
