// `kubectl exec <pod> -c <container> -- curl <url>`: Debian's curl inside the pod's network
// namespace as the container's user, so the pod's own redirect rules apply to it.
import type { Pod } from "./pod";

export interface Outcome {
  /** HTTP 200 with the expected body. */
  ok: boolean;
  /** "200 \"hello from api\"", "refused (connection reset)", "timeout", ... */
  detail: string;
  ms: number;
}

const CURL_REFUSALS: Record<number, string> = {
  7: "refused (connection refused)",
  52: "refused (closed, empty reply)",
  56: "refused (connection reset)",
  28: "timeout",
};

/** GETs `url` from the container; `ok` when the answer is 200 with body `expect`. */
export async function curlFrom(pod: Pod, container: string, url: string, expect: string, timeoutSeconds = 3): Promise<Outcome> {
  const t0 = Date.now();
  const res = await pod.exec(container, ["curl", "-sS", "-g", "-m", String(timeoutSeconds), "-w", "\n%{http_code}", url], (timeoutSeconds + 5) * 1000);
  const ms = Date.now() - t0;
  if (res.code === 0) {
    const lines = res.stdout.trimEnd().split("\n");
    const status = lines.pop();
    const body = lines.join("\n").trimEnd();
    return { ok: status === "200" && body === expect, detail: `${status} ${JSON.stringify(body)}`, ms };
  }
  return { ok: false, detail: CURL_REFUSALS[res.code] ?? `curl exit ${res.code}: ${res.stderr.trim()}`, ms };
}
