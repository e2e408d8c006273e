// A packet capture (tcpdump) on the node bridge in a node namespace, or on any interface of the host, read back with pcap.ts.
// --immediate-mode: without it libpcap holds packets in its ring until a block timeout, and a
// capture stopped right after a request would miss them.
import { ChildProcess, spawn } from "node:child_process";
import * as fs from "node:fs";
import { readSegments, reassemble, Stream } from "./pcap";

export class Capture {
  private constructor(
    private readonly child: ChildProcess,
    readonly file: string,
    private readonly exited: Promise<void>,
  ) {}

  /** `nodeNs` undefined: the host's own namespace. `filter`: a tcpdump filter expression. */
  static async start(nodeNs: string | undefined, iface: string, file: string, filter = "tcp"): Promise<Capture> {
    const tcpdump = ["tcpdump", "-i", iface, "-n", "--immediate-mode", "-U", "-s", "0", "-w", file, ...filter.split(" ")];
    const [command, ...args] = nodeNs === undefined ? tcpdump : ["ip", "netns", "exec", nodeNs, ...tcpdump];
    const child = spawn(command, args, {
      stdio: ["ignore", "ignore", "pipe"],
    });
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    let stderr = "";
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`tcpdump did not start: ${stderr}`)), 10_000);
      child.stderr!.on("data", (chunk: Buffer) => {
        stderr += chunk.toString();
        if (stderr.includes("listening on")) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`tcpdump exited (${code}): ${stderr.trim()}`));
      });
    });
    return new Capture(child, file, exited);
  }

  /** Stops the capture and returns its TCP streams. */
  async stop(): Promise<Stream[]> {
    // Let the last packets (a FIN, a delayed ACK) reach the capture before it ends.
    await new Promise((r) => setTimeout(r, 50));
    this.child.kill("SIGINT");
    await this.exited;
    return reassemble(readSegments(fs.readFileSync(this.file)));
  }
}
