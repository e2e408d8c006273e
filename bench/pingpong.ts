// `npm run bench:pingpong`: where one small round trip's time goes, per system. A client sends
// `--size` bytes over one connection and waits for them to come back, `--round-trips` times in a
// row, through each system to an echo server (loopback topology). Per round and system: µs per
// round trip, CPU µs per round trip of each proxy process (/proc utime+stime), and with --strace
// the syscalls per round trip of each proxy (`strace -c -f -p`, a shorter separate pass: strace
// slows what it traces). The per-message profile of bench/README "Round trips".
import * as fs from "node:fs";
import * as path from "node:path";
import { spawnSync } from "node:child_process";
import { Command } from "commander";
import { list, UsageError } from "./cli";
import { freePorts, killAllNow, run, start, stop, stopAll, sleep } from "./processes";
import { createTopology, deleteAllNamespaces } from "./topology";
import { writePki } from "./pki";
import { startSystem, ALL_SYSTEMS, SystemName, LABELS, roundOrder, RunningSystem } from "./systems";
import { OursOptions, OursPlan } from "./ours";
import { cpuMs } from "./procfs";
import { parseStraceCounts, perRoundTrip } from "./strace";
import { stat } from "./summary";

const median = (xs: number[]) => stat(xs)?.median ?? NaN;

const PEER = path.join(__dirname, "pingpong-peer.js");
const DEFAULT = "direct,ours-h2,ours-tcp,node-relay,haproxy,socat";

interface Sample {
  round: number;
  system: SystemName;
  usPerRoundTrip: number;
  /** CPU µs per round trip, per proxy side. */
  cpuUs: Partial<Record<"client" | "server", number>>;
  syscalls?: Partial<Record<"client" | "server", Record<string, number>>>;
  error?: string;
}

async function pingpong(sys: RunningSystem, netns: string | undefined, n: number, size: number): Promise<number> {
  const out = await run("pingpong client", process.execPath, [PEER, "client", sys.host, String(sys.port), String(n), String(size)], { netns, timeoutMs: 300_000 });
  return (JSON.parse(out.trim().split("\n").pop()!) as { usPerRoundTrip: number }).usPerRoundTrip;
}

async function straced(sys: RunningSystem, netns: string | undefined, n: number, size: number, dir: string): Promise<Sample["syscalls"]> {
  const tracers = sys.proxies.map((p) => {
    const file = path.join(dir, `strace-${sys.name}-${p.side}.txt`);
    return { side: p.side, file, proc: start(`strace ${p.side}`, "strace", ["-c", "-f", "-p", String(p.proc.pid), "-o", file]) };
  });
  await sleep(500); // attached
  await pingpong(sys, netns, n, size);
  for (const t of tracers) t.proc.child.kill("SIGINT");
  await Promise.all(tracers.map((t) => t.proc.exited));
  return Object.fromEntries(tracers.map((t) => [t.side, perRoundTrip(parseStraceCounts(fs.readFileSync(t.file, "utf8")), n)]));
}

