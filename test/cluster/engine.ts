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
// Version skew: the npm SDK @pulumi/kubernetes is 4.34.2, the provider binary is 4.25.0 (the
// newest the Go proxy serves). Left alone, every resource asks the engine for the default provider
// at 4.34.2, which is in no plugin cache, so the engine:
//  - uses the `pulumi-resource-kubernetes` it finds on PATH (an "ambient" plugin) whatever the
//    version asked, with two warnings ("using pulumi-resource-kubernetes from $PATH", "expected
//    to have version >=4.34.2, but has 4.25.0"), and records the provider as `default_4_34_2`;
//  - with PULUMI_IGNORE_AMBIENT_PLUGINS=true, tries get.pulumi.com and fails offline ("Could not
//    automatically download and install resource plugin 'pulumi-resource-kubernetes' at version
//    v4.34.2").
// So the programs here pass `version: K8S_PROVIDER_VERSION` in the resource options of every
// Kubernetes resource and provider: the default provider becomes `default_4_25_0`, the version
// warning goes, and the binary is still found on PATH (the tools bin dir). The other way,
// `pulumi plugin install resource kubernetes v4.25.0 --file <binary>`, works offline too but
// copies the 306 MB binary into PULUMI_HOME for every run. The SDK's 4.34.2 types only send
// what the 4.25.0 provider knows for the objects used here (core/v1 ConfigMap, the Provider's
// kubeconfig and enableConfigMapMutable); check the mesh's resources when they move here.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { EngineEvent, LocalWorkspace, PulumiCommand, PulumiFn, Stack } from "@pulumi/pulumi/automation";
import { onTeardown, requireTools, toolsBinDir } from "./control-plane";

/** The provider version build.sh builds (its K8S_PROVIDER_VERSION), e.g. "4.25.0". */
export function k8sProviderVersion(): string {
  let dir = __dirname;
  while (dir !== path.dirname(dir)) {
    const script = path.join(dir, "test", "cluster", "tools", "build.sh");
    if (fs.existsSync(script)) {
      const m = /^K8S_PROVIDER_VERSION=(\S+)\s*$/m.exec(fs.readFileSync(script, "utf8"));
      if (m) return m[1];
      break;
    }
    dir = path.dirname(dir);
  }
  return "4.25.0";
}

export interface EngineStack {
  stack: Stack;
  /** Work dir, file backend (`state/`) and PULUMI_HOME (`home/`); removed by cleanup(). */
  dir: string;
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
  return {
    stack,
    dir,
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
