// The README's usage example must compile as a user's program would: importing "pulumi-mtls-mesh".
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as ts from "typescript";

const ROOT = path.resolve(__dirname, "../..");

describe("README", function () {
  this.timeout(60_000);

  it("usage example type-checks against the package", () => {
    const readme = fs.readFileSync(path.join(ROOT, "README.md"), "utf8");
    const block = /```ts\n([\s\S]*?)```/.exec(readme);
    assert.ok(block, "README has a ```ts usage block");
    assert.match(block[1], /from "pulumi-mtls-mesh"/);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "readme-example-"));
    const file = path.join(dir, "index.ts");
    fs.writeFileSync(file, block[1]);
    try {
      const config = ts.readConfigFile(path.join(ROOT, "tsconfig.json"), ts.sys.readFile);
      const parsed = ts.parseJsonConfigFileContent(config.config, ts.sys, ROOT);
      const program = ts.createProgram([file], { ...parsed.options, noEmit: true, noUnusedLocals: false, rootDir: undefined });
      const problems = ts
        .getPreEmitDiagnostics(program)
        .filter((d) => !d.file || d.file.fileName === file)
        .map((d) => ts.flattenDiagnosticMessageText(d.messageText, "\n"));
      assert.deepEqual(problems, []);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
