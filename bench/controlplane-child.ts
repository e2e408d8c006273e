// One control-plane measurement, in its own process so its memory is its own:
//   node controlplane-child.js <workloads>
// evaluates a program with one Mesh and that many MeshedWorkloads (spread over 10 namespaces, each
// with a Service port and a readiness probe to rewrite) under the Pulumi mock runtime, waits until
// every resource is registered, and prints one JSON line.
import { installMocks, render } from "../test/support/pulumi-mocks";
installMocks();
import * as mesh from "../components";

const NAMESPACES = 10;

async function main(): Promise<void> {
  const n = Number(process.argv[2]);
  if (!Number.isInteger(n) || n < 1) throw new Error(`usage: controlplane-child <workloads> (got ${process.argv[2]})`);
  const t0 = process.hrtime.bigint();
  const { resources } = await render(() => {
    const m = new mesh.Mesh("mesh", { trustDomain: "cluster.local", mode: "strict" });
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
  const perWorkload = resources.filter((r) => /^wl-\d+(-|$)/.test(r.name)).length;
  const mem = process.memoryUsage();
  process.stdout.write(
    JSON.stringify({
      workloads: n,
      seconds,
      resources: resources.length,
      workloadResources: perWorkload,
      maxRssMB: process.resourceUsage().maxRSS / 1024,
      heapUsedMB: mem.heapUsed / 1024 / 1024,
    }) + "\n",
  );
}

main().catch((err: Error) => {
  process.stderr.write(`controlplane: ${err.message}\n`);
  process.exit(1);
});
