// The pure parts of the bench: round order, output parsers, round-trip summaries and the target
// verdicts (met / missed / inconclusive).
import { strict as assert } from "node:assert";
import { stat, summarizeRoundTrips, checkTargets, SystemSummary, RoundRun } from "../../bench/summary";
import { roundOrder } from "../../bench/systems";
import { parsePgbench, parseRedisCsv } from "../../bench/roundtrips";
import { parseStraceCounts, perRoundTrip } from "../../bench/strace";

const summary = (over: Partial<SystemSummary>): SystemSummary => ({ latencyMs: {}, addedMs: {}, errors: [], ...over });
const byRounds = (...values: number[]) => stat(values, values.map((_, i) => i + 1));
const verdictOf = (checks: ReturnType<typeof checkTargets>, prefix: string) => checks.find((c) => c.target.startsWith(prefix))!;

describe("bench summary", () => {
  it("rotates the order by one system per round and keeps every system in every round", () => {
    const systems = ["direct", "ours", "haproxy"];
    assert.deepEqual(roundOrder(systems, 1), ["direct", "ours", "haproxy"]);
    assert.deepEqual(roundOrder(systems, 2), ["ours", "haproxy", "direct"]);
    assert.deepEqual(roundOrder(systems, 4), ["direct", "ours", "haproxy"]);
  });

  it("reads redis-benchmark --csv and pgbench output", () => {
    assert.equal(parseRedisCsv(`"test","rps","avg_latency_ms"\n"GET","99009.90","0.007"\n`), 99009.9);
    const pg = parsePgbench("duration: 3 s\nnumber of transactions actually processed: 120889\nnumber of failed transactions: 0 (0.000%)\ninitial connection time = 7.893 ms\ntps = 40337.221831 (without initial connection time)\n");
    assert.deepEqual(pg, { opsPerSecond: 40337.221831, ops: 120889, seconds: 3, failed: 0 });
    assert.throws(() => parseRedisCsv("Could not connect to Redis"), /could not read/);
  });

  it("reads strace -c counts (with and without an errors column) and turns them into calls per round trip", () => {
    const out = [
      "% time     seconds  usecs/call     calls    errors syscall",
      "------ ----------- ----------- --------- --------- ----------------",
      " 60.00    0.006000           3      2000           write",
      " 30.00    0.003000           1      4000      2000 recvfrom",
      "  0.01    0.000001           1         3           epoll_ctl",
      "------ ----------- ----------- --------- --------- ----------------",
      "100.00    0.009001                  6003      2000 total",
    ].join("\n");
    assert.deepEqual(parseStraceCounts(out), { write: 2000, recvfrom: 4000, epoll_ctl: 3 });
    // Set-up calls (a handful over the whole pass) are not per-message costs.
    assert.deepEqual(perRoundTrip(parseStraceCounts(out), 1000), { recvfrom: 4, write: 2 });
  });

  it("turns throughput into added µs per round trip against direct in the same round", () => {
    const rt = (ops: number) => ({ workloads: { "redis-get-c1": { opsPerSecond: ops }, "pgbench-tpcb": { opsPerSecond: ops / 10 } }, setup: { redis: { samplesMs: [], medianMs: ops / 10000, failed: 0 } }, errors: [] });
    const runs: RoundRun[] = [
      { round: 1, topology: "loopback", system: "direct", roundTrips: rt(20000) },
      { round: 1, topology: "loopback", system: "haproxy", roundTrips: rt(10000) },
      { round: 2, topology: "loopback", system: "direct", roundTrips: rt(10000) },
      { round: 2, topology: "loopback", system: "haproxy", roundTrips: rt(5000) },
    ];
    const s = summarizeRoundTrips(runs, "loopback", "haproxy");
    // 1/10000 − 1/20000 s = 50 µs; 1/5000 − 1/10000 s = 100 µs.
    assert.deepEqual([s.addedUs["redis-get-c1"]!.min, s.addedUs["redis-get-c1"]!.max], [50, 100]);
    // TPC-B: 4 connections / tx/s, 7 round trips per transaction.
    assert.ok(Math.abs(s.addedUs["pgbench-tpcb"]!.byRound![1] - (4 / 1000 - 4 / 2000) / 7 * 1e6) < 1e-6);
    assert.equal(s.throughput["redis-get-c1"]!.median, 7500);
    assert.deepEqual(s.addedSetupMs.redis!.byRound, { 1: -1, 2: -0.5 });
  });

  it("calls a ratio met or missed only when every round agrees, else inconclusive", () => {
    const h = summary({ keepAliveRps: byRounds(100, 100, 100) });
    const check = (...ours: number[]) => verdictOf(checkTargets(summary({ keepAliveRps: byRounds(...ours) }), h, ["http"]), "keep-alive").verdict;
    assert.equal(check(110, 105, 120), "met");
    assert.equal(check(90, 95, 80), "missed");
    assert.equal(check(103, 97, 110), "inconclusive"); // median 1.03×, but round 2 is 0.97×
    assert.equal(check(97, 103, 90), "inconclusive"); // median 0.97×, but round 2 is 1.03×
    const one = verdictOf(checkTargets(summary({ keepAliveRps: stat([110]) }), summary({ keepAliveRps: stat([100]) }), ["http"]), "keep-alive");
    assert.deepEqual([one.verdict, one.met], ["met", true]); // one round: nothing to disagree with
  });

  it("never calls an added time ≤ 0 met", () => {
    const targets = (ours: number[], haproxy: number[]) => {
      const rt = (v: number[]) => ({ throughput: {}, addedUs: { "redis-get-c1": byRounds(...v) }, setupMs: {}, addedSetupMs: {}, errors: [] });
      return verdictOf(checkTargets(summary({ roundTrips: rt(ours) }), summary({ roundTrips: rt(haproxy) }), ["protocols"]), "added round-trip time ≤ 1.0× HAProxy's: redis");
    };
    assert.equal(targets([20, 25], [40, 45]).verdict, "met");
    assert.equal(targets([60, 65], [40, 45]).verdict, "missed");
    assert.equal(targets([-3, 2], [40, 45]).verdict, "inconclusive"); // ours ≤ 0: direct measured slower
    assert.equal(targets([20, 25], [-5, -1]).verdict, "inconclusive"); // HAProxy's ≤ 0
    assert.equal(targets([38, 50], [40, 45]).verdict, "inconclusive"); // round 2 over
    assert.equal(targets([38, 50], [40, 45]).met, undefined);
  });

  it("checks the permissive opaque port's setup time against 1 ms, and says when it was not measured", () => {
    const setup = (...ms: number[]) => summary({ roundTrips: { throughput: {}, addedUs: {}, setupMs: {}, addedSetupMs: { mariadb: byRounds(...ms) }, errors: [] } });
    const verdict = (permissive?: SystemSummary) => verdictOf(checkTargets(summary({}), summary({}), ["protocols"], permissive), "permissive opaque port, plaintext MariaDB").verdict;
    assert.equal(verdict(setup(0.4, 0.5)), "met");
    assert.equal(verdict(setup(201, 202)), "missed");
    assert.equal(verdict(setup(0.4, 1.2)), "inconclusive");
    assert.equal(verdict(undefined), "not measured");
  });

  it("still misses the p99 cap when ours is over 0.3 ms in every round, whatever HAProxy did", () => {
    const p99 = (...v: number[]) => summary({ addedMs: { 1000: { p99: byRounds(...v) } } });
    const c = verdictOf(checkTargets(p99(0.5, 0.6), p99(-0.1, -0.2), ["http"]), "added p99");
    assert.equal(c.verdict, "missed");
    assert.equal(verdictOf(checkTargets(p99(0.1, 0.2), p99(-0.1, -0.2), ["http"]), "added p99").verdict, "inconclusive");
    assert.equal(verdictOf(checkTargets(p99(0.1, 0.12), p99(0.2, 0.25), ["http"]), "added p99").verdict, "met");
  });

  it("straddling an absolute limit is inconclusive too", () => {
    const rss = (...v: number[]) => verdictOf(checkTargets(summary({ idleRssMB: byRounds(...v) }), summary({}), ["http"]), "idle RSS").verdict;
    assert.equal(rss(30, 35), "met");
    assert.equal(rss(38, 41, 39), "inconclusive");
    assert.equal(rss(45, 50), "missed");
  });
});
