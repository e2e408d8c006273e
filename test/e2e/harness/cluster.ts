// A one-node "cluster" on this machine: takes the Kubernetes objects a program registered and
// runs them — workloads as pods in network namespaces, Services as kube-proxy DNAT rules and
// hosts-file names, Secrets and ConfigMaps as mounted volumes — and applies later renders the way
// the API server + kubelet would: changed Secrets/ConfigMaps are swapped into the running pods'
// volumes; changed pod templates are reported (a real rollout would restart those pods).
import * as fs from "node:fs";
import * as path from "node:path";
import { Capture } from "./capture";
import { Dialer, startDialer } from "./dialer";
import { hostsFile } from "./dns";
import { isRoot } from "./exec";
import { codeRootsFor, CodeRoots } from "./code";
import { HOST_CODE, resolveImage, UnknownImageError } from "./images";
import { KubeObject, matchesSelector, objectKey, PodSpec } from "./kube";
import { KubeProxy, ServicePortRule } from "./kube-proxy";
import { newRunId, POD_CIDR, POD_CIDR6, RunNames, runNames, SERVICE_CIDR } from "./names";
import { createNode, podIp } from "./network";
import { Pod, PodContext } from "./pod";
import { stableStringify } from "../../../proxy/config";
import { claimRun, isRunning, listNamespaces, namespacePids, sweepOnExit, sweepRun, sweepStale } from "./teardown";

const WORKLOAD_KINDS = ["Deployment", "StatefulSet", "DaemonSet"];
/** The contract's container names for the mesh's own containers: their image is the proxy. */
const PROXY_CONTAINERS = ["mesh-init", "mesh-proxy"];

export class ClusterError extends Error {}

/** The images of the mesh's own containers in these pod specs: the harness runs them as the proxy. */
export function proxyImagesOf(specs: PodSpec[]): Set<string> {
  const images = new Set<string>();
  for (const spec of specs) {
    for (const c of [...(spec.initContainers ?? []), ...spec.containers]) {
      if (PROXY_CONTAINERS.includes(c.name) && c.image) images.add(c.image);
    }
  }
  return images;
}

export interface ApplyReport {
  /** "Kind/namespace/name" of every object whose content changed. */
  changed: string[];
  /** Volumes rewritten in running pods ("<pod>: <volume>"). */
  volumesUpdated: string[];
  /** Workloads whose pod template changed: a real cluster would restart their pods. */
  templatesChanged: string[];
}

export interface ClusterOptions {
  log?: (line: string) => void;
}

const ROOT_REASON =
  "the e2e harness needs root: it creates network namespaces, veth pairs and a bridge (ip netns/ip link), " +
  "installs iptables rules inside them, runs processes as other UIDs (setpriv) and captures packets (tcpdump)";

export function rootProblem(): string | undefined {
  return isRoot() ? undefined : ROOT_REASON;
}

/** For a suite's `before` hook: skips the suite, saying why, when not run as root. */
export function skipUnlessRoot(ctx: Mocha.Context): void {
  const problem = rootProblem();
  if (problem) {
    console.log(`      skipped: ${problem}`);
    ctx.skip();
  }
}

/**
 * Claims a new run (sweeping crashed ones first) and creates its node namespace with the bridge
 * and the node's dialer (kubelet's vantage point). `release` removes the exit hooks after a
 * normal teardown; on failure here everything is swept already.
 */
export async function startNodeNamespace(log: (line: string) => void): Promise<{ names: RunNames; release: () => void; node: Dialer }> {
  const stale = sweepStale();
  if (stale.length) log(`swept leftovers of crashed runs: ${stale.join(", ")}`);
  let names = runNames(newRunId());
  while (fs.existsSync(names.dir)) names = runNames(newRunId()); // another live run has this id
  claimRun(names.id);
  const release = sweepOnExit(names.id);
  try {
    fs.mkdirSync(path.join(names.dir, "sock"), { recursive: true });
    fs.chmodSync(path.join(names.dir, "sock"), 0o1777);
    await createNode(names);
    const root = { uid: 0, gid: 0, groups: [], capabilities: [], noNewPrivileges: true };
    const node = await startDialer(names.nodeNs, root, path.join(names.dir, "sock", "node"), path.join(names.dir, "node-dialer.log"));
    return { names, release, node };
  } catch (err) {
    sweepRun(names.id);
    release();
    throw err;
  }
}

export class Cluster {
  readonly pods: Pod[] = [];
  readonly objects = new Map<string, KubeObject>();
  private readonly kubeProxy: KubeProxy;
  private released?: () => void;
  /** Where pod processes find the code (a staged copy when the clone is private). */
  private code: CodeRoots = HOST_CODE;
  /** Set once teardown starts: container exits are expected from then on, not news. */
  private stopping = false;

