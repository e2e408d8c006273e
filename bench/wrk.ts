// Closed-loop load with Debian's wrk: keep-alive saturation, single-stream bulk download, and a
// new connection per request (`Connection: close`).
import { run } from "./processes";

export interface WrkResult {
  requests: number;
  seconds: number;
  bytes: number;
  requestsPerSecond: number;
  socketErrors: number;
  non2xx: number;
}

const UNITS: Record<string, number> = { B: 1, KB: 1024, MB: 1024 ** 2, GB: 1024 ** 3, TB: 1024 ** 4 };

export function parseWrk(out: string): WrkResult {
  const totals = /(\d+) requests in ([\d.]+)(us|ms|s|m), ([\d.]+)([KMGT]?B) read/.exec(out);
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(out);
  if (!totals || !rps) throw new Error(`could not read wrk output: ${out.trim().slice(-300)}`);
  const scale = { us: 1e-6, ms: 1e-3, s: 1, m: 60 }[totals[3] as "us" | "ms" | "s" | "m"];
  const errors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  return {
    requests: Number(totals[1]),
    seconds: Number(totals[2]) * scale,
    bytes: Number(totals[4]) * UNITS[totals[5]],
    requestsPerSecond: Number(rps[1]),
    socketErrors: errors ? errors.slice(1).reduce((s, n) => s + Number(n), 0) : 0,
    non2xx: Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0),
  };
}

export interface WrkOptions {
  url: string;
  connections: number;
  seconds: number;
  closeEachRequest?: boolean;
  netns?: string;
}

export async function wrk(o: WrkOptions): Promise<WrkResult> {
  const args = ["-t1", `-c${o.connections}`, `-d${Math.max(1, Math.round(o.seconds))}s`, "--timeout", "5s"];
  if (o.closeEachRequest) args.push("-H", "Connection: close");
  args.push(o.url);
  const out = await run("wrk", "wrk", args, { netns: o.netns, timeoutMs: (o.seconds + 30) * 1000 });
  return parseWrk(out);
}
