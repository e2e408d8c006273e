// The quickstart mesh as pods: render the example program with the engine stand-in, run it on the
// one-node cluster, and drive it like a user would — requests from the client pods ("kubectl
// exec ... curl"), a mode flip by re-rendering with another `mode` and applying only what changed,
// a certificate renewal by re-rendering with the leaf replaced. Shared by the e2e tests and the
// demo.
import * as path from "node:path";
import { render, Rendered } from "./engine/render";
import { ApplyReport, Cluster } from "./harness/cluster";
import type { KubeObject } from "./harness/kube";
import type { Pod } from "./harness/pod";
import { curlFrom, Outcome } from "./harness/curl";
import { proxyMetric, proxyReloads, waitForReload } from "./harness/metrics";
import { REPO_ROOT } from "./harness/images";
import { Mode } from "../../proxy/wellknown";
import { ReachabilityEdge, parseReachability } from "../../components/reachability";

export const QUICKSTART_PROGRAM = path.join(REPO_ROOT, "dist", "examples", "quickstart", "index.js");

export interface Client {
  /** Row label, e.g. "shop/web". */
  label: string;
  namespace: string;
  workload: string;
  container: string;
  meshed: boolean;
  /** Does an AuthorizationPolicy on the server allow this client's identity? */
  allowed: boolean;
  /** How the reachability matrix names it: "sa:<ns>/<sa>" or "unmeshed:<name>". */
  matrixKey?: string;
}

export interface Server {
  label: string;
  namespace: string;
  service: string;
  port: number;
  /** What the echo server answers: its presence on the wire means plaintext. */
  text: string;
}

/** The quickstart's cast (examples/quickstart/index.ts). */
export const QUICKSTART = {
  server: { label: "shop/api", namespace: "shop", service: "api", port: 8080, text: "hello from api" } as Server,
  clients: [
    { label: "shop/web", namespace: "shop", workload: "web", container: "web", meshed: true, allowed: true, matrixKey: "sa:shop/web" },
    { label: "shop/reports", namespace: "shop", workload: "reports", container: "reports", meshed: true, allowed: false, matrixKey: "sa:shop/reports" },
    { label: "legacy/legacy-client", namespace: "legacy", workload: "legacy-client", container: "legacy-client", meshed: false, allowed: false, matrixKey: "unmeshed:legacy-client" },
  ] as Client[],
};

/**
 * The product's promise per cell: disabled forwards everything as plaintext (no identity, so no
 * authorization either); audit admits everything (meshed clients still over mTLS); permissive admits mTLS peers the policy allows and plaintext only where
 * no identity is required; strict admits only allowed mTLS peers.
 */
export function expectedToSucceed(mode: Mode, client: Pick<Client, "meshed" | "allowed">): boolean {
  // Audit admits what strict would refuse (it only logs and counts it).
  if (mode === "disabled" || mode === "audit") return true;
  if (!client.meshed) return mode === "permissive" && client.allowed;
  return client.allowed;
}


/** Kubelet refreshing pods at different times: `first` pods get the new files, `meanwhile` runs, then the rest. */
export interface KubeletSkew {
  first: (pod: Pod) => boolean;
  meanwhile: () => Promise<void>;
}

export class MeshRun {
  private constructor(
    readonly program: string,
    public rendered: Rendered,
    public mode: Mode,
    readonly cluster: Cluster,
    /** The program's other config (`pulumi config set`), kept across re-renders. */
    private readonly config: Record<string, string>,
  ) {}

  static async up(opts: { program?: string; mode: Mode; config?: Record<string, string>; log?: (line: string) => void }): Promise<MeshRun> {
    const program = opts.program ?? QUICKSTART_PROGRAM;
    const log = opts.log ?? (() => {});
    const t0 = Date.now();
    const config = opts.config ?? {};
    const rendered = await render({ program, config: { ...config, mode: opts.mode } });
    log(`rendered ${path.relative(REPO_ROOT, program)} (mode ${opts.mode}): ${rendered.objects.length} Kubernetes objects, real keys and certificates (${Date.now() - t0} ms)`);
    const cluster = await Cluster.up(rendered.objects, { log });
    return new MeshRun(program, rendered, opts.mode, cluster, config);
  }

