// Stand-in for registry.k8s.io/e2e-test-images/agnhost, two of its subcommands.
// `serve-hostname --tcp --http=false [--port 9376]` (serve-hostname.ts): a server-first TCP server.
// `grpc-health-checking` (what Kubernetes' own gRPC probe tests run): a grpc.health.v1 Health server on --port (5000) that
// answers SERVING for --service ("" by default; other names get NOT_FOUND), and an HTTP control
// server on --http-port (8080) whose /make-not-serving and /make-serving flip the answer. Same
// flags, so pod specs written for the real image run unchanged. The gRPC side is @grpc/grpc-js
// (a dependency of @pulumi/pulumi): a real gRPC implementation, not our own client's mirror image.
import * as grpc from "@grpc/grpc-js";
import * as http from "node:http";
import { serveHostname } from "./serve-hostname";

const [subcommand, ...rest] = process.argv.slice(2);

function flag(name: string, fallback: string): string {
  for (let i = 0; i < rest.length; i++) {
    if (rest[i] === `--${name}`) return rest[i + 1] ?? fallback;
    if (rest[i].startsWith(`--${name}=`)) return rest[i].slice(name.length + 3);
  }
  return fallback;
}


// The two messages of grpc.health.v1, hand-encoded: request field 1 = service (string), response
// field 1 = status (enum: SERVING 1, NOT_SERVING 2).
function requestService(bytes: Buffer): string {
  if (bytes.length === 0) return "";
  if (bytes[0] !== 0x0a) throw new Error("unexpected HealthCheckRequest field");
  let length = 0;
  let offset = 1;
  for (let shift = 0; ; shift += 7) {
    const byte = bytes[offset++];
    length |= (byte & 0x7f) << shift;
    if ((byte & 0x80) === 0) break;
  }
  return bytes.subarray(offset, offset + length).toString("utf8");
}
const response = (status: number) => Buffer.from([0x08, status]);

const health = {
  Check: {
    path: "/grpc.health.v1.Health/Check",
    requestStream: false,
    responseStream: false,
    requestSerialize: (b: Buffer) => b,
    requestDeserialize: (b: Buffer) => b,
    responseSerialize: (b: Buffer) => b,
    responseDeserialize: (b: Buffer) => b,
  },
};
function grpcHealthChecking(): void {
  const port = Number(flag("port", "5000"));
  const httpPort = Number(flag("http-port", "8080"));
  const service = flag("service", "");
  let serving = Number(flag("delay-unhealthy-sec", "-1")) !== 0;
  const server = new grpc.Server();
  server.addService(health, {
    Check: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
      const asked = requestService(call.request);
      if (asked !== service) return callback({ code: grpc.status.NOT_FOUND, details: `unknown service ${JSON.stringify(asked)}` });
      callback(null, response(serving ? 1 : 2));
    },
  });
  server.bindAsync(`0.0.0.0:${port}`, grpc.ServerCredentials.createInsecure(), (error) => {
    if (error) {
      process.stderr.write(`gRPC server: ${error.message}\n`);
      process.exit(1);
    }
    process.stdout.write(`gRPC server starting to listen on :${port}\n`);
  });

  http
    .createServer((req, res) => {
      if (req.url === "/make-not-serving") serving = false;
      else if (req.url === "/make-serving") serving = true;
      else {
        res.writeHead(404).end();
        return;
      }
      process.stdout.write(`Mark as ${serving ? "healthy" : "unhealthy"}\n`);
      res.writeHead(200).end();
    })
    .listen(httpPort, () => process.stdout.write(`Http server starting to listen on :${httpPort}\n`));
  process.on("SIGTERM", () => process.exit(0));
}

if (subcommand === "serve-hostname") serveHostname(rest);
else if (subcommand === "grpc-health-checking") grpcHealthChecking();
else {
  process.stderr.write(`agnhost stand-in: only "serve-hostname" and "grpc-health-checking" are implemented, not ${JSON.stringify(subcommand)}\n`);
  process.exit(2);
}
