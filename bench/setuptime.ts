// Connection setup time of a protocol server, run as its own process (in the client namespace):
//   node setuptime.js '{"host":..,"port":..,"protocol":"redis"|"postgres"|"mariadb","connections":20}'
// opens that many fresh connections one after the other (after one uncounted warm-up) and times each from connect() to the
// first byte the server sends: MariaDB greets unprompted; PostgreSQL answers an SSLRequest with
// one byte ('N' or 'S'); Redis answers `PING` with `+PONG`. Through a proxy pair this is the
// whole chain: the pair's own handshake (or stream) and its connection to the server. Prints one
// JSON line: { samplesMs, failed }.
import * as net from "node:net";

interface SetupArgs {
  host: string;
  port: number;
  protocol: "redis" | "postgres" | "mariadb";
  connections: number;
}

const a = JSON.parse(process.argv[2]) as SetupArgs;
// int32 length 8, int32 80877103 (the SSLRequest code).
const SSL_REQUEST = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);
const hello: Buffer | undefined = { redis: Buffer.from("PING\r\n"), postgres: SSL_REQUEST, mariadb: undefined }[a.protocol];

function once(): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const socket = net.connect({ host: a.host, port: a.port, noDelay: true });
    const timer = setTimeout(() => fail(new Error("no answer within 5 s")), 5000);
    const fail = (err: Error) => {
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    };
    socket.on("connect", () => hello && socket.write(hello));
    socket.once("data", () => {
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      clearTimeout(timer);
      socket.destroy();
      resolve(ms);
    });
    socket.on("error", fail);
    socket.on("close", () => fail(new Error("closed before the first byte")));
  });
}

async function main(): Promise<void> {
  const samplesMs: number[] = [];
  let failed = 0;
  // One connection first, not counted: it pays for this process's own warm-up (JIT, first
  // socket), which would otherwise land on whichever system is measured.
  await once().catch(() => undefined);
  for (let i = 0; i < a.connections; i++) {
    try {
      samplesMs.push(Math.round((await once()) * 1000) / 1000);
    } catch {
      failed++;
    }
    await new Promise((r) => setTimeout(r, 5)); // let the previous connection's teardown pass
  }
  console.log(JSON.stringify({ samplesMs, failed }));
}

void main();
