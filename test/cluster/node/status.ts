// The pod status a kubelet writes back (pure): phase, the five conditions, pod and host IPs, and
// the container statuses. The deployment, ReplicaSet and EndpointSlice controllers read the Ready
// condition and podIPs; the provider's await logic reads what they derive from them; tests read
// the containers' start times and restart counts to prove that nothing restarted.
import type { V1ContainerStatus, V1PodCondition, V1PodStatus } from "@kubernetes/client-node";

export interface ContainerView {
  name: string;
  image: string;
  /** A native sidecar (init container with restartPolicy Always) runs on like an app container. */
  sidecar: boolean;
  init: boolean;
  startedAt?: string;
  finishedAt?: string;
  exit?: { code: number | null; signal: string | null };
  ready: boolean;
}

export interface PodView {
  /** Set until the pod's containers all started (kubelet's ContainerCreating, or a failed start). */
  waiting?: { reason: string; message: string };
  ready: boolean;
  ip?: string;
  ip6?: string;
  hostIP: string;
  startTime: string;
  /** Every container of the spec, init containers first, in spec order; absent ones not started yet. */
  initContainers: { name: string; image: string }[];
  containers: { name: string; image: string }[];
  started: Map<string, ContainerView>;
}

const state = (c: ContainerView | undefined, waiting?: PodView["waiting"]): V1ContainerStatus["state"] => {
  if (!c?.startedAt) return { waiting: { reason: waiting?.reason ?? "PodInitializing", message: waiting?.message } };
  if (c.exit) {
    const exitCode = c.exit.code ?? 137;
    return { terminated: { exitCode, reason: exitCode === 0 ? "Completed" : "Error", startedAt: new Date(c.startedAt), finishedAt: new Date(c.finishedAt ?? c.startedAt) } };
  }
  return { running: { startedAt: new Date(c.startedAt) } };
};

function containerStatus(spec: { name: string; image: string }, c: ContainerView | undefined, waiting?: PodView["waiting"]): V1ContainerStatus {
  const running = !!c?.startedAt && !c.exit;
  return {
    name: spec.name,
    image: spec.image,
    imageID: spec.image,
    ...(c?.startedAt ? { containerID: `netns-harness://${spec.name}-${Date.parse(c.startedAt)}` } : {}),
    ready: running && c!.ready,
    started: running,
    restartCount: 0,
    state: state(c, waiting),
  };
}

/**
 * The status for `view`; conditions keep their lastTransitionTime from `previous` when their
 * status did not change, as kubelet's status manager does.
 */
export function podStatus(view: PodView, previous: V1PodCondition[] | undefined, now: Date): V1PodStatus {
  const initDone = view.initContainers.every((spec) => {
    const c = view.started.get(spec.name);
    return c?.sidecar ? !!c.startedAt : c?.exit?.code === 0;
  });
  const all = [...view.initContainers.filter((s) => view.started.get(s.name)?.sidecar), ...view.containers];
  const containersReady = !view.waiting && view.ready && all.every((s) => view.started.get(s.name)?.ready && !view.started.get(s.name)?.exit);
  const condition = (type: string, ok: boolean, reason?: string): V1PodCondition => {
    const status = ok ? "True" : "False";
    const before = previous?.find((p) => p.type === type);
    const lastTransitionTime = before && before.status === status && before.lastTransitionTime ? before.lastTransitionTime : now;
    return { type, status, lastTransitionTime, ...(ok || !reason ? {} : { reason }) };
  };
  const sandbox = !!view.ip;
  const running = !view.waiting && all.every((s) => view.started.get(s.name)?.startedAt);
  return {
    phase: running ? "Running" : "Pending",
    conditions: [
      condition("PodReadyToStartContainers", sandbox),
      condition("Initialized", initDone, "ContainersNotInitialized"),
      condition("ContainersReady", containersReady, "ContainersNotReady"),
      condition("Ready", containersReady, "ContainersNotReady"),
      condition("PodScheduled", true),
    ],
    hostIP: view.hostIP,
    hostIPs: [{ ip: view.hostIP }],
    ...(view.ip ? { podIP: view.ip, podIPs: [{ ip: view.ip }, ...(view.ip6 ? [{ ip: view.ip6 }] : [])] } : {}),
    startTime: new Date(view.startTime),
    initContainerStatuses: view.initContainers.map((s) => containerStatus(s, view.started.get(s.name), view.waiting)),
    containerStatuses: view.containers.map((s) => containerStatus(s, view.started.get(s.name), view.waiting)),
  };
}
