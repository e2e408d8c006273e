// Server side of the pooled transport (like ztunnel's HBONE): HTTP/2 over one mTLS connection,
// one CONNECT stream per application connection. The peer was authenticated once for the TLS
// connection; each stream is authorized on its own, for the app port its :authority names. A
// stream may only reach 127.0.0.1 on the connection's own app port or a port the workload
// declares, never the proxy's ports: no open relay.
import * as http2 from "http2";
import * as tls from "tls";
import { decide } from "./policy";
import { InboundListener } from "./settings";
import { ProxyContext, recordAuditRefusal, recordRefusal } from "./state";
import { forwardToApp } from "./upstream";
import { modeFor, stillConforms } from "./inbound";
import { RESERVED_PORTS } from "./wellknown";

/**
 * Per-stream flow-control window: big enough that a stream is not throttled by round trips inside
 * a cluster (1 MiB covers 10 Gbit/s at 0.8 ms), small enough that a slow reader buffers at most
 * this much per stream. The connection window is a few streams' worth.
 */
const TUNNEL_WINDOW = 1024 * 1024;

/**
 * nghttp2's per-session memory cap (Node's default is 10 MB): beyond it new streams are refused.
 * One session carries every connection between two proxies, so allow for the connection window
 * plus queued writes of many streams.
 */
export const TUNNEL_SESSION_MEMORY_MB = 64;

export function tunnelSettings(maxStreams: number): http2.Settings {
  return { initialWindowSize: TUNNEL_WINDOW, maxConcurrentStreams: maxStreams, enablePush: false };
}

/** The app port named by a CONNECT :authority ("host:port", "[v6]:port"), or undefined. */
export function authorityPort(authority: string | undefined): number | undefined {
  if (!authority) return undefined;
  const match = /^(?:\[[0-9a-fA-F:.]+\]|[^:\[\]]+):(\d{1,5})$/.exec(authority);
  if (!match) return undefined;
  const port = Number(match[1]);
  return port >= 1 && port <= 65535 ? port : undefined;
}

/** The connection-level window starts at 64 KiB whatever the settings say; widen it once set up. */
export function widenSessionWindow(session: http2.Http2Session): void {
  const widen = () => {
    if (!session.destroyed) session.setLocalWindowSize(TUNNEL_WINDOW * 16);
  };
  if (session.connecting) session.once("connect", widen);
  else widen();
}

/** A pooled session is re-established (and so re-verified) at least this often. */
const MAX_SESSION_AGE_MS = 30 * 60_000;

/**
 * Ends a session gracefully (GOAWAY; open streams finish) when the peer certificate it was
 * verified with expires, or after MAX_SESSION_AGE_MS: identity is checked per TLS connection,
 * so a pooled connection must not outlive the certificate that authenticated it.
 */
export function retireSessionInTime(session: http2.Http2Session, socket: tls.TLSSocket, onRetire: () => void = () => undefined): void {
  const notAfter = Date.parse(socket.getPeerX509Certificate()?.validTo ?? "");
  const untilExpiry = Number.isNaN(notAfter) ? 0 : notAfter - Date.now();
  const timer = setTimeout(() => {
    onRetire();
    if (!session.closed) session.close();
  }, Math.max(0, Math.min(untilExpiry, MAX_SESSION_AGE_MS)));
  timer.unref();
  session.once("close", () => clearTimeout(timer));
}

export function serveTunnel(
  ctx: ProxyContext,
  listener: InboundListener,
  socket: tls.TLSSocket,
  peer: string,
  /** The app port the TLS connection was made to; undefined on the tunnel listener (streams name declared ports only). */
  connectionPort: number | undefined,
  fields: Record<string, unknown>,
): void {
  const limits = ctx.config.workload.limits;
  const session = http2.performServerHandshake(socket, { settings: tunnelSettings(limits.maxConnections), maxSessionMemory: TUNNEL_SESSION_MEMORY_MB });
  session.on("error", (error) => ctx.log.debug("tunnel session error", { ...fields, error }));
  ctx.metrics.tunnelSessions.inc({ role: "server" });
  widenSessionWindow(session);
  const untrack = ctx.connections.add({
    direction: "inbound",
    port: connectionPort ?? listener.port,
    // The session itself carries no app bytes; its streams are re-checked one by one.
    close: () => session.destroy(),
    drain: () => session.close(),
    identity: ctx.identity?.fingerprint,
  });
  session.once("close", () => {
    untrack();
    ctx.metrics.tunnelSessions.dec({ role: "server" });
  });
  if (limits.idleTimeoutMs > 0) session.setTimeout(limits.idleTimeoutMs, () => session.close());
  retireSessionInTime(session, socket);
  session.on("stream", (stream, headers) => {
    const refuse = (status: number, reason: string, extra: Record<string, unknown> = {}) => {
      recordRefusal(ctx, "inbound", "tunnel", reason, { ...fields, authority: headers[":authority"], ...extra });
      if (!stream.destroyed) stream.respond({ ":status": status }, { endStream: true });
    };
    stream.on("error", () => stream.destroy());
    if (ctx.draining) return refuse(503, "draining");
    if (headers[":method"] !== "CONNECT") return refuse(405, "bad_tunnel_request", { method: headers[":method"] });
    let port = authorityPort(headers[":authority"]);
    if (port === undefined) return refuse(400, "bad_tunnel_request");
    // An explicit listener's clients may name the port they dialled; it means the listener's app port.
    if (listener.targetPort !== undefined && port === socket.localPort) port = listener.targetPort;
    const declared = (connectionPort !== undefined && port === connectionPort) || ctx.config.workload.inbound.ports.some((p) => p.port === port);
    if (!declared || RESERVED_PORTS.includes(port)) return refuse(403, "tunnel_target_not_allowed", { port });
    if (ctx.connections.size >= limits.maxConnections) return refuse(503, "max_connections");
    const mode = modeFor(listener, ctx.config, port);
    const from = { id: peer, address: socket.remoteAddress };
    const decision = decide(mode, from, port, ctx.config.workload);
    if (!decision.allow) return refuse(403, decision.reason, { port });
    if (decision.wouldRefuse) recordAuditRefusal(ctx, port, decision.wouldRefuse, { ...fields, stream: stream.id });
    const appPort = port;
    forwardToApp(ctx, stream, {
      port: appPort,
      mode: `${mode}-mtls`,
      fields: { ...fields, port: appPort, stream: stream.id },
      tracked: { conforms: stillConforms(listener, appPort, from) },
      onConnected: () => stream.respond({ ":status": 200 }),
      onUnavailable: () => {
        if (!stream.destroyed) stream.respond({ ":status": 502 }, { endStream: true });
      },
    });
  });
}
