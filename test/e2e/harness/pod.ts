// One pod replica, run the way kubelet runs it: network namespace and hosts file, volumes in
// the `..data` layout, init containers in order (native sidecars — restartPolicy Always — are
// started and must pass their startup probe before the next container starts), then the app
// containers; readiness from the pod's own probes (httpGet, tcpSocket, grpc), executed from the
// node namespace.
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { checkGrpcHealth } from "../../../proxy/admin-grpc";
import { asDuplex, Dialer, httpGet, startDialer } from "./dialer";
import type { CodeRoots } from "./code";
import { ImageRun, resolveImage, rewritePaths } from "./images";
import { Container, KeyToPath, KubeObject, objectData, PodSpec, Probe, ProjectedSource, Volume } from "./kube";
import { createPodNetwork, PodNetwork } from "./network";
import { Identity, runInNamespace, setprivArgs, Started, startInNamespace, tail } from "./process";
import type { RunNames } from "./names";
import { isRunning, namespacePids } from "./teardown";
import { runSyncQuiet } from "./exec";
import { VolumeFile, writeVolume } from "./volumes";

// The container runtime's default capability set (containerd/Docker), before add/drop.
const DEFAULT_CAPS = [
  "chown", "dac_override", "fowner", "fsetid", "kill", "setgid", "setuid", "setpcap",
  "net_bind_service", "net_raw", "sys_chroot", "mknod", "audit_write", "setfcap",
];

export class PodError extends Error {}

export interface PodContext {
  names: RunNames;
  /** Secret / ConfigMap lookup by kind, namespace, name. */
  lookup(kind: "Secret" | "ConfigMap", namespace: string, name: string): KubeObject | undefined;
  proxyImages: ReadonlySet<string>;
  /** Where pod processes find the repository and node (code.ts). */
  code: CodeRoots;
  /** HTTP GET / TCP connect from the node namespace, as kubelet probes. */
  node: Dialer;
  /** What `spec.nodeName` reads as (the harness's node namespace, or the Node the pod is bound to). */
  nodeName: string;
  /**
   * A projected serviceAccountToken source's token (a TokenRequest, made before the pod starts).
   * Without it such a source is refused: the engine stand-in has no API server to sign tokens.
   */
  serviceAccountToken?(source: NonNullable<ProjectedSource["serviceAccountToken"]>): string;
  /** Called when a running container exits (kubelet would report it and restart it). */
  onContainerExit?(container: string): void;
  log(line: string): void;
}

export interface ContainerState {
  name: string;
  init: boolean;
  image: ImageRun;
  identity: Identity;
  process?: Started;
  exit?: { code: number | null; signal: NodeJS.Signals | null };
  /** ISO times, for the container statuses a kubelet reports. */
  startedAt: string;
  finishedAt?: string;
  logFile: string;
}

export interface ProbeResult {
  ok: boolean;
  detail: string;
}

export interface ProbeFailure {
  container: string;
  kind: "readiness" | "liveness";
  detail: string;
  at: string;
  /** failureThreshold consecutive failures: kubelet would mark the pod unready / restart the container. */
  thresholdReached: boolean;
}

/** The pod fields a downwardAPI volume item can name (the ones kube-api-access-* and our pods use). */
export interface PodFields {
  name: string;
  namespace: string;
  labels: Record<string, string>;
}

function downwardField(fieldPath: string, pod: PodFields, volume: string): string {
  switch (fieldPath) {
    case "metadata.name": return pod.name;
    case "metadata.namespace": return pod.namespace;
    case "metadata.labels": return Object.entries(pod.labels).sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join("\n");
  }
  throw new PodError(`volume "${volume}": downwardAPI field ${fieldPath} is not supported by the harness`);
}

