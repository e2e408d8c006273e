// The real Pulumi engine for the cluster tests: the CLI and the Kubernetes provider from the tools
// cache (`npm run cluster:tools`), driven through the Automation API with inline programs, a file
// backend in a temp directory, a passphrase secrets provider and a private PULUMI_HOME, so
// nothing is read from or written to the user's ~/.pulumi and nothing is downloaded.
//
// Why the Automation API: pulumi-language-nodejs is not built (the Go proxy serves no version of
// its module, see test/cluster/tools/README.md). An inline program runs in this Node process; the
// Automation API serves it to the CLI as the language runtime (`--client`), so no language plugin
// is needed.
//
// Versions: the npm @pulumi/kubernetes is pinned to the provider binary build.sh makes (4.25.0,
// the newest the Go proxy serves; test/cluster/versions.test.ts keeps them equal), so the engine
// asks for exactly the plugin it finds on PATH (the tools bin dir). With a newer SDK it would use
// that binary anyway, as an ambient plugin, with an "expected to have version" warning, and with
// PULUMI_IGNORE_AMBIENT_PLUGINS it would try to download the SDK's version and fail offline.
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { EngineEvent, LocalWorkspace, PulumiCommand, PulumiFn, Stack } from "@pulumi/pulumi/automation";
import { onTeardown, requireTools, toolsBinDir } from "./control-plane";

export interface EngineStack {
  stack: Stack;
  /** Work dir, file backend (`state/`) and PULUMI_HOME (`home/`); removed by cleanup(). */
  dir: string;
  /** Runs the CLI on this stack (`pulumi <args> --stack <name>`) with the stack's environment. */
  cli(args: string[]): Promise<{ stdout: string; stderr: string; code: number }>;
  cleanup(): Promise<void>;
}

/**
 * A stack of an inline program on a file backend, talking to the cluster of `kubeconfigPath`
 * (through KUBECONFIG, which the default provider reads).
 */
export async function engineStack(opts: {
  projectName: string;
  stackName: string;
  program: PulumiFn;
  kubeconfigPath: string;
  /** Put the TypeScript stand-in plugins (./providers: pulumi-resource-tls) first on PATH. */
  standIns?: boolean;
  /** Stack config (`pulumi config set <key> <value>`), keys without the project prefix. */
  config?: Record<string, string>;
}): Promise<EngineStack> {
  requireTools(["pulumi", "pulumi-resource-kubernetes"]);
  let bin = toolsBinDir();
  const toolsRoot = path.dirname(bin);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mesh-engine-"));
  const unregister = onTeardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  if (opts.standIns) bin = `${standInBinDir(dir)}:${bin}`;
  const backend = `file://${path.join(dir, "state")}`;
  fs.mkdirSync(path.join(dir, "state"));
  fs.mkdirSync(path.join(dir, "home"));
  const envVars: Record<string, string> = {
    // The tools bin dir first (after the stand-ins, if any): the engine finds pulumi-resource-kubernetes there.
    PATH: `${bin}:${process.env.PATH ?? ""}`,
    PULUMI_HOME: path.join(dir, "home"),
    // = `pulumi login file://<dir>/state`, without writing credentials anywhere.
    PULUMI_BACKEND_URL: backend,
    PULUMI_CONFIG_PASSPHRASE: "real-engine-test",
    PULUMI_SKIP_UPDATE_CHECK: "1",
    KUBECONFIG: opts.kubeconfigPath,
  };
  // PulumiCommand.get({ root }) runs `<root>/bin/pulumi`: the tools cache's layout.
  const pulumiCommand = await PulumiCommand.get({ root: toolsRoot });
  const stack = await LocalWorkspace.createOrSelectStack(
    { projectName: opts.projectName, stackName: opts.stackName, program: opts.program },
    {
      workDir: dir,
      pulumiCommand,
      envVars,
      projectSettings: { name: opts.projectName, runtime: "nodejs", backend: { url: backend } },
    },
  );
  if (opts.config) await stack.setAllConfig(Object.fromEntries(Object.entries(opts.config).map(([k, value]) => [k, { value }])));
  return {
    stack,
    dir,
    cli: (args) =>
      new Promise((resolve) => {
        const argv = [...args, "--stack", opts.stackName, "--non-interactive"];
        execFile(path.join(toolsRoot, "bin", "pulumi"), argv, { cwd: dir, env: { ...process.env, ...envVars }, encoding: "utf8", maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
          resolve({ stdout, stderr, code: err ? (typeof err.code === "number" ? err.code : -1) : 0 });
        });
      }),
    cleanup: async () => {
      fs.rmSync(dir, { recursive: true, force: true });
      unregister();
    },
  };
}

/**
 * Writes `<dir>/stand-ins/pulumi-resource-tls`, a wrapper that runs the compiled stand-in
 * (./providers/tls.ts) with this Node, and returns the directory. Generated per run, never
 * committed: it names this machine's node and checkout. The engine finds it on PATH as an
 * ambient plugin; it reports the version the SDK asks for (5.6.1), so nothing is downloaded.
 */
function standInBinDir(dir: string): string {
  const binDir = path.join(dir, "stand-ins");
  fs.mkdirSync(binDir);
  for (const [plugin, file] of [["pulumi-resource-tls", "tls.js"]]) {
    const script = path.join(__dirname, "providers", file);
    if (!fs.existsSync(script)) throw new Error(`${script} is missing: npm run build`);
    const wrapper = path.join(binDir, plugin);
    fs.writeFileSync(wrapper, `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(script)} "$@"\n`, { mode: 0o755 });
  }
  return binDir;
}

/** Wall time of each named step of a suite, printed as the step ends. */
export class Timings {
  readonly ms: Record<string, number> = {};

  async time<T>(name: string, f: () => Promise<T>): Promise<T> {
    const t = Date.now();
    try {
      return await f();
    } finally {
      this.ms[name] = Date.now() - t;
      console.log(`      ${name}: ${this.ms[name]} ms`);
    }
  }
}

/** Collects each resource's preview/update steps, in order, from the engine's events. */
export class Steps {
  readonly byUrn = new Map<string, string[]>();
  readonly order: { urn: string; op: string }[] = [];
  readonly onEvent = (e: EngineEvent): void => {
    const m = e.resourcePreEvent?.metadata;
    if (!m) return;
    this.order.push({ urn: m.urn, op: m.op });
    this.byUrn.set(m.urn, [...(this.byUrn.get(m.urn) ?? []), m.op]);
  };
  /** The ops of the resource whose URN ends with `::<name>` (the resource's name). */
  of(name: string): string[] {
    for (const [urn, ops] of this.byUrn) if (urn.endsWith(`::${name}`)) return ops;
    return [];
  }
}
