// The two mTLS handshakes, with every failure turned into a refusal reason:
//   acceptMtls: server side of an inbound connection (the client must present an SVID);
//   originateMtls: client side towards another proxy (the server must present the expected SVID:
//   secure naming; a wrong ID aborts before any application byte is written).
import * as net from "net";
import * as tls from "tls";
import { alertCloser, TlsAlert } from "./alert";
import { Identity, MESH_ALPN } from "./identity";
import { checkPeerCertificate, PeerRefusal } from "./verify";

export class Refusal extends Error {
  constructor(
    readonly reason: string,
    detail: string,
  ) {
    super(detail);
  }
}

export interface AcceptedMtls {
  socket: tls.TLSSocket;
  peer: string;
  /** "h2" when the client asked for the tunnel, else one connection per stream ("tcp"). */
  transport: "h2" | "tcp";
  /** Refuses the authenticated peer after all (authorization): access_denied alert, then close. */
  deny(): void;
}

/** OpenSSL verify codes (peer chain) → refusal reasons. */
function verifyReason(code: string): string {
  if (code === "CERT_HAS_EXPIRED") return "certificate_expired";
  if (code === "CERT_NOT_YET_VALID") return "certificate_not_yet_valid";
  return "untrusted_certificate";
}

/** OpenSSL verify codes → the alert OpenSSL itself would send for them (ssl_x509err2alert). */
function verifyAlert(code: string): TlsAlert {
  if (code === "CERT_HAS_EXPIRED" || code === "CERT_NOT_YET_VALID") return "certificate_expired";
  if (/^(UNABLE_TO_GET_ISSUER_CERT(_LOCALLY)?|SELF_SIGNED_CERT_IN_CHAIN|DEPTH_ZERO_SELF_SIGNED_CERT|UNABLE_TO_VERIFY_LEAF_SIGNATURE)$/.test(code)) {
    return "unknown_ca";
  }
  if (code === "INVALID_PURPOSE") return "unsupported_certificate";
  return "bad_certificate";
}

/** Our SVID checks → alerts (RFC 8446 §6.2). */
function svidAlert(reason: PeerRefusal): TlsAlert {
  if (reason === "unparsable_certificate") return "bad_certificate"; // "corrupt"
  if (reason === "missing_eku") return "unsupported_certificate"; // as OpenSSL for a wrong purpose
  return "certificate_unknown"; // chains to our CA, but is no SVID of our trust domain for a client
}

/** Handshake errors → refusal reasons (the OpenSSL code stays in the log detail). */
function handshakeReason(error: NodeJS.ErrnoException): string {
  const code = error.code ?? "";
  if (code === "ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE") return "no_client_certificate";
  if (/UNSUPPORTED_PROTOCOL|NO_PROTOCOLS_AVAILABLE|PROTOCOL_VERSION|WRONG_VERSION_NUMBER|VERSION_TOO_LOW/.test(code)) {
    return "tls_version";
  }
  if (code === "ECONNRESET" || code === "EPIPE") return "handshake_eof";
  return "handshake_failed";
}

function describe(error: NodeJS.ErrnoException): string {
  return error.code ? `${error.code}: ${error.message}` : error.message;
}

// Node keeps the chain verification result on the TLS handle; the public `authorized` flag is only
// set for sockets accepted by a tls.Server, and we wrap sockets ourselves (after sniffing).
function chainVerifyError(socket: tls.TLSSocket): NodeJS.ErrnoException | null {
  const handle = (socket as unknown as { _handle?: { verifyError(): NodeJS.ErrnoException | null } })._handle;
  if (!handle) return new Error("socket closed during verification") as NodeJS.ErrnoException;
  return handle.verifyError();
}

/**
 * Runs the server side of mTLS on a raw (paused, possibly sniffed) socket. Resolves with the
 * verified peer, or rejects with a Refusal after destroying the socket.
 */
