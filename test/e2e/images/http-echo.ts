// Stand-in for the hashicorp/http-echo:1.0 image: serves `-text` on `-listen` (default :5678) for
// every path, with the same flags, so pod specs written for the real image run unchanged.
import * as http from "node:http";

function flag(name: string, fallback: string): string {
  const prefix = `-${name}=`;
  const alt = `--${name}=`;
  const arg = process.argv.slice(2).find((a) => a.startsWith(prefix) || a.startsWith(alt));
  return arg ? arg.slice(arg.indexOf("=") + 1) : fallback;
}

const text = flag("text", "");
const listen = flag("listen", ":5678");
const status = Number(flag("status-code", "200"));
const colon = listen.lastIndexOf(":");
const host = listen.slice(0, colon) || undefined;
const port = Number(listen.slice(colon + 1));

if (!text) {
  process.stderr.write("error: missing -text\n");
  process.exit(127);
}

const server = http.createServer((req, res) => {
  if (req.url === "/health") {
    res.writeHead(200, { "content-type": "application/json" });
    res.end('{"status":"ok"}\n');
    return;
  }
  // x-served-by is the harness's addition (the real image has no such header): which replica answered.
  res.writeHead(status, { "content-type": "text/plain; charset=utf-8", "x-app-name": "http-echo", "x-app-version": "1.0.0", "x-served-by": process.env.HOSTNAME ?? "" });
  res.end(text + "\n");
});
server.keepAliveTimeout = 60_000;
server.listen(port, host, () => process.stdout.write(`[INFO] server is listening on ${listen}\n`));
process.on("SIGTERM", () => server.close(() => process.exit(0)));
