import * as assert from "assert";
import { execFile } from "child_process";
import * as fs from "fs";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import { initArgs } from "../../components/inject";
import { describeFailure } from "../../proxy/redirect/install";
import { ipv6Status } from "../../proxy/redirect/ipv6";
import { originalDestination } from "../../proxy/redirect/origdst";
import { parseInitFlags, RawInitFlags, RedirectInputError, RedirectOptions } from "../../proxy/redirect/options";
import { CHAINS, renderRules } from "../../proxy/redirect/rules";
import { PROXY_PORTS, PROXY_UID } from "../../proxy/wellknown";

function options(raw: RawInitFlags): RedirectOptions {
  return parseInitFlags(raw);
}

function refusal(raw: RawInitFlags): RedirectInputError {
  try {
    parseInitFlags(raw);
  } catch (error) {
    if (error instanceof RedirectInputError) return error;
    throw error;
  }
  assert.fail(`accepted ${JSON.stringify(raw)}`);
}

/** Rules as the lines iptables-save would print them (without its added -m tcp), for readable asserts. */
function lines(rules: string[][]): string[] {
  return rules.map((argv) => argv.join(" "));
}

describe("proxy/redirect flags", () => {
  it("defaults to the pod contract: uid 1337, listeners 15006/15001, admin 15021, tunnel 15008, no ports", () => {
    const parsed = options({});
    assert.deepStrictEqual(parsed, {
      inboundPorts: [],
      excludeInboundPorts: [],
      proxyUid: PROXY_UID,
      inboundListener: PROXY_PORTS.inbound,
      outboundListener: PROXY_PORTS.outbound,
      adminPort: PROXY_PORTS.admin,
      tunnelPort: PROXY_PORTS.tunnel,
      excludeOutboundPorts: [],
      excludeOutboundCidrs: [],
      ipv6: "auto",
    });
  });

  it("parses the lists the components render", () => {
    const parsed = options({
      inboundPorts: "8080,9090,8080",
      proxyUid: "1337",
      excludeOutboundPorts: " 5432 , 6379",
      excludeOutboundCidrs: "10.96.0.0/12,169.254.169.254",
      excludeInboundPorts: "9090",
    });
    assert.deepStrictEqual(parsed.inboundPorts, [8080], "duplicates dropped, excluded inbound port removed");
    assert.deepStrictEqual(parsed.excludeOutboundPorts, [5432, 6379]);
    assert.deepStrictEqual(parsed.excludeOutboundCidrs, ["10.96.0.0/12", "169.254.169.254/32"]);
  });

  it("accepts * for every inbound port", () => {
    assert.strictEqual(options({ inboundPorts: "*" }).inboundPorts, "*");
  });

  const bad: Array<[string, RawInitFlags, RegExp]> = [
    ["a non-numeric port", { inboundPorts: "80x" }, /^--inbound-ports: "80x" is not a port/],
    ["port 0", { inboundPorts: "0" }, /^--inbound-ports: "0" is not a port/],
    ["port 65536", { excludeOutboundPorts: "65536" }, /^--exclude-outbound-ports: "65536" is not a port/],
    ["an empty list item", { inboundPorts: "8080,,9090" }, /^--inbound-ports: .* has an empty item/],
    ["* mixed with ports", { inboundPorts: "*,8080" }, /^--inbound-ports: "\*" is not a port/],
    ["the inbound listener as an app port", { inboundPorts: "8080,15006" }, /^--inbound-ports: 15006 is one of the proxy's own ports/],
    ["the outbound listener as an app port", { inboundPorts: "15001" }, /^--inbound-ports: 15001 is one of the proxy's own ports/],
    ["the admin port as an app port", { inboundPorts: "15021" }, /^--inbound-ports: 15021 is one of the proxy's own ports/],
    ["a moved listener as an app port", { inboundPorts: "16000", inboundListener: "16000" }, /^--inbound-ports: 16000 is one of/],
    ["equal listeners", { inboundListener: "15001" }, /^--outbound-listener: 15001 is also the inbound listener/],
    ["a listener on the admin port", { outboundListener: "15021" }, /^--outbound-listener: 15021 is the proxy's admin port/],
    ["the tunnel port as an app port", { inboundPorts: "15008" }, /^--inbound-ports: 15008 is one of the proxy's own ports/],
    ["a listener on the tunnel port", { inboundListener: "15008" }, /^--inbound-listener: 15008 is the proxy's tunnel port/],
    ["a UID that is not a number", { proxyUid: "istio" }, /^--proxy-uid: "istio" is not a numeric UID/],
    ["a negative UID", { proxyUid: "-1" }, /^--proxy-uid: "-1" is not a numeric UID/],
    ["root as the proxy UID", { proxyUid: "0" }, /^--proxy-uid: 0 \(root\) cannot be/],
    ["a CIDR with octet 256", { excludeOutboundCidrs: "10.0.0.256/32" }, /^--exclude-outbound-cidrs: "10.0.0.256\/32" is not a CIDR/],
    ["a CIDR with three octets", { excludeOutboundCidrs: "10.0.0/24" }, /^--exclude-outbound-cidrs: "10.0.0\/24" is not a CIDR/],
    ["a CIDR with a leading-zero octet", { excludeOutboundCidrs: "010.0.0.0/8" }, /is not a CIDR/],
    ["a CIDR with prefix 33", { excludeOutboundCidrs: "10.0.0.0/33" }, /^--exclude-outbound-cidrs: "10.0.0.0\/33" has a bad prefix length \(0-32\)/],
    ["a CIDR with an empty prefix", { excludeOutboundCidrs: "10.0.0.0/" }, /has a bad prefix length/],
    ["a CIDR with a signed prefix", { excludeOutboundCidrs: "10.0.0.0/+8" }, /has a bad prefix length/],
    ["a host name as a CIDR", { excludeOutboundCidrs: "kubernetes.default" }, /is not a CIDR/],
  ];
  for (const [what, raw, message] of bad) {
    it(`refuses ${what}, naming the flag`, () => {
      const error = refusal(raw);
      assert.match(error.message, message);
      assert.ok(!error.message.includes("\n"), "one line");
    });
  }

  it("accepts IPv6 CIDRs without --ipv6 (IPv6 is redirected whenever the pod has it)", () => {
    assert.deepStrictEqual(options({ excludeOutboundCidrs: "FD00::/8,::1" }).excludeOutboundCidrs, ["fd00::/8", "::1/128"]);
  });

  it("redirects IPv6 by detection unless --ipv6 requires it", () => {
    assert.strictEqual(options({}).ipv6, "auto");
    assert.strictEqual(options({ ipv6: true }).ipv6, "required");
  });
});

describe("proxy/redirect renderRules", () => {
  const base = options({ inboundPorts: "8080,9090" });

  it("creates its own nat chains first and jumps into them last", () => {
    const rules = renderRules(base);
    assert.ok(rules.every((argv) => argv[0] === "-t" && argv[1] === "nat"), "nat table only");
    assert.deepStrictEqual(lines(rules.slice(0, 4)), Object.values(CHAINS).map((chain) => `-t nat -N ${chain}`));
    assert.deepStrictEqual(lines(rules.slice(-2)), ["-t nat -A PREROUTING -p tcp -j MESH_INBOUND", "-t nat -A OUTPUT -p tcp -j MESH_OUTBOUND"]);
    const builtin = rules.filter((argv) => ["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"].includes(argv[3]));
    assert.strictEqual(builtin.length, 2, "exactly one jump per built-in chain, nothing else in them");
  });

  it("redirects exactly the app ports inbound to the inbound listener", () => {
    const text = lines(renderRules(base));
    assert.ok(text.includes("-t nat -A MESH_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006"));
    const inbound = text.filter((line) => line.startsWith("-t nat -A MESH_INBOUND "));
    assert.deepStrictEqual(inbound, [
      "-t nat -A MESH_INBOUND -p tcp --dport 8080 -j MESH_IN_REDIRECT",
      "-t nat -A MESH_INBOUND -p tcp --dport 9090 -j MESH_IN_REDIRECT",
    ]);
  });

  it("with * returns the proxy's own ports and the excluded ones before redirecting the rest", () => {
    const text = lines(renderRules(options({ inboundPorts: "*", excludeInboundPorts: "22" })));
    const inbound = text.filter((line) => line.startsWith("-t nat -A MESH_INBOUND "));
    assert.deepStrictEqual(inbound, [
      "-t nat -A MESH_INBOUND -p tcp --dport 15006 -j RETURN",
      "-t nat -A MESH_INBOUND -p tcp --dport 15001 -j RETURN",
      "-t nat -A MESH_INBOUND -p tcp --dport 15021 -j RETURN",
      "-t nat -A MESH_INBOUND -p tcp --dport 15008 -j RETURN",
      "-t nat -A MESH_INBOUND -p tcp --dport 22 -j RETURN",
      "-t nat -A MESH_INBOUND -p tcp -j MESH_IN_REDIRECT",
    ]);
  });

  it("never redirects the proxy's own ports inbound, whatever the flags", () => {
    for (const raw of [{ inboundPorts: "*" }, { inboundPorts: "1,80,8080,65535" }, { inboundPorts: "*", inboundListener: "16006", outboundListener: "16001" }]) {
      const parsed = options(raw);
      const own = [parsed.inboundListener, parsed.outboundListener, parsed.adminPort, parsed.tunnelPort].map(String);
      const inbound = renderRules(parsed).filter((argv) => argv[2] === "-A" && argv[3] === CHAINS.inbound);
      for (const argv of inbound) {
        const port = argv[argv.indexOf("--dport") + 1];
        if (argv.includes("--dport") && own.includes(port)) assert.strictEqual(argv[argv.length - 1], "RETURN", argv.join(" "));
      }
      const catchAll = inbound.findIndex((argv) => !argv.includes("--dport"));
      if (catchAll >= 0) {
        const returned = inbound.slice(0, catchAll).map((argv) => argv[argv.indexOf("--dport") + 1]);
        for (const port of own) assert.ok(returned.includes(port), `${port} returns before the catch-all`);
      }
    }
  });

  it("skips the proxy's UID, then loopback, then excluded ports and CIDRs, then redirects the rest outbound", () => {
    const parsed = options({ proxyUid: "1500", excludeOutboundPorts: "5432", excludeOutboundCidrs: "10.96.0.0/12" });
    const outbound = lines(renderRules(parsed)).filter((line) => line.startsWith("-t nat -A MESH_OUTBOUND "));
    assert.deepStrictEqual(outbound, [
      "-t nat -A MESH_OUTBOUND -m owner --uid-owner 1500 -j RETURN",
      "-t nat -A MESH_OUTBOUND -o lo -j RETURN",
      "-t nat -A MESH_OUTBOUND -d 127.0.0.0/8 -j RETURN",
      "-t nat -A MESH_OUTBOUND -p tcp --dport 5432 -j RETURN",
      "-t nat -A MESH_OUTBOUND -d 10.96.0.0/12 -j RETURN",
      "-t nat -A MESH_OUTBOUND -p tcp -j MESH_REDIRECT",
    ]);
    assert.ok(lines(renderRules(parsed)).includes("-t nat -A MESH_REDIRECT -p tcp -j REDIRECT --to-ports 15001"));
  });

  it("renders the IPv6 variant with ::1 as loopback and only the IPv6 CIDRs", () => {
    const parsed = options({ ipv6: true, excludeOutboundCidrs: "10.0.0.0/8,fd00::/8" });
    const v4 = lines(renderRules(parsed, "ipv4"));
    const v6 = lines(renderRules(parsed, "ipv6"));
    assert.ok(v4.includes("-t nat -A MESH_OUTBOUND -d 10.0.0.0/8 -j RETURN") && !v4.some((line) => line.includes("fd00::")));
    assert.ok(v6.includes("-t nat -A MESH_OUTBOUND -d fd00::/8 -j RETURN") && !v6.some((line) => line.includes("10.0.0.0")));
    assert.ok(v6.includes("-t nat -A MESH_OUTBOUND -d ::1/128 -j RETURN"));
  });

  it("is deterministic", () => {
    assert.deepStrictEqual(renderRules(base), renderRules(options({ inboundPorts: "8080,9090" })));
  });
});

describe("proxy/redirect IPv6 detection", () => {
  let dir: string;
  beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), "ipv6-"))));
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));
  /** A fake /proc/sys/net with these disable_ipv6 values (undefined: no ipv6 directory at all). */
  const procNet = (conf?: Record<string, string>) => {
    if (conf) {
      for (const [iface, value] of Object.entries(conf)) {
        fs.mkdirSync(path.join(dir, "ipv6", "conf", iface), { recursive: true });
        fs.writeFileSync(path.join(dir, "ipv6", "conf", iface, "disable_ipv6"), `${value}\n`);
      }
    }
    return dir;
  };

  it("sees IPv6 when any interface (or the default for new ones) has it on", () => {
    assert.deepStrictEqual(ipv6Status(procNet({ all: "0", default: "0", lo: "0", eth0: "0" })).enabled, true);
    assert.deepStrictEqual(ipv6Status(procNet({ all: "1", default: "1", lo: "1", eth0: "0" })), { enabled: true, reason: "IPv6 is enabled on eth0" });
  });

  it("sees none when the kernel has no IPv6 or every interface has it disabled", () => {
    assert.deepStrictEqual(ipv6Status(procNet()).enabled, false);
    assert.deepStrictEqual(ipv6Status(procNet({ all: "1", default: "1", lo: "1", eth0: "1" })), { enabled: false, reason: "disable_ipv6 is 1 on all, default, eth0, lo" });
  });

  it("assumes IPv6 when it cannot tell (fail closed: ip6tables runs and must succeed)", () => {
    fs.mkdirSync(path.join(dir, "ipv6", "conf", "eth0"), { recursive: true }); // no disable_ipv6 file
    assert.strictEqual(ipv6Status(dir).enabled, true);
  });
});