  /**
   * `pulumi config set mode <mode>` + `pulumi up`: re-render with the previous state and apply
   * what changed; resolves once every proxy whose config volume changed has reloaded it.
   */
  async setMode(mode: Mode, skew?: KubeletSkew): Promise<ApplyReport> {
    const rendered = await render({ program: this.program, config: { ...this.config, mode }, state: this.rendered.state });
    const report = await this.applyAndWait(rendered, skew);
    this.mode = mode;
    return report;
  }

  /**
   * `pulumi up --replace <names>`: re-render with the matching resources recreated (e.g. a
   * workload's key, CSR and leaf = a certificate renewal); resolves once the proxies reloaded.
   */
  async renew(namePatterns: string[]): Promise<ApplyReport> {
    const rendered = await render({ program: this.program, config: { ...this.config, mode: this.mode }, state: this.rendered.state, replace: namePatterns });
    return this.applyAndWait(rendered);
  }

  private async applyAndWait(rendered: Rendered, skew?: KubeletSkew): Promise<ApplyReport> {
    const proxies = this.meshedPods();
    const before = new Map(await Promise.all(proxies.map(async (p) => [p, await this.reloads(p)] as const)));
    const kindOf: Record<string, "config" | "identity"> = { "mesh-config": "config", "mesh-identity": "identity" };
    const reloaded = (volumesUpdated: string[]) =>
      Promise.all(
        volumesUpdated.flatMap((entry) => {
          const [podName, volume] = entry.split(": ");
          const pod = proxies.find((p) => `${p.namespace}/${p.name}` === podName);
          const kind = kindOf[volume];
          return pod && kind ? [this.waitForReload(pod, kind, before.get(pod)![kind])] : [];
        }),
      );
    const report = await this.cluster.apply(rendered.objects, skew?.first);
    this.rendered = rendered;
    await reloaded(report.volumesUpdated);
    if (skew) {
      await skew.meanwhile();
      const rest = this.cluster.syncVolumes();
      await reloaded(rest);
      report.volumesUpdated.push(...rest);
    }
    return report;
  }

  /** The reachability matrix of the current render, as the Mesh wrote it into its ConfigMap. */
  predictedMatrix(mesh = "mesh", namespace = "mesh-system"): ReachabilityEdge[] {
    const cm = this.rendered.objects.find((o) => o.kind === "ConfigMap" && o.metadata?.name === `${mesh}-reachability` && o.metadata?.namespace === namespace);
    const text = (cm as { data?: Record<string, string> } | undefined)?.data?.["reachability.txt"];
    if (text === undefined) throw new Error(`the render has no ConfigMap ${namespace}/${mesh}-reachability with reachability.txt`);
    return parseReachability(text);
  }

  /** Pods that run the mesh proxy (sidecar or node proxy). */
  meshedPods(): Pod[] {
    return this.cluster.pods.filter((p) => p.containers.get("mesh-proxy")?.image.kind === "proxy");
  }

  reloads(pod: Pod): Promise<{ config: number; identity: number }> {
    return proxyReloads(this.cluster.nodeDialer, pod);
  }

  metric(pod: Pod, name: string): Promise<(...labels: string[]) => number> {
    return proxyMetric(this.cluster.nodeDialer, pod, name);
  }

  private waitForReload(pod: Pod, kind: "config" | "identity", before: number): Promise<void> {
    return waitForReload(this.cluster.nodeDialer, pod, kind, before);
  }

  /**
   * Stores objects edited by the test (what a later render would produce) like `pulumi up` would,
   * and resolves once the proxies reloaded what changed.
   */
  applyObjects(objects: KubeObject[]): Promise<ApplyReport> {
    return this.applyAndWait({ ...this.rendered, objects });
  }

  /**
   * `kubectl exec <client> -- curl http://<service>.<ns>.svc.cluster.local:<port>/`, or another
   * `host` (an IPv6 literal in brackets: curl -g takes it as it is).
   */
  async curl(client: Client, server: Server, timeoutSeconds = 3, host = `${server.service}.${server.namespace}.svc.cluster.local`): Promise<Outcome> {
    return curlFrom(this.cluster.pod(client.namespace, client.workload), client.container, `http://${host}:${server.port}/`, server.text, timeoutSeconds);
  }

  down() {
    return this.cluster.down();
  }
}
