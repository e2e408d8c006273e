// Client side: accept → resolve the destination (explicit route, or SO_ORIGINAL_DST + directory)
// → plaintext passthrough, or mTLS expecting the directory's SPIFFE ID (secure naming) → copy.
// The app's socket stays paused until the server proved its identity, so a wrong server never
// receives an application byte (catalogue #12).
import * as http2 from "http2";
import * as net from "net";
import { Duplex } from "stream";
import { copyBidirectional } from "./copy";
import { lookupDestination, servicePortKey } from "./directory";
import { originateMtls, Refusal, serverSpokeNoTls } from "./handshake";
import { MESH_ALPN } from "./identity";
import { SESSIONS_PER_DESTINATION, TunnelPool } from "./pool";
import { OutboundListener, OutboundRoute } from "./settings";
import { ProxyContext, recordRefusal } from "./state";
import { PROXY_PORTS } from "./wellknown";

/** Where a transparent connection goes, by the directory (undefined spiffeId: not meshed). */
function routeFor(ctx: ProxyContext, destination: { address: string; port: number }): OutboundRoute {
  const match = lookupDestination(ctx.config.directory, destination.address, destination.port);
  if (!match || match.mode === "disabled") {
    return { host: destination.address, port: destination.port, spiffeId: null, targetPort: destination.port };
  }
  // Only a permissive port can fall back; strict ones skip the lookup.
  const plaintextFallback = match.mode === "permissive" && (ctx.migrating.get(servicePortKey(match.service, match.targetPort)) ?? 0) > Date.now();
  // An opaque port is not sniffed by the server: reach it through the tunnel port of the same
  // address (a ClusterIP's Service exposes it as "mesh-tunnel", a pod listens on it).
  const tunnel = match.opaque ? { tunnelPort: PROXY_PORTS.tunnel } : {};
  return { host: destination.address, port: destination.port, spiffeId: match.spiffeId, targetPort: match.targetPort, plaintextFallback, ...tunnel };
}

export function outboundHandler(ctx: ProxyContext, listener: OutboundListener, pool: TunnelPool): (app: net.Socket) => void {
  return (app) => {
    handle(ctx, listener, pool, app).catch((error) => {
      app.destroy();
      ctx.log.error("outbound handler failed", { error });
    });
  };
}

async function handle(ctx: ProxyContext, listener: OutboundListener, pool: TunnelPool, app: net.Socket): Promise<void> {
  app.on("error", () => app.destroy());
  const { limits } = ctx.config.workload;
  const source = `${app.remoteAddress}:${app.remotePort}`;
  if (ctx.connections.openSockets >= limits.maxConnections) {
    recordRefusal(ctx, "outbound", "unknown", "max_connections", { source, limit: limits.maxConnections });
    return void app.destroy();
  }
  ctx.connections.countSocket(app);
  let route = listener.route;
  if (!route) {
    const destination = ctx.originalDestination(app);
    if (!destination) {
      recordRefusal(ctx, "outbound", "unknown", "no_original_destination", { source, listener: listener.port });
      return void app.destroy();
    }
    if (destination.port === PROXY_PORTS.outbound || destination.port === PROXY_PORTS.inbound) {
      recordRefusal(ctx, "outbound", "unknown", "proxy_port", { source, destination });
      return void app.destroy();
    }
    route = routeFor(ctx, destination);
  }
  const fields = { source, destination: `${route.host}:${route.port}`, expected: route.spiffeId ?? undefined };
  let mode = route.spiffeId === null ? "plaintext" : `mtls-${route.tunnelPort !== undefined ? "h2" : ctx.transport}`;

  let upstream: Duplex;
  try {
    try {
      upstream = await dial(ctx, pool, route);
    } catch (error) {
      // Mid-migration (a port just turned from disabled or unmeshed to permissive) kubelet updates
      // each pod's config at its own time: a server still on "disabled" hands our ClientHello to
      // its app, which answers in plaintext. Only then, and only for MIGRATION_WINDOW_MS after the
      // change, send plaintext rather than fail the request; log and count it.
      if (!(route.plaintextFallback && serverIsNotMeshed(error, route))) throw error;
      ctx.log.warn("plaintext fallback", { direction: "outbound", ...fields, reason: error instanceof Refusal ? error.reason : (error as NodeJS.ErrnoException).code, detail: (error as Error).message });
      mode = "plaintext-fallback";
      upstream = await connectPlain(route);
    }
  } catch (error) {
    app.destroy();
    if (error instanceof Refusal) return recordRefusal(ctx, "outbound", mode, error.reason, { ...fields, detail: error.message });
    ctx.metrics.connections.inc({ direction: "outbound", mode, outcome: "failed" });
    ctx.log.warn("upstream unavailable", { direction: "outbound", ...fields, error });
    return;
  }
  if (app.destroyed) return void upstream.destroy();

  const untrack = ctx.connections.add({
    direction: "outbound",
    port: route.port,
    close: (reason) => {
      ctx.log.info("closed", { direction: "outbound", reason, ...fields });
      app.destroy();
      upstream.destroy();
    },
  });
  ctx.metrics.connections.inc({ direction: "outbound", mode, outcome: "forwarded" });
  ctx.metrics.active.inc({ direction: "outbound" });
  copyBidirectional(app, upstream, limits.idleTimeoutMs, (end) => {
    untrack();
    ctx.metrics.active.dec({ direction: "outbound" });
    ctx.metrics.bytes.inc({ direction: "outbound", flow: "from_app" }, app.bytesRead);
    ctx.metrics.bytes.inc({ direction: "outbound", flow: "to_app" }, app.bytesWritten);
    if (ctx.log.enabled("debug")) ctx.log.debug("done", { direction: "outbound", ...fields, fromApp: app.bytesRead, toApp: app.bytesWritten, error: end.error });
  });
}