describe("proxy/redirect: what injectSidecar renders, mesh-proxy init accepts", () => {
  const BIN = path.resolve(__dirname, "../../proxy/cli.js");

  it("an IPv6 excludeOutboundCidrs entry: accepted, and excluded in the IPv6 rules (not a crash-looping init)", async () => {
    const args = initArgs({
      proxyImage: "mesh-proxy:test",
      inboundPorts: [8080],
      identitySecretName: "id",
      workloadConfigMapName: "cfg",
      directoryConfigMapName: "dir",
      excludeOutboundCidrs: ["10.96.0.0/12", "fd00:10:96::/112"],
    });
    const result = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
      execFile(process.execPath, [BIN, ...args, "--dry-run"], (error, stdout, stderr) =>
        resolve({ code: error ? Number((error as NodeJS.ErrnoException).code) : 0, stdout, stderr }),
      ),
    );
    assert.strictEqual(result.code, 0, result.stderr);
    assert.match(result.stdout, /^iptables -t nat -A MESH_OUTBOUND -d 10\.96\.0\.0\/12 -j RETURN$/m);
    // --dry-run decides IPv6 like a real run, here: this machine's namespace.
    if (ipv6Status().enabled) assert.match(result.stdout, /^ip6tables -t nat -A MESH_OUTBOUND -d fd00:10:96::\/112 -j RETURN$/m);
  });
});

