// The open-loop load generator, run as its own process (in the client namespace):
//   node openloop.js rate '{"host":..,"port":..,"rate":1000,"durationMs":5000,"warmupMs":1000,"connections":16}'
//     sends HTTP/1.1 keep-alive GETs at a fixed rate over a fixed set of connections and measures
//     each response from the request's INTENDED send time, so a stall in the system under test
//     shows up as latency for every request scheduled during it (no coordinated omission).
//     A request whose time has come while all connections are busy waits for the next free one
//     (and that wait counts). Prints one JSON result line.
//   node openloop.js hold '{"host":..,"port":..,"connections":1000}'
//     opens that many keep-alive connections, completes one request on each, prints a JSON line,
//     then holds them open until stdin closes (the memory workload).
// The send clock is a worker thread sleeping on Atomics.wait (sub-millisecond wake-ups, no busy
// loop); setTimeout alone has 1 ms granularity, too coarse for a 0.3 ms target.
import * as net from "node:net";
import { Worker } from "node:worker_threads";

interface Target {
  host: string;
  port: number;
  path?: string;
}
interface RateArgs extends Target {
  rate: number;
  durationMs: number;
  warmupMs: number;
  connections: number;
}

const nowUs = () => Number(process.hrtime.bigint() / 1000n);

/** One keep-alive HTTP/1.1 connection that knows when its current response is complete. */
class Conn {
  readonly socket: net.Socket;
  private buffered = 0;
  private expected = -1;
  private head = "";
  onResponse: () => void = () => undefined;
  onFail: (err: Error) => void = () => undefined;

  constructor(t: Target, private readonly request: Buffer) {
    this.socket = net.connect({ host: t.host, port: t.port, noDelay: true });
    this.socket.on("data", (chunk: Buffer) => this.consume(chunk));
    this.socket.on("error", (err) => this.onFail(err));
    this.socket.on("close", () => this.onFail(new Error("connection closed")));
  }

  send(): void {
    this.buffered = 0;
    this.expected = -1;
    this.head = "";
    this.socket.write(this.request);
  }

  private consume(chunk: Buffer): void {
    this.buffered += chunk.length;
    if (this.expected < 0) {
      this.head += chunk.toString("latin1", 0, Math.min(chunk.length, 1024));
      const end = this.head.indexOf("\r\n\r\n");
      if (end < 0) return;
      const length = /\r\ncontent-length:\s*(\d+)/i.exec(this.head.slice(0, end));
      if (!length) return this.onFail(new Error("response without content-length"));
      this.expected = end + 4 + Number(length[1]);
    }
    if (this.buffered >= this.expected) {
      this.expected = -1;
      this.onResponse();
    }
  }
}

function connectAll(t: Target, n: number): Promise<Conn[]> {
  const request = Buffer.from(`GET ${t.path ?? "/"} HTTP/1.1\r\nHost: bench\r\n\r\n`);
  return Promise.all(
    Array.from({ length: n }, () => {
      const c = new Conn(t, request);
      return new Promise<Conn>((resolve, reject) => {
        c.socket.once("connect", () => resolve(c));
        c.socket.once("error", reject);
      });
    }),
  );
}

function percentile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

const METRONOME = `
const { workerData, parentPort } = require("node:worker_threads");
const { startUs, intervalUs, count } = workerData;
const cell = new Int32Array(new SharedArrayBuffer(4));
const nowUs = () => Number(process.hrtime.bigint() / 1000n);
let i = 0;
while (i < count) {
  const wait = startUs + i * intervalUs - nowUs();
  if (wait > 0) Atomics.wait(cell, 0, 0, wait / 1000);
  // Post every request that is due (one message per tick, not per request).
  const due = Math.min(count, Math.floor((nowUs() - startUs) / intervalUs) + 1);
  if (due > i) { parentPort.postMessage(due); i = due; }
}
`;

