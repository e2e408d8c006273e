// `mesh-proxy init` with real iptables in two network namespaces joined by a veth, like two pods
// on a node: "srv" (an app on 8080 behind its proxy) and "cli" (an app that dials out). Plain TCP
// servers stand in for the proxy's listeners and answer with originalDestination() of what they
// accepted, so each test sees where a connection really landed and what the proxy would read.
import * as assert from "assert";
import { ChildProcess, execFile, spawn } from "child_process";
import { randomBytes } from "crypto";
import * as path from "path";
import type { ServerAnswer } from "./redirect/fixture";

const FIXTURE = path.join(__dirname, "redirect", "fixture.js");
/** The package's mesh-proxy bin, the image's entrypoint. */
const BIN = path.resolve(__dirname, "../../proxy/cli.js");
const id = randomBytes(3).toString("hex");
const SRV = `rd-${id}-srv`;
const CLIENT = `rd-${id}-cli`;
const SRV_IP = "10.77.0.1";
const CLI_IP = "10.77.0.2";
/** A second subnet on the same link, excluded from the client's outbound redirection. */
const SRV_IP_EXCLUDED = "10.77.1.1";
const SRV_IP6 = "fd77::1";
const CLI_IP6 = "fd77::2";
const cliLinkName = `rd${id}c`;
const APP_UID = 1000;
const PROXY_UID = 1337;