describe("proxy/redirect install errors", () => {
  it("names a missing binary", () => {
    const error = describeFailure("/usr/sbin/iptables", ["-t", "nat", "-N", "X"], { ok: false, stderr: "", spawnError: "ENOENT" });
    assert.strictEqual(error.kind, "missing-binary");
    assert.match(error.message, /^could not find iptables: "\/usr\/sbin\/iptables" is not installed/);
  });

  for (const stderr of [
    "iptables v1.8.9 (nf_tables): Could not fetch rule set generation id: Permission denied (you must be root)",
    "iptables v1.8.9 (legacy): can't initialize iptables table `nat': Permission denied (you must be root)",
    "iptables: Operation not permitted.",
  ]) {
    it(`reads "${stderr.slice(0, 40)}..." as a missing NET_ADMIN capability`, () => {
      const error = describeFailure("iptables", ["-t", "nat", "-N", "X"], { ok: false, stderr });
      assert.strictEqual(error.kind, "permission");
      assert.match(error.message, /permission denied\): the init container must run as root with the NET_ADMIN/);
    });
  }

  it("reports any other failure with the command and iptables' first line", () => {
    const error = describeFailure("iptables", ["-t", "nat", "-A", "X", "-j", "NOPE"], { ok: false, stderr: "iptables: No chain/target/match by that name.\nmore" });
    assert.strictEqual(error.kind, "failed");
    assert.strictEqual(error.message, "iptables -t nat -A X -j NOPE failed: iptables: No chain/target/match by that name.");
  });
});

describe("proxy/redirect originalDestination without a redirect", () => {
  it("answers undefined for a direct loopback connection (nothing was NATed)", async () => {
    const server = net.createServer();
    const seen = new Promise<ReturnType<typeof originalDestination> | "none">((resolve) => {
      server.on("connection", (socket) => {
        resolve(originalDestination(socket) ?? "none");
        socket.destroy();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const client = net.connect((server.address() as net.AddressInfo).port, "127.0.0.1");
    client.on("error", () => undefined);
    try {
      assert.strictEqual(await seen, "none");
    } finally {
      client.destroy();
      server.close();
    }
  });

  it("answers undefined for a socket that has no file descriptor", () => {
    assert.strictEqual(originalDestination(new net.Socket()), undefined);
  });
});
