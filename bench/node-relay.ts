// The floor of the Node runtime: the least a Node mTLS relay pair can do, with no SPIFFE check, no
// policy, no pooling. Run once per side with the same --node binary as our proxy:
//   node node-relay.js '{"side":"client","listen":{..},"target":{..},"cert":..,"key":..,"ca":..}'
// client side: net.createServer → tls.connect (mTLS, TLS 1.3, chain verified, no name check);
// server side: tls.createServer({ requestCert, rejectUnauthorized }) → net.connect to the backend;
// the two sockets of a connection piped both ways.
import * as fs from "node:fs";
import * as net from "node:net";
import * as tls from "node:tls";

interface RelayArgs {
  side: "client" | "server";
  listen: { host: string; port: number };
  target: { host: string; port: number };
  cert: string;
  key: string;
  ca: string;
}

const a = JSON.parse(process.argv[2]) as RelayArgs;
const secure = {
  cert: fs.readFileSync(a.cert),
  key: fs.readFileSync(a.key),
  ca: fs.readFileSync(a.ca),
  minVersion: "TLSv1.3" as const,
  // The one suite every other pair is pinned to (bench/peers.ts SUITE).
  ciphers: "TLS_AES_128_GCM_SHA256",
};

function relay(from: net.Socket, to: net.Socket): void {
  from.setNoDelay(true);
  to.setNoDelay(true);
  from.on("error", () => to.destroy());
  to.on("error", () => from.destroy());
  from.pipe(to).pipe(from);
}

// One context for every outgoing connection (tls.connect with cert/key/ca builds a new one each
// time, parsing the certificates again: that would be a cost of this script, not of the runtime).
const clientContext = tls.createSecureContext(secure);
const server =
  a.side === "client"
    ? net.createServer((app) => relay(app, tls.connect({ ...a.target, secureContext: clientContext, checkServerIdentity: () => undefined })))
    : tls.createServer({ ...secure, requestCert: true, rejectUnauthorized: true }, (peer) => relay(peer, net.connect(a.target)));
server.listen(a.listen.port, a.listen.host, 4096);
process.on("SIGTERM", () => process.exit(0));
