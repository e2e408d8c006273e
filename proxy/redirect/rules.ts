// The pod's redirection as iptables argv lists (nat table), rendered purely from RedirectOptions.
//
// Everything lives in our own chains so that a re-run replaces exactly our rules:
//   PREROUTING -p tcp → MESH_INBOUND: app ports → MESH_IN_REDIRECT (REDIRECT to the inbound listener)
//   OUTPUT     -p tcp → MESH_OUTBOUND: the proxy's UID, loopback, excluded ports and CIDRs RETURN;
//                                     the rest → MESH_REDIRECT (REDIRECT to the outbound listener)
// How install.ts applies them (the idempotence contract): `-N CHAIN` creates the chain or, if it
// already exists, flushes it; `-A` into a built-in chain (the jumps) is appended only when `-C`
// finds no identical rule; every other `-A` is appended into a chain that was just emptied.
import { inboundPortsKept, RedirectOptions } from "./options";

export const CHAINS = {
  inbound: "MESH_INBOUND",
  inboundRedirect: "MESH_IN_REDIRECT",
  outbound: "MESH_OUTBOUND",
  outboundRedirect: "MESH_REDIRECT",
} as const;

/** Chains the kernel owns: we only ever add one jump to each, never flush them. */
export const BUILTIN_CHAINS: readonly string[] = ["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"];

export type IpFamily = "ipv4" | "ipv6";

const LOOPBACK: Record<IpFamily, string> = { ipv4: "127.0.0.0/8", ipv6: "::1/128" };

export function renderRules(options: RedirectOptions, family: IpFamily = "ipv4"): string[][] {
  const nat = (...argv: string[]): string[] => ["-t", "nat", ...argv];
  const rules: string[][] = [];

  for (const chain of Object.values(CHAINS)) rules.push(nat("-N", chain));

  rules.push(nat("-A", CHAINS.inboundRedirect, "-p", "tcp", "-j", "REDIRECT", "--to-ports", String(options.inboundListener)));
  rules.push(nat("-A", CHAINS.outboundRedirect, "-p", "tcp", "-j", "REDIRECT", "--to-ports", String(options.outboundListener)));

  // Inbound: connections arriving from outside the pod for the app's ports.
  if (options.inboundPorts === "*") {
    // The proxy's own ports come first so that no later rule can capture them: redirecting the
    // listeners would loop, redirecting the admin port would hide the probes from the kubelet,
    // redirecting the tunnel port would hand meshed clients of opaque ports to the wrong listener.
    for (const port of inboundPortsKept(options)) rules.push(nat("-A", CHAINS.inbound, "-p", "tcp", "--dport", String(port), "-j", "RETURN"));
    rules.push(nat("-A", CHAINS.inbound, "-p", "tcp", "-j", CHAINS.inboundRedirect));
  } else {
    for (const port of options.inboundPorts) {
      rules.push(nat("-A", CHAINS.inbound, "-p", "tcp", "--dport", String(port), "-j", CHAINS.inboundRedirect));
    }
  }

  // Outbound: connections the pod's own processes open.
  rules.push(nat("-A", CHAINS.outbound, "-m", "owner", "--uid-owner", String(options.proxyUid), "-j", "RETURN"));
  // Loopback stays local: the proxy reaches the app on localhost, and a pod talking to itself
  // (its own pod IP is routed over lo too) needs no mesh hop.
  rules.push(nat("-A", CHAINS.outbound, "-o", "lo", "-j", "RETURN"));
  rules.push(nat("-A", CHAINS.outbound, "-d", LOOPBACK[family], "-j", "RETURN"));
  for (const port of options.excludeOutboundPorts) {
    rules.push(nat("-A", CHAINS.outbound, "-p", "tcp", "--dport", String(port), "-j", "RETURN"));
  }
  for (const cidr of options.excludeOutboundCidrs.filter((block) => familyOf(block) === family)) {
    rules.push(nat("-A", CHAINS.outbound, "-d", cidr, "-j", "RETURN"));
  }
  rules.push(nat("-A", CHAINS.outbound, "-p", "tcp", "-j", CHAINS.outboundRedirect));

  // The jumps go last: by the time traffic can enter our chains they are complete.
  rules.push(nat("-A", "PREROUTING", "-p", "tcp", "-j", CHAINS.inbound));
  rules.push(nat("-A", "OUTPUT", "-p", "tcp", "-j", CHAINS.outbound));
  return rules;
}

/** The rules as shell lines, for `--dry-run` and logs. */
export function formatRules(binary: string, rules: string[][]): string[] {
  return rules.map((argv) => [binary, ...argv].join(" "));
}

function familyOf(cidr: string): IpFamily {
  return cidr.includes(":") ? "ipv6" : "ipv4";
}
