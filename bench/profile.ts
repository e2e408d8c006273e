// Where our proxy spends its time under load: both sides run with `node --cpu-prof`, take
// keep-alive load and then new-connection load, exit on SIGTERM (which writes the profile), and
// the profiles are reduced to the top functions by self time.
import * as fs from "node:fs";
import * as path from "node:path";
import { freePorts, stop } from "./processes";
import { createTopology } from "./topology";
import { BenchPki } from "./pki";
import { startBackend, BULK_PATH } from "./backend";
import { startSystem } from "./systems";
import { OursOptions } from "./ours";
import { wrk } from "./wrk";

export interface ProfileEntry {
  function: string;
  location: string;
  selfPercent: number;
}

export interface AreaEntry {
  area: string;
  selfPercent: number;
}

export interface LoadProfile {
  load: string;
  totalMs: number;
  top: ProfileEntry[];
  byArea: AreaEntry[];
}

export interface ProfileSummary {
  load: string;
  sides: { side: "client" | "server"; file: string; loads: LoadProfile[] }[];
}

interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[];
  /** Microseconds on the monotonic clock, the same clock as process.hrtime. */
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** Monotonic clock in microseconds, comparable with a CPU profile's timestamps. */
export const monotonicUs = () => Number(process.hrtime.bigint() / 1000n);

/** Self time per function (all nodes of the same function summed), idle time left out; only
 * samples inside `window` (monotonic µs) when given, so start-up does not drown the load. */
export function topFunctions(profile: CpuProfile, n = 15, window?: [number, number]): { totalMs: number; top: ProfileEntry[]; byArea: AreaEntry[] } {
  const byId = new Map(profile.nodes.map((node) => [node.id, node.callFrame]));
  const self = new Map<string, { fn: string; loc: string; us: number }>();
  let total = 0;
  let t = profile.startTime;
  profile.samples.forEach((id, i) => {
    const f = byId.get(id);
    const dt = profile.timeDeltas[i] ?? 0;
    t += dt;
    if (window && (t < window[0] || t > window[1])) return;
    if (!f || f.functionName === "(idle)") return;
    const loc = f.url ? `${f.url.replace(/^file:\/\//, "").replace(/^.*?\/(dist|node_modules)\//, "$1/")}:${f.lineNumber + 1}` : "";
    const key = `${f.functionName}@${loc}`;
    const e = self.get(key) ?? { fn: f.functionName || "(anonymous)", loc, us: 0 };
    e.us += dt;
    self.set(key, e);
    total += dt;
  });
  // Self time by area (a package, a folder of ours, Node internals, GC): which layer is expensive.
  const areas = new Map<string, number>();
  for (const e of self.values()) {
    const area = areaOf(e.fn, e.loc);
    areas.set(area, (areas.get(area) ?? 0) + e.us);
  }
  const byArea = [...areas.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 8)
    .map(([area, us]) => ({ area, selfPercent: Math.round((us / total) * 1000) / 10 }));
  const top = [...self.values()]
    .sort((a, b) => b.us - a.us)
    .slice(0, n)
    .map((e) => ({ function: e.fn, location: e.loc, selfPercent: Math.round((e.us / total) * 1000) / 10 }));
  return { totalMs: Math.round(total / 1000), top, byArea };
}

function areaOf(fn: string, loc: string): string {
  if (!loc) return fn.startsWith("(") ? fn : "(native)";
  if (loc.startsWith("node:")) return "node internals";
  const m = /^(node_modules\/(?:@[^/]+\/)?[^/]+|dist\/[^/]+(?:\/[^/]+)?)\//.exec(loc);
  return m ? m[1] : "other";
}

export async function profileOurs(o: { pki: BenchPki; rawDir: string; ours: OursOptions; seconds: number; progress(l: string): void }): Promise<ProfileSummary> {
  const topo = createTopology("loopback");
  const dir = path.join(o.rawDir, "profile");
  const profDir = (side: string) => path.join(dir, `cpuprofile-${side}`);
  try {
    const [backendPort, clientPort, serverPort, a1, a2] = await freePorts(5);
    const backend = await startBackend(path.join(dir, "backend"), backendPort, topo.serverAddr, topo.serverNs);
    const sys = await startSystem(
      "ours",
      { pki: o.pki, dir, clientNs: topo.clientNs, serverNs: topo.serverNs, clientAddr: topo.clientAddr, clientPort, serverAddr: topo.serverAddr, serverPort, backendPort, adminPorts: [a1, a2] },
      { ...o.ours, nodeFlags: [...o.ours.nodeFlags, "--cpu-prof"], profileDirFor: profDir },
    );
    const url = `http://${sys.host}:${sys.port}/`;
    // Each load in its own time window, so the report can say what each one costs.
    const loads: { name: string; run: () => Promise<unknown> }[] = [
      { name: "keep-alive (wrk -c32)", run: () => wrk({ url, connections: 32, seconds: o.seconds, netns: topo.clientNs }) },
      { name: "new connection per request (wrk -c32, Connection: close)", run: () => wrk({ url, connections: 32, seconds: o.seconds, closeEachRequest: true, netns: topo.clientNs }) },
      { name: "bulk (wrk -c1, 64 MB downloads)", run: () => wrk({ url: `http://${sys.host}:${sys.port}${BULK_PATH}`, connections: 1, seconds: o.seconds, netns: topo.clientNs }) },
    ];
    const windows: [number, number][] = [];
    for (const load of loads) {
      const from = monotonicUs();
      await load.run();
      windows.push([from, monotonicUs()]);
    }
    // A clean exit writes the profile; give it time.
    for (const p of sys.proxies) await stop(p.proc, 20_000); // client side first, like a pod going away
    await stop(backend.proc);
    const sides = sys.proxies.map(({ side }) => {
      const files = fs.existsSync(profDir(side)) ? fs.readdirSync(profDir(side)).filter((f) => f.endsWith(".cpuprofile")) : [];
      if (!files.length) throw new Error(`no CPU profile written by the ${side} side (did it exit cleanly on SIGTERM?)`);
      const file = path.join(profDir(side), files[0]);
      const profile = JSON.parse(fs.readFileSync(file, "utf8")) as CpuProfile;
      return {
        side,
        file,
        loads: loads.map((load, i) => ({ load: load.name, ...topFunctions(profile, 10, windows[i]) })),
      };
    });
    return { load: `${o.seconds} s each, one after the other, loopback; only samples taken while a load ran count`, sides };
  } finally {
    topo.teardown();
  }
}
