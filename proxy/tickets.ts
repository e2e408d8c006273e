// How many TLS 1.3 NewSessionTickets this process's OpenSSL sends after a full handshake: 2 by
// default, 0 when Node started with proxy/openssl.cnf (NumTickets = 0; the image does). It is set
// per process, and Node can neither set nor read it, so it is measured once, on an in-memory
// handshake with our own context. alert.ts needs the number (the tickets precede its record), and
// the proxy logs a warning when it is not 0 (the README promises no tickets).
import { Duplex } from "stream";
import * as tls from "tls";

let measured: Promise<number> | undefined;

export function ticketsPerHandshake(context: tls.SecureContext): Promise<number> {
  measured ??= measure(context);
  return measured;
}

/** Two connected in-memory streams. */
function streamPair(): [Duplex, Duplex] {
  const ends: Duplex[] = [];
  for (const i of [0, 1]) {
    ends.push(
      new Duplex({
        read() {},
        write(chunk, _encoding, done) {
          ends[1 - i].push(chunk);
          done();
        },
        final(done) {
          ends[1 - i].push(null);
          done();
        },
      }),
    );
  }
  return [ends[0], ends[1]];
}

function measure(context: tls.SecureContext): Promise<number> {
  return new Promise((resolve, reject) => {
    const [serverEnd, clientEnd] = streamPair();
    const server = new tls.TLSSocket(serverEnd, { isServer: true, secureContext: context });
    // Our own certificate, not verified: only the count matters.
    const client = tls.connect({ socket: clientEnd, secureContext: context, rejectUnauthorized: false, servername: "" });
    let tickets = 0;
    client.on("session", () => tickets++);
    const fail = (error: Error) => {
      server.destroy();
      client.destroy();
      reject(error);
    };
    server.on("error", fail);
    client.on("error", fail);
    // OpenSSL writes the tickets right after 'secure' returns, so they precede this byte.
    server.once("secure", () => setImmediate(() => server.write(".")));
    client.once("data", () => {
      server.destroy();
      client.destroy();
      resolve(tickets);
    });
  });
}
