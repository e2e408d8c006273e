// Server side: accept → classify (sniff) → authenticate (mTLS) → authorize → connect → copy.
// The port decides the mode (strict / permissive / audit / disabled). An mTLS client that
// negotiated the tunnel (ALPN mesh-h2) gets an HTTP/2 session whose CONNECT streams are authorized
// one by one. An opaque port is not sniffed: plaintext goes straight through where the mode admits
// it, and meshed clients come through the tunnel listener, which takes mTLS HTTP/2 only.
import * as net from "net";
import { acceptMtls, Refusal } from "./handshake";
import { decide, InboundPeer, isOpaque, resolveMode } from "./policy";
import { InboundListener, MeshConfig } from "./settings";
import { sniff } from "./sniff";
import { ProxyContext, recordAuditRefusal, recordRefusal } from "./state";
import { serveTunnel } from "./tunnel";
import { forwardToApp } from "./upstream";
import { Mode, RESERVED_PORTS } from "./wellknown";

/** The mode a listener applies to an app port: pinned by an explicit listener, else from config. */
export function modeFor(listener: InboundListener, config: MeshConfig, port: number): Mode {
  return listener.targetPort === port && listener.mode ? listener.mode : resolveMode(config.workload, port);
}

/** Does an admitted connection still conform after a reload? (catalogue #5) */
export function stillConforms(listener: InboundListener, port: number, peer: InboundPeer) {
  return (config: MeshConfig) => decide(modeFor(listener, config, port), peer, port, config.workload).allow;
}

export function inboundHandler(ctx: ProxyContext, listener: InboundListener): (raw: net.Socket) => void {
  return (raw) => {
    handle(ctx, listener, raw).catch((error) => {
      raw.destroy();
      ctx.log.error("inbound handler failed", { error });
    });
  };
}

async function handle(ctx: ProxyContext, listener: InboundListener, raw: net.Socket): Promise<void> {
  const remote = `${raw.remoteAddress}:${raw.remotePort}`;
  raw.on("error", () => raw.destroy()); // Resets before we take over must not crash the process.
  const { limits } = ctx.config.workload;
  if (ctx.connections.openSockets >= limits.maxConnections) {
    recordRefusal(ctx, "inbound", "unknown", "max_connections", { remote, limit: limits.maxConnections });
    return void raw.destroy();
  }
  ctx.connections.countSocket(raw);
  if (listener.tunnel) return handleTunnelListener(ctx, listener, raw, remote);
  const port = listener.targetPort ?? ctx.originalDestination(raw)?.port;
  if (port === undefined) {
    recordRefusal(ctx, "inbound", "unknown", "no_original_destination", { remote, listener: listener.port });
    return void raw.destroy();
  }
  if (RESERVED_PORTS.includes(port)) {
    recordRefusal(ctx, "inbound", "unknown", "proxy_port", { remote, port });
    return void raw.destroy();
  }
  const mode = modeFor(listener, ctx.config, port);
  const fields = { remote, port };

  if (mode === "disabled") {
    return forwardToApp(ctx, raw, { port, mode, fields, tracked: { conforms: stillConforms(listener, port, { id: null, address: raw.remoteAddress }) } });
  }

  const started = Date.now();
  // Audit admits plaintext like permissive, so it waits no longer for a client that speaks first.
  const admitsPlaintext = mode === "permissive" || mode === "audit";
  // No ClientHello comes to an opaque port (meshed clients use the tunnel listener): no wait.
  if (admitsPlaintext && isOpaque(ctx.config.workload, port)) return admit(ctx, listener, raw, port, mode, null, fields);
  const firstBytes = await sniff(raw, admitsPlaintext ? limits.sniffTimeoutMs : limits.handshakeTimeoutMs);
  if (firstBytes === "closed") return void raw.destroy();
  if (firstBytes === "plaintext" || firstBytes === "timeout") {
    if (mode === "strict") {
      const reason = firstBytes === "timeout" ? "handshake_timeout" : "plaintext_on_strict";
      recordRefusal(ctx, "inbound", mode, reason, fields);
      return void raw.destroy();
    }
    // Permissive or audit: plaintext, or a server-first protocol whose client waits for the server.
    return admit(ctx, listener, raw, port, mode, null, fields);
  }

  const identity = ctx.identity;
  if (!identity) {
    recordRefusal(ctx, "inbound", mode, "no_identity", fields);
    return void raw.destroy();
  }
  const timer = ctx.metrics.handshakeSeconds.startTimer({ role: "server" });
  try {
    const remaining = Math.max(1, limits.handshakeTimeoutMs - (Date.now() - started));
    const accepted = await acceptMtls(raw, identity, ctx.config.workload.trustDomain, remaining);
    timer();
    const peerFields = { ...fields, peer: accepted.peer };
    if (accepted.transport === "h2") {
      return serveTunnel(ctx, listener, accepted.socket, accepted.peer, port, peerFields);
    }
    return admit(ctx, listener, accepted.socket, port, mode, accepted.peer, peerFields, accepted.deny);
  } catch (error) {
    if (!(error instanceof Refusal)) throw error;
    recordRefusal(ctx, "inbound", mode, error.reason, { ...fields, detail: error.message });
  }
}

