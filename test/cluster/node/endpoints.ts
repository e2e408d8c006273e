// kube-proxy's input (pure): for each ClusterIP Service port, the ready endpoints that the API
// server's EndpointSlice controller published for it. Slices belong to their Service by the
// `kubernetes.io/service-name` label and match a Service port by name ("" for an unnamed one), as
// in kube-proxy's EndpointSliceCache; only IPv4 slices, since the harness's Services are IPv4.
import type { V1EndpointSlice, V1Service } from "@kubernetes/client-node";
import type { ServicePortRule } from "../../e2e/harness/kube-proxy";

const SERVICE_NAME = "kubernetes.io/service-name";

export function serviceRules(services: readonly V1Service[], slices: readonly V1EndpointSlice[]): ServicePortRule[] {
  const rules: ServicePortRule[] = [];
  for (const s of services) {
    const clusterIP = s.spec?.clusterIP;
    const ns = s.metadata?.namespace;
    if (!clusterIP || clusterIP === "None" || !ns) continue;
    const mine = slices.filter((sl) => sl.addressType === "IPv4" && sl.metadata?.namespace === ns && sl.metadata?.labels?.[SERVICE_NAME] === s.metadata?.name);
    for (const port of s.spec?.ports ?? []) {
      if ((port.protocol ?? "TCP") !== "TCP") continue;
      const endpoints = mine.flatMap((sl) => {
        const target = sl.ports?.find((p) => (p.name ?? "") === (port.name ?? ""))?.port;
        if (target === undefined) return [];
        // A missing `ready` means ready (the EndpointSlice API's rule).
        return (sl.endpoints ?? []).filter((e) => e.conditions?.ready !== false).flatMap((e) => e.addresses.map((ip) => ({ ip, port: target })));
      });
      endpoints.sort((a, b) => (a.ip < b.ip ? -1 : a.ip > b.ip ? 1 : a.port - b.port));
      rules.push({ name: `${ns}/${s.metadata!.name}:${port.port}`, clusterIP, port: port.port, endpoints });
    }
  }
  return rules.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}
