// One control-plane measurement, in its own process so its memory is its own:
//   node controlplane-child.js <workloads> [imported services]
// evaluates a program with one Mesh and that many MeshedWorkloads (spread over 10 namespaces, each
// with a Service port and a readiness probe to rewrite) under the Pulumi mock runtime, waits until
// every resource is registered, and prints one JSON line. Imported services (another program's,
// through `importedServices`) grow the directory without minting certificates: how a 10,000-service
// directory renders, at a cost a 2-core machine can measure.
import { installMocks, render } from "../test/support/pulumi-mocks";
installMocks();
import * as mesh from "../components";

const NAMESPACES = 10;

async function main(): Promise<void> {
  const n = Number(process.argv[2]);
  const imported = Number(process.argv[3] ?? 0);
  if (!Number.isInteger(n) || n < 1 || !Number.isInteger(imported) || imported < 0) throw new Error(`usage: controlplane-child <workloads> [imported services] (got ${process.argv.slice(2).join(" ")})`);
  const importedServices = Array.from({ length: imported }, (_, i) => ({
    namespace: `other-${i % 100}`,
    name: `svc-${i}`,
    spiffeId: `spiffe://cluster.local/ns/other-${i % 100}/sa/svc-${i}`,
    addresses: [`10.${100 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`],
    hostnames: [`svc-${i}.other-${i % 100}.svc.cluster.local`],
    ports: [{ port: 8080, targetPort: 8080, mode: "strict" as const }],
  }));
  const t0 = process.hrtime.bigint();
  const { resources } = await render(() => {
    const m = new mesh.Mesh("mesh", { trustDomain: "cluster.local", mode: "strict", proxyImage: "registry.example/mesh-proxy:0.1.0", importedServices });
    for (let i = 0; i < n; i++) {
      new mesh.MeshedWorkload(`wl-${i}`, {
        mesh: m,
        namespace: `team-${i % NAMESPACES}`,
        containers: [
          {
            name: "app",
            image: "registry.example/app:1.0",
            ports: [{ name: "http", containerPort: 8080 }],
            readinessProbe: { httpGet: { path: "/ready", port: 8080 } },
          },
        ],
        ports: [{ name: "http", port: 8080 }],
      });
    }
  });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  // The directory ConfigMap every member namespace carries: its payload and form (text or gzip).
  const directory = resources.find((r) => r.inputs.kind === "ConfigMap" && r.outputs.metadata?.name === "mesh-directory");
  const payload = { ...(directory?.outputs.data ?? {}), ...(directory?.outputs.binaryData ?? {}) } as Record<string, string>;
  const directoryForm = Object.keys(payload).join(",");
  const directoryBytes = Object.values(payload).reduce((sum, v) => sum + Buffer.byteLength(v), 0);
  const perWorkload = resources.filter((r) => /^wl-\d+(-|$)/.test(r.name)).length;
  const mem = process.memoryUsage();
  process.stdout.write(
    JSON.stringify({
      workloads: n,
      importedServices: imported,
      seconds,
      resources: resources.length,
      workloadResources: perWorkload,
      directoryForm,
      directoryBytes,
      maxRssMB: process.resourceUsage().maxRSS / 1024,
      heapUsedMB: mem.heapUsed / 1024 / 1024,
    }) + "\n",
  );
}

main().catch((err: Error) => {
  process.stderr.write(`controlplane: ${err.message}\n`);
  process.exit(1);
});
