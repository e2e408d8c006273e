// The admin port (15021, never redirected): liveness, readiness, Prometheus metrics, and the
// kubelet's rewritten app probes. In strict mode the kubelet cannot reach the app's own probe
// port through the proxy (it has no mesh certificate), so its httpGet probes are rewritten to
// /app-health/<container>/<probe> here, and we call the app on localhost for it.
import * as http from "http";
import * as https from "https";
import { Probe } from "./config";
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
export function probeHeaders(incoming: http.IncomingHttpHeaders, probe: Pick<Probe, "port" | "headers">): http.OutgoingHttpHeaders {
  const out: http.OutgoingHttpHeaders = {};
  for (const name of ["user-agent", "accept"]) if (incoming[name] !== undefined) out[name] = incoming[name];
  const host = incoming.host;
  if (host?.endsWith(`:${PROXY_PORTS.admin}`)) out.host = `${host.slice(0, -String(PROXY_PORTS.admin).length)}${probe.port}`;
  for (const { name, value } of probe.headers ?? []) out[name.toLowerCase()] = value;
  return out;
}

/** Calls the app's real probe on localhost and answers with its status (the kubelet only looks at that). */
function forwardProbe(probe: Probe, headers: http.OutgoingHttpHeaders, res: http.ServerResponse): void {
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
