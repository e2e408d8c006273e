// The last hop of every admitted inbound connection or tunnel stream: connect to the app on
// 127.0.0.1:<port> (never anywhere else: no open relay) and copy until both sides are done.
import * as net from "net";
import { Duplex } from "stream";
import { copyBidirectional } from "./copy";
import { Tracked } from "./connections";
import { ProxyContext } from "./state";

export interface AppForward {
  port: number;
  mode: string;
  /** Called once the app accepted the connection (a tunnel stream answers 200 then). */
  onConnected?: () => void;
  /** Called when the app cannot be reached (a tunnel stream answers 502). */
  onUnavailable?: () => void;
  tracked: Omit<Tracked, "close" | "direction" | "port">;
  fields: Record<string, unknown>;
}

export function forwardToApp(ctx: ProxyContext, client: Duplex, f: AppForward): void {
  if (client.destroyed) return;
  const app = net.connect({ host: "127.0.0.1", port: f.port, allowHalfOpen: true, noDelay: true });
  const untrack = ctx.connections.add({
    ...f.tracked,
    direction: "inbound",
    port: f.port,
    close: (reason) => {
      ctx.log.info("closed", { direction: "inbound", reason, port: f.port, ...f.fields });
      client.destroy();
      app.destroy();
    },
  });
  let connected = false;
  // Until the app answers, either side closing ends the attempt; the copy takes over after.
  const abandon = () => {
    if (!connected) app.destroy();
  };
  client.once("close", abandon);
  let answered = false;
  app.once("close", () => {
    if (!connected) {
      untrack();
      if (!answered) client.destroy();
    }
  });
  const onConnectError = (error: Error) => {
    ctx.metrics.connections.inc({ direction: "inbound", mode: f.mode, outcome: "failed" });
    ctx.log.warn("app unavailable", { direction: "inbound", port: f.port, error, ...f.fields });
    // A tunnel stream answers 502 and ends itself; a plain connection is simply closed.
    if (f.onUnavailable) {
      answered = true;
      f.onUnavailable();
    }
  };
  app.once("error", onConnectError);
  app.once("connect", () => {
    connected = true;
    app.off("error", onConnectError);
    client.off("close", abandon);
    f.onConnected?.();
    ctx.metrics.connections.inc({ direction: "inbound", mode: f.mode, outcome: "forwarded" });
    ctx.metrics.active.inc({ direction: "inbound" });
    copyBidirectional(app, client, ctx.config.workload.limits.idleTimeoutMs, (end) => {
      untrack();
      ctx.metrics.active.dec({ direction: "inbound" });
      ctx.metrics.bytes.inc({ direction: "inbound", flow: "to_app" }, app.bytesWritten);
      ctx.metrics.bytes.inc({ direction: "inbound", flow: "from_app" }, app.bytesRead);
      if (ctx.log.enabled("debug")) {
        ctx.log.debug("done", { direction: "inbound", port: f.port, toApp: app.bytesWritten, fromApp: app.bytesRead, error: end.error, ...f.fields });
      }
    });
  });
}
