#!/usr/bin/env node
// mesh-proxy: the image's entrypoint. `run` is the long-running proxy (sidecar or node proxy),
// `init` installs the pod's redirection (proxy/redirect), `version` prints the version.
// Exit codes: 0 success (and a drained SIGTERM); 1 runtime failure (cannot listen, ...);
// 2 bad flags or invalid config. A user mistake prints one clear message, never a stack trace.
import * as fs from "fs";
import * as path from "path";
import { Command, Option } from "commander";
import { ConfigError, TRANSPORTS, Transport } from "./config";
import { isLevel, Logger } from "./log";
import { TLS_GROUPS } from "./identity";
import { startProxy } from "./proxy";
import { registerInitCommand } from "./redirect/command";
import { loadSettings } from "./settings";

function packageVersion(): string {
  // dist/proxy/cli.js and proxy/cli.ts are both two levels below the package root.
  for (const candidate of [path.join(__dirname, "..", "..", "package.json"), path.join(__dirname, "..", "package.json")]) {
    try {
      return (JSON.parse(fs.readFileSync(candidate, "utf8")) as { version: string }).version;
    } catch {
      continue;
    }
  }
  return "unknown";
}

interface RunFlags {
  config: string;
  identity?: string;
  transport?: Transport;
  logLevel: string;
}

function buildProgram(): Command {
  const program = new Command("mesh-proxy")
    .description("the mTLS mesh proxy: terminates and originates mTLS for a workload, enforces modes and authorization")
    .version(packageVersion(), "-V, --version", "print the version")
    // Commander's own usage errors (unknown option, missing --config, bad choice) exit 1; ours
    // are 2 for every user mistake. Help and version exit 0. Set before the subcommands are
    // added so that they inherit it.
    .exitOverride((error) => process.exit(error.exitCode === 1 && error.code.startsWith("commander.") ? 2 : error.exitCode));

  program
    .command("run")
    .description("run the proxy (inbound and outbound listeners, admin port 15021)")
    .requiredOption("--config <path>", "a directory with workload.json and directory.json, or one proxy.json file with explicit listeners")
    .option("--identity <dir>", "directory with tls.crt, tls.key and ca.crt (default: /var/run/mesh/identity, or the file's `identity`)")
    .addOption(new Option("--transport <transport>", "how to reach other proxies: h2 (pooled HTTP/2 CONNECT) or tcp (one mTLS connection each)").choices(TRANSPORTS))
    .option("--log-level <level>", "debug, info, warn or error", "info")
    .action(async (flags: RunFlags, command: Command) => {
      if (!isLevel(flags.logLevel)) command.error(`mesh-proxy run: --log-level must be debug, info, warn or error`, { exitCode: 2 });
      let settings;
      try {
        settings = loadSettings(flags.config, { identityDir: flags.identity, transport: flags.transport });
      } catch (error) {
        if (error instanceof ConfigError) command.error(`mesh-proxy run: ${error.message}`, { exitCode: 2, code: "mesh.run.badConfig" });
        throw error;
      }
      const log = new Logger(flags.logLevel as "info");
      let proxy;
      try {
        proxy = await startProxy(settings, { log });
      } catch (error) {
        command.error(`mesh-proxy run: ${(error as Error).message}`, { exitCode: 1, code: "mesh.run.startFailed" });
      }
      const stop = (signal: string) => {
        log.info("signal received, draining", { signal });
        proxy.shutdown().then(() => process.exit(0));
      };
      process.once("SIGTERM", () => stop("SIGTERM"));
      process.once("SIGINT", () => stop("SIGINT"));
    });

  registerInitCommand(program);

  program
    .command("version")
    .description("print the version")
    .action(() => {
      // The runtime decides the key exchange (post-quantum needs OpenSSL 3.5): say which one runs.
      process.stdout.write(`mesh-proxy ${packageVersion()}\nnode ${process.version}, OpenSSL ${process.versions.openssl}, key exchange ${TLS_GROUPS.replace(/\*/g, "")}\n`);
    });

  return program;
}

if (require.main === module) {
  buildProgram()
    .parseAsync(process.argv)
    .catch((error: Error) => {
      process.stderr.write(`mesh-proxy: ${error.message}\n`);
      process.exit(1);
    });
}
