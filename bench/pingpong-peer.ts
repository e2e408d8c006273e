// The two ends of the ping-pong profile, one process each (run inside the bench's namespace):
//   node pingpong-peer.js echo <port>                      echoes every byte back
//   node pingpong-peer.js client <host> <port> <n> <size>  n sequential round trips of size bytes
// The client prints one JSON line: { usPerRoundTrip } (the median of 5 batches, after one
// uncounted batch that pays for connection set-up and JIT).
import * as net from "node:net";

const BATCHES = 5;

function echo(port: number): void {
  net.createServer((s) => {
    s.setNoDelay(true);
    s.on("error", () => s.destroy());
    s.pipe(s);
  }).listen(port, "127.0.0.1");
}

function client(host: string, port: number, n: number, size: number): void {
  const message = Buffer.alloc(size, 0x61);
  const perBatch = Math.max(1, Math.floor(n / (BATCHES + 1)));
  const batches: number[] = [];
  const socket = net.connect({ host, port, noDelay: true });
  let received = 0;
  let done = 0;
  let t0 = 0n;
  socket.on("connect", () => {
    t0 = process.hrtime.bigint();
    socket.write(message);
  });
  socket.on("data", (chunk) => {
    received += chunk.length;
    if (received < size) return;
    received -= size;
    done++;
    if (done % perBatch === 0) {
      const now = process.hrtime.bigint();
      batches.push(Number(now - t0) / perBatch / 1000);
      t0 = now;
    }
    if (done === perBatch * (BATCHES + 1)) {
      const counted = batches.slice(1).sort((a, b) => a - b);
      console.log(JSON.stringify({ usPerRoundTrip: counted[Math.floor(counted.length / 2)] }));
      socket.destroy();
      return;
    }
    socket.write(message);
  });
  socket.on("error", (err) => {
    console.error(`pingpong client: ${err.message}`);
    process.exit(1);
  });
}

const [role, ...args] = process.argv.slice(2);
if (role === "echo") echo(Number(args[0]));
else if (role === "client") client(args[0], Number(args[1]), Number(args[2]), Number(args[3]));
else {
  console.error("usage: pingpong-peer echo <port> | client <host> <port> <n> <size>");
  process.exit(2);
}
