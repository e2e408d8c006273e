// Each example type-checks with the project's compiler settings, importing the package by its
// published name ("pulumi-mtls-mesh"), exactly as a user's program would.
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import * as ts from "typescript";

const ROOT = path.resolve(__dirname, "../../..");

function exampleEntryPoints(): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.name === "index.ts") out.push(full);
    }
  };
  walk(path.join(ROOT, "examples"));
  return out.sort();
}

describe("components/examples", function () {
  this.timeout(60_000);

  it("has quickstart, migration and compose (two programs)", () => {
    assert.deepEqual(
      exampleEntryPoints().map((f) => path.relative(ROOT, f)),
      ["examples/compose/apps/index.ts", "examples/compose/platform/index.ts", "examples/migration/index.ts", "examples/quickstart/index.ts"],
    );
  });

  it("each has a Pulumi.yaml whose main is its compiled program, the root one deploying the quickstart", () => {
    const projects = [["Pulumi.yaml", "examples/quickstart"], ...exampleEntryPoints().map((f) => [path.join(path.relative(ROOT, path.dirname(f)), "Pulumi.yaml"), path.relative(ROOT, path.dirname(f))])];
    const names = new Set<string>();
    for (const [file, example] of projects) {
      const text = fs.readFileSync(path.join(ROOT, file), "utf8");
      const main = /^main: (\S+)$/m.exec(text)?.[1];
      assert.ok(main, `${file} names its main`);
      assert.match(text, /^runtime:\n  name: nodejs\n  options:\n    typescript: false$/m, `${file}: the compiled JavaScript runs as is`);
      assert.equal(path.relative(ROOT, path.resolve(ROOT, path.dirname(file), main)), path.join("dist", example, "index.js"), file);
      assert.ok(fs.existsSync(path.join(ROOT, "dist", example, "index.js")), `${example} is compiled by npm ci`);
      assert.match(text, /pulumi config set proxyImage/, `${file} says to set the required proxyImage`);
      names.add(/^name: (\S+)$/m.exec(text)![1]);
    }
    assert.equal(names.size, projects.length, "distinct project names");
  });

  it("type-check with the project's tsconfig, importing pulumi-mtls-mesh", () => {
    const configFile = ts.readConfigFile(path.join(ROOT, "tsconfig.json"), ts.sys.readFile);
    const parsed = ts.parseJsonConfigFileContent(configFile.config, ts.sys, ROOT);
    const files = exampleEntryPoints();
    for (const f of files) assert.match(fs.readFileSync(f, "utf8"), /from "pulumi-mtls-mesh"/);
    const program = ts.createProgram(files, { ...parsed.options, noEmit: true });
    const problems = ts
      .getPreEmitDiagnostics(program)
      .filter((d) => !d.file || d.file.fileName.startsWith(path.join(ROOT, "examples")) || d.file.fileName.startsWith(path.join(ROOT, "components")))
      .map((d) => ts.flattenDiagnosticMessageText(d.messageText, "\n") + (d.file ? ` (${path.relative(ROOT, d.file.fileName)})` : ""));
    assert.deepEqual(problems, []);
  });
});
