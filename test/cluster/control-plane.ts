// A local Kubernetes control plane on loopback for the real-engine tests (issue "Real engine"):
// etcd + kube-apiserver + kube-controller-manager from the tools cache that
// `npm run cluster:tools` (test/cluster/tools/build.sh) fills, with certificates generated at
// start, free ports, one temp directory, and an admin kubeconfig. No scheduler and no kubelet:
// pods stay Pending until the e2e harness plays the node (issue item 3).
//
//   const cp = await start();   // ~5-15 s on a warm machine
//   ... KUBECONFIG=cp.kubeconfigPath ...
//   await cp.stop();            // every process gone, every port free, the directory removed
//
// Teardown also runs on process exit (normal or after an uncaught error), SIGINT, SIGTERM and
// SIGHUP; each child is started under `setpriv --pdeathsig KILL`, so even a SIGKILLed test
// process takes its control plane with it, and a directory left by such a run is swept by the
// next start.
//
// Docs checked (via the search tool):
//  - PKI certificates and requirements, https://kubernetes.io/docs/setup/best-practices/certificates/
//    (which certificates a cluster needs, the admin's O=system:masters, the sa.key/sa.pub pair);
//  - kube-controller-manager reference, https://kubernetes.io/docs/reference/generated/kube-controller-manager
//    (--controllers, --use-service-account-credentials, --cluster-signing-*, --root-ca-file);
//  - the CIS benchmark notes on --service-account-key-file / --use-service-account-credentials
//    (https://docs.datadoghq.com/security/default_rules/cis-kubernetes-1.5.1-1.2.28/) for why the
//    token keys are a pair of their own and not the serving key;
//  - and, as the authority for v1.37.2 itself, each binary's own `--help` (the controller names
//    changed to `*-controller` and the cloud controllers are gone from the list).
import "reflect-metadata";
import { spawn, spawnSync, ChildProcess } from "node:child_process";
import { webcrypto, createPrivateKey, createPublicKey, randomBytes, KeyObject } from "node:crypto";
import * as fs from "node:fs";
import * as https from "node:https";
import * as http from "node:http";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import * as x509 from "@peculiar/x509";

x509.cryptoProvider.set(webcrypto as unknown as webcrypto.Crypto);

/** Where build.sh links the tools (its `$MESH_TOOLS_CACHE/bin`, default ~/.cache/pulumi-mtls-mesh/tools/bin). */
export function toolsBinDir(): string {
  const cache = process.env.MESH_TOOLS_CACHE || path.join(os.homedir(), ".cache", "pulumi-mtls-mesh", "tools");
  return path.join(cache, "bin");
}

/** Throws the error that tells the reader how to get the tools, when any of `names` is missing. */
export function requireTools(names: string[]): string {
  const bin = toolsBinDir();
  const missing = names.filter((n) => {
    try {
      fs.accessSync(path.join(bin, n), fs.constants.X_OK);
      return false;
    } catch {
      return true;
    }
  });
  if (missing.length > 0) {
    throw new Error(
      `real-engine tools missing from ${bin}: ${missing.join(", ")}. ` +
        "Build them with `npm run cluster:tools` (bash test/cluster/tools/build.sh; needs Go and the Go module proxy).",
    );
  }
  return bin;
}

/** The repo root, from dist/test/cluster (compiled) or test/cluster (source). */
function repoRoot(): string {
  let dir = __dirname;
  while (dir !== path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, "test", "cluster", "tools"))) return dir;
    dir = path.dirname(dir);
  }
  return process.cwd();
}

/** The Kubernetes version build.sh pins (test/cluster/tools/kubernetes/go.mod), e.g. "v1.37.2". */
export function expectedKubeVersion(): string {
  try {
    const gomod = fs.readFileSync(path.join(repoRoot(), "test/cluster/tools/kubernetes/go.mod"), "utf8");
    const m = /^\s*k8s\.io\/kubernetes\s+(v\d+\.\d+\.\d+)\s*$/m.exec(gomod);
    if (m) return m[1];
  } catch {
    /* fall through */
  }
  return "v1.37.2";
}

