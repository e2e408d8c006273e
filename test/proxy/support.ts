// Shared fixtures for the proxy suites: one test PKI per run, identity and config directories on
// disk (the proxy reads files, as in a pod), an echo backend that counts what reaches it, and
// in-process proxies on ephemeral loopback ports with their log lines captured.
import { ChildProcess, spawn } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import { createTestMesh, Issued, TestMesh } from "../support/pki";
import { DirectoryConfigInput, parseWorkloadConfig, stableStringify, Transport, WorkloadConfigInput } from "../../proxy/config";
import { Logger } from "../../proxy/log";
import { RunningProxy, startProxy } from "../../proxy/proxy";
import { InboundListener, loadMeshConfig, loadSettings, OutboundListener, Settings } from "../../proxy/settings";
import { OriginalDestinationLookup } from "../../proxy/state";
import { parseSpiffeId } from "../../proxy/spiffe";

export const CLI = path.resolve(__dirname, "../../proxy/cli.js");
const REPO = path.resolve(__dirname, "../../..");

/** `<flags> cli.js` exactly as the image's ENTRYPOINT starts the proxy, with /app/ mapped to this checkout (after "node"). */
export function imageEntrypoint(): string[] {
  const dockerfile = fs.readFileSync(path.join(REPO, "proxy/Dockerfile"), "utf8");
  const [node, ...args] = JSON.parse(/^ENTRYPOINT (\[.*\])$/m.exec(dockerfile)![1]) as string[];
  if (node !== "node") throw new Error(`the image's ENTRYPOINT starts ${node}, not node`);
  const local = args.map((arg) => arg.replace("/app/", `${REPO}/`));
  if (local.at(-1) !== CLI) throw new Error(`the image's ENTRYPOINT runs ${local.at(-1)}, not ${CLI}`);
  return local;
}

export interface ProxyProcess {
  child: ChildProcess;
  /** Everything it printed so far (JSON log lines). */
  output(): string;
  stop(): Promise<void>;
}

/** `mesh-proxy run --config <file>` as the image runs it, under the given Node binary; resolves once it logged "proxy started". */
export async function spawnProxy(node: string, configFile: string): Promise<ProxyProcess> {
  const child = spawn(node, [...imageEntrypoint(), "run", "--config", configFile], { stdio: ["ignore", "pipe", "pipe"] });
  let text = "";
  child.stdout!.on("data", (c: Buffer) => (text += c.toString()));
  child.stderr!.on("data", (c: Buffer) => (text += c.toString()));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const proc: ProxyProcess = {
    child,
    output: () => text,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      await exited;
    },
  };
  try {
    await waitFor(() => text.includes("proxy started") || child.exitCode !== null, 15_000, `${configFile} started`);
  } catch (error) {
    await proc.stop();
    throw error;
  }
  if (child.exitCode !== null) throw new Error(`mesh-proxy exited ${child.exitCode}: ${text.trim()}`);
  return proc;
}

export const TD = "cluster.local";
export const SERVER_ID = `spiffe://${TD}/ns/shop/sa/api`;
export const CLIENT_ID = `spiffe://${TD}/ns/shop/sa/web`;

let meshPromise: Promise<TestMesh> | undefined;
/** One PKI for the whole run (key generation is the slow part). */
export function testMesh(): Promise<TestMesh> {
  meshPromise ??= createTestMesh(TD);
  return meshPromise;
}

