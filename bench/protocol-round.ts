// One system's real-protocol rows in one round: per protocol server, a fresh pair of the system
// whose server side forwards to that server's port, the connection setup time first (before any
// load), then that protocol's workloads, then the pair stops. A failure costs only its protocol.
import * as path from "node:path";
import { lastLines } from "./processes";
import { startSystem, isPlaintextClient, SystemName, RunningSystem } from "./systems";
import { OursOptions, OursPlan } from "./ours";
import { ProtocolServer } from "./protocols";
import { RoundTripDurations, RoundTripMeasurements } from "./roundtrip-kinds";
import { setupTime, workloadsOf } from "./roundtrips";
import { probeTls, TlsProbe } from "./tlsprobe";

export interface ProtocolRound {
  system: SystemName;
  servers: ProtocolServer[];
  /** The pair plan without its ports and backend (filled per protocol). */
  plan: Omit<OursPlan, "clientPort" | "serverPort" | "adminPorts" | "backendPort">;
  /** Four ports per server, in the order of `servers`: client, server, two admin. */
  ports: number[];
  ours: OursOptions;
  d: RoundTripDurations;
  round: number;
  /** Probe the negotiated TLS on the first pair (when the HTTP rows did not). */
  probe: boolean;
  progress(line: string): void;
}

export async function measureRoundTrips(r: ProtocolRound): Promise<{ m: RoundTripMeasurements; tls?: TlsProbe }> {
  const m: RoundTripMeasurements = { workloads: {}, setup: {}, errors: [] };
  let tls: TlsProbe | undefined;
  for (const [i, server] of r.servers.entries()) {
    const plan: OursPlan = {
      ...r.plan, dir: path.join(r.plan.dir, server.protocol), backendPort: server.port,
      clientPort: r.ports[4 * i], serverPort: r.ports[4 * i + 1], adminPorts: [r.ports[4 * i + 2], r.ports[4 * i + 3]],
    };
    let sys: RunningSystem | undefined;
    try {
      sys = await startSystem(r.system, plan, r.ours);
      const target = { host: sys.host, port: sys.port, netns: r.plan.clientNs };
      const setup = await setupTime(target, server.protocol, r.d.setupConnections);
      m.setup[server.protocol] = setup;
      r.progress(`${server.protocol} connection setup ${setup.medianMs.toFixed(3)} ms (median of ${setup.samplesMs.length})${setup.failed ? `, ${setup.failed} failed` : ""}`);
      for (const [id, load] of workloadsOf(server.protocol, target, r.d, `${r.system}-r${r.round}`)) {
        const result = await load();
        m.workloads[id] = result;
        r.progress(`${id} ${Math.round(result.opsPerSecond)}/s`);
      }
      if (r.probe && !tls && r.system !== "direct" && !isPlaintextClient(r.system)) tls = await probeTls(r.plan.pki, r.plan.serverAddr, plan.serverPort, r.plan.clientNs);
    } catch (err) {
      let error = `${server.protocol}: ${(err as Error).message}`;
      for (const p of sys?.proxies ?? []) {
        if (p.proc.exitStatus !== undefined) error += `\n${p.proc.name} exited (${p.proc.exitStatus}): ${lastLines(p.proc, 6)}`;
      }
      m.errors.push(error);
      r.progress(`FAILED: ${error}`);
    } finally {
      await sys?.stop();
    }
  }
  return { m, tls };
}