  private constructor(
    readonly names: RunNames,
    private readonly node: Dialer,
    private readonly log: (line: string) => void,
  ) {
    this.kubeProxy = new KubeProxy(names.nodeNs, names.id);
  }

  /** Creates the node and runs every workload in `objects`; tears everything down if that fails. */
  static async up(objects: KubeObject[], opts: ClusterOptions = {}): Promise<Cluster> {
    const problem = rootProblem();
    if (problem) throw new ClusterError(problem);
    const log = opts.log ?? (() => {});
    const { names, release, node } = await startNodeNamespace(log);
    try {
      const cluster = new Cluster(names, node, log);
      cluster.released = release;
      cluster.code = codeRootsFor(names.dir, HOST_CODE, log);
      log(`node ${names.nodeNs}: bridge ${names.bridge}, pods in ${POD_CIDR.base}.0/${POD_CIDR.prefixLength} and ${POD_CIDR6.prefix}/${POD_CIDR6.prefixLength}, services in ${SERVICE_CIDR.base}.0.0/${SERVICE_CIDR.prefixLength}`);
      await cluster.start(objects);
      return cluster;
    } catch (err) {
      sweepRun(names.id);
      release();
      throw err;
    }
  }

  private ctx(): PodContext {
    return {
      names: this.names,
      lookup: (kind, namespace, name) => this.objects.get(`${kind}/${namespace}/${name}`),
      proxyImages: this.proxyImages(),
      code: this.code,
      node: this.node,
      nodeName: this.names.nodeNs,
      log: (line) => {
        if (!this.stopping) this.log(line);
      },
    };
  }

  private proxyImages(): Set<string> {
    return proxyImagesOf(this.workloads().map((w) => w.spec.template.spec as PodSpec));
  }

  private workloads(): KubeObject[] {
    return [...this.objects.values()].filter((o) => WORKLOAD_KINDS.includes(o.kind));
  }

  services(): KubeObject[] {
    return [...this.objects.values()].filter((o) => o.kind === "Service");
  }

  private async start(objects: KubeObject[]): Promise<void> {
    for (const o of objects) this.objects.set(objectKey(o), o);
    const ctx = this.ctx();
    // Refuse unknown images before starting anything.
    const unknown: string[] = [];
    for (const w of this.workloads()) {
      const spec = w.spec.template.spec as PodSpec;
      for (const c of [...(spec.initContainers ?? []), ...spec.containers]) {
        try {
          resolveImage(c, ctx.proxyImages);
        } catch (err) {
          if (err instanceof UnknownImageError) unknown.push(`${w.kind} ${w.metadata.namespace}/${w.metadata.name}: ${err.message}`);
          else throw err;
        }
      }
    }
    if (unknown.length) throw new ClusterError(`cannot run these containers:\n  ${unknown.join("\n  ")}`);

    for (const w of this.workloads()) {
      const replicas = w.kind === "DaemonSet" ? 1 : (w.spec.replicas ?? 1);
      for (let i = 0; i < replicas; i++) {
        const template = w.spec.template;
        const pod = new Pod(`${w.metadata.name}-${i}`, w.metadata.namespace!, template.metadata?.labels ?? {}, template.spec, this.pods.length, ctx);
        this.pods.push(pod);
      }
    }
    const hosts = (pod: Pod, ip: string) => hostsFile(this.services(), pod.namespace, pod.name, ip);
    await Promise.all(
      this.pods.map(async (pod) => {
        const ip = podIp(pod.index);
        const t0 = Date.now();
        await pod.start(ip, hosts(pod, ip));
        this.log(`pod ${pod.namespace}/${pod.name} ready at ${ip} and ${pod.ip6} (${Date.now() - t0} ms; containers: ${[...pod.containers.keys()].join(", ")})`);
      }),
    );
    await this.syncServices();
    for (const pod of this.pods) {
      pod.startProbing((p) => {
        this.log(`pod ${p.namespace}/${p.name} is ${p.ready ? "ready again" : "not ready (readiness probe failing)"}`);
        this.syncServices().catch((err: Error) => this.log(`endpoint sync failed: ${err.message}`));
      });
    }
  }

  /** Failed periodic probes of every pod so far ("<ns>/<pod> <container> <kind>: <detail>"). */
  probeFailures(): string[] {
    return this.pods.flatMap((p) => p.probeFailures.map((f) => `${p.namespace}/${p.name} ${f.container} ${f.kind}: ${f.detail}`));
  }