const tmpRoots: string[] = [];
export function tmpDir(prefix = "proxy-test-"): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tmpRoots.push(dir);
  return dir;
}
export function removeTmpDirs(): void {
  for (const dir of tmpRoots.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
}

export function workload(spiffeId: string, overrides: Partial<WorkloadConfigInput> = {}): WorkloadConfigInput {
  const parsed = parseSpiffeId(spiffeId);
  if (!parsed.ok || !parsed.id.namespace || !parsed.id.serviceAccount) throw new Error(`not a workload ID: ${spiffeId}`);
  const ns = parsed.id.namespace;
  const sa = parsed.id.serviceAccount;
  return {
    version: 1,
    trustDomain: TD,
    workload: { namespace: ns, name: sa, serviceAccount: sa, spiffeId },
    inbound: { defaultMode: "strict", ports: [] },
    limits: { handshakeTimeoutMs: 1500, sniffTimeoutMs: 150 },
    ...overrides,
  };
}

export function writeConfig(dir: string, w: WorkloadConfigInput, d: DirectoryConfigInput = { version: 1, services: [] }): string {
  parseWorkloadConfig(w); // Fail early in the test, not in the proxy.
  kubeletWrite(dir, { "workload.json": stableStringify(w), "directory.json": stableStringify(d) });
  return dir;
}

export interface TestProxy {
  proxy: RunningProxy;
  logs: Array<Record<string, unknown>>;
  configDir: string;
  identityDir: string;
  /** Log lines with msg "refused" and this reason. */
  refusals(reason?: string): Array<Record<string, unknown>>;
  stop(): Promise<void>;
}

export interface TestProxyOptions {
  /** Absent: the identity directory starts empty (not ready). */
  leaf?: Issued & { chainPem?: string };
  bundlePem: string;
  workload: WorkloadConfigInput;
  directory?: DirectoryConfigInput;
  inbound?: InboundListener[];
  outbound?: OutboundListener[];
  transport?: Transport;
  originalDestination?: OriginalDestinationLookup;
}

const running = new Set<TestProxy>();

export async function startTestProxy(o: TestProxyOptions): Promise<TestProxy> {
  const root = tmpDir();
  const identityDir = path.join(root, "identity");
  fs.mkdirSync(identityDir);
  if (o.leaf) kubeletWrite(identityDir, identityFilesFor(o.leaf, o.bundlePem));
  const configDir = writeConfig(path.join(root, "config"), o.workload, o.directory);
  const source = { kind: "directory" as const, path: configDir };
  const settings: Settings = {
    source,
    identityDir,
    config: loadMeshConfig(source),
    inbound: o.inbound ?? [],
    outbound: o.outbound ?? [],
    admin: { host: "127.0.0.1", port: 0 },
    transport: o.transport ?? "tcp",
  };
  return runTestProxy(settings, configDir, o.originalDestination);
}

/** Runs a proxy from a proxy.json file (explicit listeners), as `mesh-proxy run --config <file>` does. */
export function startFileProxy(file: string): Promise<TestProxy> {
  return runTestProxy(loadSettings(file), path.dirname(file));
}

async function runTestProxy(settings: Settings, configDir: string, originalDestination?: OriginalDestinationLookup): Promise<TestProxy> {
  const logs: Array<Record<string, unknown>> = [];
  const proxy = await startProxy(settings, {
    log: new Logger("debug", (line) => logs.push(JSON.parse(line))),
    originalDestination: originalDestination ?? (() => undefined),
    watch: { debounceMs: 30, pollMs: 200 },
  });
  const handle: TestProxy = {
    proxy,
    logs,
    configDir,
    identityDir: settings.identityDir,
    refusals: (reason) => logs.filter((l) => l.msg === "refused" && (reason === undefined || l.reason === reason)),
    async stop() {
      running.delete(handle);
      await proxy.shutdown(0);
    },
  };
  running.add(handle);
  return handle;
}

export async function stopAllProxies(): Promise<void> {
  await Promise.all([...running].map((p) => p.stop()));
}

/** A backend that echoes and records every connection and every byte it receives. */
export interface Backend {
  port: number;
  accepted: number;
  bytesReceived: number;
  server: net.Server;
  sockets: Set<net.Socket>;
  close(): Promise<void>;
}

export type BackendBehaviour = (socket: net.Socket, backend: Backend) => void;

export const echo: BackendBehaviour = (socket) => socket.pipe(socket);

export async function startBackend(behaviour: BackendBehaviour = echo): Promise<Backend> {
  const sockets = new Set<net.Socket>();
  const backend: Backend = {
    port: 0,
    accepted: 0,
    bytesReceived: 0,
    server: net.createServer({ allowHalfOpen: true }),
    sockets,
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        backend.server.close(() => resolve());
      }),
  };
  backend.server.on("connection", (socket) => {
    backend.accepted++;
    sockets.add(socket);
    socket.on("data", (chunk: Buffer) => (backend.bytesReceived += chunk.length));
    socket.on("error", () => undefined);
    socket.once("close", () => sockets.delete(socket));
    behaviour(socket, backend);
  });
  await new Promise<void>((resolve) => backend.server.listen(0, "127.0.0.1", resolve));
  backend.port = (backend.server.address() as net.AddressInfo).port;
  return backend;
}

/** A port that was free a moment ago (for proxy.json listeners, which cannot ask for port 0). */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export function connect(port: number, host = "127.0.0.1"): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host, allowHalfOpen: true });
    socket.once("connect", () => resolve(socket));
    socket.once("error", reject);
  });
}

