// One node for the local control plane: the e2e harness playing kubelet, kube-proxy and cluster
// DNS against the real API server. It
//  - registers a Node and renews its Lease (the node-lifecycle controller would otherwise evict);
//  - binds every unscheduled pod to itself (there is no scheduler: it is the only node);
//  - runs the pods bound to it exactly as the e2e harness runs rendered ones (network namespaces,
//    the real mesh-proxy init and sidecar, volumes in kubelet's layout from the API's Secrets and
//    ConfigMaps, service account tokens from TokenRequest), and writes their status back;
//  - swaps changed Secrets and ConfigMaps into running pods' volumes, as kubelet's sync does;
//  - stops a pod whose deletion began and then removes it from the API (grace period 0);
//  - programs kube-proxy's DNAT from the API's Services and EndpointSlices, and hosts files
//    from its Services.
// It acts as the cluster admin, not as system:node:<name> (no kubelet client certificate).
import * as fs from "node:fs";
import * as k8s from "@kubernetes/client-node";
import { codeRootsFor, CodeRoots } from "../../e2e/harness/code";
import { proxyImagesOf, startNodeNamespace } from "../../e2e/harness/cluster";
import type { Dialer } from "../../e2e/harness/dialer";
import { hostsFile } from "../../e2e/harness/dns";
import { HOST_CODE } from "../../e2e/harness/images";
import type { KubeObject, PodSpec, ProjectedSource } from "../../e2e/harness/kube";
import { KubeProxy } from "../../e2e/harness/kube-proxy";
import { POD_CIDR, RunNames } from "../../e2e/harness/names";
import { podIp, writeHostsFile } from "../../e2e/harness/network";
import { Pod, PodContext } from "../../e2e/harness/pod";
import { isRunning, listNamespaces, namespacePids, sweepRun } from "../../e2e/harness/teardown";
import { Api, connect, statusOf, Watched } from "./api";
import { serviceRules } from "./endpoints";
import { ContainerView, podStatus } from "./status";

const LEASE_SECONDS = 40;
const RENEW_MS = 10_000;
/** A deleted pod's processes get SIGTERM, then SIGKILL after at most this (tests need no 30 s drain). */
const MAX_GRACE_MS = 3_000;
const STRATEGIC = k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.StrategicMergePatch);
const MERGE = k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch);

/** A MicroTime as the API server parses it (RFC 3339 with exactly six fractional digits). */
const microTime = (d = new Date()) => d.toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");

interface Entry {
  uid: string;
  namespace: string;
  name: string;
  spec: PodSpec;
  startTime: string;
  index?: number;
  pod?: Pod;
  waiting?: { reason: string; message: string };
  conditions?: k8s.V1PodCondition[];
  /** Status writes, one at a time and in order. */
  writes: Promise<void>;
  deleted: boolean;
  stopped?: Promise<void>;
}

export interface NodeOptions {
  kubeconfigPath: string;
  log?: (line: string) => void;
}

export class NodeStandIn {
  private readonly entries = new Map<string, Entry>();
  private readonly binding = new Set<string>();
  private readonly usedIndexes = new Set<number>();
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly watches: Watched<any>[] = [];
  private services!: Watched<k8s.V1Service>;
  private slices!: Watched<k8s.V1EndpointSlice>;
  private secrets!: Watched<k8s.V1Secret>;
  private configMaps!: Watched<k8s.V1ConfigMap>;
  private pods!: Watched<k8s.V1Pod>;
  private readonly kubeProxy: KubeProxy;
  private syncing: Promise<void> = Promise.resolve();
  private syncQueued = false;
  private stopping = false;
  private code: CodeRoots = HOST_CODE;
  private released?: () => void;

  private constructor(
    readonly names: RunNames,
    private readonly api: Api,
    private readonly dialer: Dialer,
    private readonly log: (line: string) => void,
  ) {
    this.kubeProxy = new KubeProxy(names.nodeNs, names.id);
  }

  /** The Node's name (also its network namespace's). */
  get name(): string {
    return this.names.nodeNs;
  }

  /** The node bridge's address: the pods' hostIP and the address probes come from. */
  get hostIP(): string {
    return POD_CIDR.gateway;
  }

  get nodeDialer(): Dialer {
    return this.dialer;
  }