export function acceptMtls(raw: net.Socket, identity: Identity, trustDomain: string, timeoutMs: number): Promise<AcceptedMtls> {
  return new Promise((resolve, reject) => {
    const socket = new tls.TLSSocket(raw, {
      isServer: true,
      secureContext: identity.context,
      requestCert: true,
      rejectUnauthorized: true,
      ALPNProtocols: [MESH_ALPN.h2, MESH_ALPN.tcp],
    });
    // A peer refused after the handshake (chain, SVID, authorization) learns why from an alert.
    const closeWithAlert = alertCloser(raw, socket, identity.context);
    let settled = false;
    const refuse = (reason: string, detail: string, alert?: TlsAlert) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (alert) void closeWithAlert(alert);
      else {
        socket.destroy();
        // Not synchronously: this can run inside OpenSSL's callback for a handshake error, and
        // freeing the TCP handle under it crashed Node (seen with a resumption attempt).
        setImmediate(() => raw.destroy());
      }
      reject(new Refusal(reason, detail));
    };
    const timer = setTimeout(() => refuse("handshake_timeout", `no completed handshake after ${timeoutMs} ms`), timeoutMs);
    socket.on("error", (error: NodeJS.ErrnoException) => refuse(handshakeReason(error), describe(error)));
    socket.once("end", () => refuse("handshake_eof", "peer closed during the handshake"));
    socket.once("close", () => refuse("handshake_eof", "peer closed during the handshake"));
    socket.once("secure", () => {
      const verifyError = chainVerifyError(socket);
      if (verifyError) return refuse(verifyReason(verifyError.code ?? ""), describe(verifyError), verifyAlert(verifyError.code ?? ""));
      const cert = socket.getPeerX509Certificate();
      if (!cert) return refuse("no_client_certificate", "the client sent no certificate");
      const check = checkPeerCertificate(cert.raw, "client", trustDomain, cert.fingerprint256);
      if (!check.ok) return refuse(check.reason, check.detail, svidAlert(check.reason));
      settled = true;
      clearTimeout(timer);
      // tls.Server clears this when it hands a socket over; we wrapped the socket ourselves, and
      // http2 waits for the flag before it reads.
      (socket as unknown as { secureConnecting: boolean }).secureConnecting = false;
      // The listeners above stay: after settling they do nothing, and an error between now and the
      // caller's own listener must not become an uncaught exception.
      resolve({
        socket,
        peer: check.id,
        transport: socket.alpnProtocol === MESH_ALPN.h2 ? "h2" : "tcp",
        deny: () => void closeWithAlert("access_denied"),
      });
    });
  });
}

/**
 * Did the server show it does not speak TLS at all (it answered our ClientHello with bytes that
 * are not a TLS record)? A close, an alert, a bad certificate or the wrong SPIFFE ID do not count:
 * a server proxy refusing us looks like that, and it must fail closed.
 */
export function serverSpokeNoTls(refusal: Refusal): boolean {
  return refusal.reason === "handshake_failed" && /WRONG_VERSION_NUMBER|PACKET_LENGTH_TOO_LONG/.test(refusal.message);
}

export interface OriginateOptions {
  host: string;
  port: number;
  expectedId: string;
  alpn: string;
  trustDomain: string;
  timeoutMs: number;
}

/**
 * Connects to another proxy with mTLS. Resolves once the server's chain AND its SPIFFE ID have
 * been checked; nothing has been written by the caller before that. Rejects with a Refusal.
 */
export function originateMtls(identity: Identity, o: OriginateOptions): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    let naming: Refusal | undefined;
    // Our own TCP socket, so that half-close (allowHalfOpen) carries through the TLS layer.
    // TCP keepalive frees connections (and pooled sessions) whose peer vanished (catalogue #29).
    const tcp = net.connect({ host: o.host, port: o.port, allowHalfOpen: true, noDelay: true, keepAlive: true, keepAliveInitialDelay: 60_000 });
    const socket = tls.connect({
      socket: tcp,
      secureContext: identity.context,
      ALPNProtocols: [o.alpn],
      // SNI never grants identity; the server ignores it. Do not leak the target's name.
      servername: "",
      checkServerIdentity: (_host: string, cert: tls.PeerCertificate): Error | undefined => {
        const check = checkPeerCertificate(cert.raw, "server", o.trustDomain, cert.fingerprint256);
        if (!check.ok) naming = new Refusal(`server_${check.reason}`, check.detail);
        else if (check.id !== o.expectedId) {
          naming = new Refusal("server_identity_mismatch", `server presented ${check.id}, expected ${o.expectedId}`);
        }
        return naming;
      },
    });
    let settled = false;
    const fail = (refusal: Refusal) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      setImmediate(() => tcp.destroy()); // As in acceptMtls: never under OpenSSL's callback.
      reject(refusal);
    };
    const timer = setTimeout(() => fail(new Refusal("handshake_timeout", `no handshake with ${o.host}:${o.port} after ${o.timeoutMs} ms`)), o.timeoutMs);
    const onError = (error: NodeJS.ErrnoException) => {
      if (naming) return fail(naming);
      const code = error.code ?? "";
      if (code === "ECONNREFUSED" || code === "EHOSTUNREACH" || code === "ENETUNREACH" || code === "ETIMEDOUT") {
        return fail(new Refusal("upstream_unavailable", describe(error)));
      }
      if (code === "CERT_HAS_EXPIRED" || code === "CERT_NOT_YET_VALID" || /CERT|SIGNATURE|ISSUER/.test(code)) {
        return fail(new Refusal(`server_${verifyReason(code)}`, describe(error)));
      }
      fail(new Refusal("handshake_failed", describe(error)));
    };
    tcp.on("error", onError);
    socket.on("error", onError);
    socket.once("close", () => fail(new Refusal("handshake_eof", `${o.host}:${o.port} closed during the handshake`)));
    socket.once("secureConnect", () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(socket);
    });
  });
}