async function main(): Promise<void> {
  const program = new Command()
    .name("bench:pingpong")
    .description("µs, CPU and syscalls per small round trip through each system (loopback)")
    .option("--systems <list>", `any of ${ALL_SYSTEMS.join(",")}`, DEFAULT)
    .option("--round-trips <n>", "round trips per pass", "20000")
    .option("--size <bytes>", "message size", "64")
    .option("--rounds <n>", "interleaved rounds", "3")
    .option("--strace", "also count syscalls per round trip (strace -c; a separate, shorter pass)")
    .option("--node <path>", "Node binary for our proxy and the Node relay", process.execPath)
    .option("--out <dir>", "where pingpong.md and pingpong.json go", path.resolve(__dirname, "../../bench/results"))
    .option("--no-install", "do not install missing Debian packages");
  program.parse();
  const o = program.opts();
  const systems = list<SystemName>(o.systems, ALL_SYSTEMS, "system");
  for (const s of ["ours-alt-node", "ours-base"] as const) if (systems.includes(s)) throw new UsageError(`--systems ${s}: use npm run bench for it (it needs --alt-node / --baseline-proxy)`);
  const [n, size, rounds] = [Number(o.roundTrips), Number(o.size), Number(o.rounds)];
  if (![n, size, rounds].every((x) => Number.isInteger(x) && x > 0)) throw new UsageError("--round-trips, --size and --rounds take positive integers");
  if (o.install) {
    const r = spawnSync("bash", [path.resolve(__dirname, "../../bench/install-packages.sh")], { stdio: "inherit" });
    if (r.status !== 0) throw new UsageError("missing packages (see above)");
  }
  if (o.strace && spawnSync("strace", ["-V"]).status !== 0) throw new UsageError("--strace: strace is not installed (apt-get install strace)");

  fs.mkdirSync(o.out, { recursive: true });
  const dir = fs.mkdtempSync(path.join(o.out, "raw-pingpong-"));
  const topo = createTopology("loopback");
  const samples: Sample[] = [];
  const log = (line: string) => console.error(`[pingpong] ${line}`);
  try {
    const pki = await writePki(path.join(dir, "pki"));
    const [backendPort] = await freePorts(1);
    const echo = start("echo", process.execPath, [PEER, "echo", String(backendPort)], { netns: topo.serverNs });
    await sleep(300);
    const ours: OursOptions = { node: o.node, nodeFlags: [] };
    for (let round = 1; round <= rounds; round++) {
      for (const system of roundOrder(systems, round)) {
        const [clientPort, serverPort, a1, a2] = await freePorts(4);
        const plan: OursPlan = {
          pki, dir: path.join(dir, `r${round}`), clientNs: topo.clientNs, serverNs: topo.serverNs, clientAddr: topo.clientAddr, serverAddr: topo.serverAddr,
          clientPort, serverPort, backendPort, adminPorts: [a1, a2],
        };
        const sample: Sample = { round, system, usPerRoundTrip: NaN, cpuUs: {} };
        samples.push(sample);
        let sys: RunningSystem | undefined;
        try {
          sys = await startSystem(system, plan, ours);
          await pingpong(sys, topo.clientNs, Math.min(n, 2000), size); // warm-up: connections, JIT
          const before = sys.proxies.map((p) => cpuMs(p.proc.pid));
          sample.usPerRoundTrip = await pingpong(sys, topo.clientNs, n, size);
          // socat forks a child per connection: the process we know is not the one that works.
          if (system !== "socat") sys.proxies.forEach((p, i) => (sample.cpuUs[p.side] = ((cpuMs(p.proc.pid) - before[i]) * 1000) / n));
          if (o.strace && sys.proxies.length) sample.syscalls = await straced(sys, topo.clientNs, Math.max(1000, Math.floor(n / 4)), size, plan.dir);
          log(`round ${round} ${system}: ${sample.usPerRoundTrip.toFixed(1)} µs/round trip; CPU µs/round trip ${JSON.stringify(sample.cpuUs)}`);
        } catch (err) {
          sample.error = (err as Error).message;
          log(`round ${round} ${system}: FAILED: ${sample.error}`);
        } finally {
          await sys?.stop();
        }
      }
    }
    await stop(echo);
  } finally {
    await stopAll();
    topo.teardown();
  }

  const rows = systems.map((s) => {
    const mine = samples.filter((x) => x.system === s && !x.error);
    const side = (k: "client" | "server") => median(mine.map((x) => x.cpuUs[k]).filter((v): v is number => v !== undefined));
    const sys = mine.find((x) => x.syscalls)?.syscalls;
    return { system: s, usPerRoundTrip: median(mine.map((x) => x.usPerRoundTrip)), cpuClientUs: side("client"), cpuServerUs: side("server"), syscalls: sys };
  });
  const f = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : "–");
  const calls = (c?: Record<string, number>) => (c ? Object.entries(c).map(([k, v]) => `${k} ${v}`).join(", ") : "–");
  const md = [
    `# Ping-pong: one ${size}-byte round trip at a time, ${n.toLocaleString("en-US")} per pass, ${rounds} round(s), loopback`,
    ``,
    `Medians over rounds. CPU: utime+stime of each proxy process per round trip (not for socat, which forks a child per connection). Syscalls: per round trip, per proxy, from \`strace -c -f\` (a separate pass).`,
    ``,
    `| system | µs per round trip | CPU µs, client side | CPU µs, server side | syscalls, client side | syscalls, server side |`,
    `|---|---|---|---|---|---|`,
    ...rows.map((r) => `| ${LABELS[r.system]} | ${f(r.usPerRoundTrip)} | ${f(r.cpuClientUs)} | ${f(r.cpuServerUs)} | ${calls(r.syscalls?.client)} | ${calls(r.syscalls?.server)} |`),
    ``,
  ].join("\n");
  fs.writeFileSync(path.join(o.out, "pingpong.md"), md);
  fs.writeFileSync(path.join(o.out, "pingpong.json"), JSON.stringify({ date: new Date().toISOString(), node: o.node, size, roundTrips: n, rounds, rows, samples }, null, 2) + "\n");
  console.log(md);
  if (samples.some((s) => s.error)) process.exitCode = 1;
}

process.on("SIGINT", () => {
  killAllNow();
  deleteAllNamespaces();
  process.exit(130);
});
main().catch((err) => {
  killAllNow();
  if (err instanceof UsageError) {
    console.error(`bench:pingpong: ${err.message}`);
    process.exit(2);
  }
  console.error(err);
  process.exit(1);
});