  static async start(opts: NodeOptions): Promise<NodeStandIn> {
    const log = opts.log ?? (() => {});
    const { names, release, node: dialer } = await startNodeNamespace(log);
    const node = new NodeStandIn(names, connect(opts.kubeconfigPath), dialer, log);
    node.released = release;
    try {
      node.code = codeRootsFor(names.dir, HOST_CODE, log);
      await node.register();
      await node.watch();
      log(`node ${node.name} registered; pods in ${POD_CIDR.base}.0/${POD_CIDR.prefixLength}`);
      return node;
    } catch (err) {
      await node.stop();
      throw err;
    }
  }

  // --- the Node and its Lease -----------------------------------------------------------------

  private async register(): Promise<void> {
    const now = new Date();
    const condition = (type: string, status: string, reason: string) => ({ type, status, reason, lastHeartbeatTime: now, lastTransitionTime: now });
    const resources = { cpu: "2", memory: "8Gi", pods: "110", "ephemeral-storage": "20Gi" };
    const node: k8s.V1Node = {
      apiVersion: "v1",
      kind: "Node",
      metadata: { name: this.name, labels: { "kubernetes.io/hostname": this.name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64" } },
      spec: {},
      status: {
        conditions: [
          condition("MemoryPressure", "False", "KubeletHasSufficientMemory"),
          condition("DiskPressure", "False", "KubeletHasNoDiskPressure"),
          condition("PIDPressure", "False", "KubeletHasSufficientPID"),
          condition("Ready", "True", "KubeletReady"),
        ],
        addresses: [{ type: "InternalIP", address: this.hostIP }, { type: "Hostname", address: this.name }],
        capacity: resources,
        allocatable: resources,
        nodeInfo: {
          architecture: "amd64",
          operatingSystem: "linux",
          osImage: "e2e harness (network namespaces)",
          kernelVersion: fs.readFileSync("/proc/sys/kernel/osrelease", "utf8").trim(),
          containerRuntimeVersion: "netns-harness://1",
          kubeletVersion: "v1.37.2",
          kubeProxyVersion: "",
          machineID: this.names.id,
          systemUUID: this.names.id,
          bootID: this.names.id,
        },
      },
    };
    await this.api.core.createNode({ body: node });
    // The create keeps the status on some versions and drops it on others: write it explicitly.
    await this.api.core.patchNodeStatus({ name: this.name, body: { status: node.status } }, STRATEGIC);
    const lease: k8s.V1Lease = {
      metadata: { name: this.name, namespace: "kube-node-lease" },
      spec: { holderIdentity: this.name, leaseDurationSeconds: LEASE_SECONDS, renewTime: microTime() as unknown as Date },
    };
    await this.api.coordination.createNamespacedLease({ namespace: "kube-node-lease", body: lease });
    const renew = setInterval(() => {
      this.api.coordination
        .patchNamespacedLease({ name: this.name, namespace: "kube-node-lease", body: { spec: { renewTime: microTime() } } }, MERGE)
        .catch((err: Error) => this.log(`lease renewal failed: ${err.message}`));
    }, RENEW_MS);
    renew.unref();
    this.timers.push(renew);
  }

  // --- watches --------------------------------------------------------------------------------

  private async watch(): Promise<void> {
    const { core, discovery } = this.api;
    const w = <T extends k8s.KubernetesObject>(p: string, list: () => Promise<k8s.KubernetesListObject<T>>, on: (o: T, verb: "add" | "update" | "delete") => void) => {
      const watched = new Watched<T>(this.api, p, list, (o, verb) => {
        if (!this.stopping) on(o, verb);
      }, this.log);
      this.watches.push(watched);
      return watched;
    };
    this.secrets = w("/api/v1/secrets", () => core.listSecretForAllNamespaces(), (o) => this.refreshVolumes(o.metadata?.namespace));
    this.configMaps = w("/api/v1/configmaps", () => core.listConfigMapForAllNamespaces(), (o) => this.refreshVolumes(o.metadata?.namespace));
    this.services = w("/api/v1/services", () => core.listServiceForAllNamespaces(), () => this.scheduleNetworkSync());
    this.slices = w("/apis/discovery.k8s.io/v1/endpointslices", () => discovery.listEndpointSliceForAllNamespaces(), () => this.scheduleNetworkSync());
    // Volumes' sources and the Services first, so that the first pods find them in the caches.
    for (const x of [this.secrets, this.configMaps, this.services, this.slices]) await x.start();
    this.pods = w("/api/v1/pods", () => core.listPodForAllNamespaces(), (o, verb) => this.onPod(o, verb));
    await this.pods.start();
    this.scheduleNetworkSync();
  }

  private onPod(obj: k8s.V1Pod, verb: "add" | "update" | "delete"): void {
    const uid = obj.metadata?.uid;
    const name = obj.metadata?.name;
    const namespace = obj.metadata?.namespace;
    if (!uid || !name || !namespace || !obj.spec) return;
    const entry = this.entries.get(uid);
    if (verb === "delete") {
      if (entry) void this.terminate(entry, false);
      return;
    }
    if (!obj.spec.nodeName) {
      if (!obj.metadata?.deletionTimestamp && !obj.spec.schedulingGates?.length) void this.bind(uid, namespace, name);
      return;
    }
    if (obj.spec.nodeName !== this.name) return;
    if (obj.metadata?.deletionTimestamp) {
      if (entry) void this.terminate(entry, true);
      else void this.finalize(uid, namespace, name);
      return;
    }
    if (!entry && !["Succeeded", "Failed"].includes(obj.status?.phase ?? "")) void this.run(obj, uid, namespace, name);
  }

  // --- binding, running, status ---------------------------------------------------------------

  private async bind(uid: string, namespace: string, name: string): Promise<void> {
    if (this.binding.has(uid)) return;
    this.binding.add(uid);
    try {
      await this.api.core.createNamespacedBinding({
        namespace,
        body: { apiVersion: "v1", kind: "Binding", metadata: { name, uid }, target: { apiVersion: "v1", kind: "Node", name: this.name } },
      });
    } catch (err) {
      // 409: bound already (a retry); 404: deleted meanwhile. Anything else: the next event retries.
      if (![404, 409].includes(statusOf(err) ?? 0)) {
        this.binding.delete(uid);
        this.log(`binding ${namespace}/${name} failed: ${(err as Error).message}`);
      }
    }
  }

  private async run(obj: k8s.V1Pod, uid: string, namespace: string, name: string): Promise<void> {
    const spec = obj.spec as unknown as PodSpec;
    const entry: Entry = { uid, namespace, name, spec, startTime: new Date().toISOString(), writes: Promise.resolve(), deleted: false };
    this.entries.set(uid, entry);
    entry.waiting = { reason: "ContainerCreating", message: "" };
    this.writeStatus(entry);
    try {
      await this.waitForSources(entry);
      if (entry.deleted) return;
      const tokens = await this.tokens(entry);
      if (entry.deleted) return;
      entry.index = this.allocateIndex();
      const ip = podIp(entry.index);
      const labels = (obj.metadata?.labels ?? {}) as Record<string, string>;
      const pod = new Pod(name, namespace, labels, spec, entry.index, this.podContext(entry, spec, tokens));
      entry.pod = pod;
      const t0 = Date.now();
      await pod.start(ip, hostsFile(this.kubeServices(), namespace, name, ip));
      // Deleted while starting: stop() ran alongside start(), which may have made things since.
      if (entry.deleted) return void (await pod.stop(0));
      entry.waiting = undefined;
      this.scheduleNetworkSync(); // Services made while it started are in its hosts file too
      this.log(`pod ${namespace}/${name} running at ${ip} (${Date.now() - t0} ms; containers: ${[...pod.containers.keys()].join(", ")})`);
      pod.startProbing(() => {
        this.log(`pod ${namespace}/${name} is ${pod.ready ? "ready again" : "not ready (readiness probe failing)"}`);
        this.writeStatus(entry);
      });
    } catch (err) {
      if (entry.deleted) return void (await entry.pod?.stop(0));
      // What `kubectl describe pod` would show; the provider's await quotes it on timeout.
      entry.waiting = { reason: "RunContainerError", message: (err as Error).message };
      this.log(`pod ${namespace}/${name} failed to start: ${(err as Error).message}`);
    }
    this.writeStatus(entry);
  }

  /** Kubelet keeps a pod in ContainerCreating until every (non-optional) Secret and ConfigMap it mounts exists. */
  private async waitForSources(entry: Entry): Promise<void> {
    const needed: ["Secret" | "ConfigMap", string][] = [];
    for (const v of entry.spec.volumes ?? []) {
      if (v.secret && !v.secret.optional) needed.push(["Secret", v.secret.secretName]);
      if (v.configMap && !v.configMap.optional) needed.push(["ConfigMap", v.configMap.name]);
      for (const s of v.projected?.sources ?? []) {
        if (s.secret && !s.secret.optional) needed.push(["Secret", s.secret.name]);
        if (s.configMap && !s.configMap.optional) needed.push(["ConfigMap", s.configMap.name]);
      }
    }
    let reported = "";
    while (!entry.deleted) {
      const missing = needed.filter(([kind, name]) => !this.lookup(kind, entry.namespace, name));
      if (missing.length === 0) return;
      const message = `MountVolume.SetUp failed: ${missing.map(([kind, name]) => `${kind.toLowerCase()} "${name}" not found`).join(", ")}`;
      if (message !== reported) {
        reported = message;
        entry.waiting = { reason: "ContainerCreating", message };
        this.writeStatus(entry);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /** Bound service account tokens for the pod's projected serviceAccountToken sources (TokenRequest). */
  private async tokens(entry: Entry): Promise<Map<string, string>> {
    const tokens = new Map<string, string>();
    const sources = (entry.spec.volumes ?? []).flatMap((v) => v.projected?.sources ?? []).flatMap((s) => (s.serviceAccountToken ? [s.serviceAccountToken] : []));
    for (const s of sources) {
      const res = await this.api.core.createNamespacedServiceAccountToken({
        name: entry.spec.serviceAccountName ?? "default",
        namespace: entry.namespace,
        body: {
          spec: {
            audiences: s.audience ? [s.audience] : [],
            expirationSeconds: s.expirationSeconds ?? 3607,
            boundObjectRef: { apiVersion: "v1", kind: "Pod", name: entry.name, uid: entry.uid },
          },
        },
      });
      tokens.set(s.path, res.status!.token);
    }
    return tokens;
  }

  private podContext(entry: Entry, spec: PodSpec, tokens: Map<string, string>): PodContext {
    return {
      names: this.names,
      lookup: (kind, namespace, name) => this.lookup(kind, namespace, name),
      proxyImages: proxyImagesOf([spec]),
      code: this.code,
      node: this.dialer,
      nodeName: this.name,
      serviceAccountToken: (s: NonNullable<ProjectedSource["serviceAccountToken"]>) => {
        const token = tokens.get(s.path);
        if (token === undefined) throw new Error(`no token requested for ${s.path}`);
        return token;
      },
      // A container that exits is not ready any more: the API must say so (no restarts here).
      onContainerExit: () => this.writeStatus(entry),
      log: (line) => {
        if (!this.stopping) this.log(line);
      },
    };
  }

  /** A cached Secret or ConfigMap as the harness reads objects (list items carry no `kind`). */
  private lookup(kind: "Secret" | "ConfigMap", namespace: string, name: string): KubeObject | undefined {
    const cache = kind === "Secret" ? this.secrets.cache : this.configMaps.cache;
    const o = cache.get(name, namespace);
    return o ? ({ ...o, kind } as unknown as KubeObject) : undefined;
  }

  private allocateIndex(): number {
    let i = 0;
    while (this.usedIndexes.has(i)) i++;
    this.usedIndexes.add(i);
    return i;
  }

  private view(entry: Entry) {
    const started = new Map<string, ContainerView>();
    for (const [name, c] of entry.pod?.containers ?? []) {
      const spec = entry.pod!.container(name);
      started.set(name, { name, image: spec.image ?? "", init: c.init, sidecar: c.init && spec.restartPolicy === "Always", startedAt: c.startedAt, finishedAt: c.finishedAt, exit: c.exit, ready: entry.pod!.ready && !c.exit });
    }
    const specs = (cs: { name: string; image?: string }[] | undefined) => (cs ?? []).map((c) => ({ name: c.name, image: c.image ?? "" }));
    return {
      waiting: entry.waiting,
      ready: !!entry.pod?.ready,
      ip: entry.pod?.network?.ip,
      ip6: entry.pod?.network?.ip6,
      hostIP: this.hostIP,
      startTime: entry.startTime,
      initContainers: specs(entry.spec.initContainers),
      containers: specs(entry.spec.containers),
      started,
    };
  }

  private writeStatus(entry: Entry): void {
    entry.writes = entry.writes.then(async () => {
      if (entry.deleted || this.stopping) return;
      const status = podStatus(this.view(entry), entry.conditions, new Date());
      entry.conditions = status.conditions;
      try {
        await this.api.core.patchNamespacedPodStatus({ name: entry.name, namespace: entry.namespace, body: { status } }, STRATEGIC);
      } catch (err) {
        if (statusOf(err) !== 404) this.log(`status of ${entry.namespace}/${entry.name} not written: ${(err as Error).message}`);
      }
    });
  }

  // --- deletion -------------------------------------------------------------------------------

  /** Stops the pod's processes; with `finalize`, then deletes the API object (kubelet's last step). */
  private terminate(entry: Entry, finalize: boolean): Promise<void> {
    if (!entry.stopped) {
      entry.deleted = true;
      const grace = Math.min(MAX_GRACE_MS, ((entry.spec as { terminationGracePeriodSeconds?: number }).terminationGracePeriodSeconds ?? 30) * 1000);
      entry.stopped = (async () => {
        await entry.pod?.stop(grace);
        if (entry.index !== undefined) this.usedIndexes.delete(entry.index);
        this.entries.delete(entry.uid);
        this.log(`pod ${entry.namespace}/${entry.name} stopped`);
        if (finalize) await this.finalize(entry.uid, entry.namespace, entry.name);
      })();
    }
    return entry.stopped;
  }

  private async finalize(uid: string, namespace: string, name: string): Promise<void> {
    try {
      // In the body: with a body (the uid precondition) the query's gracePeriodSeconds=0 did not
      // take effect on v1.37 (the pod stayed Terminating); the body's does.
      await this.api.core.deleteNamespacedPod({ name, namespace, body: { gracePeriodSeconds: 0, preconditions: { uid } } });
    } catch (err) {
      if (![404, 409].includes(statusOf(err) ?? 0)) this.log(`final delete of ${namespace}/${name} failed: ${(err as Error).message}`);
    }
  }

  // --- volumes, kube-proxy, DNS ---------------------------------------------------------------

  private refreshVolumes(namespace: string | undefined): void {
    for (const entry of this.entries.values()) {
      if (entry.namespace !== namespace || !entry.pod || entry.waiting || entry.deleted) continue;
      try {
        const changed = entry.pod.refreshVolumes();
        if (changed.length) this.log(`pod ${entry.namespace}/${entry.name}: volumes ${changed.join(", ")} updated`);
      } catch (err) {
        // A source deleted under a running pod: kubelet keeps the files it last wrote.
        this.log(`pod ${entry.namespace}/${entry.name}: volume refresh skipped: ${(err as Error).message}`);
      }
    }
  }

  private kubeServices(): KubeObject[] {
    return this.services.cache.list().map((s) => ({ ...s, kind: "Service" }) as unknown as KubeObject);
  }

  /** Coalesces bursts of Service/EndpointSlice events into one kube-proxy and DNS sync at a time. */
  private scheduleNetworkSync(): void {
    if (this.syncQueued || this.stopping) return;
    this.syncQueued = true;
    this.syncing = this.syncing.then(async () => {
      this.syncQueued = false;
      if (this.stopping) return;
      try {
        await this.kubeProxy.sync(serviceRules(this.services.cache.list(), this.slices.cache.list()));
        const services = this.kubeServices();
        for (const e of this.entries.values()) {
          if (e.pod?.network) writeHostsFile(e.pod.ns, hostsFile(services, e.namespace, e.name, e.pod.network.ip));
        }
      } catch (err) {
        this.log(`network sync failed: ${(err as Error).message}`);
      }
    });
  }

  // --- for tests ------------------------------------------------------------------------------

  /** The running pods (harness objects), optionally of one namespace and matching labels. */
  runningPods(namespace?: string, labels: Record<string, string> = {}): Pod[] {
    return [...this.entries.values()]
      .filter((e) => e.pod && !e.waiting && !e.deleted && (!namespace || e.namespace === namespace))
      .map((e) => e.pod!)
      .filter((p) => Object.entries(labels).every(([k, v]) => p.labels[k] === v));
  }

  /** Waits for the kube-proxy and DNS sync already queued (from the events seen so far). */
  async settled(): Promise<void> {
    await this.syncing;
  }

  /** Stops every pod and the node; reports anything that survived (it should be nothing). */
  async stop(): Promise<{ namespaces: string[]; processes: number[] }> {
    this.stopping = true;
    this.timers.forEach(clearInterval);
    await Promise.all(this.watches.map((w) => w.stop().catch(() => {})));
    await this.syncing;
    for (const e of this.entries.values()) e.pod?.stopProbing();
    const mine = (ns: string) => ns.startsWith(`e2e-${this.names.id}-`);
    const pids = listNamespaces().filter(mine).flatMap(namespacePids);
    sweepRun(this.names.id);
    this.released?.();
    return { namespaces: listNamespaces().filter(mine), processes: pids.filter(isRunning) };
  }
}