async function rate(a: RateArgs): Promise<void> {
  const conns = await connectAll(a, a.connections);
  const intervalUs = 1e6 / a.rate;
  const count = Math.floor((a.durationMs / 1000) * a.rate);
  const startUs = nowUs() + 20_000;
  const warmupEndUs = startUs + a.warmupMs * 1000;
  const latencies = new Float64Array(count);
  let recorded = 0;
  let completed = 0;
  let errors = 0;
  let next = 0; // next request index to send
  let due = 0; // requests whose intended time has passed
  const free: Conn[] = [...conns];
  let alive = conns.length;
  const inFlight = new Map<Conn, number>(); // conn → intended send time (µs)
  const lags: number[] = [];

  const pump = () => {
    while (next < due && free.length) {
      const c = free.pop()!;
      const intended = startUs + next * intervalUs;
      inFlight.set(c, intended);
      // How late the send is: queueing for a free connection plus the generator's own error.
      if (intended >= warmupEndUs) lags.push(nowUs() - intended);
      c.send();
      next++;
    }
  };
  let finish: () => void = () => undefined;
  const done = new Promise<void>((r) => (finish = r));
  for (const c of conns) {
    c.onResponse = () => {
      const intended = inFlight.get(c)!;
      inFlight.delete(c);
      completed++;
      if (intended >= warmupEndUs) latencies[recorded++] = nowUs() - intended;
      free.push(c);
      pump();
      if (completed + errors === count) finish();
    };
    c.onFail = () => {
      if (inFlight.delete(c)) errors++;
      const i = free.indexOf(c);
      if (i >= 0) free.splice(i, 1);
      c.onFail = () => undefined;
      // With every connection gone nothing more can be sent: report now instead of at the deadline.
      if (--alive === 0 || completed + errors === count) finish();
    };
  }
  const worker = new Worker(METRONOME, { eval: true, workerData: { startUs, intervalUs, count } });
  worker.on("message", (d: number) => {
    due = d;
    pump();
  });
  const deadline = setTimeout(finish, a.durationMs + 5_000);
  await done;
  clearTimeout(deadline);
  await worker.terminate();
  const sorted = latencies.slice(0, recorded).sort();
  const lagSorted = Float64Array.from(lags).sort();
  const ms = (us: number) => Math.round(us) / 1000;
  const result = {
    rate: a.rate,
    scheduled: count,
    completed,
    errors,
    unfinished: count - completed - errors,
    samples: recorded,
    latencyMs: {
      p50: ms(percentile(sorted, 0.5)),
      p90: ms(percentile(sorted, 0.9)),
      p99: ms(percentile(sorted, 0.99)),
      p999: ms(percentile(sorted, 0.999)),
      max: ms(sorted[sorted.length - 1] ?? NaN),
    },
    sendLagMs: { p50: ms(percentile(lagSorted, 0.5)), p99: ms(percentile(lagSorted, 0.99)) },
  };
  process.stdout.write(JSON.stringify(result) + "\n");
  for (const c of conns) c.socket.destroy();
}

async function hold(a: Target & { connections: number }): Promise<void> {
  const conns: Conn[] = [];
  let failed = 0;
  const batch = 100;
  for (let i = 0; i < a.connections; i += batch) {
    const opened = await connectAll(a, Math.min(batch, a.connections - i)).catch(() => [] as Conn[]);
    failed += Math.min(batch, a.connections - i) - opened.length;
    await Promise.all(
      opened.map(
        (c) =>
          new Promise<void>((resolve) => {
            c.onResponse = () => {
              conns.push(c);
              resolve();
            };
            c.onFail = () => {
              failed++;
              resolve();
            };
            c.send();
          }),
      ),
    );
  }
  for (const c of conns) c.onFail = () => undefined;
  process.stdout.write(JSON.stringify({ open: conns.length, failed }) + "\n");
  process.stdin.resume();
  process.stdin.on("end", () => {
    for (const c of conns) c.socket.destroy();
    process.exit(0);
  });
}

const [mode, json] = process.argv.slice(2);
const args = JSON.parse(json ?? "{}");
(mode === "rate" ? rate(args) : mode === "hold" ? hold(args) : Promise.reject(new Error(`unknown mode ${mode}`))).catch(
  (err: Error) => {
    process.stderr.write(`openloop: ${err.message}\n`);
    process.exit(1);
  },
);
