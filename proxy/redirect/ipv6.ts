// Does this network namespace carry IPv6? If it does, IPv6 must be redirected too: a peer dialling
// the pod's IPv6 address would otherwise reach the app with no mTLS and no authorization. The
// answer errs towards "yes" (then ip6tables runs, and its failure stops the pod): only a kernel
// that demonstrably has IPv6 off in this namespace gets IPv4 rules alone.
import * as fs from "fs";
import * as path from "path";

export interface Ipv6Status {
  enabled: boolean;
  /** Why, in words for the init container's log. */
  reason: string;
}

/**
 * Reads `<procNet>/ipv6` (/proc/sys/net is per network namespace, so this is the pod's own view):
 * absent = the kernel was booted without IPv6 (ipv6.disable=1); every `conf/<interface>/disable_ipv6`
 * at 1 = turned off by sysctl (also `default`, the value a later interface starts with). Anything
 * else, unreadable files included, counts as enabled.
 */
export function ipv6Status(procNet = "/proc/sys/net"): Ipv6Status {
  const ipv6 = path.join(procNet, "ipv6");
  if (!fs.existsSync(ipv6)) return { enabled: false, reason: `${ipv6} is absent (the kernel runs without IPv6)` };
  let entries: string[];
  try {
    entries = fs.readdirSync(path.join(ipv6, "conf"));
  } catch (error) {
    return { enabled: true, reason: `cannot list ${path.join(ipv6, "conf")} (${(error as Error).message}); assuming IPv6` };
  }
  const on = entries.filter((entry) => {
    try {
      return fs.readFileSync(path.join(ipv6, "conf", entry, "disable_ipv6"), "utf8").trim() !== "1";
    } catch {
      return true;
    }
  });
  if (entries.length > 0 && on.length === 0) return { enabled: false, reason: `disable_ipv6 is 1 on ${entries.join(", ")}` };
  return { enabled: true, reason: `IPv6 is enabled on ${on.join(", ")}` };
}
