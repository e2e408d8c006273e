// proxy/Dockerfile cannot be built here (no container engine), so its load-bearing properties are
// checked by reading it, and its dependency-pruning script is run against the compiled proxy.
import * as assert from "assert";
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { PROXY_UID } from "../../proxy/wellknown";

const ROOT = path.resolve(__dirname, "../../..");
const dockerfile = fs.readFileSync(path.join(ROOT, "proxy/Dockerfile"), "utf8");
const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8"));

interface Stage {
  from: string;
  name: string;
  /** Instructions with line continuations joined; heredoc bodies kept out. */
  instructions: string[];
}

function stages(text: string): Stage[] {
  const result: Stage[] = [];
  const lines = text.replace(/\\\n/g, " ").split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    const heredoc = line.match(/<<'?(\w+)'?$/);
    if (heredoc) while (i + 1 < lines.length && lines[++i] !== heredoc[1]);
    if (line === "" || line.startsWith("#")) continue;
    const from = line.match(/^FROM\s+(\S+)(?:\s+AS\s+(\S+))?/i);
    if (from) result.push({ from: from[1], name: from[2] ?? "", instructions: [] });
    else if (result.length > 0) result[result.length - 1].instructions.push(line);
  }
  return result;
}

function heredocScript(text: string): string {
  const match = text.match(/^RUN node <<'EOF'\n([\s\S]*?)\nEOF$/m);
  assert.ok(match, "the deps stage prunes with an inline node script");
  return match[1];
}

/** Bare module names every compiled file under dist/proxy requires. */
function requiredPackages(dir: string): Set<string> {
  const names = new Set<string>();
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const file = path.join(dir, entry.name);
    if (entry.isDirectory()) for (const name of requiredPackages(file)) names.add(name);
    else if (file.endsWith(".js")) {
      for (const [, spec] of fs.readFileSync(file, "utf8").matchAll(/require\("([^"]+)"\)/g)) {
        if (spec.startsWith(".") || spec.startsWith("node:")) continue;
        names.add(spec.split("/").slice(0, spec.startsWith("@") ? 2 : 1).join("/"));
      }
    }
  }
  return names;
}

