// The proxies we compare against, each as a client-side + server-side pair with mTLS between
// them: HAProxy (mode tcp), nginx `stream`, stunnel, socat (a process per connection: `fork`).
// Same certificates, TLS 1.3 only, TLS_AES_128_GCM_SHA256 only, one worker each. Peers have no SPIFFE support, so the client side
// verifies the server certificate's chain and its name (the leaf's CN); the server side requires
// a client certificate that chains to the bundle.
import * as fs from "node:fs";
import * as path from "node:path";
import { start, Started } from "./processes";
import { BenchPki, LeafFiles } from "./pki";

export const SUITE = "TLS_AES_128_GCM_SHA256";

/** Where one pair listens and connects. */
export interface PairPlan {
  pki: BenchPki;
  /** Working directory for configs and logs. */
  dir: string;
  clientNs?: string;
  serverNs?: string;
  /** The client side listens here (the load generator connects to it). */
  clientAddr: string;
  clientPort: number;
  /** The server side listens here (the client side connects to it). */
  serverAddr: string;
  serverPort: number;
  /** The app, on the server side's loopback. */
  backendPort: number;
}

export interface Pair {
  client: Started;
  server: Started;
}

export type PeerName = "haproxy" | "nginx" | "stunnel" | "socat";

export function startPeer(name: PeerName, plan: PairPlan): Pair {
  fs.mkdirSync(plan.dir, { recursive: true });
  if (name === "socat") return startSocat(plan);
  const configs = { haproxy: haproxyConfigs, nginx: nginxConfigs, stunnel: stunnelConfigs }[name](plan);
  const launch = (side: "client" | "server", netns?: string): Started => {
    const conf = path.join(plan.dir, `${name}-${side}.conf`);
    fs.writeFileSync(conf, configs[side]);
    const logFile = path.join(plan.dir, `${name}-${side}.log`);
    const [cmd, args] = {
      haproxy: ["haproxy", ["-db", "-f", conf]],
      nginx: ["nginx", ["-p", plan.dir, "-c", conf, "-e", "stderr"]],
      stunnel: ["stunnel4", [conf]],
    }[name] as [string, string[]];
    return start(`${name} ${side}`, cmd, args, { netns, logFile });
  };
  return { server: launch("server", plan.serverNs), client: launch("client", plan.clientNs) };
}

function haproxyConfigs(p: PairPlan): Record<"client" | "server", string> {
  const global = `global
  nbthread 1
  maxconn 8000
  ssl-server-verify required
defaults
  mode tcp
  timeout connect 5s
  timeout client 10m
  timeout server 10m
`;
  const tls = `ssl-min-ver TLSv1.3 ciphersuites ${SUITE} ca-file ${p.pki.caFile} verify required`;
  return {
    client: `${global}listen client
  bind ${p.clientAddr}:${p.clientPort}
  server upstream ${p.serverAddr}:${p.serverPort} ssl crt ${p.pki.client.pemFile} ${tls} verifyhost ${p.pki.server.commonName}
`,
    server: `${global}listen server
  bind ${p.serverAddr}:${p.serverPort} ssl crt ${p.pki.server.pemFile} ${tls}
  server app 127.0.0.1:${p.backendPort}
`,
  };
}

function nginxConfigs(p: PairPlan): Record<"client" | "server", string> {
  const main = (side: string) => `load_module /usr/lib/nginx/modules/ngx_stream_module.so;
daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile 65536;
pid ${p.dir}/nginx-${side}.pid;
error_log stderr warn;
events { worker_connections 30000; }
`;
  return {
    client: `${main("client")}stream {
  server {
    listen ${p.clientAddr}:${p.clientPort} backlog=4096;
    proxy_pass ${p.serverAddr}:${p.serverPort};
    proxy_ssl on;
    proxy_ssl_certificate ${p.pki.client.certFile};
    proxy_ssl_certificate_key ${p.pki.client.keyFile};
    proxy_ssl_trusted_certificate ${p.pki.caFile};
    proxy_ssl_verify on;
    proxy_ssl_verify_depth 3;
    proxy_ssl_name ${p.pki.server.commonName};
    proxy_ssl_protocols TLSv1.3;
    proxy_ssl_conf_command Ciphersuites ${SUITE};
    proxy_ssl_session_reuse on;
  }
}
`,
    server: `${main("server")}stream {
  server {
    listen ${p.serverAddr}:${p.serverPort} ssl backlog=4096;
    ssl_certificate ${p.pki.server.certFile};
    ssl_certificate_key ${p.pki.server.keyFile};
    ssl_client_certificate ${p.pki.caFile};
    ssl_verify_client on;
    ssl_verify_depth 3;
    ssl_protocols TLSv1.3;
    ssl_conf_command Ciphersuites ${SUITE};
    ssl_session_cache shared:bench:10m;
    proxy_pass 127.0.0.1:${p.backendPort};
  }
}
`,
  };
}

function stunnelConfigs(p: PairPlan): Record<"client" | "server", string> {
  const global = `foreground = yes
pid =
syslog = no
debug = warning
socket = l:TCP_NODELAY=1
socket = r:TCP_NODELAY=1
`;
  const tls = `CAfile = ${p.pki.caFile}
verifyChain = yes
sslVersionMin = TLSv1.3
ciphersuites = ${SUITE}
`;
  return {
    client: `${global}[client]
client = yes
accept = ${p.clientAddr}:${p.clientPort}
connect = ${p.serverAddr}:${p.serverPort}
cert = ${p.pki.client.certFile}
key = ${p.pki.client.keyFile}
checkHost = ${p.pki.server.commonName}
${tls}`,
    server: `${global}[server]
accept = ${p.serverAddr}:${p.serverPort}
connect = 127.0.0.1:${p.backendPort}
cert = ${p.pki.server.certFile}
key = ${p.pki.server.keyFile}
requireCert = yes
${tls}`,
  };
}

/** socat has no option for TLS 1.3 suites: an OpenSSL config file (OPENSSL_CONF, read by every
 * OpenSSL 3 program at start-up) pins the same single suite as the other peers. */
function startSocat(p: PairPlan): Pair {
  const conf = path.join(p.dir, "socat-openssl.cnf");
  fs.writeFileSync(conf, `openssl_conf = bench_conf
[bench_conf]
ssl_conf = bench_ssl
[bench_ssl]
system_default = bench_tls
[bench_tls]
MinProtocol = TLSv1.3
Ciphersuites = ${SUITE}
`);
  const env = { ...process.env, OPENSSL_CONF: conf };
  const tls = (leaf: LeafFiles) => `cert=${leaf.certFile},key=${leaf.keyFile},cafile=${p.pki.caFile},verify=1,min-version=TLS1.3,nodelay`;
  const listen = (addr: string, port: number) => `${port},bind=${addr},reuseaddr,fork,backlog=4096,nodelay`;
  const launch = (side: "client" | "server", args: string[], netns?: string) =>
    start(`socat ${side}`, "socat", args, { netns, env, logFile: path.join(p.dir, `socat-${side}.log`) });
  return {
    server: launch("server", [`OPENSSL-LISTEN:${listen(p.serverAddr, p.serverPort)},${tls(p.pki.server)}`, `TCP:127.0.0.1:${p.backendPort},nodelay`], p.serverNs),
    client: launch("client", [
      `TCP-LISTEN:${listen(p.clientAddr, p.clientPort)}`,
      `OPENSSL:${p.serverAddr}:${p.serverPort},${tls(p.pki.client)},commonname=${p.pki.server.commonName}`,
    ], p.clientNs),
  };
}
