// The gRPC health check a kubelet `grpc:` probe makes, for the admin port to make on the kubelet's
// behalf: grpc.health.v1.Health/Check over h2c (HTTP/2 without TLS, as the kubelet dials), healthy
// only when the answer is SERVING. The two messages are tiny protobufs, encoded here by hand:
//   HealthCheckRequest  { string service = 1; }
//   HealthCheckResponse { ServingStatus status = 1; }  UNKNOWN 0, SERVING 1, NOT_SERVING 2, SERVICE_UNKNOWN 3
import * as http2 from "http2";
import type { Duplex } from "stream";

export const HEALTH_CHECK_PATH = "/grpc.health.v1.Health/Check";
export const SERVING_STATUS = ["UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN"] as const;
const SERVING = 1;
/** A health answer is a few bytes; anything this large is not one. */
const MAX_RESPONSE_BYTES = 64 * 1024;

export interface GrpcHealthResult {
  serving: boolean;
  /** For the probe's answer and the kubelet's event: the status, or why there is none. */
  detail: string;
}

function varint(value: number): Buffer {
  const bytes: number[] = [];
  while (value > 0x7f) {
    bytes.push((value & 0x7f) | 0x80);
    value >>>= 7;
  }
  bytes.push(value);
  return Buffer.from(bytes);
}

/** HealthCheckRequest: field 1 (tag 0x0a: number 1, wire type 2) when `service` is not empty; proto3 omits "". */
export function encodeHealthCheckRequest(service: string): Buffer {
  if (service === "") return Buffer.alloc(0);
  const text = Buffer.from(service, "utf8");
  return Buffer.concat([Buffer.from([0x0a]), varint(text.length), text]);
}

/** The `status` of a HealthCheckResponse (0, UNKNOWN, when absent); unknown fields are skipped. */
export function decodeHealthCheckResponse(message: Buffer): number {
  let offset = 0;
  let status = 0;
  const readVarint = (): number => {
    let value = 0;
    for (let shift = 0; shift < 35; shift += 7) {
      if (offset >= message.length) throw new Error("truncated varint");
      const byte = message[offset++];
      value += (byte & 0x7f) * 2 ** shift;
      if ((byte & 0x80) === 0) return value;
    }
    throw new Error("varint too long");
  };
  while (offset < message.length) {
    const tag = readVarint();
    const [field, wireType] = [Math.floor(tag / 8), tag & 7];
    if (wireType === 0) {
      const value = readVarint();
      if (field === 1) status = value;
    } else if (wireType === 2) {
      const length = readVarint(); // not `offset += readVarint()`: that adds to the offset before the read
      offset += length;
    } else if (wireType === 1) {
      offset += 8;
    } else if (wireType === 5) {
      offset += 4;
    } else {
      throw new Error(`unsupported wire type ${wireType}`);
    }
    if (offset > message.length) throw new Error("truncated field");
  }
  return status;
}

/** The gRPC length-prefixed message: compressed flag 0, big-endian length, the bytes. */
export function grpcFrame(message: Buffer): Buffer {
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(message.length, 1);
  return Buffer.concat([prefix, message]);
}

/** The one message of a unary response body, or why it is not there. */
export function grpcUnframe(body: Buffer): Buffer {
  if (body.length < 5) throw new Error(`response body of ${body.length} bytes has no gRPC message`);
  if (body[0] !== 0) throw new Error("compressed response (none was offered)");
  const length = body.readUInt32BE(1);
  if (body.length < 5 + length) throw new Error("truncated gRPC message");
  return body.subarray(5, 5 + length);
}

export interface GrpcHealthTarget {
  /** http://host:port, for :authority. */
  authority: string;
  service: string;
  timeoutMs: number;
  /** A connection already opened to the target (the e2e harness dials from another namespace). */
  connection?: Duplex;
}

/** One Health/Check call; never rejects: every failure is `serving: false` with the reason. */
export function checkGrpcHealth(target: GrpcHealthTarget): Promise<GrpcHealthResult> {
  return new Promise((resolve) => {
    let settled = false;
    const session = http2.connect(target.authority, target.connection ? { createConnection: () => target.connection! } : {});
    const finish = (result: GrpcHealthResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      session.destroy();
      resolve(result);
    };
    const timer = setTimeout(() => finish({ serving: false, detail: `no answer within ${target.timeoutMs} ms` }), target.timeoutMs);
    session.once("error", (error) => finish({ serving: false, detail: error.message }));

    const request = session.request({
      ":method": "POST",
      ":path": HEALTH_CHECK_PATH,
      "content-type": "application/grpc",
      te: "trailers",
      "user-agent": "mesh-proxy-grpc-probe",
    });
    request.once("error", (error) => finish({ serving: false, detail: error.message }));
    const chunks: Buffer[] = [];
    let size = 0;
    let headers: http2.IncomingHttpHeaders = {};
    let grpcStatus: string | undefined;
    let grpcMessage: string | undefined;
    const readStatus = (h: http2.IncomingHttpHeaders) => {
      if (h["grpc-status"] !== undefined) grpcStatus = String(h["grpc-status"]);
      if (h["grpc-message"] !== undefined) grpcMessage = decodeURIComponent(String(h["grpc-message"]));
    };
    request.once("response", (h) => {
      headers = h;
      readStatus(h); // a "trailers-only" answer (an error) carries its status in the headers
    });
    request.once("trailers", readStatus);
    request.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_RESPONSE_BYTES) return finish({ serving: false, detail: `response larger than ${MAX_RESPONSE_BYTES} bytes` });
      chunks.push(chunk);
    });
    // A peer that closes without answering (a strict proxy refusing plaintext) ends the stream
    // with no headers at all; `close` also covers a stream reset without an error event.
    request.once("close", () => finish({ serving: false, detail: "the connection closed without an answer" }));
    request.once("end", () => {
      if (headers[":status"] === undefined) return finish({ serving: false, detail: "the connection closed without an answer" });
      if (Number(headers[":status"]) !== 200) return finish({ serving: false, detail: `HTTP status ${headers[":status"]} (not a gRPC server?)` });
      if (grpcStatus !== "0") return finish({ serving: false, detail: `gRPC status ${grpcStatus ?? "missing"}${grpcMessage ? `: ${grpcMessage}` : ""}` });
      try {
        const status = decodeHealthCheckResponse(grpcUnframe(Buffer.concat(chunks)));
        finish({ serving: status === SERVING, detail: SERVING_STATUS[status] ?? `status ${status}` });
      } catch (error) {
        finish({ serving: false, detail: `bad HealthCheckResponse: ${(error as Error).message}` });
      }
    });
    request.end(grpcFrame(encodeHealthCheckRequest(target.service)));
  });
}