/** The files of one volume (pure): what kubelet would project for it. */
export function volumeFiles(volume: Volume, pod: PodFields, ctx: Pick<PodContext, "lookup" | "serviceAccountToken">): VolumeFile[] | "emptyDir" {
  const { namespace } = pod;
  const { lookup } = ctx;
  const fromObject = (kind: "Secret" | "ConfigMap", name: string, items: KeyToPath[] | undefined, mode: number, optional?: boolean) => {
    const obj = lookup(kind, namespace, name);
    if (!obj) {
      if (optional) return [];
      throw new PodError(`volume "${volume.name}": ${kind} ${namespace}/${name} does not exist (kubelet would keep the pod in ContainerCreating)`);
    }
    const data = objectData(obj);
    if (!items) return [...data].map(([key, content]) => ({ path: key, content, mode }));
    return items.map((item) => {
      const content = data.get(item.key);
      if (!content) throw new PodError(`volume "${volume.name}": ${kind} ${namespace}/${name} has no key "${item.key}"`);
      return { path: item.path, content, mode: item.mode ?? mode };
    });
  };
  if (volume.secret) return fromObject("Secret", volume.secret.secretName, volume.secret.items, volume.secret.defaultMode ?? 0o644, volume.secret.optional);
  if (volume.configMap) return fromObject("ConfigMap", volume.configMap.name, volume.configMap.items, volume.configMap.defaultMode ?? 0o644, volume.configMap.optional);
  if (volume.projected) {
    const mode = volume.projected.defaultMode ?? 0o644;
    return volume.projected.sources.flatMap((s) => {
      if (s.secret) return fromObject("Secret", s.secret.name, s.secret.items, mode, s.secret.optional);
      if (s.configMap) return fromObject("ConfigMap", s.configMap.name, s.configMap.items, mode, s.configMap.optional);
      if (s.serviceAccountToken) {
        if (!ctx.serviceAccountToken) throw new PodError(`volume "${volume.name}": a serviceAccountToken source needs an API server to sign it`);
        return [{ path: s.serviceAccountToken.path, content: Buffer.from(ctx.serviceAccountToken(s.serviceAccountToken)), mode }];
      }
      if (s.downwardAPI) {
        return s.downwardAPI.items.map((item) => {
          if (!item.fieldRef) throw new PodError(`volume "${volume.name}": downwardAPI item ${item.path} has no fieldRef (resourceFieldRef is not supported by the harness)`);
          return { path: item.path, content: Buffer.from(downwardField(item.fieldRef.fieldPath, pod, volume.name)), mode: item.mode ?? mode };
        });
      }
      throw new PodError(`volume "${volume.name}": projected source ${JSON.stringify(Object.keys(s))} is not supported by the harness`);
    });
  }
  if (volume.emptyDir) return "emptyDir";
  throw new PodError(`volume "${volume.name}": type ${JSON.stringify(Object.keys(volume).filter((k) => k !== "name"))} is not supported by the harness`);
}

const sameFiles = (a: VolumeFile[], b: VolumeFile[]) =>
  a.length === b.length && a.every((f, i) => f.path === b[i].path && f.mode === b[i].mode && f.content.equals(b[i].content));

export class Pod {
  readonly dir: string;
  network?: PodNetwork;
  readonly containers = new Map<string, ContainerState>();
  ready = false;
  /** Every failed periodic probe (kubelet's view of the pod while it runs). */
  readonly probeFailures: ProbeFailure[] = [];
  private readonly probeTimers: NodeJS.Timeout[] = [];
  private readonly volumeDirs = new Map<string, string>();
  private readonly volumePayloads = new Map<string, VolumeFile[]>();
  private readonly dialers = new Map<string, Promise<Dialer>>();

  constructor(
    readonly name: string,
    readonly namespace: string,
    readonly labels: Record<string, string>,
    readonly spec: PodSpec,
    readonly index: number,
    private readonly ctx: PodContext,
  ) {
    this.dir = path.join(ctx.names.dir, "pods", this.id);
  }

  /** Unique across Kubernetes namespaces: names the network namespace and the pod's directory. */
  get id(): string {
    return `${this.namespace}-${this.name}`;
  }

  get ip(): string {
    if (!this.network) throw new PodError(`pod ${this.namespace}/${this.name} has no network yet`);
    return this.network.ip;
  }

  /** The pod's IPv6 address (the harness's pods are dual-stack). */
  get ip6(): string {
    if (!this.network) throw new PodError(`pod ${this.namespace}/${this.name} has no network yet`);
    return this.network.ip6;
  }

  get ns(): string {
    return this.ctx.names.podNs(this.id);
  }

  async start(ip: string, hosts: string): Promise<void> {
    fs.mkdirSync(path.join(this.dir, "volumes"), { recursive: true, mode: 0o755 });
    fs.mkdirSync(path.join(this.dir, "logs"), { recursive: true, mode: 0o755 });
    this.network = await createPodNetwork(this.ctx.names, this.id, this.index, ip);
    const hostsDir = path.join("/etc/netns", this.ns);
    fs.mkdirSync(hostsDir, { recursive: true, mode: 0o755 });
    fs.writeFileSync(path.join(hostsDir, "hosts"), hosts, { mode: 0o644 });
    for (const volume of this.spec.volumes ?? []) this.mountVolume(volume);

    for (const c of this.spec.initContainers ?? []) {
      if (c.restartPolicy === "Always") {
        this.startContainer(c, true);
        const probe = c.startupProbe ?? c.readinessProbe;
        if (probe) await this.waitForProbe(c, probe, "startup");
      } else {
        await this.runInitContainer(c);
      }
    }
    for (const c of this.spec.containers) this.startContainer(c, false);
    for (const c of [...(this.spec.initContainers ?? []).filter((i) => i.restartPolicy === "Always"), ...this.spec.containers]) {
      if (c.startupProbe && !this.containers.get(c.name)!.init) await this.waitForProbe(c, c.startupProbe, "startup");
      if (c.readinessProbe) await this.waitForProbe(c, c.readinessProbe, "readiness");
    }
    this.ready = true;
  }