/** Sends payload, half-closes, and collects everything until the other side closes. */
export async function exchange(port: number, payload: Buffer | string, host = "127.0.0.1"): Promise<Buffer> {
  const socket = await connect(port, host);
  return collect(socket, payload);
}

export function collect(socket: net.Socket, payload?: Buffer | string): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    socket.on("data", (c: Buffer) => chunks.push(c));
    socket.on("error", () => undefined);
    socket.once("close", () => resolve(Buffer.concat(chunks)));
    if (payload !== undefined) socket.end(payload);
  });
}

export function sha256(data: Buffer): string {
  return crypto.createHash("sha256").update(data).digest("hex");
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls until check() is truthy or fails after timeoutMs. */
export async function waitFor<T>(check: () => T | undefined | false, timeoutMs = 5000, what = "condition"): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

export interface TlsAttempt {
  /** The client saw its handshake complete (in TLS 1.3 a refused client cert still gets here). */
  secure: boolean;
  error?: string;
  /** Everything the client read before the connection closed. */
  received: Buffer;
}

/**
 * A raw TLS client against a proxy port: handshakes with `options`, writes `payload` once
 * secure, and reads until close. Never rejects: refusals are the expected outcome.
 */
export function tlsAttempt(port: number, options: import("tls").ConnectionOptions, payload = "PAYLOAD"): Promise<TlsAttempt> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const tls = require("tls") as typeof import("tls");
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let secure = false;
    let error: string | undefined;
    const socket = tls.connect({ host: "127.0.0.1", port, checkServerIdentity: () => undefined, ...options });
    socket.once("secureConnect", () => {
      secure = true;
      socket.end(payload);
    });
    socket.on("data", (c: Buffer) => chunks.push(c));
    socket.on("error", (e: NodeJS.ErrnoException) => (error ??= e.code ?? e.message));
    socket.once("close", () => resolve({ secure, error, received: Buffer.concat(chunks) }));
    setTimeout(() => socket.destroy(), 8000).unref();
  });
}

/** Sends raw bytes, optionally half-closes, and resolves when the proxy closes the connection. */
export function rawAttempt(port: number, bytes: Buffer, o: { end?: boolean } = {}): Promise<{ received: Buffer; ms: number }> {
  return new Promise((resolve) => {
    const started = Date.now();
    const socket = net.connect({ port, host: "127.0.0.1", allowHalfOpen: true });
    const chunks: Buffer[] = [];
    socket.on("connect", () => {
      if (bytes.length) socket.write(bytes);
      if (o.end) socket.end();
    });
    socket.on("data", (c: Buffer) => chunks.push(c));
    socket.on("error", () => undefined);
    socket.on("end", () => socket.end());
    socket.once("close", () => resolve({ received: Buffer.concat(chunks), ms: Date.now() - started }));
    setTimeout(() => socket.destroy(), 10_000).unref();
  });
}

let generation = 0;
/**
 * Writes files into `dir` the way the kubelet updates a Secret or ConfigMap volume: a new
 * timestamped directory, an atomic rename of the `..data` symlink, and per-file symlinks
 * through `..data`.
 */
export function kubeletWrite(dir: string, files: Record<string, string | Buffer>): void {
  fs.mkdirSync(dir, { recursive: true });
  const stamp = `..${Date.now()}_${++generation}`;
  fs.mkdirSync(path.join(dir, stamp));
  for (const [name, content] of Object.entries(files)) fs.writeFileSync(path.join(dir, stamp, name), content);
  const previous = fs.existsSync(path.join(dir, "..data")) ? fs.readlinkSync(path.join(dir, "..data")) : undefined;
  fs.symlinkSync(stamp, path.join(dir, "..data_tmp"));
  fs.renameSync(path.join(dir, "..data_tmp"), path.join(dir, "..data"));
  for (const name of Object.keys(files)) {
    const link = path.join(dir, name);
    if (!fs.existsSync(link)) fs.symlinkSync(path.join("..data", name), link);
  }
  if (previous) fs.rmSync(path.join(dir, previous), { recursive: true, force: true });
}

export function identityFilesFor(leaf: { chainPem?: string; certPem: string; keyPem: string }, bundlePem: string): Record<string, string> {
  return { "tls.crt": leaf.chainPem ?? leaf.certPem, "tls.key": leaf.keyPem, "ca.crt": bundlePem };
}

/** GET on the admin port: status and body. */
export function adminGet(port: number, urlPath: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const http = require("http") as typeof import("http");
  return new Promise((resolve, reject) => {
    http
      .get({ host: "127.0.0.1", port, path: urlPath, headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
      })
      .on("error", reject);
  });
}
