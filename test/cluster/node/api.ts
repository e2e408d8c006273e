// The node stand-in's view of the API server, through @kubernetes/client-node: typed clients and
// informers (list + watch, cached) that start again after a watch error, as client-go's do.
import * as k8s from "@kubernetes/client-node";

export interface Api {
  kc: k8s.KubeConfig;
  core: k8s.CoreV1Api;
  coordination: k8s.CoordinationV1Api;
  discovery: k8s.DiscoveryV1Api;
}

export function connect(kubeconfigPath: string): Api {
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(kubeconfigPath);
  return { kc, core: kc.makeApiClient(k8s.CoreV1Api), coordination: kc.makeApiClient(k8s.CoordinationV1Api), discovery: kc.makeApiClient(k8s.DiscoveryV1Api) };
}

/** The HTTP status of a failed call (ApiException's `code`), or undefined. */
export function statusOf(err: unknown): number | undefined {
  const code = (err as { code?: unknown })?.code;
  return typeof code === "number" ? code : undefined;
}

export type Cache<T extends k8s.KubernetesObject> = k8s.Informer<T> & k8s.ObjectCache<T>;

/**
 * An informer that restarts after an error (the watch connection dropped, the API server is
 * busy) until `stop`; `start()` resolves after the first list (an empty cache if that list failed:
 * the restart fills it).
 */
export class Watched<T extends k8s.KubernetesObject> {
  readonly cache: Cache<T>;
  private stopped = false;

  constructor(api: Api, path: string, list: () => Promise<k8s.KubernetesListObject<T>>, onChange: (obj: T, verb: "add" | "update" | "delete") => void, log: (line: string) => void) {
    this.cache = k8s.makeInformer(api.kc, path, list);
    for (const verb of ["add", "update", "delete"] as const) this.cache.on(verb, (obj) => onChange(obj, verb));
    this.cache.on("error", (err) => {
      if (this.stopped) return;
      log(`watch ${path}: ${(err as Error)?.message ?? err}; restarting`);
      setTimeout(() => {
        if (!this.stopped) this.cache.start().catch(() => {});
      }, 1000).unref();
    });
  }

  start(): Promise<void> {
    return this.cache.start();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.cache.stop();
  }
}
