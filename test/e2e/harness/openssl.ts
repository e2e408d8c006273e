// The certificate a TLS server presents, as seen by the openssl CLI from inside a namespace.
// A strict mesh port refuses us afterwards (no client certificate), but in TLS 1.3 the server's
// Certificate message comes first, which is all this needs.
import { execFile } from "node:child_process";

export function presentedCertificate(ns: string, host: string, port: number, alpn?: string): Promise<string> {
  const args = ["netns", "exec", ns, "openssl", "s_client", "-connect", `${host}:${port}`, "-tls1_3", "-showcerts"];
  if (alpn) args.push("-alpn", alpn);
  return new Promise((resolve, reject) => {
    const child = execFile("ip", args, { timeout: 10_000, encoding: "utf8" }, (_err, stdout, stderr) => {
      const pem = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(stdout)?.[0];
      if (pem) resolve(pem + "\n");
      else reject(new Error(`openssl s_client ${host}:${port} showed no certificate: ${stderr.trim().split("\n").slice(-3).join(" | ")}`));
    });
    child.stdin?.end();
  });
}