/** The upstream side of one outbound connection: plaintext, a tunnel stream, or an mTLS connection. */
async function dial(ctx: ProxyContext, pool: TunnelPool, route: OutboundRoute): Promise<Duplex> {
  if (route.spiffeId === null) return connectPlain(route);
  const identity = ctx.identity;
  if (!identity) throw new Refusal("no_identity", "no identity loaded yet");
  if (route.tunnelPort !== undefined) return openTunnel(ctx, pool, { ...route, port: route.tunnelPort, spiffeId: route.spiffeId });
  if (ctx.transport === "h2") return openTunnel(ctx, pool, { ...route, spiffeId: route.spiffeId });
  const { limits, trustDomain } = ctx.config.workload;
  const timer = ctx.metrics.handshakeSeconds.startTimer({ role: "client" });
  const socket = await originateMtls(identity, {
    host: route.host,
    port: route.port,
    expectedId: route.spiffeId,
    alpn: MESH_ALPN.tcp,
    trustDomain,
    timeoutMs: limits.handshakeTimeoutMs,
  });
  timer();
  return socket;
}

/**
 * The server side is not meshed yet (mid-migration): it answered our ClientHello in plaintext (its
 * proxy still runs "disabled"), or, for an opaque port, nothing listens on its tunnel port (a pod
 * from before the rollout, without a proxy).
 */
function serverIsNotMeshed(error: unknown, route: OutboundRoute): boolean {
  if (error instanceof Refusal) return serverSpokeNoTls(error);
  return route.tunnelPort !== undefined && (error as NodeJS.ErrnoException).code === "ECONNREFUSED";
}

function connectPlain(route: OutboundRoute): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: route.host, port: route.port, allowHalfOpen: true, noDelay: true });
    socket.once("connect", () => {
      socket.off("error", reject);
      resolve(socket);
    });
    socket.once("error", reject);
  });
}

/**
 * A CONNECT stream the server proxy accepted (200). The app's bytes wait in its socket until then,
 * as an HTTP CONNECT client waits (ztunnel's HBONE too): a stream the server refused unprocessed
 * (REFUSED_STREAM, or past a GOAWAY's last stream: it closed the session, e.g. after renewing its
 * leaf) is opened again on another session, with nothing lost; RFC 9113 section 8.7 makes that
 * retry safe. Another status is the server's refusal (authorization, draining).
 */
async function openTunnel(ctx: ProxyContext, pool: TunnelPool, route: OutboundRoute & { spiffeId: string }, attempt = 1): Promise<http2.ClientHttp2Stream> {
  const identity = ctx.identity;
  if (!identity) throw new Refusal("no_identity", "no identity loaded yet");
  const stream = await pool.open(route, identity);
  // Bounded: the server answers once its app accepted the connection, which may never happen.
  const timeoutMs = ctx.config.workload.limits.handshakeTimeoutMs;
  const answer = await new Promise<number | Error>((resolve) => {
    const timer = setTimeout(() => resolve(new Refusal("tunnel_timeout", `the server proxy did not answer within ${timeoutMs} ms`)), timeoutMs);
    const done = (v: number | Error) => {
      clearTimeout(timer);
      resolve(v);
    };
    stream.once("response", (headers) => done(Number(headers[":status"])));
    stream.once("error", done);
    stream.once("close", () => done(new Error("the tunnel stream closed before the server answered")));
  });
  if (answer === 200) return stream;
  stream.close(http2.constants.NGHTTP2_CANCEL);
  stream.destroy();
  if (typeof answer === "number") throw new Refusal("tunnel_refused", `the server proxy answered ${answer}`);
  const unprocessed = stream.rstCode === http2.constants.NGHTTP2_REFUSED_STREAM || (answer as NodeJS.ErrnoException).code === "ERR_HTTP2_GOAWAY_SESSION";
  // The server closes every session made under its old leaf at once, so the next pooled sessions
  // may be closing too: try each slot once more at most (a refusal for another reason, such as
  // an overloaded server, ends the same way after those few tries).
  if (unprocessed && attempt <= SESSIONS_PER_DESTINATION) {
    ctx.log.debug("tunnel stream refused unprocessed; retrying on another session", { attempt });
    ctx.metrics.tunnelRetries.inc();
    return openTunnel(ctx, pool, route, attempt + 1);
  }
  throw answer;
}
