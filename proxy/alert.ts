// A fatal TLS alert for a peer we refuse after Node's handshake, so that it learns why.
//
// Why by hand: OpenSSL sends such alerts itself only when its verify callback fails the
// handshake, and Node's callback never does (it accepts every chain and reports the result after
// the handshake); our SVID checks and authorization run later still. Node has no API to send an
// alert. In TLS 1.3 the server's handshake is over before the client's certificate arrives, so
// the alert has to travel as an application-data record, encrypted under the server's
// application traffic secret (RFC 8446 §5.2, §7.3), which Node hands out through its 'keylog'
// event. The record's sequence number is the number of records OpenSSL wrote under that secret
// before us: its NewSessionTickets (tickets.ts), written before the next turn of the event loop.
import { createCipheriv, createHmac } from "crypto";
import * as net from "net";
import * as tls from "tls";
import { ticketsPerHandshake } from "./tickets";

/** RFC 8446 §6.2 (the ones we send). */
export const TLS_ALERTS = {
  bad_certificate: 42,
  unsupported_certificate: 43,
  certificate_expired: 45,
  certificate_unknown: 46,
  unknown_ca: 48,
  access_denied: 49,
} as const;
export type TlsAlert = keyof typeof TLS_ALERTS;

/** Our TLS 1.3 suites (identity.ts): AEAD, key length, HKDF hash. */
const SUITES: Record<string, { cipher: "aes-128-gcm" | "aes-256-gcm" | "chacha20-poly1305"; keyLength: number; hash: string }> = {
  TLS_AES_128_GCM_SHA256: { cipher: "aes-128-gcm", keyLength: 16, hash: "sha256" },
  TLS_AES_256_GCM_SHA384: { cipher: "aes-256-gcm", keyLength: 32, hash: "sha384" },
  TLS_CHACHA20_POLY1305_SHA256: { cipher: "chacha20-poly1305", keyLength: 32, hash: "sha256" },
};

/** HKDF-Expand-Label with an empty context (RFC 8446 §7.1); one HMAC block covers key and IV. */
function expandLabel(hash: string, secret: Buffer, label: string, length: number): Buffer {
  const full = Buffer.from(`tls13 ${label}`);
  const info = Buffer.concat([Buffer.from([length >> 8, length & 0xff, full.length]), full, Buffer.from([0])]);
  return createHmac(hash, secret).update(info).update(Buffer.from([1])).digest().subarray(0, length);
}

/** The encrypted record carrying a fatal `alert`, the `sequence`th under `secret`. */
export function alertRecord(suite: string, secret: Buffer, sequence: number, alert: TlsAlert): Buffer {
  const aead = SUITES[suite];
  if (!aead) throw new Error(`no TLS 1.3 suite ${suite}`);
  const key = expandLabel(aead.hash, secret, "key", aead.keyLength);
  const nonce = expandLabel(aead.hash, secret, "iv", 12);
  nonce.writeBigUInt64BE(nonce.readBigUInt64BE(4) ^ BigInt(sequence), 4);
  // TLSInnerPlaintext: level fatal (2), the description, then the real content type alert (21).
  const inner = Buffer.from([2, TLS_ALERTS[alert], 21]);
  // Outer header: application_data (23), legacy version 3.3, length of ciphertext + 16-byte tag.
  const header = Buffer.from([23, 3, 3, 0, inner.length + 16]);
  // (The cast picks one overload: GCM and ChaCha20-Poly1305 take the same arguments.)
  const cipher = createCipheriv(aead.cipher as "aes-128-gcm", key, nonce, { authTagLength: 16 });
  cipher.setAAD(header);
  return Buffer.concat([header, cipher.update(inner), cipher.final(), cipher.getAuthTag()]);
}

/**
 * Call on a server-side TLSSocket before its handshake runs (it starts capturing the server's
 * application traffic secret). Returns the way to refuse the peer once the handshake is done:
 * send it a fatal `alert`, then close `socket` and `raw`. Without a secret or with a suite we do
 * not know, that only closes.
 */
export function alertCloser(raw: net.Socket, socket: tls.TLSSocket, context: tls.SecureContext): (alert: TlsAlert) => Promise<void> {
  let secret: Buffer | undefined;
  const onKeylog = (line: Buffer) => {
    const match = /^SERVER_TRAFFIC_SECRET_0 \S+ ([0-9a-f]+)/.exec(line.toString("latin1"));
    if (!match) return;
    secret = Buffer.from(match[1], "hex");
    socket.off("keylog", onKeylog);
  };
  socket.on("keylog", onKeylog);

  return async (alert) => {
    const close = () => {
      socket.destroy();
      raw.destroy();
    };
    // A turn of the event loop first: 'secure' runs inside OpenSSL's handshake, and the tickets it
    // writes when that returns must go first (an alert sharing their sequence number would be
    // refused as a bad record, and would reuse their nonce). Also never free the TCP handle under
    // OpenSSL's callback (that crashed Node once, see handshake.ts).
    await new Promise((resolve) => setImmediate(resolve));
    const suite = socket.getCipher()?.standardName;
    if (!secret || !suite || !(suite in SUITES) || raw.destroyed) return close();
    const sequence = await ticketsPerHandshake(context).catch(() => undefined);
    if (sequence === undefined) return close();
    raw.write(alertRecord(suite, secret, sequence, alert), close);
  };
}
