// Which TLS version and cipher suite a server-side proxy actually negotiates: `openssl s_client`
// with the client certificate, offering its defaults (TLS 1.2 and 1.3, AES-256-GCM first). The
// server picks, so a server-side answer of TLSv1.3 + TLS_AES_128_GCM_SHA256 is what every pair
// negotiates (every client side offers that suite).
import { start, kill } from "./processes";
import { BenchPki } from "./pki";

export interface TlsProbe {
  protocol: string;
  cipher: string;
  peerVerified: boolean;
  peer: string;
}

export async function probeTls(pki: BenchPki, host: string, port: number, netns?: string): Promise<TlsProbe> {
  const p = start("openssl s_client", "openssl", [
    "s_client", "-brief", "-connect", `${host}:${port}`,
    "-cert", pki.client.certFile, "-cert_chain", pki.client.certFile, "-key", pki.client.keyFile, "-CAfile", pki.caFile,
  ], { netns });
  p.child.stdin!.end();
  const timer = setTimeout(() => kill(p, "SIGKILL"), 10_000);
  await p.exited;
  clearTimeout(timer);
  const out = p.tail();
  return {
    protocol: /Protocol version:\s*(\S+)/.exec(out)?.[1] ?? "none",
    cipher: /Ciphersuite:\s*(\S+)/.exec(out)?.[1] ?? "none",
    peerVerified: /Verification:\s*OK/.test(out),
    peer: /Peer certificate:\s*(.+)/.exec(out)?.[1]?.trim() ?? "",
  };
}
