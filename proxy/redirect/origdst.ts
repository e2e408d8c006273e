// The original destination of a redirected connection: after an iptables REDIRECT, the accepted
// socket's local address is the proxy's listener, and the kernel's conntrack entry still holds the
// address the application dialled. getsockopt(SO_ORIGINAL_DST) reads it back. One FFI call per
// accepted connection, no subprocess, no allocation beyond two small reused buffers.
import * as net from "net";
import koffi from "koffi";

export interface OriginalDestination {
  address: string;
  port: number;
}

// <linux/in.h> SOL_IP, <linux/netfilter_ipv4.h> SO_ORIGINAL_DST, <linux/in6.h> SOL_IPV6,
// <linux/netfilter_ipv6/ip6_tables.h> IP6T_SO_ORIGINAL_DST.
const SOL_IP = 0;
const SO_ORIGINAL_DST = 80;
const SOL_IPV6 = 41;
const IP6T_SO_ORIGINAL_DST = 80;
const AF_INET = 2;
const AF_INET6 = 10;
const SOCKADDR_IN6_SIZE = 28; // family(2) port(2) flowinfo(4) addr(16) scope_id(4); sockaddr_in fits in it.

type GetSockOpt = (fd: number, level: number, name: number, value: Buffer, length: Uint32Array) => number;

let getsockopt: GetSockOpt | null | undefined; // undefined: not loaded yet; null: unavailable here.

function loadGetsockopt(): GetSockOpt | null {
  if (getsockopt !== undefined) return getsockopt;
  try {
    // Buffers and typed arrays are passed in place as pointers: the kernel writes straight into them.
    const libc = koffi.load("libc.so.6");
    getsockopt = libc.func("int getsockopt(int fd, int level, int optname, void *optval, uint32_t *optlen)") as GetSockOpt;
  } catch {
    getsockopt = null; // Not glibc Linux: no redirection to undo, every lookup answers undefined.
  }
  return getsockopt;
}

// The accept path is single-threaded JS, so one scratch buffer per process is safe.
const scratch = Buffer.alloc(SOCKADDR_IN6_SIZE);
const scratchLength = new Uint32Array(1);

/**
 * The address the peer originally dialled before an iptables REDIRECT sent it to this socket's
 * listener, or undefined when the connection was not redirected (no NAT: the original destination
 * is the socket's own local address) or the lookup failed (no conntrack entry, closed socket).
 * IPv4 (including IPv4-mapped connections on a dual-stack listener) and IPv6.
 */
export function originalDestination(socket: net.Socket): OriginalDestination | undefined {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== "number" || fd < 0) return undefined;
  const call = loadGetsockopt();
  if (call === null) return undefined;

  // conntrack keys the lookup on the connection's own family: an IPv4 client on a "::" listener
  // (local address ::ffff:a.b.c.d) is an IPv4 connection and needs SOL_IP.
  const local = socket.localAddress;
  const ipv4 = socket.localFamily === "IPv4" || (local !== undefined && local.startsWith("::ffff:") && net.isIPv4(local.slice(7)));
  scratchLength[0] = SOCKADDR_IN6_SIZE;
  const rc = ipv4
    ? call(fd, SOL_IP, SO_ORIGINAL_DST, scratch, scratchLength)
    : call(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, scratch, scratchLength);
  if (rc !== 0) return undefined;

  const destination = decodeSockaddr(scratch, scratchLength[0]);
  if (destination === undefined) return undefined;
  const localPort = socket.localPort;
  if (destination.port === localPort && sameAddress(destination.address, local)) return undefined;
  return destination;
}

function decodeSockaddr(buffer: Buffer, length: number): OriginalDestination | undefined {
  const family = buffer.readUInt16LE(0); // sa_family_t is host order: little-endian on x86-64 and arm64.
  const port = buffer.readUInt16BE(2);
  if (family === AF_INET && length >= 8) {
    return { address: `${buffer[4]}.${buffer[5]}.${buffer[6]}.${buffer[7]}`, port };
  }
  if (family === AF_INET6 && length >= 24) {
    const groups: string[] = [];
    for (let offset = 8; offset < 24; offset += 2) groups.push(buffer.readUInt16BE(offset).toString(16));
    return { address: compactIPv6(groups), port };
  }
  return undefined;
}

/** RFC 5952 text form (the one Node reports for socket addresses): longest zero run as "::". */
function compactIPv6(groups: string[]): string {
  let bestStart = -1;
  let bestLength = 1; // A single zero group is not compressed.
  for (let i = 0; i < groups.length; ) {
    if (groups[i] !== "0") {
      i++;
      continue;
    }
    let j = i;
    while (j < groups.length && groups[j] === "0") j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const mapped = bestStart === 0 && bestLength === 5 && groups[5] === "ffff";
  if (mapped) {
    const high = parseInt(groups[6], 16);
    const low = parseInt(groups[7], 16);
    return `::ffff:${high >> 8}.${high & 255}.${low >> 8}.${low & 255}`;
  }
  if (bestStart < 0) return groups.join(":");
  return `${groups.slice(0, bestStart).join(":")}::${groups.slice(bestStart + bestLength).join(":")}`;
}

function sameAddress(a: string, b: string | undefined): boolean {
  if (b === undefined) return false;
  const unmapped = b.startsWith("::ffff:") && net.isIPv4(b.slice(7)) ? b.slice(7) : b;
  return a === unmapped || a === b;
}
