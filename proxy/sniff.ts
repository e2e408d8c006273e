// Protocol detection on a permissive (or strict) port: is the first flight a TLS ClientHello?
// A TLS record starts 0x16 (handshake), 0x03 0x0X (record version), then a 2-byte length; the
// first handshake message type is 0x01 (ClientHello). At most six bytes decide, so the reads held
// back while undecided stay tiny; we give up waiting after a timeout so server-first protocols
// (MySQL, SMTP: the client waits for the server's greeting) are not stalled (catalogue #31).
import * as net from "net";

export type Sniffed = "tls" | "plaintext";

/** Largest TLS record body allowed by RFC 8446 (2^14 plus expansion); more is not a ClientHello. */
const MAX_RECORD = 16384 + 256;

/**
 * Classifies the first bytes: "tls" for a plausible ClientHello record, "plaintext" for anything
 * that cannot be one, undefined when more bytes are needed.
 */
export function classifyFirstBytes(bytes: Buffer): Sniffed | undefined {
  if (bytes.length === 0) return undefined;
  if (bytes[0] !== 0x16) return "plaintext";
  if (bytes.length < 2) return undefined;
  if (bytes[1] !== 0x03) return "plaintext";
  if (bytes.length < 3) return undefined;
  if (bytes[2] > 0x04) return "plaintext";
  if (bytes.length < 6) return undefined;
  const length = bytes.readUInt16BE(3);
  if (length === 0 || length > MAX_RECORD || bytes[5] !== 0x01) return "plaintext";
  return "tls";
}

export type SniffOutcome = Sniffed | "timeout" | "closed";

/**
 * Reads from a paused socket until the first bytes classify, the timeout passes, or the peer
 * closes. The bytes read are pushed back (unshift), so whoever takes the socket next sees the
 * stream from its first byte. The socket is left paused.
 */
export function sniff(socket: net.Socket, timeoutMs: number): Promise<SniffOutcome> {
  return new Promise((resolve) => {
    let seen: Buffer = Buffer.alloc(0);
    const done = (outcome: SniffOutcome) => {
      clearTimeout(timer);
      socket.off("data", onData);
      socket.off("end", onEnd);
      socket.off("close", onEnd);
      socket.pause();
      if (seen.length && !socket.readableEnded) socket.unshift(seen);
      resolve(outcome);
    };
    const onData = (chunk: Buffer) => {
      seen = seen.length ? Buffer.concat([seen, chunk]) : chunk;
      const verdict = classifyFirstBytes(seen);
      if (verdict) done(verdict);
    };
    // Bytes seen but undecided are a prefix of a ClientHello: let the TLS path refuse them.
    const onEnd = () => done(seen.length ? "tls" : "closed");
    const timer = setTimeout(() => done(seen.length ? "tls" : "timeout"), timeoutMs);
    socket.on("data", onData);
    socket.on("end", onEnd);
    socket.on("close", onEnd);
    socket.resume();
  });
}