describe("proxy/redirect image (proxy/Dockerfile, read statically)", () => {
  const all = stages(dockerfile);
  const runtime = all[all.length - 1];
  const runtimeText = runtime.instructions.join("\n");

  it("is multi-stage: build with the full Node image, run on slim", () => {
    assert.ok(all.length >= 2, "at least a build and a runtime stage");
    assert.deepStrictEqual(all.slice(0, -1).map((stage) => stage.from), all.slice(0, -1).map(() => "${NODE_IMAGE}"));
    assert.match(dockerfile, /^ARG NODE_IMAGE=node:24-bookworm$/m);
    assert.match(dockerfile, /^ARG NODE_SLIM_IMAGE=node:24-bookworm-slim$/m);
    assert.strictEqual(runtime.from, "${NODE_SLIM_IMAGE}");
    const build = all.find((stage) => stage.name === "build");
    assert.ok(build?.instructions.some((line) => /^RUN npx tsc -p tsconfig.json$/.test(line)), "the build stage compiles with tsc");
  });

  it("installs iptables in the runtime image", () => {
    assert.match(runtimeText, /apt-get install -y --no-install-recommends iptables\b/);
    assert.match(runtimeText, /rm -rf \/var\/lib\/apt\/lists\/\*/);
  });

  it(`runs as the fixed non-root UID ${PROXY_UID} from the pod contract`, () => {
    const users = runtime.instructions.filter((line) => line.startsWith("USER "));
    assert.deepStrictEqual(users, [`USER ${PROXY_UID}:${PROXY_UID}`]);
    assert.match(runtimeText, new RegExp(`useradd --uid ${PROXY_UID} --gid ${PROXY_UID} `));
  });

  it("enters through the package's mesh-proxy bin", () => {
    const entrypoint = runtime.instructions.find((line) => line.startsWith("ENTRYPOINT "));
    // --openssl-config: the proxy's OpenSSL settings (no TLS 1.3 session tickets), shipped next to dist/.
    assert.strictEqual(entrypoint, `ENTRYPOINT ["node", "--openssl-config=/app/proxy/openssl.cnf", "/app/${pkg.bin["mesh-proxy"]}"]`);
    assert.ok(runtime.instructions.includes("COPY --from=build /app/dist ./dist"), "the compiled tree is where the entrypoint points");
    assert.ok(runtime.instructions.includes("COPY proxy/openssl.cnf ./proxy/openssl.cnf"), "the OpenSSL config is where the entrypoint points");
    assert.ok(fs.existsSync(path.join(ROOT, "proxy", "openssl.cnf")));
  });

  it("ships production dependencies only", () => {
    const deps = all.find((stage) => stage.name === "deps");
    assert.ok(deps, "a deps stage");
    assert.ok(deps.instructions.includes("RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund"));
    assert.ok(deps.instructions.some((line) => line.startsWith("RUN npm prune --omit=dev ")));
    assert.ok(runtime.instructions.includes("COPY --from=deps /app/node_modules ./node_modules"));
    assert.ok(!runtime.instructions.some((line) => /\bnpm (ci|install|i)\b/.test(line)), "nothing is installed into the runtime stage");
    assert.ok(!all.some((stage) => stage.instructions.some((line) => /^COPY (\.|\S*node_modules)/.test(line))), "no host node_modules");
  });

  it("prunes to exactly the production packages dist/proxy requires (running the Dockerfile's own script)", () => {
    const work = fs.mkdtempSync(path.join(os.tmpdir(), "rd-image-"));
    try {
      fs.copyFileSync(path.join(ROOT, "package.json"), path.join(work, "package.json"));
      fs.mkdirSync(path.join(work, "dist"));
      fs.symlinkSync(path.join(ROOT, "dist/proxy"), path.join(work, "dist/proxy"));
      fs.writeFileSync(path.join(work, "prune.js"), heredocScript(dockerfile));
      execFileSync(process.execPath, ["prune.js"], { cwd: work, stdio: "pipe" });
      const pruned = JSON.parse(fs.readFileSync(path.join(work, "package.json"), "utf8"));
      const required = [...requiredPackages(path.join(ROOT, "dist/proxy"))].filter((name) => !require("module").builtinModules.includes(name));
      assert.deepStrictEqual(Object.keys(pruned.dependencies), required.sort(), "kept = required");
      for (const name of required) assert.strictEqual(pruned.dependencies[name], pkg.dependencies[name], `${name} is a production dependency`);
      assert.ok(required.includes("koffi"), "SO_ORIGINAL_DST needs koffi at runtime");
      assert.strictEqual(pruned.version, pkg.version);
    } finally {
      fs.rmSync(work, { recursive: true, force: true });
    }
  });

  it("compiles the proxy from proxy/ alone (no import reaches outside it but package.json)", () => {
    const copied = dockerfile.match(/^COPY (?!--from)(.+) \.\/?\S*$/gm) ?? [];
    assert.deepStrictEqual(copied, [
      "COPY package.json package-lock.json ./",
      "COPY tsconfig.json ./",
      "COPY proxy ./proxy",
      "COPY package.json package-lock.json ./",
      "COPY proxy/openssl.cnf ./proxy/openssl.cnf",
    ]);
    const outside: string[] = [];
    (function walk(dir: string) {
      for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
        const file = path.join(dir, entry.name);
        if (entry.isDirectory()) walk(file);
        else if (file.endsWith(".js")) {
          for (const [, spec] of fs.readFileSync(file, "utf8").matchAll(/require\("(\.[^"]*)"\)/g)) {
            const target = path.resolve(path.dirname(file), spec);
            if (!target.startsWith(path.join(ROOT, "dist/proxy")) && !target.endsWith("package.json")) outside.push(`${file}: ${spec}`);
          }
        }
      }
    })(path.join(ROOT, "dist/proxy"));
    assert.deepStrictEqual(outside, []);
  });

  it("keeps node_modules, dist and .git out of the build context, and nothing the stages copy", () => {
    const ignored = fs.readFileSync(path.join(ROOT, ".dockerignore"), "utf8").split("\n").map((line) => line.trim());
    for (const entry of ["node_modules", "dist", ".git"]) assert.ok(ignored.includes(entry), entry);
    // ...but never what the stages COPY.
    for (const entry of ignored.filter((line) => line !== "" && !line.startsWith("#"))) {
      for (const needed of ["package.json", "package-lock.json", "tsconfig.json", "proxy", "proxy/cli.ts"]) {
        const pattern = new RegExp(`^${entry.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, "[^/]*")}(/.*)?$`);
        assert.ok(!pattern.test(needed), `${entry} would drop ${needed}`);
      }
    }
  });
});
