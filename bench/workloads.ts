// The five workloads, run against one started system: fixed-rate latency (open loop), keep-alive
// saturation, new connection per request, single-stream bulk, and memory with idle connections.
// CPU and memory are read from /proc for both proxies of the pair around each workload.
import * as path from "node:path";
import { run, start, stop, lastLines, sleep } from "./processes";
import { cpuMs, memory } from "./procfs";
import { wrk, WrkResult } from "./wrk";
import { BULK_PATH } from "./backend";
import { RunningSystem } from "./systems";

export interface Durations {
  rates: number[];
  latencySeconds: number;
  latencyWarmupSeconds: number;
  latencyConnections: number;
  warmupLoadSeconds: number;
  saturationSeconds: number;
  saturationConnections: number;
  churnSeconds: number;
  churnConnections: number;
  bulkSeconds: number;
  idleConnections: number;
}

export interface LatencyResult {
  rate: number;
  scheduled: number;
  completed: number;
  errors: number;
  unfinished: number;
  samples: number;
  latencyMs: { p50: number; p90: number; p99: number; p999: number; max: number };
  sendLagMs: { p50: number; p99: number };
}

export interface Cpu {
  client: number;
  server: number;
  total: number;
}

export interface LoadResult extends WrkResult {
  /** Proxy CPU milliseconds spent during the run, per side. */
  cpuMs: Cpu;
}

export interface MemoryResult {
  requested: number;
  open: number;
  failed: number;
  beforeKB: { client: number; server: number };
  afterKB: { client: number; server: number };
  perConnectionKB: { client: number; server: number };
}

export interface SystemMeasurements {
  idleRssKB?: { client: number; server: number };
  latency: LatencyResult[];
  saturation?: LoadResult;
  churn?: LoadResult;
  bulk?: LoadResult;
  memory?: MemoryResult;
}

const OPENLOOP = path.join(__dirname, "openloop.js");

function cpuOf(sys: RunningSystem): Cpu {
  const side = (s: "client" | "server") => {
    const p = sys.proxies.find((x) => x.side === s);
    return p ? cpuMs(p.proc.pid) : 0;
  };
  const client = side("client");
  const server = side("server");
  return { client, server, total: client + server };
}

function rssOf(sys: RunningSystem): { client: number; server: number } {
  const side = (s: "client" | "server") => memory(sys.proxies.find((x) => x.side === s)!.proc.pid).rssKB;
  return { client: side("client"), server: side("server") };
}

async function settledRss(sys: RunningSystem): Promise<{ client: number; server: number }> {
  const samples: { client: number; server: number }[] = [];
  for (let i = 0; i < 5; i++) {
    samples.push(rssOf(sys));
    await sleep(150);
  }
  const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  return { client: median(samples.map((x) => x.client)), server: median(samples.map((x) => x.server)) };
}

async function withCpu(sys: RunningSystem, load: () => Promise<WrkResult>): Promise<LoadResult> {
  const before = cpuOf(sys);
  const result = await load();
  const after = cpuOf(sys);
  return {
    ...result,
    cpuMs: { client: after.client - before.client, server: after.server - before.server, total: after.total - before.total },
  };
}

export interface MeasureContext {
  sys: RunningSystem;
  clientNs?: string;
  d: Durations;
  progress(line: string): void;
}

export async function measure({ sys, clientNs, d, progress }: MeasureContext): Promise<SystemMeasurements> {
  const url = (p: string) => `http://${sys.host}:${sys.port}${p}`;
  const m: SystemMeasurements = { latency: [] };
  const proxied = sys.proxies.length > 0;
  if (proxied) m.idleRssKB = rssOf(sys);
  // Before any load: afterwards a garbage-collected proxy's heap has grown by tens of MB and
  // shrinks at its own pace, which buries 1,000 connections' worth of memory in noise.
  if (proxied && d.idleConnections > 0) {
    m.memory = await idleConnections(sys, clientNs, d.idleConnections);
    progress(`memory ${m.memory.open} idle connections: +${m.memory.perConnectionKB.client.toFixed(1)} / +${m.memory.perConnectionKB.server.toFixed(1)} KB per connection (client / server side)`);
  }

  if (d.warmupLoadSeconds > 0) {
    await wrk({ url: url("/"), connections: d.latencyConnections, seconds: d.warmupLoadSeconds, netns: clientNs });
  }
  for (const rate of d.rates) {
    const args = {
      host: sys.host,
      port: sys.port,
      rate,
      durationMs: (d.latencySeconds + d.latencyWarmupSeconds) * 1000,
      warmupMs: d.latencyWarmupSeconds * 1000,
      connections: d.latencyConnections,
    };
    const out = await run("openloop", process.execPath, [OPENLOOP, "rate", JSON.stringify(args)], {
      netns: clientNs,
      timeoutMs: args.durationMs + 30_000,
    });
    const r = JSON.parse(out.trim().split("\n").pop()!) as LatencyResult;
    m.latency.push(r);
    progress(`latency @${rate}/s p50 ${r.latencyMs.p50} ms, p99 ${r.latencyMs.p99} ms${r.errors + r.unfinished ? `, ${r.errors + r.unfinished} failed` : ""}`);
  }

  m.saturation = await withCpu(sys, () =>
    wrk({ url: url("/"), connections: d.saturationConnections, seconds: d.saturationSeconds, netns: clientNs }),
  );
  progress(`keep-alive ${Math.round(m.saturation.requestsPerSecond)} req/s`);

  m.churn = await withCpu(sys, () =>
    wrk({ url: url("/"), connections: d.churnConnections, seconds: d.churnSeconds, closeEachRequest: true, netns: clientNs }),
  );
  progress(`new connection per request ${Math.round(m.churn.requestsPerSecond)} conn/s`);

  m.bulk = await withCpu(sys, () => wrk({ url: url(BULK_PATH), connections: 1, seconds: d.bulkSeconds, netns: clientNs }));
  progress(`bulk ${Math.round(m.bulk.bytes / m.bulk.seconds / 1e6)} MB/s`);

  return m;
}

async function idleConnections(sys: RunningSystem, clientNs: string | undefined, n: number): Promise<MemoryResult> {
  // RSS of a garbage-collected runtime moves by megabytes on its own: let the previous workload's
  // garbage settle, and read several samples (median) before and after.
  await sleep(1000);
  const beforeKB = await settledRss(sys);
  const holder = start("openloop hold", process.execPath, [OPENLOOP, "hold", JSON.stringify({ host: sys.host, port: sys.port, connections: n })], {
    netns: clientNs,
  });
  try {
    const line = await new Promise<string>((resolve, reject) => {
      let out = "";
      holder.child.stdout!.on("data", (c: Buffer) => {
        out += c.toString();
        if (out.includes("\n")) resolve(out.split("\n")[0]);
      });
      holder.exited.then(() => reject(new Error(`idle-connection holder exited: ${lastLines(holder)}`)));
      setTimeout(() => reject(new Error("idle-connection holder timed out")), 60_000);
    });
    const held = JSON.parse(line) as { open: number; failed: number };
    await sleep(500);
    const afterKB = await settledRss(sys);
    const per = (s: "client" | "server") => (held.open ? (afterKB[s] - beforeKB[s]) / held.open : NaN);
    return { requested: n, open: held.open, failed: held.failed, beforeKB, afterKB, perConnectionKB: { client: per("client"), server: per("server") } };
  } finally {
    holder.child.stdin!.end();
    await stop(holder);
  }
}
