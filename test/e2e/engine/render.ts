// The engine stand-in's front door: render a Pulumi program (compiled JS) with a config and the
// previous render's state, in a child process, and get back every resource it registered.
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { SERVICE_CIDR } from "../harness/names";
import type { KubeObject, Registered, StateEntry } from "./mocks";

export interface RenderRequest {
  /** Absolute path of the program's compiled entry (e.g. dist/examples/quickstart/index.js). */
  program: string;
  project: string;
  stack: string;
  /** Keys without a ":" are put in the project's namespace, like `pulumi config set`. */
  config: Record<string, string>;
  state: Record<string, StateEntry>;
  replace: string[];
  serviceCidrBase: string;
}

export type RenderResult =
  | { ok: true; resources: Registered[]; state: Record<string, StateEntry>; unmodelled: string[] }
  | { ok: false; error: string };

export interface Rendered {
  resources: Registered[];
  objects: KubeObject[];
  state: Record<string, StateEntry>;
  /** Resource types and invokes the stand-in passed through without modelling them. */
  unmodelled: string[];
}

export class RenderError extends Error {}

/** The project name from the Pulumi.yaml next to the program's source (or its compiled dir). */
export function projectName(programDir: string): string | undefined {
  for (const dir of [programDir, programDir.replace(`${path.sep}dist${path.sep}`, path.sep)]) {
    const file = path.join(dir, "Pulumi.yaml");
    if (fs.existsSync(file)) return /^name:\s*["']?([^"'\s#]+)/m.exec(fs.readFileSync(file, "utf8"))?.[1];
  }
  return undefined;
}

export async function render(opts: {
  program: string;
  config?: Record<string, string>;
  state?: Record<string, StateEntry>;
  replace?: string[];
  stack?: string;
}): Promise<Rendered> {
  const request: RenderRequest = {
    program: opts.program,
    project: projectName(path.dirname(opts.program)) ?? path.basename(path.dirname(opts.program)),
    stack: opts.stack ?? "e2e",
    config: opts.config ?? {},
    state: opts.state ?? {},
    replace: opts.replace ?? [],
    serviceCidrBase: SERVICE_CIDR.base,
  };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "e2e-render-"));
  try {
    const requestFile = path.join(dir, "request.json");
    const resultFile = path.join(dir, "result.json");
    fs.writeFileSync(requestFile, JSON.stringify(request));
    const stderr = await new Promise<string>((resolve) => {
      execFile(process.execPath, [path.join(__dirname, "render-child.js"), requestFile, resultFile], { timeout: 120_000, maxBuffer: 16 << 20 }, (_err, _stdout, err) =>
        resolve(err),
      );
    });
    if (!fs.existsSync(resultFile)) throw new RenderError(`rendering ${opts.program} produced no result:\n${stderr}`);
    const result = JSON.parse(fs.readFileSync(resultFile, "utf8")) as RenderResult;
    if (!result.ok) throw new RenderError(`rendering ${opts.program} failed: ${result.error}`);
    const objects = result.resources.filter((r) => r.type.startsWith("kubernetes:")).map((r) => r.outputs as KubeObject);
    return { resources: result.resources, objects, state: result.state, unmodelled: result.unmodelled };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
