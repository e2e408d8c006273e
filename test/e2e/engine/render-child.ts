// One program evaluation under the Pulumi mock runtime, in its own process (so it never shares
// mocks with other test files). Reads a RenderRequest as JSON from the file named in argv[2],
// writes a RenderResult as JSON to argv[3] once every resource has been registered (the event
// loop drains: nothing is left for the program to do).
import * as fs from "node:fs";
import Module from "node:module";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { MockEngine } from "./mocks";
import type { RenderRequest, RenderResult } from "./render";

const [requestFile, resultFile] = process.argv.slice(2);
const request = JSON.parse(fs.readFileSync(requestFile, "utf8")) as RenderRequest;

const engine = new MockEngine({ state: request.state, replace: request.replace, serviceCidrBase: request.serviceCidrBase });
let failure: string | undefined;

const fail = (err: unknown) => {
  failure ??= err instanceof Error ? err.message : String(err);
};
process.on("uncaughtException", fail);
process.on("unhandledRejection", fail);

process.once("beforeExit", () => {
  const result: RenderResult = failure
    ? { ok: false, error: failure }
    : { ok: true, resources: engine.registered, state: engine.state, unmodelled: [...engine.unmodelled].sort() };
  fs.writeFileSync(resultFile, JSON.stringify(result));
});

// Programs import the package by name ("pulumi-mtls-mesh"), as users do. In this checkout the
// package is not installed in its own node_modules, so resolve the name to the package's main,
// exactly what `npm install pulumi-mtls-mesh` would give the program.
const REPO_ROOT = path.resolve(__dirname, "..", "..", "..", "..");
const packageJson = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, "package.json"), "utf8")) as { name: string; main: string };
const moduleInternals = Module as unknown as { _resolveFilename(request: string, ...rest: unknown[]): string };
const resolveFilename = moduleInternals._resolveFilename;
moduleInternals._resolveFilename = function (request: string, ...rest: unknown[]) {
  if (request === packageJson.name) return path.join(REPO_ROOT, packageJson.main);
  return resolveFilename.call(this, request, ...rest);
};

(async () => {
  // The examples require proxyImage (none is published); the harness runs the proxy from this
  // checkout whatever the reference says.
  const config = { proxyImage: "ghcr.io/acme/mesh-proxy:0.1.0", ...request.config };
  pulumi.runtime.setAllConfig(
    Object.fromEntries(Object.entries(config).map(([k, v]) => [k.includes(":") ? k : `${request.project}:${k}`, v])),
  );
  await pulumi.runtime.setMocks(engine, request.project, request.stack, false);
  require(request.program);
})().catch(fail);
