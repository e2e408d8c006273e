// The real servers behind the real-protocol workloads, started once per topology inside the
// server namespace, each on its own port, listening on loopback (where server-side proxies reach
// it) and on the server address (where "direct" reaches it), data under the run's raw dir:
// Redis (no persistence), PostgreSQL 15 (fsync and autovacuum off, trust auth; initdb and
// `pgbench -i -s 1` once) and MariaDB 10.11 (flush at commit off; a `bench.t` table for the INSERT workload).
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { spawnSync } from "node:child_process";
import { run, start, stop, waitForPort, Started } from "./processes";
import { ProtocolName } from "./roundtrip-kinds";

export interface ProtocolServer {
  protocol: ProtocolName;
  port: number;
  proc: Started;
  stop(): Promise<void>;
}

export interface ServerPlan {
  /** Data, sockets and logs go under here (one subdirectory per server). */
  dir: string;
  port: number;
  serverAddr: string;
  netns?: string;
}

const has = (cmd: string) => spawnSync("sh", ["-c", `command -v ${cmd}`], { stdio: "ignore" }).status === 0;

/** Debian's PostgreSQL binaries (not on PATH): the newest installed major version. */
function postgresBin(): string | undefined {
  const root = "/usr/lib/postgresql";
  const versions = fs.existsSync(root) ? fs.readdirSync(root).filter((v) => fs.existsSync(path.join(root, v, "bin/postgres"))) : [];
  const newest = versions.sort((a, b) => Number(b) - Number(a))[0];
  return newest ? path.join(root, newest, "bin") : undefined;
}

/** Why a protocol cannot run here (a missing binary), or undefined when it can. */
export function missingBinaries(protocol: ProtocolName): string | undefined {
  const needs = {
    redis: ["redis-server", "redis-benchmark"],
    postgres: ["pgbench", "setpriv"],
    mariadb: ["mariadbd", "mariadb", "mariadb-install-db"],
  }[protocol];
  const missing = needs.filter((c) => !has(c));
  if (protocol === "postgres" && !postgresBin()) missing.unshift("/usr/lib/postgresql/*/bin/postgres");
  if (protocol === "postgres" && !spawnSync("id", ["-u", "postgres"]).stdout?.length) missing.push("the postgres system user");
  return missing.length ? `missing ${missing.join(", ")}` : undefined;
}

const addresses = (serverAddr: string) => [...new Set(["127.0.0.1", serverAddr])];

/** A Unix socket path must fit in 107 bytes: a long raw dir gets its sockets under /tmp. */
function socketDir(dir: string): string {
  return dir.length <= 70 ? dir : fs.mkdtempSync(path.join(os.tmpdir(), "bench-sock-"));
}

export function startProtocolServer(protocol: ProtocolName, plan: ServerPlan): Promise<ProtocolServer> {
  return { redis: startRedis, postgres: startPostgres, mariadb: startMariadb }[protocol](plan);
}

async function startRedis(p: ServerPlan): Promise<ProtocolServer> {
  const dir = path.join(p.dir, "redis");
  fs.mkdirSync(dir, { recursive: true });
  const proc = start("redis-server", "redis-server", [
    "--port", String(p.port), "--bind", ...addresses(p.serverAddr), "--save", "", "--appendonly", "no",
    "--protected-mode", "no", "--dir", dir, "--maxclients", "10000",
  ], { netns: p.netns, logFile: path.join(dir, "redis.log") });
  await waitForPort(p.port, proc, p.netns);
  return { protocol: "redis", port: p.port, proc, stop: () => stop(proc) };
}

/** PostgreSQL refuses to run as root: initdb and postgres run as the `postgres` system user. */
const asPostgres = (bin: string, ...args: string[]): [string, string[]] => ["setpriv", ["--reuid=postgres", "--regid=postgres", "--init-groups", bin, ...args]];

