// `mesh-proxy init`: the init container's job. Installs the pod's traffic redirection and exits.
// Exit codes: 0 installed (or printed, with --dry-run); 2 bad flag; 1 iptables missing, refused
// (no NET_ADMIN) or failed — for ip6tables too whenever the pod has IPv6: the pod must not start
// with a family that bypasses the mesh (fail closed).
import { Command } from "commander";
import { PROXY_PORTS, PROXY_UID } from "../wellknown";
import { installRules, RedirectInstallError } from "./install";
import { ipv6Status, Ipv6Status } from "./ipv6";
import { inboundPortsKept, parseInitFlags, RawInitFlags, RedirectInputError, RedirectOptions } from "./options";
import { formatRules, renderRules } from "./rules";

interface InitFlags extends RawInitFlags {
  dryRun?: boolean;
  iptables: string;
  ip6tables: string;
}

export function registerInitCommand(program: Command): void {
  program
    .command("init")
    .description("install the pod's traffic redirection (iptables nat rules) and exit; needs root with NET_ADMIN")
    .option("--inbound-ports <list>", 'app ports whose inbound TCP goes to the inbound listener, comma-separated, or "*" for all', "")
    .option("--exclude-inbound-ports <list>", "inbound ports never redirected (useful with --inbound-ports '*')", "")
    .option("--proxy-uid <uid>", "UID the proxy runs as; its own traffic is never redirected", String(PROXY_UID))
    .option("--inbound-listener <port>", "the proxy's inbound listener", String(PROXY_PORTS.inbound))
    .option("--outbound-listener <port>", "the proxy's outbound listener", String(PROXY_PORTS.outbound))
    .option("--exclude-outbound-ports <list>", "destination ports reached directly, comma-separated", "")
    .option("--exclude-outbound-cidrs <list>", "destination CIDR blocks reached directly, comma-separated", "")
    .option("--ipv6", "redirect IPv6 even if this network namespace seems to have none (default: whenever it has IPv6)")
    .option("--dry-run", "print the iptables commands and change nothing")
    .option("--iptables <path>", "iptables binary", "iptables")
    .option("--ip6tables <path>", "ip6tables binary", "ip6tables")
    .action(async (flags: InitFlags, command: Command) => {
      let options: RedirectOptions;
      try {
        options = parseInitFlags(flags);
      } catch (error) {
        if (error instanceof RedirectInputError) command.error(`mesh-proxy init: ${error.message}`, { exitCode: 2, code: "mesh.init.badInput" });
        throw error;
      }

      const ipv6: Ipv6Status = options.ipv6 === "required" ? { enabled: true, reason: "--ipv6" } : ipv6Status();
      const plan: Array<{ binary: string; rules: string[][]; family: string }> = [{ binary: flags.iptables, rules: renderRules(options, "ipv4"), family: "IPv4" }];
      if (ipv6.enabled) plan.push({ binary: flags.ip6tables, rules: renderRules(options, "ipv6"), family: "IPv6" });

      if (flags.dryRun) {
        const lines = [
          "# mesh-proxy init --dry-run: nothing was changed. On a real run, -N creates the chain or",
          "# flushes it if it exists, and a jump into PREROUTING/OUTPUT is added only if -C finds none.",
          `# IPv6 here: ${ipv6.enabled ? "redirected" : "not redirected"} (${ipv6.reason}).`,
          ...plan.flatMap((step) => formatRules(step.binary, step.rules)),
        ];
        process.stdout.write(lines.join("\n") + "\n");
        return;
      }

      for (const step of plan) {
        try {
          await installRules(step.binary, step.rules);
        } catch (error) {
          if (!(error instanceof RedirectInstallError)) throw error;
          // Say why IPv6 was attempted: the fix (install ip6tables, grant NET_ADMIN) is the same,
          // but "just skip IPv6" is not one of them.
          const context = step.family === "IPv6" ? `IPv6 must be redirected too (${ipv6.reason}), and it could not be: ` : "";
          command.error(`mesh-proxy init: ${context}${error.message}`, { exitCode: 1, code: `mesh.init.${error.kind}` });
        }
      }
      process.stdout.write(`mesh-proxy init: ${summary(options, ipv6)}\n`);
    });
}

function summary(options: RedirectOptions, ipv6: Ipv6Status): string {
  const inbound =
    options.inboundPorts === "*"
      ? `all inbound TCP except ${inboundPortsKept(options).join(",")}`
      : options.inboundPorts.length > 0
        ? `inbound TCP to ${options.inboundPorts.join(",")}`
        : "no inbound ports";
  return (
    `redirection installed${ipv6.enabled ? " (IPv4 and IPv6)" : ` (IPv4; no IPv6 to redirect: ${ipv6.reason})`}: ${inbound} → :${options.inboundListener}; ` +
    `outbound TCP → :${options.outboundListener}, except uid ${options.proxyUid}, loopback` +
    (options.excludeOutboundPorts.length > 0 ? `, ports ${options.excludeOutboundPorts.join(",")}` : "") +
    (options.excludeOutboundCidrs.length > 0 ? `, ${options.excludeOutboundCidrs.join(",")}` : "")
  );
}
