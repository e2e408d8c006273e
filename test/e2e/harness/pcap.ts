// Reads a classic pcap file (what `tcpdump -w` writes) and answers the two questions the wire
// test asks: which TCP streams negotiated TLS 1.3, and do application bytes appear anywhere in
// clear. Pure functions over a Buffer.

export interface Segment {
  src: string;
  dst: string;
  seq: number;
  payload: Buffer;
}

const ETHERTYPE_IPV4 = 0x0800;
const ETHERTYPE_IPV6 = 0x86dd;
const ETHERTYPE_VLAN = 0x8100;
const LINKTYPE_ETHERNET = 1;
const LINKTYPE_LINUX_SLL = 113;

export function readSegments(file: Buffer): Segment[] {
  if (file.length < 24) return [];
  const magic = file.readUInt32LE(0);
  const le = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d;
  const be = magic === 0xd4c3b2a1 || magic === 0x4d3cb2a1;
  if (!le && !be) throw new Error("not a pcap file");
  const u32 = (off: number) => (le ? file.readUInt32LE(off) : file.readUInt32BE(off));
  const linkType = u32(20);
  const segments: Segment[] = [];
  let off = 24;
  while (off + 16 <= file.length) {
    const capLen = u32(off + 8);
    const frame = file.subarray(off + 16, off + 16 + capLen);
    off += 16 + capLen;
    const ipOffset = linkHeaderLength(frame, linkType);
    if (ipOffset === undefined) continue;
    const packet = frame.subarray(ipOffset);
    const segment = packet[0] >> 4 === 6 ? parseIpv6Tcp(packet) : parseIpv4Tcp(packet);
    if (segment) segments.push(segment);
  }
  return segments;
}

function linkHeaderLength(frame: Buffer, linkType: number): number | undefined {
  if (linkType === LINKTYPE_ETHERNET) {
    if (frame.length < 14) return undefined;
    let type = frame.readUInt16BE(12);
    let len = 14;
    if (type === ETHERTYPE_VLAN && frame.length >= 18) {
      type = frame.readUInt16BE(16);
      len = 18;
    }
    return type === ETHERTYPE_IPV4 || type === ETHERTYPE_IPV6 ? len : undefined;
  }
  if (linkType === LINKTYPE_LINUX_SLL) {
    return frame.length >= 16 && [ETHERTYPE_IPV4, ETHERTYPE_IPV6].includes(frame.readUInt16BE(14)) ? 16 : undefined;
  }
  return undefined;
}

function parseIpv4Tcp(ip: Buffer): Segment | undefined {
  if (ip.length < 20 || ip[0] >> 4 !== 4 || ip[9] !== 6) return undefined;
  const ihl = (ip[0] & 0x0f) * 4;
  const total = Math.min(ip.readUInt16BE(2), ip.length);
  const tcp = ip.subarray(ihl, total);
  if (tcp.length < 20) return undefined;
  const dataOffset = (tcp[12] >> 4) * 4;
  const addr = (o: number) => `${ip[o]}.${ip[o + 1]}.${ip[o + 2]}.${ip[o + 3]}`;
  return {
    src: `${addr(12)}:${tcp.readUInt16BE(0)}`,
    dst: `${addr(16)}:${tcp.readUInt16BE(2)}`,
    seq: tcp.readUInt32BE(4),
    payload: tcp.subarray(dataOffset),
  };
}

/**
 * TCP right after the fixed IPv6 header (no extension headers: the pods never send any).
 * Addresses are written `[compressed]:port`, the form wire.ts matches a pod's IPv6 address in.
 */
function parseIpv6Tcp(ip: Buffer): Segment | undefined {
  if (ip.length < 40 || ip[6] !== 6) return undefined;
  const tcp = ip.subarray(40, 40 + ip.readUInt16BE(4));
  if (tcp.length < 20) return undefined;
  const addr = (o: number) => ipv6Text(ip.subarray(o, o + 16));
  return {
    src: `[${addr(8)}]:${tcp.readUInt16BE(0)}`,
    dst: `[${addr(24)}]:${tcp.readUInt16BE(2)}`,
    seq: tcp.readUInt32BE(4),
    payload: tcp.subarray((tcp[12] >> 4) * 4),
  };
}

/** RFC 5952 text (what Node prints), by way of the URL parser's canonical IPv6 host. */
export function ipv6Text(bytes: Buffer): string {
  const groups = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i).toString(16));
  return new URL(`http://[${groups.join(":")}]/`).hostname.slice(1, -1);
}

export interface Stream {
  /** "src -> dst" of one direction of one TCP connection, as seen on the wire. */
  key: string;
  bytes: Buffer;
}

/** The payload of each direction, in sequence order, each segment once (retransmits dropped). */
export function reassemble(segments: Segment[]): Stream[] {
  const byKey = new Map<string, Map<number, Buffer>>();
  for (const s of segments) {
    if (s.payload.length === 0) continue;
    const key = `${s.src} -> ${s.dst}`;
    const bySeq = byKey.get(key) ?? new Map<number, Buffer>();
    if (!bySeq.has(s.seq)) bySeq.set(s.seq, s.payload);
    byKey.set(key, bySeq);
  }
  return [...byKey].map(([key, bySeq]) => {
    const ordered = [...bySeq].sort(([a], [b]) => (a - b) | 0);
    return { key, bytes: Buffer.concat(ordered.map(([, p]) => p)) };
  });
}

