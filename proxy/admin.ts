// The admin port (15021, never redirected): liveness, readiness, Prometheus metrics, and the
// kubelet's rewritten app probes. In strict mode the kubelet cannot reach the app's own probe
// port through the proxy (it has no mesh certificate), so its httpGet, grpc and tcpSocket probes
// are rewritten to /app-health/<container>/<probe> here, and we run the real probe against the
// app on localhost: the same HTTP request, gRPC health check or TCP connect.
import * as http from "http";
import * as https from "https";
import * as net from "net";
import { checkGrpcHealth } from "./admin-grpc";
import { HttpProbe } from "./config";
import { ProxyContext } from "./state";
import { PROBE_PATH_PREFIX, PROXY_PORTS } from "./wellknown";

const PROBE_TIMEOUT_MS = 10_000;

export interface AdminState {
  /** Identity and config loaded, listeners bound, not draining. */
  ready(): { ready: boolean; reason?: string };
}

export function createAdminServer(ctx: ProxyContext, state: AdminState): http.Server {
  return http.createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (req.method !== "GET" && req.method !== "HEAD") return reply(res, 405, "method not allowed\n");
    if (path === "/healthz") return reply(res, 200, "ok\n");
    if (path === "/readyz") {
      const readiness = state.ready();
      return reply(res, readiness.ready ? 200 : 503, readiness.ready ? "ready\n" : `not ready: ${readiness.reason}\n`);
    }
    if (path === "/metrics") {
      ctx.metrics.registry.metrics().then(
        (text) => reply(res, 200, text, ctx.metrics.registry.contentType),
        (error) => reply(res, 500, `${(error as Error).message}\n`),
      );
      return;
    }
    if (path.startsWith(PROBE_PATH_PREFIX + "/")) {
      const probe = ctx.config.workload.probes.find((p) => p.path === path);
      if (!probe) return reply(res, 404, "no such probe\n");
      if (probe.kind === "grpc") return grpcProbe(probe.port, probe.service ?? "", res);
      if (probe.kind === "tcpSocket") return tcpProbe(probe.port, res);
      return forwardProbe(probe, probeHeaders(req.headers, probe), res);
    }
    reply(res, 404, "not found\n");
  });
}

function reply(res: http.ServerResponse, status: number, body: string, contentType = "text/plain; charset=utf-8"): void {
  res.writeHead(status, { "content-type": contentType, "content-length": Buffer.byteLength(body) });
  res.end(body);
}

/**
 * The headers the app's probe gets: kubelet's User-Agent and Accept, the probe's own httpHeaders
 * (from workload.json, never from the caller: 15021 is reachable from other pods, and nobody
 * should be able to hand the app an Authorization header from 127.0.0.1), and kubelet's default
 * Host (<pod IP>:<admin port>) turned into <pod IP>:<app port>, what the app would have seen.
 */
export function probeHeaders(incoming: http.IncomingHttpHeaders, probe: Pick<HttpProbe, "port" | "headers">): http.OutgoingHttpHeaders {
  const out: http.OutgoingHttpHeaders = {};
  for (const name of ["user-agent", "accept"]) if (incoming[name] !== undefined) out[name] = incoming[name];
  const host = incoming.host;
  if (host?.endsWith(`:${PROXY_PORTS.admin}`)) out.host = `${host.slice(0, -String(PROXY_PORTS.admin).length)}${probe.port}`;
  for (const { name, value } of probe.headers ?? []) out[name.toLowerCase()] = value;
  return out;
}

/** Calls the app's real probe on localhost and answers with its status (the kubelet only looks at that). */
function forwardProbe(probe: HttpProbe, headers: http.OutgoingHttpHeaders, res: http.ServerResponse): void {
  const client = probe.scheme === "HTTPS" ? https : http;
  const request = client.get(
    {
      host: "127.0.0.1",
      port: probe.port,
      path: probe.targetPath,
      headers,
      timeout: PROBE_TIMEOUT_MS,
      // Like the kubelet: an HTTPS probe does not verify the app's certificate.
      ...(probe.scheme === "HTTPS" ? { rejectUnauthorized: false } : {}),
    },
    (answer) => {
      answer.resume();
      answer.once("end", () => reply(res, answer.statusCode ?? 502, `app answered ${answer.statusCode}\n`));
    },
  );
  request.once("timeout", () => request.destroy(new Error("probe timed out")));
  request.once("error", (error) => {
    if (!res.headersSent) reply(res, 503, `app probe failed: ${error.message}\n`);
  });
}

/** kubelet's gRPC probe, on localhost: 200 when the app answers SERVING, 503 with the reason otherwise. */
function grpcProbe(port: number, service: string, res: http.ServerResponse): void {
  checkGrpcHealth({ authority: `http://127.0.0.1:${port}`, service, timeoutMs: PROBE_TIMEOUT_MS }).then((result) =>
    reply(res, result.serving ? 200 : 503, `app health check: ${result.detail}\n`),
  );
}

/** kubelet's TCP probe, on localhost: healthy when the app's port accepts a connection. */
function tcpProbe(port: number, res: http.ServerResponse): void {
  const socket = net.connect({ host: "127.0.0.1", port, timeout: PROBE_TIMEOUT_MS });
  socket.once("connect", () => {
    socket.destroy();
    reply(res, 200, `app port ${port} accepted a connection\n`);
  });
  socket.once("timeout", () => socket.destroy(new Error("connect timed out")));
  socket.once("error", (error) => reply(res, 503, `app port ${port}: ${error.message}\n`));
}