async function startPostgres(p: ServerPlan): Promise<ProtocolServer> {
  const bin = postgresBin()!;
  let dir = path.join(p.dir, "postgres");
  fs.mkdirSync(dir, { recursive: true });
  // The postgres user must reach the data directory; a raw dir under a private home cannot be.
  if (spawnSync(...asPostgres("test", "-x", p.dir)).status !== 0) {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "bench-postgres-"));
    fs.chmodSync(dir, 0o755);
  }
  const data = path.join(dir, "data");
  fs.mkdirSync(data, { recursive: true, mode: 0o700 });
  fs.chownSync(data, uid("postgres"), gid("postgres"));
  await run("initdb", ...asPostgres(path.join(bin, "initdb"), "-D", data, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"), {
    logFile: path.join(dir, "initdb.log"),
    timeoutMs: 120_000,
  });
  // "direct" in the netns topology connects from the client namespace's address.
  fs.appendFileSync(path.join(data, "pg_hba.conf"), "host all all 0.0.0.0/0 trust\n");
  const sockets = socketDir(dir);
  fs.chownSync(sockets, uid("postgres"), gid("postgres"));
  const proc = start("postgres", ...asPostgres(path.join(bin, "postgres"),
    "-D", data, "-p", String(p.port), "-k", sockets, "-c", `listen_addresses=${addresses(p.serverAddr).join(",")}`,
    "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "max_connections=200",
    // No background vacuum landing in one system's run: pgbench vacuums its tables before each run.
    "-c", "autovacuum=off",
  ), { netns: p.netns, logFile: path.join(dir, "postgres.log") });
  await waitForPort(p.port, proc, p.netns, 30_000);
  await run("pgbench -i", "pgbench", ["-i", "-s", "1", "-q", "-h", "127.0.0.1", "-p", String(p.port), "-U", "postgres", "postgres"], {
    netns: p.netns,
    logFile: path.join(dir, "pgbench-init.log"),
    timeoutMs: 120_000,
  });
  return { protocol: "postgres", port: p.port, proc, stop: () => stop(proc, 10_000) };
}

async function startMariadb(p: ServerPlan): Promise<ProtocolServer> {
  const dir = path.join(p.dir, "mariadb");
  const data = path.join(dir, "data");
  fs.mkdirSync(data, { recursive: true });
  await run("mariadb-install-db", "mariadb-install-db", [
    "--no-defaults", `--datadir=${data}`, "--user=root", "--auth-root-authentication-method=normal", "--skip-test-db",
  ], { logFile: path.join(dir, "install-db.log"), timeoutMs: 120_000 });
  const socket = path.join(socketDir(dir), "mariadb.sock");
  const proc = start("mariadbd", "mariadbd", [
    "--no-defaults", `--datadir=${data}`, `--port=${p.port}`, `--bind-address=${addresses(p.serverAddr).join(",")}`, `--socket=${socket}`,
    "--user=root", "--skip-log-bin", "--innodb-flush-log-at-trx-commit=0", "--skip-name-resolve",
    // The setup-time probe closes each connection at the greeting; do not block the host for it.
    "--max-connect-errors=1000000000", "--max-connections=1000",
  ], { netns: p.netns, logFile: path.join(dir, "mariadbd.log") });
  await waitForPort(p.port, proc, p.netns, 60_000);
  await run("mariadb setup", "mariadb", ["--no-defaults", `--socket=${socket}`, "-u", "root", "-e",
    "CREATE DATABASE bench; CREATE TABLE bench.t (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(40)) ENGINE=InnoDB;" +
    " CREATE USER 'bench'@'%'; GRANT ALL ON bench.* TO 'bench'@'%';",
  ], { netns: p.netns, timeoutMs: 30_000 });
  return { protocol: "mariadb", port: p.port, proc, stop: () => stop(proc, 10_000) };
}

function uid(user: string): number {
  return Number(spawnSync("id", ["-u", user], { encoding: "utf8" }).stdout.trim());
}
function gid(user: string): number {
  return Number(spawnSync("id", ["-g", user], { encoding: "utf8" }).stdout.trim());
}