export interface TlsView {
  /** The first record is a TLS handshake record. */
  isTls: boolean;
  clientHelloOffers13: boolean;
  /** A ServerHello whose supported_versions extension selected TLS 1.3 (0x0304). */
  serverHelloSelected13: boolean;
  /** The key exchange group of the (last) ServerHello's key_share, e.g. 0x11ec X25519MLKEM768, 0x001d X25519. */
  serverHelloGroup?: number;
  /** The server answered with a HelloRetryRequest (a ServerHello with RFC 8446's fixed random) first. */
  helloRetryRequest: boolean;
  /** Record content types in order (22 handshake, 20 change_cipher_spec, 23 application_data, 21 alert). */
  recordTypes: number[];
  /**
   * Every byte belongs to a TLS record (the last one may be cut off by the capture's end). True
   * for a capture that starts in the middle of a long-lived TLS connection, too.
   */
  recordsOnly: boolean;
  /** Where record parsing stopped (bytes.length when it reached the end). */
  parsedTo: number;
}

const TLS_HANDSHAKE = 22;
const EXT_SUPPORTED_VERSIONS = 0x002b;
const EXT_KEY_SHARE = 0x0033;
/** RFC 8446 4.1.3: a ServerHello with this random is a HelloRetryRequest. */
const HELLO_RETRY_RANDOM = Buffer.from("cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c", "hex");
const TLS13 = 0x0304;

export function tlsView(bytes: Buffer): TlsView {
  const view: TlsView = { isTls: false, clientHelloOffers13: false, serverHelloSelected13: false, helloRetryRequest: false, recordTypes: [], recordsOnly: false, parsedTo: 0 };
  let off = 0;
  while (off + 5 <= bytes.length) {
    const type = bytes[off];
    const major = bytes[off + 1];
    const len = bytes.readUInt16BE(off + 3);
    view.parsedTo = off;
    if (![20, 21, 22, 23].includes(type) || major !== 3 || len > 16_384 + 256) return view;
    if (off === 0 && type === TLS_HANDSHAKE) view.isTls = true;
    view.recordTypes.push(type);
    const body = bytes.subarray(off + 5, off + 5 + len);
    if (type === TLS_HANDSHAKE && body.length >= 4) {
      if (body[0] === 1) view.clientHelloOffers13 ||= clientVersions(helloExtensions(body, true).get(EXT_SUPPORTED_VERSIONS)).includes(TLS13);
      if (body[0] === 2) {
        const extensions = helloExtensions(body, false);
        view.serverHelloSelected13 ||= extensions.get(EXT_SUPPORTED_VERSIONS)?.readUInt16BE(0) === TLS13;
        const keyShare = extensions.get(EXT_KEY_SHARE);
        if (keyShare && keyShare.length >= 2) view.serverHelloGroup = keyShare.readUInt16BE(0);
        view.helloRetryRequest ||= body.subarray(6, 38).equals(HELLO_RETRY_RANDOM);
      }
    }
    off += 5 + len;
  }
  view.recordsOnly = bytes.length > 0;
  view.parsedTo = bytes.length;
  return view;
}

/** The extensions of a ClientHello or ServerHello, by type (empty for a truncated hello). */
function helloExtensions(msg: Buffer, client: boolean): Map<number, Buffer> {
  const extensions = new Map<number, Buffer>();
  try {
    let p = 4 + 2 + 32; // handshake header, legacy_version, random
    p += 1 + msg[p]; // session id
    if (client) {
      p += 2 + msg.readUInt16BE(p); // cipher suites
      p += 1 + msg[p]; // compression methods
    } else {
      p += 2 + 1; // cipher suite, compression method
    }
    const end = p + 2 + msg.readUInt16BE(p);
    p += 2;
    while (p + 4 <= end) {
      const len = msg.readUInt16BE(p + 2);
      extensions.set(msg.readUInt16BE(p), msg.subarray(p + 4, p + 4 + len));
      p += 4 + len;
    }
  } catch {
    /* truncated hello: what was read so far */
  }
  return extensions;
}

/** The versions a ClientHello's supported_versions lists (a length byte, then 2-byte versions). */
function clientVersions(data: Buffer | undefined): number[] {
  const versions: number[] = [];
  if (!data || data.length === 0) return versions;
  for (let i = 1; i + 1 < 1 + data[0] && i + 1 < data.length; i += 2) versions.push(data.readUInt16BE(i));
  return versions;
}

/** How often `needle` occurs in clear in any reassembled stream. */
export function countPlaintext(streams: Stream[], needle: string): number {
  const n = Buffer.from(needle);
  let count = 0;
  for (const s of streams) {
    for (let i = s.bytes.indexOf(n); i !== -1; i = s.bytes.indexOf(n, i + 1)) count++;
  }
  return count;
}