/**
 * The tunnel listener: mTLS with ALPN mesh-h2 only (the streams name their ports); the peer is
 * authenticated as on a strict port, then each stream is authorized for its port's mode.
 */
async function handleTunnelListener(ctx: ProxyContext, listener: InboundListener, raw: net.Socket, remote: string): Promise<void> {
  const fields = { remote, port: raw.localPort, listener: "tunnel" };
  const { limits } = ctx.config.workload;
  const identity = ctx.identity;
  if (!identity) {
    recordRefusal(ctx, "inbound", "tunnel", "no_identity", fields);
    return void raw.destroy();
  }
  const firstBytes = await sniff(raw, limits.handshakeTimeoutMs);
  if (firstBytes === "closed") return void raw.destroy();
  if (firstBytes !== "tls") {
    recordRefusal(ctx, "inbound", "tunnel", firstBytes === "timeout" ? "handshake_timeout" : "plaintext_on_strict", fields);
    return void raw.destroy();
  }
  const timer = ctx.metrics.handshakeSeconds.startTimer({ role: "server" });
  try {
    const accepted = await acceptMtls(raw, identity, ctx.config.workload.trustDomain, limits.handshakeTimeoutMs);
    timer();
    if (accepted.transport !== "h2") {
      recordRefusal(ctx, "inbound", "tunnel", "bad_tunnel_request", { ...fields, peer: accepted.peer, detail: "the tunnel port speaks HTTP/2 CONNECT only (ALPN mesh-h2)" });
      return accepted.deny();
    }
    return serveTunnel(ctx, listener, accepted.socket, accepted.peer, undefined, { ...fields, peer: accepted.peer });
  } catch (error) {
    if (!(error instanceof Refusal)) throw error;
    recordRefusal(ctx, "inbound", "tunnel", error.reason, { ...fields, detail: error.message });
  }
}

function admit(
  ctx: ProxyContext,
  listener: InboundListener,
  client: net.Socket,
  port: number,
  mode: Mode,
  peer: string | null,
  fields: Record<string, unknown>,
  /** mTLS: refuse with an access_denied alert. Plaintext: just close. */
  deny: () => void = () => client.destroy(),
): void {
  // Re-read the mode: a reload may have landed while we sniffed or handshook.
  const current = modeFor(listener, ctx.config, port);
  const from: InboundPeer = { id: peer, address: client.remoteAddress };
  const decision = decide(current, from, port, ctx.config.workload);
  if (!decision.allow) {
    recordRefusal(ctx, "inbound", current, decision.reason, fields);
    return deny();
  }
  if (decision.wouldRefuse) recordAuditRefusal(ctx, port, decision.wouldRefuse, fields);
  forwardToApp(ctx, client, { port, mode: peer ? `${current}-mtls` : current, fields, tracked: { conforms: stillConforms(listener, port, from) } });
}