  /**
   * Kubelet's periodic probing once the pod runs: readiness and liveness every periodSeconds.
   * failureThreshold consecutive readiness failures make the pod unready (`onReadiness` lets the
   * cluster update the Service endpoints); liveness failures are recorded (no restarts here).
   */
  startProbing(onReadiness: (pod: Pod) => void): void {
    const unready = new Set<string>();
    const update = () => {
      const ready = unready.size === 0;
      if (ready !== this.ready) {
        this.ready = ready;
        onReadiness(this);
      }
    };
    for (const c of [...(this.spec.initContainers ?? []).filter((i) => i.restartPolicy === "Always"), ...this.spec.containers]) {
      for (const kind of ["readiness", "liveness"] as const) {
        const probe = kind === "readiness" ? c.readinessProbe : c.livenessProbe;
        if (!probe) continue;
        let failures = 0;
        let busy = false;
        const timer = setInterval(async () => {
          if (busy || this.containers.get(c.name)?.exit) return;
          busy = true;
          const result = await this.probe(c, probe);
          busy = false;
          if (result.ok) {
            failures = 0;
            if (kind === "readiness" && unready.delete(c.name)) update();
            return;
          }
          failures++;
          const thresholdReached = failures >= (probe.failureThreshold ?? 3);
          this.probeFailures.push({ container: c.name, kind, detail: result.detail, at: new Date().toISOString(), thresholdReached });
          if (kind === "readiness" && thresholdReached) {
            unready.add(c.name);
            update();
          }
        }, (probe.periodSeconds ?? 10) * 1000);
        timer.unref();
        this.probeTimers.push(timer);
      }
    }
  }

  stopProbing(): void {
    this.probeTimers.forEach(clearInterval);
  }

  private mountVolume(volume: Volume): void {
    const dir = path.join(this.dir, "volumes", volume.name);
    this.volumeDirs.set(volume.name, dir);
    const files = volumeFiles(volume, this, this.ctx);
    if (files === "emptyDir") {
      fs.mkdirSync(dir, { recursive: true, mode: 0o777 });
      fs.chmodSync(dir, 0o777);
      return;
    }
    writeVolume(dir, files, { fsGroup: this.spec.securityContext?.fsGroup });
    this.volumePayloads.set(volume.name, files);
  }

  /** Rewrites volumes whose Secret/ConfigMap content changed (kubelet's sync); returns their names. */
  refreshVolumes(): string[] {
    const changed: string[] = [];
    for (const volume of this.spec.volumes ?? []) {
      const files = volumeFiles(volume, this, this.ctx);
      if (files === "emptyDir") continue;
      const previous = this.volumePayloads.get(volume.name) ?? [];
      if (sameFiles(previous, files)) continue;
      writeVolume(this.volumeDirs.get(volume.name)!, files, { fsGroup: this.spec.securityContext?.fsGroup });
      this.volumePayloads.set(volume.name, files);
      changed.push(volume.name);
    }
    return changed;
  }

  volumeDir(name: string): string {
    const dir = this.volumeDirs.get(name);
    if (!dir) throw new PodError(`pod ${this.namespace}/${this.name} has no volume ${name}`);
    return dir;
  }

  identityFor(c: Container, image: ImageRun): Identity {
    const podSc = this.spec.securityContext ?? {};
    const sc = c.securityContext ?? {};
    const uid = sc.runAsUser ?? podSc.runAsUser ?? image.defaultUid;
    const gid = sc.runAsGroup ?? podSc.runAsGroup ?? image.defaultGid;
    if ((sc.runAsNonRoot ?? podSc.runAsNonRoot) && uid === 0) {
      throw new PodError(`container "${c.name}" has runAsNonRoot but would run as UID 0 (CreateContainerConfigError)`);
    }
    const drop = (sc.capabilities?.drop ?? []).map((x) => x.toLowerCase());
    const add = (sc.capabilities?.add ?? []).map((x) => x.toLowerCase());
    const caps = new Set(drop.includes("all") ? [] : DEFAULT_CAPS.filter((x) => !drop.includes(x)));
    add.forEach((x) => caps.add(x));
    const groups = [podSc.fsGroup, ...(podSc.supplementalGroups ?? [])].filter((g): g is number => g !== undefined);
    return { uid, gid, groups, capabilities: [...caps], noNewPrivileges: sc.allowPrivilegeEscalation === false };
  }

