// Cluster DNS as a hosts file (pure): every Service by FQDN, and by short name within the pod's
// own namespace (the resolv.conf search path). network.ts writes it where `ip netns exec` finds it.
import type { KubeObject } from "./kube";

export const CLUSTER_DOMAIN = "cluster.local";

export function hostsFile(services: KubeObject[], namespace: string, podName: string, ip: string): string {
  const lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback", `${ip}\t${podName}`];
  for (const s of services) {
    const clusterIP = s.spec?.clusterIP;
    if (!clusterIP || clusterIP === "None") continue;
    const { name, namespace: ns } = s.metadata;
    const aliases = [`${name}.${ns}.svc.${CLUSTER_DOMAIN}`, `${name}.${ns}.svc`, `${name}.${ns}`];
    if (ns === namespace) aliases.push(name);
    lines.push(`${clusterIP}\t${aliases.join(" ")}`);
  }
  return lines.join("\n") + "\n";
}
