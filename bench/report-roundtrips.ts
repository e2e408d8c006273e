// The report's "Real protocols (round trips)" section: per topology, each workload's throughput,
// the time each system adds per round trip over direct, connection setup times, and every
// system's ratio to the HAProxy pair.
import { SystemSummary, Stat } from "./summary";
import { SystemName, LABELS, primaryOurs } from "./systems";
import { PROTOCOLS, PROTOCOL_LABELS, ROUND_TRIPS, RoundTripDurations } from "./roundtrip-kinds";

export const num = (x: number | undefined, digits = 2): string => {
  if (x === undefined || !Number.isFinite(x)) return "–";
  const a = Math.abs(x);
  if (a >= 1000) return Math.round(x).toLocaleString("en-US");
  if (a >= 100) return x.toFixed(0);
  if (a >= 10) return x.toFixed(1);
  return x.toFixed(digits);
};
export const cell = (s: Stat | undefined, digits = 2) =>
  s ? (s.n > 1 ? `${num(s.median, digits)} (${num(s.min, digits)}–${num(s.max, digits)})` : num(s.median, digits)) : "–";
/** a / b of the medians; "–" when b's is ≤ 0 or a's is < 0 (an added time within noise of direct). */
export const ratio = (a?: Stat, b?: Stat) => (a && b && b.median > 0 && a.median >= 0 ? `${(a.median / b.median).toFixed(2)}×` : "–");

interface Row {
  label: string;
  get: (s: SystemSummary) => Stat | undefined;
  digits: number;
  /** Added over direct: direct's cell is the reference. */
  added?: boolean;
}

function rows(): Row[] {
  const out: Row[] = [];
  for (const k of ROUND_TRIPS) {
    out.push({ label: `${k.label}, ${k.unit}`, get: (s) => s.roundTrips?.throughput[k.id], digits: 0 });
    if (k.addedPerRoundTrip) {
      const per = k.roundTripsPerOp > 1 ? ` (${k.roundTripsPerOp} per transaction)` : "";
      out.push({ label: `↳ added µs per round trip${per}`, get: (s) => s.roundTrips?.addedUs[k.id], digits: 1, added: true });
    }
  }
  for (const p of PROTOCOLS) {
    out.push({ label: `${PROTOCOL_LABELS[p]} connection setup, ms (connect → first server byte)`, get: (s) => s.roundTrips?.setupMs[p], digits: 3 });
    out.push({ label: `↳ added setup ms`, get: (s) => s.roundTrips?.addedSetupMs[p], digits: 3, added: true });
  }
  return out;
}

export function renderRoundTrips(topology: string, sums: Record<string, SystemSummary>, allSystems: SystemName[], d?: RoundTripDurations): string[] {
  const systems = allSystems.filter((s) => sums[s]?.roundTrips);
  if (!systems.length) return [];
  const mine = primaryOurs(allSystems);
  const out: string[] = [`## Real protocols (round trips), ${topology}`, ``];
  if (d) {
    out.push(
      `redis-benchmark \`-t get -n ${d.redisRequests.toLocaleString("en-US")}\`; pgbench \`-j 1 -T ${d.pgbenchSeconds}\` on a scale-1 database (tps without the initial connection time); ${d.mariadbInserts.toLocaleString("en-US")} autocommit INSERTs through one \`mariadb\` client; setup: median of ${d.setupConnections} fresh connections per round. Added µs per round trip = connections / throughput, minus direct's in the same round.`,
      ``,
    );
  }
  out.push(`| workload | ${systems.map((s) => LABELS[s]).join(" | ")} | ${mine ? "ours / HAProxy" : ""} |`, `|---|${systems.map(() => "---").join("|")}|---|`);
  for (const row of rows()) {
    const values = systems.map((s) => (s === "direct" && row.added ? "(reference)" : cell(row.get(sums[s]), row.digits)));
    if (values.every((v) => v === "–" || v === "(reference)")) continue;
    const rel = mine && sums[mine] && sums.haproxy ? ratio(row.get(sums[mine]), row.get(sums.haproxy)) : "";
    out.push(`| ${row.label} | ${values.join(" | ")} | ${rel} |`);
  }
  out.push(``);
  if (sums.haproxy?.roundTrips) {
    const others = systems.filter((s) => s !== "haproxy");
    out.push(`Throughput ratio to the HAProxy pair (medians; higher is better):`, ``);
    out.push(`| workload | ${others.map((s) => LABELS[s]).join(" | ")} |`, `|---|${others.map(() => "---").join("|")}|`);
    for (const k of ROUND_TRIPS) {
      const h = sums.haproxy.roundTrips.throughput[k.id];
      if (!h) continue;
      out.push(`| ${k.label} | ${others.map((s) => ratio(sums[s].roundTrips?.throughput[k.id], h)).join(" | ")} |`);
    }
    out.push(``);
  }
  const errors = systems.flatMap((s) => sums[s].roundTrips!.errors.map((e) => `- ${LABELS[s]} ${e}`));
  if (errors.length) out.push(`Failures:`, ``, ...errors, ``);
  return out;
}
