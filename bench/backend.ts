// The application behind every server-side proxy: one nginx worker answering `GET /` with a 1 KB
// body from memory, and `GET /bulk` with a 64 MB static file (sendfile).
import * as fs from "node:fs";
import * as path from "node:path";
import { randomBytes } from "node:crypto";
import { start, waitForPort, Started } from "./processes";

export const BODY_BYTES = 1024;
export const BULK_BYTES = 64 * 1024 * 1024;
export const BULK_PATH = "/bulk";

export interface Backend {
  port: number;
  proc: Started;
}

/** Listens on loopback (where server-side proxies reach it, like an app in its pod) and on the
 * server address (where the "direct" system reaches it). */
export async function startBackend(dir: string, port: number, serverAddr: string, netns: string | undefined): Promise<Backend> {
  fs.mkdirSync(dir, { recursive: true });
  const bulkFile = path.join(dir, "bulk");
  if (!fs.existsSync(bulkFile) || fs.statSync(bulkFile).size !== BULK_BYTES) {
    const chunk = randomBytes(1024 * 1024);
    const fd = fs.openSync(bulkFile, "w");
    for (let i = 0; i < BULK_BYTES / chunk.length; i++) fs.writeSync(fd, chunk);
    fs.closeSync(fd);
  }
  const conf = path.join(dir, "backend-nginx.conf");
  fs.writeFileSync(
    conf,
    `daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile 65536;
pid ${dir}/backend-nginx.pid;
error_log stderr warn;
events { worker_connections 16384; }
http {
  access_log off;
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fcgi;
  uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
  default_type application/octet-stream;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 100000000;
  keepalive_timeout 600s;
  server {
${[...new Set(["127.0.0.1", serverAddr])].map((a) => `    listen ${a}:${port} backlog=4096;\n`).join("")}    location = / { return 200 "${"x".repeat(BODY_BYTES)}"; }
    location = ${BULK_PATH} { alias ${bulkFile}; }
  }
}
`,
  );
  const proc = start("backend nginx", "nginx", ["-p", dir, "-c", conf, "-e", "stderr"], { netns });
  await waitForPort(port, proc, netns);
  return { port, proc };
}