  private endpointRules(): ServicePortRule[] {
    const rules: ServicePortRule[] = [];
    for (const s of this.services()) {
      const ip = s.spec?.clusterIP;
      if (!ip || ip === "None") continue;
      const backends = this.pods.filter((p) => p.ready && p.namespace === s.metadata.namespace && matchesSelector(p.labels, s.spec.selector));
      for (const port of s.spec.ports ?? []) {
        const endpoints = backends.flatMap((p) => {
          const target = port.targetPort ?? port.port;
          if (typeof target === "number") return [{ ip: p.ip, port: target }];
          const named = [...(p.spec.initContainers ?? []), ...p.spec.containers].flatMap((c) => c.ports ?? []).find((cp) => cp.name === target);
          return named ? [{ ip: p.ip, port: named.containerPort }] : [];
        });
        rules.push({ name: `${s.metadata.namespace}/${s.metadata.name}:${port.port}`, clusterIP: ip, port: port.port, endpoints });
      }
    }
    return rules;
  }

  private async syncServices(): Promise<void> {
    const rules = this.endpointRules();
    await this.kubeProxy.sync(rules);
    for (const r of rules) this.log(`service ${r.name} ${r.clusterIP} -> ${r.endpoints.map((e) => `${e.ip}:${e.port}`).join(", ") || "(no endpoints)"}`);
  }

  /**
   * Applies a new render: objects are replaced, Secret/ConfigMap changes reach the pods' volumes
   * by kubelet's atomic swap. Pods are never restarted here; template changes are reported.
   */
  /**
   * Stores the objects like the API server would, then lets kubelet refresh the volumes of the pods
   * `sync` selects (all by default); the others keep their old files until `syncVolumes` (kubelet
   * refreshes each pod at its own time).
   */
  async apply(objects: KubeObject[], sync: (pod: Pod) => boolean = () => true): Promise<ApplyReport> {
    const report: ApplyReport = { changed: [], volumesUpdated: [], templatesChanged: [] };
    const incoming = new Map(objects.map((o) => [objectKey(o), o]));
    for (const [key, o] of incoming) {
      const old = this.objects.get(key);
      if (!old || stableStringify(old) !== stableStringify(o)) {
        report.changed.push(key);
        if (old && WORKLOAD_KINDS.includes(o.kind) && stableStringify(old.spec?.template) !== stableStringify(o.spec?.template)) {
          report.templatesChanged.push(key);
        }
      }
    }
    for (const key of this.objects.keys()) if (!incoming.has(key)) report.changed.push(`${key} (deleted)`);
    this.objects.clear();
    for (const [key, o] of incoming) this.objects.set(key, o);
    report.volumesUpdated = this.syncVolumes(sync);
    return report;
  }

  /** Kubelet's volume refresh for the selected pods: "<pod>: <volume>" for each volume rewritten. */
  syncVolumes(sync: (pod: Pod) => boolean = () => true): string[] {
    return this.pods.filter(sync).flatMap((pod) => pod.refreshVolumes().map((volume) => `${pod.namespace}/${pod.name}: ${volume}`));
  }

  podsOf(namespace: string, workload: string): Pod[] {
    return this.pods.filter((p) => p.namespace === namespace && p.name.replace(/-\d+$/, "") === workload);
  }

  pod(namespace: string, workload: string, index = 0): Pod {
    const pod = this.podsOf(namespace, workload)[index];
    if (!pod) throw new ClusterError(`no pod ${index} of ${namespace}/${workload}`);
    return pod;
  }

  service(namespace: string, name: string): KubeObject {
    const s = this.objects.get(`Service/${namespace}/${name}`);
    if (!s) throw new ClusterError(`no Service ${namespace}/${name}`);
    return s;
  }

  /** Starts a packet capture on the node bridge. */
  capture(label: string): Promise<Capture> {
    return Capture.start(this.names.nodeNs, this.names.bridge, path.join(this.names.dir, `${label}.pcap`));
  }

  /** The node namespace's dialer (kubelet's vantage point). */
  get nodeDialer(): Dialer {
    return this.node;
  }

  /** PIDs of every running container, "<ns>/<pod>/<container>" → pid. */
  pids(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const p of this.pods) for (const [c, pid] of Object.entries(p.pids())) out[`${p.namespace}/${p.name}/${c}`] = pid;
    return out;
  }

  /** Tears everything down and reports anything that survived (it should be nothing). */
  async down(): Promise<{ namespaces: string[]; processes: number[] }> {
    this.stopping = true;
    this.pods.forEach((p) => p.stopProbing());
    const mine = (ns: string) => ns.startsWith(`e2e-${this.names.id}-`);
    const pids = listNamespaces().filter(mine).flatMap(namespacePids);
    sweepRun(this.names.id);
    this.released?.();
    const alive = pids.filter(isRunning);
    return { namespaces: listNamespaces().filter(mine), processes: alive };
  }
}