export interface ControlPlane {
  /** The admin kubeconfig (user `kubernetes-admin`, group `system:masters`). */
  kubeconfigPath: string;
  /** `https://127.0.0.1:<port>` */
  server: string;
  /** The temp directory holding certificates, etcd data, kubeconfigs and logs (removed by stop). */
  dir: string;
  /** `/version`'s gitVersion, checked against build.sh's pin. */
  version: string;
  ports: { etcdClient: number; etcdPeer: number; apiserver: number; controllerManager: number };
  pids: { etcd: number; apiserver: number; controllerManager: number };
  /** Start time in ms, with the split (certs, etcd, apiserver ready, controller-manager ready). */
  timings: Record<string, number>;
  /** PEM: the cluster CA, and the admin's client certificate and key (for plain HTTPS calls). */
  caPem: string;
  adminCertPem: string;
  adminKeyPem: string;
  /** An HTTPS request to the API server as the admin; the body is parsed as JSON when it can be. */
  request(method: string, apiPath: string, body?: unknown): Promise<{ status: number; body: any }>;
  stop(): Promise<void>;
}

export interface StartOptions {
  /** Progress lines (default: none). */
  log?: (line: string) => void;
  /** How long to wait for each component (default 120 s: the machine may be busy). */
  readyTimeoutMs?: number;
}

// The Service CIDR; its first address (10.96.0.1) is the `kubernetes` Service's, so it is in the
// serving certificate for in-cluster clients (the kubelet stand-in's pods, later).
const SERVICE_CIDR = "10.96.0.0/16";
const KUBERNETES_SERVICE_IP = "10.96.0.1";
const DIR_PREFIX = "mesh-cp-";

// ---------------------------------------------------------------------------------------------
// Certificates (ECDSA P-256 throughout: every component accepts PKCS#8 EC keys, and ES256 service
// account tokens).

interface Pem {
  certPem: string;
  keyPem: string;
  keys: webcrypto.CryptoKeyPair;
  cert: x509.X509Certificate;
}

const ALG = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;

async function newKey(): Promise<{ keys: webcrypto.CryptoKeyPair; keyPem: string; key: KeyObject }> {
  const keys = (await webcrypto.subtle.generateKey(ALG, true, ["sign", "verify"])) as webcrypto.CryptoKeyPair;
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey("pkcs8", keys.privateKey));
  const key = createPrivateKey({ key: pkcs8, format: "der", type: "pkcs8" });
  return { keys, key, keyPem: key.export({ format: "pem", type: "pkcs8" }).toString() };
}

function serial(): string {
  const b = randomBytes(16);
  b[0] &= 0x7f; // positive
  return b.toString("hex");
}

async function mint(opts: {
  subject: string;
  issuer?: Pem;
  ca?: boolean;
  serverAuth?: boolean;
  clientAuth?: boolean;
  dns?: string[];
  ips?: string[];
}): Promise<Pem> {
  const { keys, keyPem } = await newKey();
  const notBefore = new Date(Date.now() - 60_000); // a little slack for clock reads
  const notAfter = new Date(Date.now() + 7 * 24 * 3600_000);
  const eku: string[] = [];
  if (opts.serverAuth) eku.push(x509.ExtendedKeyUsage.serverAuth);
  if (opts.clientAuth) eku.push(x509.ExtendedKeyUsage.clientAuth);
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(!!opts.ca, undefined, true),
    new x509.KeyUsagesExtension(
      opts.ca
        ? x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature
        : x509.KeyUsageFlags.digitalSignature,
      true,
    ),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
  ];
  if (eku.length) extensions.push(new x509.ExtendedKeyUsageExtension(eku, false));
  const san = [...(opts.dns ?? []).map((v) => ({ type: "dns" as const, value: v })), ...(opts.ips ?? []).map((v) => ({ type: "ip" as const, value: v }))];
  if (san.length) extensions.push(new x509.SubjectAlternativeNameExtension(san, false));
  if (opts.issuer) extensions.push(await x509.AuthorityKeyIdentifierExtension.create(opts.issuer.cert, false));
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: opts.subject,
    issuer: opts.issuer ? opts.issuer.cert.subject : opts.subject,
    notBefore,
    notAfter,
    signingAlgorithm: ALG,
    publicKey: keys.publicKey,
    signingKey: opts.issuer ? opts.issuer.keys.privateKey : keys.privateKey,
    extensions,
  });
  return { certPem: cert.toString("pem") + "\n", keyPem, keys, cert };
}

