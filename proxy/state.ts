// What every connection handler looks up: the current config and identity (swapped atomically on
// reload; a connection reads them once, at its decision points), plus the shared services.
import * as net from "net";
import { Connections } from "./connections";
import { Identity } from "./identity";
import { Logger } from "./log";
import { Metrics } from "./metrics";
import { MeshConfig } from "./settings";
import { Transport } from "./config";

export type OriginalDestinationLookup = (socket: net.Socket) => { address: string; port: number } | undefined;

export interface ProxyContext {
  config: MeshConfig;
  /** Undefined until a valid identity is loaded: TLS paths refuse (fail closed). */
  identity?: Identity;
  readonly transport: Transport;
  readonly log: Logger;
  readonly metrics: Metrics;
  readonly connections: Connections;
  readonly originalDestination: OriginalDestinationLookup;
  /** Set on SIGTERM: listeners are closed, new tunnel streams refused. */
  draining: boolean;
  /** Service ports meshed by a recent config change → until when they may fall back to plaintext. */
  readonly migrating: Map<string, number>;
}

/** One refusal: one counter bump and one log line with the reason. */
export function recordRefusal(
  ctx: ProxyContext,
  direction: "inbound" | "outbound",
  mode: string,
  reason: string,
  fields: Record<string, unknown> = {},
): void {
  ctx.metrics.refusals.inc({ direction, reason });
  ctx.metrics.connections.inc({ direction, mode, outcome: "refused" });
  ctx.log.warn("refused", { direction, mode, reason, ...fields });
}

/**
 * One connection an audit port admitted although strict would refuse it: one counter bump (port
 * and reason only; peers are unbounded, so they go to the log line, not a label) and one log line
 * with the peer.
 */
export function recordAuditRefusal(ctx: ProxyContext, port: number, reason: string, fields: Record<string, unknown> = {}): void {
  ctx.metrics.auditRefusals.inc({ port: String(port), reason });
  ctx.log.warn("audit: strict would refuse", { direction: "inbound", mode: "audit", reason, ...fields, peer: fields.peer ?? "plaintext" });
}