// No --ipv6: both namespaces have IPv6, and init must see that by itself.
const SRV_INIT = ["--inbound-ports", "8080"];
const CLI_INIT = ["--inbound-ports", "8080", "--exclude-outbound-ports", "9090", "--exclude-outbound-cidrs", "10.77.1.0/24"];

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(file: string, args: string[]): Promise<Result> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: 15_000 }, (error, stdout, stderr) => {
      const code = error ? (typeof (error as NodeJS.ErrnoException).code === "number" ? Number((error as NodeJS.ErrnoException).code) : null) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

async function must(file: string, args: string[]): Promise<string> {
  const result = await run(file, args);
  if (result.code !== 0) throw new Error(`${file} ${args.join(" ")} exited ${result.code}: ${result.stderr.trim()}`);
  return result.stdout;
}

function inNs(ns: string, args: string[]): Promise<Result> {
  return run("ip", ["netns", "exec", ns, ...args]);
}

function init(ns: string, args: string[], prefix: string[] = []): Promise<Result> {
  return inNs(ns, [...prefix, process.execPath, FIXTURE, "init", ...args]);
}

async function connect(uid: number, host: string, port: number): Promise<ServerAnswer | { error: string }> {
  const result = await inNs(CLIENT, [process.execPath, FIXTURE, "connect", String(uid), host, String(port)]);
  assert.strictEqual(result.code, 0, result.stderr);
  return JSON.parse(result.stdout);
}

/** The nat table as iptables-save prints it, minus the timestamp comments and packet counters. */
async function natTable(ns: string, binary = "iptables-save"): Promise<string> {
  const stdout = await must("ip", ["netns", "exec", ns, binary, "-t", "nat"]);
  return stdout
    .split("\n")
    .filter((line) => !line.startsWith("#"))
    .map((line) => line.replace(/\[\d+:\d+\]$/, "[0:0]"))
    .join("\n");
}

function startServers(ns: string, ports: number[]): Promise<ChildProcess> {
  const child = spawn("ip", ["netns", "exec", ns, process.execPath, FIXTURE, "serve", ...ports.map(String)], { stdio: ["ignore", "pipe", "pipe"] });
  return new Promise((resolve, reject) => {
    let stderr = "";
    child.stderr!.on("data", (chunk) => (stderr += chunk));
    child.stdout!.on("data", (chunk: Buffer) => {
      if (chunk.toString().includes("ready")) resolve(child);
    });
    child.on("exit", (code) => reject(new Error(`servers in ${ns} exited ${code}: ${stderr}`)));
  });
}

describe("proxy/redirect mesh-proxy init in network namespaces (real iptables)", function () {
  // Every step spawns `ip netns exec node ...` (~0.1-0.4 s); leave room when CI is busy.
  this.timeout(60_000);
  const servers: ChildProcess[] = [];
  const namespaces: string[] = [];

  before(async function () {
    if (process.getuid?.() !== 0) {
      console.warn("    skipped: creating network namespaces and running iptables needs root (CI runs as root)");
      this.skip();
    }
    for (const ns of [SRV, CLIENT]) {
      await must("ip", ["netns", "add", ns]);
      namespaces.push(ns);
    }
    const [srvLink, cliLink] = [`rd${id}s`, cliLinkName];
    await must("ip", ["link", "add", srvLink, "type", "veth", "peer", "name", cliLink]);
    await must("ip", ["link", "set", srvLink, "netns", SRV]);
    await must("ip", ["link", "set", cliLink, "netns", CLIENT]);
    for (const [ns, link, addresses] of [
      [SRV, srvLink, [`${SRV_IP}/24`, `${SRV_IP_EXCLUDED}/24`]],
      [CLIENT, cliLink, [`${CLI_IP}/24`, "10.77.1.2/24"]],
    ] as const) {
      for (const address of addresses) await must("ip", ["-n", ns, "addr", "add", address, "dev", link]);
      await must("ip", ["-n", ns, "addr", "add", `${ns === SRV ? SRV_IP6 : CLI_IP6}/64`, "dev", link, "nodad"]);
      await must("ip", ["-n", ns, "link", "set", link, "up"]);
      await must("ip", ["-n", ns, "link", "set", "lo", "up"]);
    }
    servers.push(await startServers(SRV, [15006, 15021, 8080, 9090]));
    servers.push(await startServers(CLIENT, [15001, 7000]));
    for (const [ns, args] of [
      [SRV, SRV_INIT],
      [CLIENT, CLI_INIT],
    ] as const) {
      const result = await init(ns, args);
      assert.strictEqual(result.code, 0, `init in ${ns}: ${result.stderr}`);
      assert.match(result.stdout, /^mesh-proxy init: redirection installed \(IPv4 and IPv6\)/);
    }
  });

  after(async () => {
    for (const child of servers) child.kill();
    for (const ns of namespaces) await run("ip", ["netns", "del", ns]); // Takes the veth pair with it.
  });

  it("sends an app's outbound connection to the outbound listener, which reads the original destination", async () => {
    assert.deepStrictEqual(await connect(APP_UID, SRV_IP, 8080), { listener: 15001, originalDestination: { address: SRV_IP, port: 8080 } });
  });

  it("lets the proxy's own UID out unredirected; the server pod redirects the app port to its inbound listener", async () => {
    assert.deepStrictEqual(await connect(PROXY_UID, SRV_IP, 8080), { listener: 15006, originalDestination: { address: SRV_IP, port: 8080 } });
  });

  it("never redirects the admin port 15021 or a port that is not an app port inbound", async () => {
    assert.deepStrictEqual(await connect(PROXY_UID, SRV_IP, 15021), { listener: 15021, originalDestination: null });
    assert.deepStrictEqual(await connect(PROXY_UID, SRV_IP, 9090), { listener: 9090, originalDestination: null });
  });

  it("leaves loopback and the pod's own address alone", async () => {
    assert.deepStrictEqual(await connect(APP_UID, "127.0.0.1", 7000), { listener: 7000, originalDestination: null });
    assert.deepStrictEqual(await connect(APP_UID, CLI_IP, 7000), { listener: 7000, originalDestination: null });
    assert.deepStrictEqual(await connect(APP_UID, "::1", 7000), { listener: 7000, originalDestination: null });
  });

  it("reaches excluded ports and CIDRs directly", async () => {
    assert.deepStrictEqual(await connect(APP_UID, SRV_IP, 9090), { listener: 9090, originalDestination: null }, "excluded port 9090");
    assert.deepStrictEqual(
      await connect(APP_UID, SRV_IP_EXCLUDED, 8080),
      { listener: 15006, originalDestination: { address: SRV_IP_EXCLUDED, port: 8080 } },
      "10.77.1.0/24 skips the client's proxy and lands on the server's inbound listener",
    );
  });

  it("redirects IPv6 the same way, without being asked, since the namespace has IPv6", async () => {
    assert.deepStrictEqual(await connect(APP_UID, SRV_IP6, 8080), { listener: 15001, originalDestination: { address: SRV_IP6, port: 8080 } });
    assert.deepStrictEqual(await connect(PROXY_UID, SRV_IP6, 8080), { listener: 15006, originalDestination: { address: SRV_IP6, port: 8080 } });
  });

  it("is idempotent: a second run leaves exactly the same rules, a run with other flags replaces them", async () => {
    const [v4, v6] = [await natTable(CLIENT), await natTable(CLIENT, "ip6tables-save")];
    assert.strictEqual((v4.match(/^-A OUTPUT /gm) ?? []).length, 1);
    assert.strictEqual((await init(CLIENT, CLI_INIT)).code, 0);
    assert.strictEqual(await natTable(CLIENT), v4);
    assert.strictEqual(await natTable(CLIENT, "ip6tables-save"), v6);

    const other = await init(CLIENT, ["--inbound-ports", "8080", "--exclude-outbound-ports", "5432"]);
    assert.strictEqual(other.code, 0, other.stderr);
    const replaced = await natTable(CLIENT);
    assert.match(replaced, /--dport 5432 -j RETURN/);
    assert.doesNotMatch(replaced, /--dport 9090|10\.77\.1\.0/);
    assert.strictEqual((replaced.match(/^-A (PREROUTING|OUTPUT) /gm) ?? []).length, 2, "one jump each");

    assert.strictEqual((await init(CLIENT, CLI_INIT)).code, 0);
    assert.strictEqual(await natTable(CLIENT), v4, "back to the original rules");
    assert.deepStrictEqual(await connect(APP_UID, SRV_IP, 9090), { listener: 9090, originalDestination: null }, "and they still work");
  });

  it("--dry-run prints the rules and changes nothing", async () => {
    const before = await natTable(SRV);
    const result = await init(SRV, ["--inbound-ports", "9090", "--dry-run"]);
    assert.strictEqual(result.code, 0, result.stderr);
    assert.match(result.stdout, /^iptables -t nat -A MESH_INBOUND -p tcp --dport 9090 -j MESH_IN_REDIRECT$/m);
    assert.strictEqual(await natTable(SRV), before);
    assert.deepStrictEqual(await connect(PROXY_UID, SRV_IP, 9090), { listener: 9090, originalDestination: null });
  });

  it("says so when the iptables binary is missing (exit 1)", async () => {
    for (const [prefix, args, binary] of [
      [["env", "PATH=/nonexistent"], CLI_INIT, "iptables"],
      [[], [...CLI_INIT, "--iptables", "/nonexistent/iptables"], "/nonexistent/iptables"],
    ] as const) {
      const result = await init(CLIENT, [...args], [...prefix]);
      assert.strictEqual(result.code, 1);
      assert.strictEqual(result.stderr, `mesh-proxy init: could not find iptables: "${binary}" is not installed or not on PATH (install the iptables package, or pass --iptables <path>)\n`);
    }
  });

  it("fails closed when the namespace has IPv6 and ip6tables is missing (exit 1): no pod with an unredirected family", async () => {
    const result = await init(CLIENT, [...CLI_INIT, "--ip6tables", "/nonexistent/ip6tables"]);
    assert.strictEqual(result.code, 1, result.stdout);
    assert.strictEqual(
      result.stderr,
      'mesh-proxy init: IPv6 must be redirected too (IPv6 is enabled on all, default, lo, ' + cliLinkName + '), and it could not be: could not find ip6tables: "/nonexistent/ip6tables" is not installed or not on PATH (install the iptables package, or pass --ip6tables <path>)\n',
    );
  });

  it("installs IPv4 alone, and needs no ip6tables, in a namespace whose IPv6 is disabled", async () => {
    const ns = `rd-${id}-v4`;
    await must("ip", ["netns", "add", ns]);
    namespaces.push(ns);
    await must("ip", ["netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1", "net.ipv6.conf.lo.disable_ipv6=1"]);
    const result = await init(ns, ["--inbound-ports", "8080", "--exclude-outbound-cidrs", "fd00::/8", "--ip6tables", "/nonexistent/ip6tables"]);
    assert.strictEqual(result.code, 0, result.stderr);
    assert.match(result.stdout, /^mesh-proxy init: redirection installed \(IPv4; no IPv6 to redirect: disable_ipv6 is 1 on all, default, lo\)/);
    assert.match(await natTable(ns), /--dport 8080 -j MESH_IN_REDIRECT/);
  });

  it("says so when NET_ADMIN is missing (exit 1), and changes nothing", async () => {
    const before = await natTable(SRV);
    const result = await init(SRV, ["--inbound-ports", "9090"], ["setpriv", "--bounding-set=-net_admin", "--"]);
    assert.strictEqual(result.code, 1);
    assert.match(result.stderr, /^mesh-proxy init: iptables was refused \(permission denied\): the init container must run as root with the NET_ADMIN and NET_RAW capabilities \[.*Permission denied.*\]\n$/);
    assert.strictEqual(await natTable(SRV), before);
  });

  it("runs the same way through the mesh-proxy bin (the image entrypoint)", async () => {
    const before = await natTable(CLIENT);
    const installed = await inNs(CLIENT, [process.execPath, BIN, "init", ...CLI_INIT]);
    assert.strictEqual(installed.code, 0, installed.stderr);
    assert.match(installed.stdout, /^mesh-proxy init: redirection installed/);
    assert.strictEqual(await natTable(CLIENT), before);
    const refused = await inNs(CLIENT, [process.execPath, BIN, "init", "--exclude-outbound-cidrs", "10.0.0.0/33"]);
    assert.strictEqual(refused.code, 2);
    assert.strictEqual(refused.stderr, "mesh-proxy init: --exclude-outbound-cidrs: \"10.0.0.0/33\" has a bad prefix length (0-32)\n");
  });

  it("refuses a bad flag with one line naming it (exit 2), and changes nothing", async () => {
    const before = await natTable(SRV);
    const result = await init(SRV, ["--inbound-ports", "8080,15006"]);
    assert.strictEqual(result.code, 2);
    assert.strictEqual(result.stderr, "mesh-proxy init: --inbound-ports: 15006 is one of the proxy's own ports (15006, 15001, 15021, 15008)\n");
    assert.strictEqual(await natTable(SRV), before);
  });
});