function kubeconfig(server: string, caPem: string, user: string, certPem: string, keyPem: string): string {
  const b64 = (s: string) => Buffer.from(s).toString("base64");
  // JSON is YAML: client-go and the Pulumi provider read it as any kubeconfig.
  return JSON.stringify(
    {
      apiVersion: "v1",
      kind: "Config",
      clusters: [{ name: "local", cluster: { server, "certificate-authority-data": b64(caPem) } }],
      users: [{ name: user, user: { "client-certificate-data": b64(certPem), "client-key-data": b64(keyPem) } }],
      contexts: [{ name: "local", context: { cluster: "local", user } }],
      "current-context": "local",
    },
    null,
    2,
  );
}

// ---------------------------------------------------------------------------------------------
// Processes, ports, teardown.

/** Holds every port open at once, so the four are distinct, then releases them for the children. */
async function freePorts(n: number): Promise<number[]> {
  const servers: net.Server[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const s = net.createServer();
      await new Promise<void>((res, rej) => s.once("error", rej).listen(0, "127.0.0.1", () => res()));
      servers.push(s);
    }
    return servers.map((s) => (s.address() as net.AddressInfo).port);
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((res) => s.close(() => res()))));
  }
}

/** True when nothing listens on 127.0.0.1:port (we can bind it). */
export async function portIsFree(port: number): Promise<boolean> {
  const s = net.createServer();
  const ok = await new Promise<boolean>((res) => {
    s.once("error", () => res(false));
    s.listen(port, "127.0.0.1", () => res(true));
  });
  if (ok) await new Promise<void>((res) => s.close(() => res()));
  return ok;
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e: any) {
    return e.code === "EPERM";
  }
  // A zombie still answers kill(0); it has exited for our purposes only once reaped, so read its state.
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}

interface Live {
  dir: string;
  children: ChildProcess[];
  ports: number[];
}
const live = new Set<Live>();
let handlersInstalled = false;

const extraCleanups = new Set<() => void>();

/**
 * Runs `fn` (synchronous) in the same teardown as the control planes: on exit, SIGINT, SIGTERM,
 * SIGHUP. For other temp state of the cluster tests (the engine's work dir). Returns the unregister.
 */
export function onTeardown(fn: () => void): () => void {
  extraCleanups.add(fn);
  installHandlers();
  return () => {
    extraCleanups.delete(fn);
    if (live.size === 0 && extraCleanups.size === 0) uninstallHandlers();
  };
}

/** Synchronous: SIGKILL every child of every live control plane and remove its directory. */
function killAllSync(): void {
  for (const fn of extraCleanups) {
    try {
      fn();
    } catch {
      /* best effort */
    }
  }
  extraCleanups.clear();
  const killed: number[] = [];
  for (const l of live) {
    for (const c of l.children) {
      if (c.pid && c.exitCode === null && c.signalCode === null) {
        try {
          process.kill(c.pid, "SIGKILL");
          killed.push(c.pid);
        } catch {
          /* already gone */
        }
      }
    }
    fs.rmSync(l.dir, { recursive: true, force: true });
  }
  live.clear();
  // SIGKILL is delivered at once but a big process takes a moment to exit (and close its
  // sockets); wait for each to be a zombie or gone (at most 5 s), so that when this process
  // dies right after, nothing of ours is still running. Synchronous: this may run in 'exit'.
  const deadline = Date.now() + 5_000;
  const tick = new Int32Array(new SharedArrayBuffer(4));
  while (killed.some(pidAlive) && Date.now() < deadline) Atomics.wait(tick, 0, 0, 20);
}

const SIGNALS: NodeJS.Signals[] = ["SIGINT", "SIGTERM", "SIGHUP"];
const onSignal = (sig: NodeJS.Signals) => {
  killAllSync();
  uninstallHandlers();
  // Without our listener the default action applies again (terminate): re-raise so the process
  // dies of the same signal (exit status 128+n), unless someone else handles it.
  if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
};
const signalListeners = new Map<NodeJS.Signals, () => void>(SIGNALS.map((s) => [s, () => onSignal(s)]));

function installHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on("exit", killAllSync);
  for (const [s, l] of signalListeners) process.on(s, l);
}

function uninstallHandlers(): void {
  if (!handlersInstalled) return;
  handlersInstalled = false;
  process.off("exit", killAllSync);
  for (const [s, l] of signalListeners) process.off(s, l);
}

/**
 * Removes directories left by a control plane whose test process died without teardown (SIGKILL).
 * Their children died with it (pdeathsig); a child still alive whose command line names the
 * directory is killed by its PID first.
 */
export function sweepStale(log: (s: string) => void = () => {}): void {
  const tmp = os.tmpdir();
  for (const name of fs.readdirSync(tmp)) {
    if (!name.startsWith(DIR_PREFIX)) continue;
    const dir = path.join(tmp, name);
    let owner = NaN;
    try {
      owner = Number(fs.readFileSync(path.join(dir, "owner.pid"), "utf8"));
    } catch {
      continue; // not ours or still being created
    }
    if (Number.isInteger(owner) && pidAlive(owner)) continue;
    try {
      for (const pid of fs.readFileSync(path.join(dir, "children.pid"), "utf8").split(/\s+/).filter(Boolean).map(Number)) {
        try {
          if (fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(dir)) process.kill(pid, "SIGKILL");
        } catch {
          /* gone */
        }
      }
    } catch {
      /* no children recorded */
    }
    fs.rmSync(dir, { recursive: true, force: true });
    log(`swept stale control-plane directory ${dir} (owner pid ${owner} is gone)`);
  }
}

const hasSetpriv = (() => {
  try {
    return spawnSync("setpriv", ["--help"], { stdio: "ignore" }).status === 0;
  } catch {
    return false;
  }
})();

function tail(file: string, lines = 25): string {
  try {
    return fs.readFileSync(file, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

interface Fetched {
  status: number;
  body: string;
}

function fetchOnce(url: string, tlsOpts: https.RequestOptions, method = "GET", payload?: string): Promise<Fetched> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const mod = u.protocol === "https:" ? https : http;
    const headers: Record<string, string> = { accept: "application/json" };
    if (payload !== undefined) {
      headers["content-type"] = "application/json";
      headers["content-length"] = String(Buffer.byteLength(payload));
    }
    const req = mod.request(
      u,
      { ...tlsOpts, method, headers, agent: false, timeout: 10_000 },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }));
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error(`timeout: ${method} ${url}`)));
    req.on("error", reject);
    req.end(payload);
  });
}

// ---------------------------------------------------------------------------------------------

export async function start(opts: StartOptions = {}): Promise<ControlPlane> {
  const log = opts.log ?? (() => {});
  const bin = requireTools(["etcd", "kube-apiserver", "kube-controller-manager"]);
  sweepStale(log);
  // The ports are free when chosen but released before the components bind them, so another
  // process may take one in between: then that component fails to bind, and we start over.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(bin, opts, log);
    } catch (e: any) {
      if (attempt >= 3 || !/address already in use/i.test(String(e?.message))) throw e;
      log(`a port was taken before its component bound it; retrying (${e.message.split("\n")[0]})`);
    }
  }
}

