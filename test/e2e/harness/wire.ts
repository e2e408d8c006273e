// What a packet capture says about one client's traffic: TLS 1.3 only, or application bytes in
// clear. Pure, over the streams pcap.ts reassembled.
import { POD_CIDR, POD_CIDR6 } from "./names";
import { countPlaintext, Stream, tlsView } from "./pcap";

export type WireVerdict = "TLS 1.3" | "TLS (pooled conn.)" | "plaintext" | "no bytes" | "unrecognised";

export interface WireReport {
  verdict: WireVerdict;
  /** Occurrences of each needle in clear, in streams to or from the client's pod IP. */
  plaintextHits: Record<string, number>;
  /** A ServerHello that selected TLS 1.3 was seen on one of those streams. */
  tls13Handshake: boolean;
  /** Every byte of every such stream is a TLS record. */
  allTls: boolean;
  streams: number;
  /** Streams that are not TLS records throughout: where parsing stopped and what is there. */
  nonTls: { key: string; length: number; at: number; next: string }[];
}

/**
 * Streams between `ip` (IPv4, or IPv6 as pcap.ts writes it: `[addr]`) and other pods or Services
 * (each connection appears twice on the bridge: before and after DNAT). The node's own traffic —
 * kubelet probes, metrics scrapes on the proxy's plaintext admin port — is not pod traffic and is
 * left out.
 */
export function streamsOf(streams: Stream[], ip: string): Stream[] {
  const nodes = [`${POD_CIDR.gateway}:`, `[${POD_CIDR6.gateway}]:`];
  const fromNode = (key: string) => nodes.some((node) => key.startsWith(node) || key.includes(` -> ${node}`));
  return streams.filter((s) => s.bytes.length > 0 && (s.key.startsWith(`${ip}:`) || s.key.includes(` -> ${ip}:`)) && !fromNode(s.key));
}

export function wireReport(streams: Stream[], clientIp: string, needles: string[]): WireReport {
  const mine = streamsOf(streams, clientIp);
  const plaintextHits = Object.fromEntries(needles.map((n) => [n, countPlaintext(mine, n)]));
  const views = mine.map((s) => tlsView(s.bytes));
  const allTls = views.length > 0 && views.every((v) => v.recordsOnly);
  const tls13Handshake = views.some((v) => v.serverHelloSelected13);
  let verdict: WireVerdict;
  if (Object.values(plaintextHits).some((n) => n > 0)) verdict = "plaintext";
  else if (mine.length === 0) verdict = "no bytes";
  else if (allTls) verdict = tls13Handshake ? "TLS 1.3" : "TLS (pooled conn.)";
  else verdict = "unrecognised";
  const nonTls = mine.flatMap((s, i) =>
    views[i].recordsOnly ? [] : [{ key: s.key, length: s.bytes.length, at: views[i].parsedTo, next: s.bytes.subarray(views[i].parsedTo, views[i].parsedTo + 16).toString("hex") }],
  );
  return { verdict, plaintextHits, tls13Handshake, allTls, streams: mine.length, nonTls };
}
