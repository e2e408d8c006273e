// Prometheus metrics, one registry per proxy instance (tests run several in one process).
// Counters are bumped once per connection (at accept, refusal or close), never per chunk.
import * as client from "prom-client";

export type Direction = "inbound" | "outbound";

export class Metrics {
  readonly registry = new client.Registry();

  readonly connections = new client.Counter({
    name: "mesh_proxy_connections_total",
    help: "Connections handled, by direction, mode (or transport for outbound) and outcome (forwarded, refused, failed).",
    labelNames: ["direction", "mode", "outcome"] as const,
    registers: [this.registry],
  });

  readonly refusals = new client.Counter({
    name: "mesh_proxy_refusals_total",
    help: "Connections or tunnel streams refused, by direction and reason.",
    labelNames: ["direction", "reason"] as const,
    registers: [this.registry],
  });

  readonly active = new client.Gauge({
    name: "mesh_proxy_active_connections",
    help: "Connections currently being forwarded.",
    labelNames: ["direction"] as const,
    registers: [this.registry],
  });

  readonly bytes = new client.Counter({
    name: "mesh_proxy_bytes_total",
    help: "Application bytes forwarded, counted at close: to_app is towards the local application side.",
    labelNames: ["direction", "flow"] as const,
    registers: [this.registry],
  });

  readonly handshakeSeconds = new client.Histogram({
    name: "mesh_proxy_tls_handshake_seconds",
    help: "mTLS handshake latency, by role (server: accepted inbound, client: originated outbound).",
    labelNames: ["role"] as const,
    buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5],
    registers: [this.registry],
  });

  readonly reloads = new client.Counter({
    name: "mesh_proxy_reloads_total",
    help: "Reloads of mounted material, by kind (identity, config) and outcome (applied, rejected).",
    labelNames: ["kind", "outcome"] as const,
    registers: [this.registry],
  });

  readonly tunnelSessions = new client.Gauge({
    name: "mesh_proxy_tunnel_sessions",
    help: "Open HTTP/2 tunnel sessions (pooled mTLS connections), by role.",
    labelNames: ["role"] as const,
    registers: [this.registry],
  });

  readonly auditRefusals = new client.Counter({
    name: "mesh_proxy_audit_refusals_total",
    help: "Connections or tunnel streams an audit port admitted that strict would refuse, by port and reason (the peer is in the log line).",
    labelNames: ["port", "reason"] as const,
    registers: [this.registry],
  });

  readonly tunnelRetries = new client.Counter({
    name: "mesh_proxy_tunnel_retries_total",
    help: "Tunnel streams the server refused unprocessed (REFUSED_STREAM, or past its GOAWAY) and opened again on another session.",
    registers: [this.registry],
  });

  /** Seconds until the loaded leaf expires; read from the identity at scrape time. */
  certificateExpiry(read: () => Date | undefined): void {
    new client.Gauge({
      name: "mesh_proxy_certificate_expiry_seconds",
      help: "Seconds until the proxy's own leaf certificate expires (absent until an identity is loaded).",
      registers: [this.registry],
      collect() {
        const notAfter = read();
        this.reset();
        if (notAfter) this.set((notAfter.getTime() - Date.now()) / 1000);
      },
    });
  }
}
