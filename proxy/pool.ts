// Client side of the pooled transport: a few mTLS connections (HTTP/2 sessions) per destination
// and expected identity, shared by every application connection to it. The handshake and the
// secure-naming check happen once per session; each application connection is one CONNECT stream.
// The destination is usually a ClusterIP, and kube-proxy picks a replica per TCP connection: one
// session would pin every stream to one replica, so streams go round-robin over
// SESSIONS_PER_DESTINATION sessions, each balanced on its own.
// Sessions are keyed by our identity's fingerprint too: after a rotation new streams go over new
// sessions with the new certificate, and the old sessions finish their streams and close.
import * as http2 from "http2";
import * as net from "net";
import { originateMtls } from "./handshake";
import { Identity, MESH_ALPN } from "./identity";
import { OutboundRoute } from "./settings";
import { ProxyContext } from "./state";
import { retireSessionInTime, TUNNEL_SESSION_MEMORY_MB, tunnelSettings, widenSessionWindow } from "./tunnel";

/** Sessions per destination: spreads streams over replicas behind a ClusterIP; costs a handshake each. */
export const SESSIONS_PER_DESTINATION = 4;

export class TunnelPool {
  private readonly sessions = new Map<string, Promise<http2.ClientHttp2Session>>();
  /** Round-robin position per destination (a shared counter would pin each of several destinations to a slot). */
  private readonly turns = new Map<string, number>();

  constructor(private readonly ctx: ProxyContext) {}

  /** A CONNECT stream to `route` (its expected identity already verified on the session). */
  async open(route: OutboundRoute & { spiffeId: string }, identity: Identity): Promise<http2.ClientHttp2Stream> {
    const destination = `${route.host}|${route.port}|${route.spiffeId}|${identity.fingerprint}`;
    const turn = ((this.turns.get(destination) ?? -1) + 1) % SESSIONS_PER_DESTINATION;
    this.turns.set(destination, turn);
    const key = `${turn}|${destination}`;
    let session = await this.session(key, route, identity);
    if (session.closed || session.destroyed) {
      this.sessions.delete(key);
      session = await this.session(key, route, identity);
    }
    return session.request({ ":method": "CONNECT", ":authority": `127.0.0.1:${route.targetPort}` });
  }

  /** Gracefully closes sessions made with another identity (after a rotation or bundle change). */
  retire(currentFingerprint: string | undefined): void {
    for (const destination of this.turns.keys()) {
      if (!destination.endsWith(`|${currentFingerprint}`)) this.turns.delete(destination);
    }
    for (const [key, pending] of this.sessions) {
      if (key.endsWith(`|${currentFingerprint}`)) continue;
      this.sessions.delete(key);
      pending.then((s) => s.close(), () => undefined);
    }
  }

  closeAll(): void {
    this.retire(undefined);
  }

  private session(key: string, route: OutboundRoute & { spiffeId: string }, identity: Identity): Promise<http2.ClientHttp2Session> {
    const existing = this.sessions.get(key);
    if (existing) return existing;
    const created = this.connect(key, route, identity);
    this.sessions.set(key, created);
    created.catch(() => this.sessions.delete(key));
    return created;
  }

  private async connect(key: string, route: OutboundRoute & { spiffeId: string }, identity: Identity): Promise<http2.ClientHttp2Session> {
    const { workload } = this.ctx.config;
    const timer = this.ctx.metrics.handshakeSeconds.startTimer({ role: "client" });
    const socket = await originateMtls(identity, {
      host: route.host,
      port: route.port,
      expectedId: route.spiffeId,
      alpn: MESH_ALPN.h2,
      trustDomain: workload.trustDomain,
      timeoutMs: workload.limits.handshakeTimeoutMs,
    });
    timer();
    const host = net.isIPv6(route.host) ? `[${route.host}]` : route.host;
    const session = http2.connect(`https://${host}:${route.port}`, {
      createConnection: () => socket,
      settings: tunnelSettings(workload.limits.maxConnections),
      maxSessionMemory: TUNNEL_SESSION_MEMORY_MB,
    });
    session.on("error", (error) => this.ctx.log.debug("tunnel session error", { host: route.host, port: route.port, error }));
    this.ctx.metrics.tunnelSessions.inc({ role: "client" });
    widenSessionWindow(session);
    const forget = () => {
      if (this.sessions.get(key) === created) this.sessions.delete(key);
    };
    const created = this.sessions.get(key);
    session.once("goaway", forget);
    session.once("close", () => {
      forget();
      this.ctx.metrics.tunnelSessions.dec({ role: "client" });
    });
    retireSessionInTime(session, socket, forget);
    // An unused session does not hold a connection on the server forever.
    session.setTimeout(60_000, () => {
      forget();
      session.close();
    });
    return session;
  }
}