async function startOnce(bin: string, opts: StartOptions, log: (line: string) => void): Promise<ControlPlane> {
  const readyTimeout = opts.readyTimeoutMs ?? 120_000;
  const expectVersion = expectedKubeVersion();
  const t0 = Date.now();
  const timings: Record<string, number> = {};

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), DIR_PREFIX));
  fs.writeFileSync(path.join(dir, "owner.pid"), String(process.pid));
  const state: Live = { dir, children: [], ports: [] };
  live.add(state);
  installHandlers();

  const stop = async (): Promise<void> => {
    // Reverse start order, so no component logs a storm of errors about the one below it.
    for (const c of [...state.children].reverse()) {
      if (c.exitCode !== null || c.signalCode !== null) continue;
      const exited = new Promise<void>((r) => c.once("exit", () => r()));
      c.kill("SIGTERM");
      const done = await Promise.race([exited.then(() => true), sleep(15_000).then(() => false)]);
      if (!done) {
        c.kill("SIGKILL");
        await exited;
      }
    }
    fs.rmSync(dir, { recursive: true, force: true });
    live.delete(state);
    if (live.size === 0 && extraCleanups.size === 0) uninstallHandlers();
    // A port of a process that just died can stay unbindable for a moment (connections in
    // FIN_WAIT/LAST_ACK on it); return only once each is free again, so a caller can reuse it.
    const deadline = Date.now() + 10_000;
    for (const port of state.ports) {
      while (!(await portIsFree(port)) && Date.now() < deadline) await sleep(100);
    }
  };

  const f = (name: string) => path.join(dir, name);
  const write = (name: string, content: string, mode = 0o600) => {
    fs.writeFileSync(f(name), content, { mode });
    return f(name);
  };

  try {
    // --- certificates
    const ca = await mint({ subject: "CN=mesh-test-kubernetes-ca", ca: true });
    const serving = await mint({
      subject: "CN=kube-apiserver",
      issuer: ca,
      serverAuth: true,
      dns: ["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"],
      ips: ["127.0.0.1", KUBERNETES_SERVICE_IP],
    });
    // O=system:masters: the group the API server grants everything without any RBAC object
    // (the certificates page: "kubernetes-admin ... system:masters").
    const admin = await mint({ subject: "CN=kubernetes-admin, O=system:masters", issuer: ca, clientAuth: true });
    // The user the bootstrap RBAC policy binds to the system:kube-controller-manager ClusterRole.
    const cmUser = await mint({ subject: "CN=system:kube-controller-manager", issuer: ca, clientAuth: true });
    // The service-account token key pair: its own pair (not the serving key), so it could rotate.
    const sa = await newKey();
    const saPub = createPublicKey(sa.key).export({ format: "pem", type: "spki" }).toString();
    const caCrt = write("ca.crt", ca.certPem, 0o644);
    const caKey = write("ca.key", ca.keyPem);
    const servingCrt = write("apiserver.crt", serving.certPem, 0o644);
    const servingKey = write("apiserver.key", serving.keyPem);
    const saKey = write("sa.key", sa.keyPem);
    const saPubFile = write("sa.pub", saPub, 0o644);
    timings.certs = Date.now() - t0;

    const [etcdClient, etcdPeer, apiPort, cmPort] = await freePorts(4);
    state.ports.push(etcdClient, etcdPeer, apiPort, cmPort);
    const server = `https://127.0.0.1:${apiPort}`;
    const kubeconfigPath = write("admin.kubeconfig", kubeconfig(server, ca.certPem, "kubernetes-admin", admin.certPem, admin.keyPem));
    const cmKubeconfig = write("controller-manager.kubeconfig", kubeconfig(server, ca.certPem, "system:kube-controller-manager", cmUser.certPem, cmUser.keyPem));
    const adminTls: https.RequestOptions = { ca: ca.certPem, cert: admin.certPem, key: admin.keyPem };

    const launch = (name: string, args: string[]): ChildProcess => {
      const logFile = f(`${name}.log`);
      const fd = fs.openSync(logFile, "a");
      const exe = path.join(bin, name);
      // detached: its own process group, so a terminal's Ctrl-C reaches only us and we stop the
      // components in order; setpriv --pdeathsig KILL: the kernel kills it if we die without
      // running any handler (SIGKILL, OOM).
      const [cmd, argv] = hasSetpriv ? ["setpriv", ["--pdeathsig", "KILL", "--", exe, ...args]] : [exe, args];
      const child = spawn(cmd, argv, { detached: true, stdio: ["ignore", fd, fd], cwd: dir });
      fs.closeSync(fd);
      child.on("error", () => {}); // reported through the exit checks below
      state.children.push(child);
      fs.appendFileSync(f("children.pid"), `${child.pid}\n`);
      log(`${name} pid ${child.pid}, log ${logFile}`);
      return child;
    };

    const waitFor = async (name: string, child: ChildProcess, probe: () => Promise<boolean>): Promise<void> => {
      const deadline = Date.now() + readyTimeout;
      let last = "";
      for (;;) {
        if (child.exitCode !== null || child.signalCode !== null) {
          throw new Error(`${name} exited (${child.exitCode ?? child.signalCode}) before it was ready; its log ends:\n${tail(f(`${name}.log`))}`);
        }
        try {
          if (await probe()) return;
        } catch (e: any) {
          last = e.message;
        }
        if (Date.now() > deadline) {
          throw new Error(`${name} not ready after ${readyTimeout} ms (${last}); its log ends:\n${tail(f(`${name}.log`))}`);
        }
        await sleep(250);
      }
    };

    // --- etcd: plain HTTP on loopback only (nothing else can reach it); the peer port is set
    // too, or etcd would take the fixed 2380 and two control planes could not coexist.
    const etcd = launch("etcd", [
      "--name=default",
      `--data-dir=${f("etcd")}`,
      `--listen-client-urls=http://127.0.0.1:${etcdClient}`,
      `--advertise-client-urls=http://127.0.0.1:${etcdClient}`,
      `--listen-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-cluster=default=http://127.0.0.1:${etcdPeer}`,
      // A throwaway store: skipping fsync makes every write (and so every apply) far faster.
      "--unsafe-no-fsync",
      "--log-level=warn",
    ]);
    await waitFor("etcd", etcd, async () => {
      const r = await fetchOnce(`http://127.0.0.1:${etcdClient}/health`, {});
      return r.status === 200 && JSON.parse(r.body).health === "true";
    });
    timings.etcd = Date.now() - t0;

    // --- kube-apiserver
    const apiserver = launch("kube-apiserver", [
      `--etcd-servers=http://127.0.0.1:${etcdClient}`,
      "--bind-address=127.0.0.1",
      // The address the `kubernetes` Service's endpoints would carry. v1.37 refuses a loopback
      // address there ("cannot use public IP 127.0.0.1 with endpoint reconciler: may not be in
      // the loopback range"; a startup check since kubernetes PR 138102, fixing issue 121942,
      // where a loopback address poisoned the Endpoints), and nothing outside this machine may reach the server, so the
      // endpoint reconciler is off: the `kubernetes` Service exists (10.96.0.1) without
      // endpoints; the kubelet stand-in's kube-proxy must send 10.96.0.1:443 to `server` itself.
      "--advertise-address=127.0.0.1",
      "--endpoint-reconciler-type=none",
      `--secure-port=${apiPort}`,
      `--tls-cert-file=${servingCrt}`,
      `--tls-private-key-file=${servingKey}`,
      // Client certificates signed by our CA authenticate (CN = user, O = groups).
      `--client-ca-file=${caCrt}`,
      // Its default is /var/run/kubernetes: keep everything it might write in our directory.
      `--cert-dir=${f("apiserver-certs")}`,
      `--service-cluster-ip-range=${SERVICE_CIDR}`,
      // What kubeadm and managed clusters run: the Node authorizer (for the kubelet stand-in
      // later) then RBAC; without the flag the server would allow everything and hide RBAC bugs.
      "--authorization-mode=Node,RBAC",
      // On top of the defaults (NamespaceLifecycle, ServiceAccount, PodSecurity, ResourceQuota,
      // the admission webhooks, ...): NodeRestriction, as kubeadm enables it with Node authz.
      "--enable-admission-plugins=NodeRestriction",
      // Mesh pods run a NET_ADMIN init container; kubeadm and kind allow privileged pods too,
      // so pod security is left to the PodSecurity admission and the namespace labels.
      "--allow-privileged=true",
      // Service account tokens: the issuer ("iss" claim, must be an https URL for OIDC
      // discovery), the public key that verifies them, the private key that signs them
      // (TokenRequest); the audiences default to the issuer.
      "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
      `--service-account-key-file=${saPubFile}`,
      `--service-account-signing-key-file=${saKey}`,
      "--profiling=false",
    ]);
    await waitFor("kube-apiserver", apiserver, async () => {
      const r = await fetchOnce(`${server}/readyz`, adminTls);
      if (r.status !== 200) throw new Error(`/readyz ${r.status}: ${r.body.slice(0, 300)}`);
      return true;
    });
    const ver = await fetchOnce(`${server}/version`, adminTls);
    const version = JSON.parse(ver.body).gitVersion as string;
    if (version !== expectVersion) {
      throw new Error(`kube-apiserver /version says ${version}, the tools pin ${expectVersion} (stale tools cache? run \`npm run cluster:tools\`)`);
    }
    timings.apiserver = Date.now() - t0;

    // --- kube-controller-manager
    const cm = launch("kube-controller-manager", [
      `--kubeconfig=${cmKubeconfig}`,
      // Its own HTTPS endpoint authenticates and authorizes callers through the API server;
      // /healthz is on the always-allowed list, which is all we call. Skip-lookup: it would
      // otherwise read the front-proxy (requestheader) CA from kube-system's
      // extension-apiserver-authentication ConfigMap, which we do not configure (no aggregated
      // APIs), and log "missing content for CA bundle" several times a second.
      `--authentication-kubeconfig=${cmKubeconfig}`,
      "--authentication-skip-lookup=true",
      `--authorization-kubeconfig=${cmKubeconfig}`,
      "--bind-address=127.0.0.1",
      `--secure-port=${cmPort}`,
      // Its self-signed serving certificate goes here (default /var/run/kubernetes).
      `--cert-dir=${f("controller-manager-certs")}`,
      // Every on-by-default controller. v1.37's list (see `--help`) no longer holds the cloud
      // ones (cloud-node-lifecycle, service-lb, node-route live in cloud-controller-manager), so
      // there is nothing to subtract; node-ipam does nothing without --allocate-node-cidrs.
      "--controllers=*",
      // Each controller gets its own service account token (TokenRequest) and so only its
      // bootstrap RBAC role, as in kubeadm; RBAC mistakes show here as they would in a cluster.
      "--use-service-account-credentials=true",
      // Signs legacy service-account-token Secrets; same key pair as the API server's.
      `--service-account-private-key-file=${saKey}`,
      // Published as kube-root-ca.crt in every namespace (what pods mount to trust the API server).
      `--root-ca-file=${caCrt}`,
      // The CSR signing controller (kubelet client and serving certificates, later) signs with the cluster CA.
      `--cluster-signing-cert-file=${caCrt}`,
      `--cluster-signing-key-file=${caKey}`,
      // One instance: no leader election, so controllers start at once instead of after a lease.
      "--leader-elect=false",
      "--profiling=false",
    ]);
    await waitFor("kube-controller-manager", cm, async () => {
      const r = await fetchOnce(`https://127.0.0.1:${cmPort}/healthz`, { rejectUnauthorized: false });
      return r.status === 200;
    });
    timings.controllerManagerHealthz = Date.now() - t0;
    // Proof it acts through the API server with its own credentials: the serviceaccount
    // controller creates the `default` ServiceAccount of the `default` namespace.
    await waitFor("kube-controller-manager", cm, async () => {
      const r = await fetchOnce(`${server}/api/v1/namespaces/default/serviceaccounts/default`, adminTls);
      return r.status === 200;
    });
    timings.controllerManager = Date.now() - t0;
    timings.total = Date.now() - t0;
    log(`control plane ${version} at ${server} ready in ${timings.total} ms (${dir})`);

    const request = async (method: string, apiPath: string, body?: unknown) => {
      const r = await fetchOnce(`${server}${apiPath}`, adminTls, method, body === undefined ? undefined : JSON.stringify(body));
      let parsed: any = r.body;
      try {
        parsed = JSON.parse(r.body);
      } catch {
        /* not JSON */
      }
      return { status: r.status, body: parsed };
    };

    return {
      kubeconfigPath,
      server,
      dir,
      version,
      ports: { etcdClient, etcdPeer, apiserver: apiPort, controllerManager: cmPort },
      pids: { etcd: etcd.pid!, apiserver: apiserver.pid!, controllerManager: cm.pid! },
      timings,
      caPem: ca.certPem,
      adminCertPem: admin.certPem,
      adminKeyPem: admin.keyPem,
      request,
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}
