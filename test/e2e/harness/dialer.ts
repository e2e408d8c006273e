// The test-process side of dial-agent: TCP connections opened inside another network namespace,
// handed back as ordinary sockets (usable by http.request through `createConnection`).
import * as http from "node:http";
import * as net from "node:net";
import * as path from "node:path";
import { Duplex } from "node:stream";
import type { CodeRoots } from "./code";
import { HOST_CODE, REPO_ROOT } from "./images";
import { Identity, Started, startInNamespace } from "./process";

export class DialError extends Error {
  constructor(readonly code: string, target: string) {
    super(`connect to ${target} failed: ${code}`);
  }
}

export interface Dialer {
  dial(host: string, port: number): Promise<net.Socket>;
  process: Started;
}

/** The agent runs as `identity`: from `code`, the copy that UID can read (code.ts). */
export async function startDialer(ns: string, identity: Identity, socketPath: string, logFile: string, code: CodeRoots = HOST_CODE): Promise<Dialer> {
  const agent = path.join(code.root, path.relative(REPO_ROOT, path.join(__dirname, "dial-agent.js")));
  const started = startInNamespace({ ns, identity, argv: [code.node, agent, socketPath], logFile });
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      const probe = await connectUnix(socketPath);
      probe.destroy();
      break;
    } catch {
      if (Date.now() > deadline) throw new Error(`dial agent in ${ns} did not start (log: ${logFile})`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }
  return { process: started, dial: (host, port) => dialThrough(socketPath, host, port) };
}

function connectUnix(socketPath: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(socketPath);
    socket.once("connect", () => resolve(socket));
    socket.once("error", reject);
  });
}

/** The socket comes back paused, with any early bytes unshifted: resume it once you listen. */
export async function dialThrough(socketPath: string, host: string, port: number): Promise<net.Socket> {
  const socket = await connectUnix(socketPath);
  socket.setNoDelay(true);
  socket.write(`CONNECT ${host} ${port}\n`);
  return new Promise((resolve, reject) => {
    let header = Buffer.alloc(0);
    const fail = (code: string) => {
      socket.destroy();
      reject(new DialError(code, `${host}:${port}`));
    };
    const onData = (chunk: Buffer) => {
      header = Buffer.concat([header, chunk]);
      const nl = header.indexOf(10);
      if (nl === -1) return;
      socket.off("data", onData);
      socket.off("end", onEnd);
      socket.pause();
      const line = header.subarray(0, nl).toString();
      if (line !== "OK") return fail(line.replace(/^ERR /, ""));
      const rest = header.subarray(nl + 1);
      if (rest.length) socket.unshift(rest);
      resolve(socket);
    };
    const onEnd = () => fail("ECLOSED");
    socket.on("data", onData);
    socket.once("end", onEnd);
    socket.once("error", (err: NodeJS.ErrnoException) => fail(err.code ?? "EIO"));
  });
}

/**
 * A dialed socket as a plain Duplex, for http2 (the kubelet's gRPC probe): http2 takes a
 * net.Socket's handle over directly and would never see bytes dialThrough already read and
 * unshifted (a server's first SETTINGS can arrive with the agent's "OK"); through stream events
 * it sees them all.
 */
export function asDuplex(socket: net.Socket): Duplex {
  const duplex = new Duplex({
    read: () => void socket.resume(),
    write: (chunk, _encoding, done) => void socket.write(chunk, done),
    final: (done) => {
      socket.end();
      done();
    },
    destroy: (error, done) => {
      socket.destroy();
      done(error);
    },
  });
  socket.on("data", (chunk: Buffer) => {
    if (!duplex.push(chunk)) socket.pause();
  });
  socket.once("end", () => duplex.push(null));
  socket.once("error", (error) => duplex.destroy(error));
  return duplex;
}

export interface HttpResult {
  status: number;
  body: string;
  headers: http.IncomingHttpHeaders;
}

/** One HTTP/1.1 request over a dialed connection (or an existing keep-alive socket). */
export function httpGet(
  connect: () => Promise<net.Socket>,
  opts: { host: string; path: string; headers?: Record<string, string>; timeoutMs?: number },
): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    connect().then((socket) => {
      const req = http.request(
        {
          createConnection: () => socket,
          host: opts.host,
          path: opts.path,
          headers: { connection: "close", ...opts.headers },
          timeout: opts.timeoutMs ?? 5_000,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString(), headers: res.headers }));
          res.on("error", reject);
        },
      );
      // The dialed socket comes back paused (see dialThrough); http has its listeners on by now.
      req.on("socket", (s) => s.resume());
      req.on("timeout", () => req.destroy(new Error("timeout")));
      req.on("error", reject);
      req.end();
    }, reject);
  });
}
