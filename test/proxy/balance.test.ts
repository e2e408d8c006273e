// Pooled transport behind a Service: kube-proxy picks a replica per TCP connection, so a client
// proxy that carried every stream over one session would pin all its traffic to one replica.
// Here a round-robin TCP forwarder stands in for kube-proxy in front of two server proxies.
import { strict as assert } from "assert";
import * as net from "net";
import { SESSIONS_PER_DESTINATION } from "../../proxy/pool";
import {
  Backend, CLIENT_ID, exchange, removeTmpDirs, SERVER_ID, startBackend, startTestProxy, stopAllProxies, TestProxy, testMesh,
  waitFor, workload,
} from "./support";

/** Forwards each accepted connection to the next target in turn (a ClusterIP with two endpoints). */
function roundRobin(targets: number[]): Promise<net.Server> {
  let next = 0;
  const server = net.createServer((socket) => {
    const upstream = net.connect(targets[next++ % targets.length], "127.0.0.1");
    socket.pipe(upstream).pipe(socket);
    socket.on("error", () => upstream.destroy());
    upstream.on("error", () => socket.destroy());
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

describe("proxy/pool spreads streams over replicas behind one address (h2)", function () {
  let backend: Backend;
  let replicas: TestProxy[];
  let client: TestProxy;
  let service: net.Server;

  before(async function () {
    const mesh = await testMesh();
    backend = await startBackend();
    const leaf = await mesh.leaf("shop", "api");
    // One app port for both replicas, as in a Deployment: the listener maps it to the backend.
    replicas = await Promise.all(
      [0, 1].map(() =>
        startTestProxy({ leaf, bundlePem: mesh.bundlePem, workload: workload(SERVER_ID), inbound: [{ host: "127.0.0.1", port: 0, targetPort: backend.port }] }),
      ),
    );
    service = await roundRobin(replicas.map((r) => r.proxy.inboundPorts[0]));
    const servicePort = (service.address() as net.AddressInfo).port;
    client = await startTestProxy({
      leaf: await mesh.leaf("shop", "web"),
      bundlePem: mesh.bundlePem,
      workload: workload(CLIENT_ID),
      outbound: [{ host: "127.0.0.1", port: 0, route: { host: "127.0.0.1", port: servicePort, spiffeId: SERVER_ID, targetPort: backend.port } }],
      transport: "h2",
    });
  });
  after(async function () {
    await stopAllProxies();
    await backend.close();
    await new Promise((resolve) => service.close(resolve));
    removeTmpDirs();
  });

  it("reaches both replicas from one client proxy", async function () {
    const connections = 4 * SESSIONS_PER_DESTINATION;
    for (let i = 0; i < connections; i++) {
      assert.equal((await exchange(client.proxy.outboundPorts[0], `req-${i}`)).toString(), `req-${i}`);
    }
    const served = (r: TestProxy) => r.logs.filter((l) => l.msg === "done" && l.direction === "inbound").length;
    await waitFor(() => served(replicas[0]) + served(replicas[1]) === connections, 5000, "every stream logged as done");
    assert.ok(served(replicas[0]) > 0 && served(replicas[1]) > 0, `streams per replica: ${served(replicas[0])}, ${served(replicas[1])}`);
  });
});
