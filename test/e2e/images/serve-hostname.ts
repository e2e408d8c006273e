// agnhost's `serve-hostname` in its raw TCP form (`--tcp --http=false`), as upstream serves it:
// on each accepted connection it writes the hostname and closes, without reading anything. A
// server-first protocol in miniature: its client waits for the server to speak, like MySQL's.
// The HTTP and UDP forms are not implemented (refused, not faked).
import * as net from "node:net";
import * as os from "node:os";

/** Go's flag package: `--name` or `--name=value` for booleans, `--name value` or `--name=value` otherwise. */
function flagValue(args: string[], name: string, boolean: boolean): string | undefined {
  for (let i = 0; i < args.length; i++) {
    if (args[i] === `--${name}`) return boolean ? "true" : args[i + 1];
    if (args[i].startsWith(`--${name}=`)) return args[i].slice(name.length + 3);
  }
  return undefined;
}

export function serveHostname(args: string[]): void {
  if (flagValue(args, "tcp", true) !== "true") return refuse("only --tcp is implemented");
  if ((flagValue(args, "http", true) ?? "true") !== "false") return refuse("--http cannot be given at the same time as --tcp (pass --http=false)");
  if (flagValue(args, "udp", true) === "true") return refuse("--udp is not implemented");
  const port = Number(flagValue(args, "port", false) ?? "9376");
  // A pod's hostname is its name. The harness's pods share the machine's UTS namespace and get it
  // as HOSTNAME (as http-echo reads it); os.hostname() would be the machine's ("vm": a two-byte
  // needle that a capture's ciphertext contains by chance).
  const hostname = process.env.HOSTNAME ?? os.hostname();
  net
    .createServer((conn) => {
      process.stdout.write(`TCP request from ${conn.remoteAddress}\n`);
      conn.on("error", () => conn.destroy());
      conn.end(hostname);
    })
    .listen(port, () => process.stdout.write(`Serving on port ${port}/tcp\n`));
  process.on("SIGTERM", () => process.exit(0));
}

function refuse(why: string): void {
  process.stderr.write(`agnhost stand-in serve-hostname: ${why}\n`);
  process.exit(2);
}