  private containerArgv(c: Container, image: ImageRun): string[] {
    const mounts = (c.volumeMounts ?? []).map((m) => {
      if (m.subPath) throw new PodError(`container "${c.name}": subPath mounts are not supported by the harness`);
      return { mountPath: m.mountPath, hostPath: this.volumeDir(m.name) };
    });
    return rewritePaths(image.argv, mounts);
  }

  private env(c: Container): Record<string, string> {
    const env: Record<string, string> = { HOSTNAME: this.name };
    for (const e of c.env ?? []) {
      if (e.value !== undefined) env[e.name] = e.value;
      else if (e.valueFrom?.fieldRef) env[e.name] = this.fieldRef(e.valueFrom.fieldRef.fieldPath, c);
      else throw new PodError(`container "${c.name}": env ${e.name} uses a valueFrom the harness does not support`);
    }
    return env;
  }

  private fieldRef(fieldPath: string, c: Container): string {
    switch (fieldPath) {
      case "metadata.name": return this.name;
      case "metadata.namespace": return this.namespace;
      case "status.podIP": return this.ip;
      case "spec.serviceAccountName": return this.spec.serviceAccountName ?? "default";
      case "spec.nodeName": return this.ctx.nodeName;
    }
    throw new PodError(`container "${c.name}": fieldRef ${fieldPath} is not supported by the harness`);
  }

  private prepare(c: Container, init: boolean): ContainerState {
    const image = resolveImage(c, this.ctx.proxyImages, this.ctx.code);
    const state: ContainerState = {
      name: c.name,
      init,
      image,
      identity: this.identityFor(c, image),
      logFile: path.join(this.dir, "logs", `${c.name}.log`),
      startedAt: new Date().toISOString(),
    };
    this.containers.set(c.name, state);
    return state;
  }

  private async runInitContainer(c: Container): Promise<void> {
    const state = this.prepare(c, true);
    const code = await runInNamespace({ ns: this.ns, identity: state.identity, argv: this.containerArgv(c, state.image), env: this.env(c), logFile: state.logFile });
    state.exit = { code, signal: null };
    state.finishedAt = new Date().toISOString();
    if (code !== 0) throw new PodError(`pod ${this.namespace}/${this.name}: init container "${c.name}" exited ${code}:\n${tail(state.logFile)}`);
  }

  private startContainer(c: Container, init: boolean): void {
    const state = this.prepare(c, init);
    state.process = startInNamespace({ ns: this.ns, identity: state.identity, argv: this.containerArgv(c, state.image), env: this.env(c), logFile: state.logFile });
    state.process.exited.then((exit) => {
      state.exit = exit;
      state.finishedAt = new Date().toISOString();
      this.ctx.log(`pod ${this.namespace}/${this.name}: container ${c.name} exited (${exit.code ?? exit.signal})`);
      this.ctx.onContainerExit?.(c.name);
    });
  }

  /** Runs one probe as kubelet would, from the node namespace. */
  async probe(c: Container, probe: Probe): Promise<ProbeResult> {
    const port = (p: number | string) => {
      if (typeof p === "number") return p;
      const named = c.ports?.find((x) => x.name === p)?.containerPort;
      if (named === undefined) throw new PodError(`container "${c.name}": probe port "${p}" names no port`);
      return named;
    };
    const timeoutMs = (probe.timeoutSeconds ?? 1) * 1000;
    try {
      if (probe.httpGet) {
        if ((probe.httpGet.scheme ?? "HTTP") !== "HTTP") return { ok: false, detail: "HTTPS probes are not supported by the harness" };
        const host = probe.httpGet.host ?? this.ip;
        const headers = Object.fromEntries((probe.httpGet.httpHeaders ?? []).map((h) => [h.name, h.value]));
        const res = await httpGet(() => this.ctx.node.dial(host, port(probe.httpGet!.port)), {
          host,
          path: probe.httpGet.path ?? "/",
          headers: { "user-agent": "kube-probe/1.31", ...headers },
          timeoutMs,
        });
        return { ok: res.status >= 200 && res.status < 400, detail: `HTTP ${res.status}` };
      }
      if (probe.grpc) {
        // kubelet's gRPC probe: Health/Check over h2c to the pod IP, healthy only when SERVING.
        const socket = await this.ctx.node.dial(this.ip, probe.grpc.port);
        const result = await checkGrpcHealth({ authority: `http://${this.ip}:${probe.grpc.port}`, service: probe.grpc.service ?? "", timeoutMs, connection: asDuplex(socket) });
        return { ok: result.serving, detail: `gRPC ${result.detail}` };
      }
      if (probe.tcpSocket) {
        (await this.ctx.node.dial(this.ip, port(probe.tcpSocket.port))).destroy();
        return { ok: true, detail: "connected" };
      }
      return { ok: false, detail: `probe type ${JSON.stringify(Object.keys(probe))} is not supported by the harness` };
    } catch (err) {
      return { ok: false, detail: (err as Error).message };
    }
  }

