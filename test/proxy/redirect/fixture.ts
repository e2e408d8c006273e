// A small program the redirect tests run inside their network namespaces (`ip netns exec NS node
// fixture.js MODE ...`), because a process, not a test, has to live in a namespace:
//   init ARGS...           mesh-proxy init through the real command code (a bare commander program)
//   serve PORT...          TCP servers on :: (dual-stack): each connection is answered with one JSON line
//                          {listener, originalDestination} and closed; prints "ready" when listening
//   connect UID HOST PORT  as UID (setuid before the socket exists, so iptables' owner match sees
//                          it), connects and prints what the server answered, or {"error": code}
import * as net from "net";
import { Command } from "commander";
import { registerInitCommand } from "../../../proxy/redirect/command";
import { originalDestination } from "../../../proxy/redirect/origdst";

export interface ServerAnswer {
  listener: number;
  originalDestination: { address: string; port: number } | null;
}

async function main(mode: string, args: string[]): Promise<void> {
  if (mode === "init") {
    const program = new Command("mesh-proxy");
    registerInitCommand(program);
    await program.parseAsync(["init", ...args], { from: "user" });
    return;
  }
  if (mode === "serve") {
    await Promise.all(
      args.map(
        (port) =>
          new Promise<void>((resolve, reject) => {
            const server = net.createServer((socket) => {
              const answer: ServerAnswer = { listener: Number(port), originalDestination: originalDestination(socket) ?? null };
              socket.end(JSON.stringify(answer) + "\n");
              socket.on("error", () => socket.destroy());
            });
            server.once("error", reject);
            server.listen({ port: Number(port), host: "::", ipv6Only: false }, () => resolve());
          }),
      ),
    );
    process.stdout.write("ready\n");
    return;
  }
  if (mode === "connect") {
    const [uid, host, port] = args;
    process.setgid?.(Number(uid));
    process.setuid?.(Number(uid));
    const socket = net.connect({ host, port: Number(port), timeout: 3000 });
    let received = "";
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => (received += chunk));
    socket.on("end", () => process.stdout.write(received));
    socket.on("timeout", () => {
      process.stdout.write(JSON.stringify({ error: "ETIMEDOUT" }) + "\n");
      socket.destroy();
    });
    socket.on("error", (error: NodeJS.ErrnoException) => process.stdout.write(JSON.stringify({ error: error.code }) + "\n"));
    return;
  }
  throw new Error(`unknown fixture mode ${mode}`);
}

main(process.argv[2], process.argv.slice(3)).catch((error) => {
  process.stderr.write(`fixture: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(3);
});
