// The real-protocol clients, run in the client namespace against a system's client-side listener:
// redis-benchmark GET with 1 and 50 connections, pgbench select-only and TPC-B-like with 4,
// single-row INSERTs over one `mariadb` client connection, and the connection setup time.
import * as path from "node:path";
import { run, start, stop, lastLines } from "./processes";
import { ProtocolName, RoundTripDurations, RoundTripId, RoundTripResult, SetupResult } from "./roundtrip-kinds";

export interface Target {
  host: string;
  port: number;
  netns?: string;
}

const SETUPTIME = path.join(__dirname, "setuptime.js");

/** `redis-benchmark --csv` prints a header and one line per test: "GET","12345.68",... */
export function parseRedisCsv(out: string): number {
  const line = out.split("\n").find((l) => /^"GET"/.test(l));
  const rps = line ? Number(line.split(",")[1]?.replace(/"/g, "")) : NaN;
  if (!Number.isFinite(rps) || rps <= 0) throw new Error(`could not read redis-benchmark output: ${out.trim().slice(-300)}`);
  return rps;
}

/** pgbench's summary: `tps = 1234.5 (without initial connection time)` (PostgreSQL 14+) or
 * `(excluding connections establishing)` (older); the failed transactions line is 15+. */
export function parsePgbench(out: string): RoundTripResult {
  const tps = /^tps = ([\d.]+) \((?:without initial connection time|excluding connections establishing)\)/m.exec(out)
    ?? /^tps = ([\d.]+)/m.exec(out);
  const processed = /number of transactions actually processed: (\d+)/.exec(out);
  if (!tps) throw new Error(`could not read pgbench output: ${out.trim().slice(-300)}`);
  return {
    opsPerSecond: Number(tps[1]),
    ops: processed ? Number(processed[1]) : undefined,
    seconds: Number(/^duration: (\d+) s/m.exec(out)?.[1] ?? NaN),
    failed: Number(/number of failed transactions: (\d+)/.exec(out)?.[1] ?? 0),
  };
}

export async function redisGet(t: Target, connections: number, requests: number): Promise<RoundTripResult> {
  const out = await run("redis-benchmark", "redis-benchmark", [
    "-h", t.host, "-p", String(t.port), "-c", String(connections), "-n", String(requests), "-t", "get", "-q", "--csv",
  ], { netns: t.netns, timeoutMs: 300_000 });
  const opsPerSecond = parseRedisCsv(out);
  return { opsPerSecond, ops: requests, seconds: requests / opsPerSecond };
}

export async function pgbench(t: Target, script: "select" | "tpcb", seconds: number): Promise<RoundTripResult> {
  const out = await run("pgbench", "pgbench", [
    "-h", t.host, "-p", String(t.port), "-U", "postgres", "-c", "4", "-j", "1", "-T", String(seconds), ...(script === "select" ? ["-S"] : []), "postgres",
  ], { netns: t.netns, timeoutMs: (seconds + 120) * 1000 });
  const r = parsePgbench(out);
  if (r.failed) throw new Error(`pgbench: ${r.failed} failed transactions`);
  return r;
}

/** N autocommit single-row INSERTs, one statement per line, each its own round trip (the client
 * sends a statement only after the previous result); timed between two marker SELECTs that return
 * the server's clock in microseconds, so neither the client's start-up and login (the setup time
 * measures those) nor when this process happens to read the client's output counts. */
export async function mariadbInserts(t: Target, n: number, tag: string): Promise<RoundTripResult> {
  const p = start("mariadb client", "mariadb", [
    "--no-defaults", "--host", t.host, "--port", String(t.port), "-u", "bench", "--unbuffered", "--batch", "--skip-column-names", "bench",
  ], { netns: t.netns });
  const lines = ["SELECT 'bench-go', UNIX_TIMESTAMP(NOW(6));"];
  for (let i = 0; i < n; i++) lines.push(`INSERT INTO t (v) VALUES ('${tag}-${i}');`);
  lines.push("SELECT 'bench-end', UNIX_TIMESTAMP(NOW(6));", "");
  let out = "";
  p.child.stdout!.on("data", (c: Buffer) => (out += c.toString()));
  p.child.stdin!.on("error", () => undefined); // a client that died is reported below
  p.child.stdin!.end(lines.join("\n"));
  const timer = setTimeout(() => void stop(p), 300_000);
  const code = await p.exited;
  clearTimeout(timer);
  const clock = (marker: string) => Number(new RegExp(`^${marker}\\t([\\d.]+)$`, "m").exec(out)?.[1]);
  const seconds = clock("bench-end") - clock("bench-go");
  if (code !== 0 || !(seconds > 0)) throw new Error(`mariadb client failed (${code}): ${lastLines(p)} ${out.slice(-200)}`);
  return { opsPerSecond: n / seconds, ops: n, seconds };
}

export async function setupTime(t: Target, protocol: ProtocolName, connections: number): Promise<SetupResult> {
  const out = await run("setuptime", process.execPath, [SETUPTIME, JSON.stringify({ host: t.host, port: t.port, protocol, connections })], {
    netns: t.netns,
    timeoutMs: connections * 6000 + 30_000,
  });
  const r = JSON.parse(out.trim().split("\n").pop()!) as { samplesMs: number[]; failed: number };
  if (!r.samplesMs.length) throw new Error(`${protocol} setup time: all ${r.failed} connections failed`);
  const sorted = [...r.samplesMs].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  const medianMs = sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  return { samplesMs: r.samplesMs, medianMs, failed: r.failed };
}

/** The workloads of one protocol, in order, against one target. */
export function workloadsOf(protocol: ProtocolName, t: Target, d: RoundTripDurations, tag: string): [RoundTripId, () => Promise<RoundTripResult>][] {
  switch (protocol) {
    case "redis":
      return [
        ["redis-get-c1", () => redisGet(t, 1, d.redisRequests)],
        ["redis-get-c50", () => redisGet(t, 50, d.redisRequests)],
      ];
    case "postgres":
      return [
        ["pgbench-select", () => pgbench(t, "select", d.pgbenchSeconds)],
        ["pgbench-tpcb", () => pgbench(t, "tpcb", d.pgbenchSeconds)],
      ];
    case "mariadb":
      return [["mariadb-insert", () => mariadbInserts(t, d.mariadbInserts, tag)]];
  }
}

/** An uncounted pass of every workload straight at the servers, right after they start: the first
 * round's first system would otherwise measure the servers' own warm-up (and their start-up's
 * background work) as its own. */
export async function warmUp(protocol: ProtocolName, t: Target): Promise<void> {
  const d: RoundTripDurations = { redisRequests: 2000, pgbenchSeconds: 1, mariadbInserts: 200, setupConnections: 3 };
  await setupTime(t, protocol, d.setupConnections);
  for (const [, load] of workloadsOf(protocol, t, d, "warm-up")) await load();
}