  /** Polls a probe (faster than periodSeconds: only the outcome matters) until it passes. */
  private async waitForProbe(c: Container, probe: Probe, kind: string): Promise<void> {
    const budgetMs = Math.max(20_000, (probe.initialDelaySeconds ?? 0) * 1000 + (probe.failureThreshold ?? 3) * (probe.periodSeconds ?? 10) * 1000);
    const deadline = Date.now() + Math.min(budgetMs, 60_000);
    let last: ProbeResult = { ok: false, detail: "not run" };
    while (Date.now() < deadline) {
      const state = this.containers.get(c.name);
      if (state?.exit) throw new PodError(`pod ${this.namespace}/${this.name}: container "${c.name}" exited (${state.exit.code ?? state.exit.signal}) before its ${kind} probe passed:\n${tail(state.logFile)}`);
      last = await this.probe(c, probe);
      if (last.ok) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new PodError(`pod ${this.namespace}/${this.name}: ${kind} probe of "${c.name}" did not pass (${last.detail}):\n${tail(this.containers.get(c.name)!.logFile)}`);
  }

  container(name: string): Container {
    const c = [...(this.spec.initContainers ?? []), ...this.spec.containers].find((x) => x.name === name);
    if (!c) throw new PodError(`pod ${this.namespace}/${this.name} has no container ${name}`);
    return c;
  }

  /**
   * Kubelet's pod teardown: SIGTERM to every process in the pod's namespace, SIGKILL to what is
   * left after `graceMs`, then the namespace (and with it the veth pair), the hosts file and the
   * pod's directory. Safe to call twice.
   */
  async stop(graceMs: number): Promise<void> {
    this.stopProbing();
    const signal = (sig: NodeJS.Signals) => {
      for (const pid of namespacePids(this.ns)) {
        try {
          process.kill(pid, sig);
        } catch {
          /* already gone */
        }
      }
    };
    signal("SIGTERM");
    const deadline = Date.now() + graceMs;
    while (namespacePids(this.ns).some(isRunning) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    signal("SIGKILL");
    runSyncQuiet("ip", ["netns", "delete", this.ns]);
    fs.rmSync(path.join("/etc/netns", this.ns), { recursive: true, force: true });
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  /** PIDs of the running containers, by name (to prove "no restart"). */
  pids(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [name, s] of this.containers) if (s.process && !s.exit) out[name] = s.process.pid;
    return out;
  }

  /** `kubectl exec`: runs argv in the container's namespace as the container's user. */
  exec(containerName: string, argv: string[], timeoutMs = 10_000): Promise<{ code: number; stdout: string; stderr: string }> {
    const state = this.containers.get(containerName);
    if (!state) throw new PodError(`pod ${this.namespace}/${this.name} has no running container ${containerName}`);
    return new Promise((resolve) => {
      execFile("ip", ["netns", "exec", this.ns, "setpriv", ...setprivArgs(state.identity), "--", ...argv], { timeout: timeoutMs, encoding: "utf8" }, (err, stdout, stderr) => {
        const code = err ? (typeof err.code === "number" ? err.code : -1) : 0;
        resolve({ code, stdout, stderr });
      });
    });
  }

  /** TCP connections opened inside the container (its netns and UID), for long-lived clients. */
  dialer(containerName: string): Promise<Dialer> {
    let d = this.dialers.get(containerName);
    if (!d) {
      const state = this.containers.get(containerName);
      if (!state) throw new PodError(`pod ${this.namespace}/${this.name} has no running container ${containerName}`);
      const sock = path.join(this.ctx.names.dir, "sock", `${this.id}-${containerName}`);
      d = startDialer(this.ns, state.identity, sock, path.join(this.dir, "logs", `${containerName}.dialer.log`), this.ctx.code);
      this.dialers.set(containerName, d);
    }
    return d;
  }
}
