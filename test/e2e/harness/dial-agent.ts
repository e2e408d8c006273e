// Runs inside a network namespace (as a given UID) and opens TCP connections there for the test
// process, which talks to it over a Unix socket (filesystem paths cross network namespaces).
// This is how the harness makes "kubectl exec"-style long-lived connections from a pod and
// kubelet probes from the node without one process per request.
// Protocol: the client sends "CONNECT <host> <port>\n"; the agent answers "OK\n" once connected
// or "ERR <code>\n" and closes; after OK, bytes are piped both ways with half-close kept.
import * as fs from "node:fs";
import * as net from "node:net";

const socketPath = process.argv[2];
if (!socketPath) {
  process.stderr.write("usage: dial-agent <unix-socket-path>\n");
  process.exit(2);
}
fs.rmSync(socketPath, { force: true });

const server = net.createServer({ allowHalfOpen: true }, (client) => {
  let header = Buffer.alloc(0);
  const onData = (chunk: Buffer) => {
    header = Buffer.concat([header, chunk]);
    const nl = header.indexOf(10);
    if (nl === -1) {
      if (header.length > 512) client.destroy();
      return;
    }
    client.off("data", onData);
    client.pause();
    const rest = header.subarray(nl + 1);
    const [verb, host, port] = header.subarray(0, nl).toString().trim().split(" ");
    if (verb !== "CONNECT" || !host || !Number(port)) {
      client.end("ERR EPROTO\n");
      return;
    }
    const upstream = net.connect({ host, port: Number(port), allowHalfOpen: true, noDelay: true });
    let connected = false;
    upstream.once("error", (err: NodeJS.ErrnoException) => {
      if (connected) client.destroy();
      else client.end(`ERR ${err.code ?? "EIO"}\n`);
    });
    upstream.once("connect", () => {
      connected = true;
      client.write("OK\n");
      if (rest.length) upstream.write(rest);
      client.pipe(upstream);
      upstream.pipe(client);
      client.resume();
    });
    client.on("error", () => upstream.destroy());
    client.on("close", (hadError) => {
      if (hadError || !connected) upstream.destroy();
    });
    upstream.on("close", (hadError) => {
      if (hadError) client.destroy();
    });
  };
  client.on("data", onData);
});
server.listen(socketPath, () => {
  fs.chmodSync(socketPath, 0o600);
  process.stdout.write("ready\n");
});
process.on("SIGTERM", () => process.exit(0));
