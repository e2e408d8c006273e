// Wires one running proxy: listeners (inbound, outbound, admin), the shared context, hot reload
// and drain. `mesh-proxy run` calls startProxy; tests call it in-process, too.
import * as fs from "fs";
import * as http from "http";
import * as net from "net";
import * as path from "path";
import * as tls from "tls";
import { createHash } from "crypto";
import { createAdminServer } from "./admin";
import { ConfigError } from "./config";
import { Connections } from "./connections";
import { MIGRATION_WINDOW_MS, newlyMeshedPorts } from "./directory";
import { buildIdentity, IdentityError, identityFiles, readIdentityFiles } from "./identity";
import { inboundHandler } from "./inbound";
import { Logger } from "./log";
import { Metrics } from "./metrics";
import { outboundHandler } from "./outbound";
import { TunnelPool } from "./pool";
import { originalDestination } from "./redirect/origdst";
import { readReloadable, Settings } from "./settings";
import { OriginalDestinationLookup, ProxyContext } from "./state";
import { ticketsPerHandshake } from "./tickets";
import { watchPaths, Watcher } from "./watch";
import { FILE_NAMES } from "./wellknown";

export interface ProxyOptions {
  log?: Logger;
  /** SO_ORIGINAL_DST by default; injectable for tests of the transparent paths. */
  originalDestination?: OriginalDestinationLookup;
  /** Reload timing (tests shorten it). */
  watch?: { debounceMs?: number; pollMs?: number };
}

export interface RunningProxy {
  readonly ctx: ProxyContext;
  /** Bound ports, in the order of settings.inbound / settings.outbound. */
  readonly inboundPorts: number[];
  readonly outboundPorts: number[];
  readonly adminPort: number;
  /** Re-reads config and identity now (the watcher does this on file changes). */
  reload(): void;
  /** Stops accepting, lets open connections finish up to deadlineMs, then closes everything. */
  shutdown(deadlineMs?: number): Promise<{ leftOpen: number }>;
}

const LISTEN_OPTIONS: net.ServerOpts = {
  allowHalfOpen: true,
  pauseOnConnect: true,
  noDelay: true,
  keepAlive: true,
  keepAliveInitialDelay: 60_000, // Frees half-open peers (catalogue #29).
};

class ListenError extends Error {
  constructor(
    message: string,
    readonly code: string | undefined,
  ) {
    super(message);
  }
}

function listenOnce(server: net.Server | http.Server, host: string, port: number, what: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException) =>
      reject(new ListenError(`cannot listen on ${host}:${port} (${what}): ${error.code ?? error.message}`, error.code));
    server.once("error", onError);
    server.listen({ host, port, backlog: 4096 }, () => {
      server.off("error", onError);
      resolve((server.address() as net.AddressInfo).port);
    });
  });
}

const NO_IPV6 = new Set(["EAFNOSUPPORT", "EADDRNOTAVAIL", "EINVAL"]);

/** Listens; the dual-stack "::" falls back to 0.0.0.0 on a host without IPv6. */
async function listen(server: net.Server | http.Server, host: string, port: number, what: string): Promise<number> {
  try {
    return await listenOnce(server, host, port, what);
  } catch (error) {
    if (host !== "::" || !(error instanceof ListenError) || !NO_IPV6.has(error.code ?? "")) throw error;
    return listenOnce(server, "0.0.0.0", port, what);
  }
}

function hashFiles(files: string[]): string {
  const hash = createHash("sha256");
  for (const file of files) {
    try {
      hash.update(fs.readFileSync(file));
    } catch (error) {
      hash.update(`missing:${(error as NodeJS.ErrnoException).code}`);
    }
    hash.update("\0");
  }
  return hash.digest("hex");
}

/** The README promises no session tickets; only proxy/openssl.cnf keeps that promise (tickets.ts). */
function warnIfTickets(context: tls.SecureContext, log: Logger): void {
  ticketsPerHandshake(context).then(
    (perHandshake) => {
      if (perHandshake > 0) {
        log.warn("TLS session tickets are on", { perHandshake, fix: "start node with --openssl-config=<mesh-proxy>/proxy/openssl.cnf, as the image does" });
      }
    },
    (error) => log.warn("cannot count TLS session tickets", { error: (error as Error).message }),
  );
}

export async function startProxy(settings: Settings, options: ProxyOptions = {}): Promise<RunningProxy> {
  const log = options.log ?? new Logger();
  const metrics = new Metrics();
  const ctx: ProxyContext = {
    config: settings.config,
    transport: settings.transport,
    log,
    metrics,
    connections: new Connections(),
    originalDestination: options.originalDestination ?? originalDestination,
    draining: false,
    migrating: new Map(),
  };
  metrics.certificateExpiry(() => ctx.identity?.notAfter);
  const pool = new TunnelPool(ctx);

  const configFiles =
    settings.source.kind === "directory"
      ? [FILE_NAMES.workload, FILE_NAMES.directory, FILE_NAMES.directoryGzip].map((name) => path.join(settings.source.path, name))
      : [settings.source.path];
  const idFiles = Object.values(identityFiles(settings.identityDir));
  let configHash = hashFiles(configFiles);
  let identityKey: string | undefined;

  const reloadIdentity = () => {
    const { workload } = ctx.config;
    const key = hashFiles(idFiles) + workload.workload.spiffeId + workload.trustDomain;
    if (key === identityKey) return;
    try {
      const identity = buildIdentity(readIdentityFiles(settings.identityDir), workload.trustDomain, workload.workload.spiffeId);
      identityKey = key;
      const first = ctx.identity === undefined;
      ctx.identity = identity;
      pool.retire(identity.fingerprint);
      ctx.connections.drainStale(identity.fingerprint);
      metrics.reloads.inc({ kind: "identity", outcome: "applied" });
      log.info(first ? "identity loaded" : "identity reloaded", { spiffeId: identity.spiffeId, notAfter: identity.notAfter.toISOString() });
      if (first) warnIfTickets(identity.context, log);
    } catch (error) {
      if (!(error instanceof IdentityError)) throw error;
      identityKey = key; // Do not retry the same broken files on every poll; a change retries.
      metrics.reloads.inc({ kind: "identity", outcome: "rejected" });
      log.error(ctx.identity ? "identity reload rejected, keeping the previous identity" : "identity not loaded", {
        dir: settings.identityDir,
        error: error.message,
      });
    }
  };

  const reloadConfig = () => {
    const hash = hashFiles(configFiles);
    if (hash === configHash) return;
    configHash = hash;
    try {
      const previous = ctx.config;
      const next = readReloadable(settings.source);
      ctx.config = next.config;
      // In the same tick as the config, so no connection sees one without the other.
      next.pinnedModes.forEach((mode, i) => (settings.inbound[i].mode = mode));
      const until = Date.now() + MIGRATION_WINDOW_MS;
      for (const key of newlyMeshedPorts(previous.directory, ctx.config.directory)) ctx.migrating.set(key, until);
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      metrics.reloads.inc({ kind: "config", outcome: "rejected" });
      log.error("config reload rejected, keeping the previous config", { error: error.message });
      return;
    }
    metrics.reloads.inc({ kind: "config", outcome: "applied" });
    const closed = ctx.connections.closeNonConforming(ctx.config, "no longer allowed after a config change");
    log.info("config reloaded", { closedConnections: closed });
  };

  const reload = () => {
    reloadConfig();
    reloadIdentity(); // The expected ID comes from the config.
  };
  reloadIdentity();

  const servers: net.Server[] = [];
  const admin = createAdminServer(ctx, {
    ready: () => {
      if (ctx.draining) return { ready: false, reason: "draining" };
      if (!ctx.identity) return { ready: false, reason: "no identity loaded" };
      return { ready: true };
    },
  });
  let watcher: Watcher | undefined;
  try {
    const inboundPorts: number[] = [];
    for (const listener of settings.inbound) {
      const server = net.createServer(LISTEN_OPTIONS, inboundHandler(ctx, listener));
      servers.push(server);
      inboundPorts.push(await listen(server, listener.host, listener.port, "inbound"));
    }
    const outboundPorts: number[] = [];
    for (const listener of settings.outbound) {
      const server = net.createServer(LISTEN_OPTIONS, outboundHandler(ctx, listener, pool));
      try {
        outboundPorts.push(await listen(server, listener.host, listener.port, "outbound"));
        servers.push(server);
      } catch (error) {
        if (!listener.optional || !(error instanceof ListenError) || !NO_IPV6.has(error.code ?? "")) throw error;
        log.info("optional listener skipped", { host: listener.host, port: listener.port, error: error.message });
        outboundPorts.push(0);
      }
    }
    const adminPort = await listen(admin, settings.admin.host, settings.admin.port, "admin");
    watcher = watchPaths([settings.identityDir, ...configFiles.map((f) => path.dirname(f))], reload, options.watch);
    log.info("proxy started", {
      inbound: settings.inbound.map((l, i) => ({ ...l, port: inboundPorts[i] })),
      outbound: settings.outbound.map((l, i) => ({ ...l, port: outboundPorts[i] })),
      admin: adminPort,
      transport: settings.transport,
    });

    let shutdown: Promise<{ leftOpen: number }> | undefined;
    return {
      ctx,
      inboundPorts,
      outboundPorts,
      adminPort,
      reload,
      shutdown(deadlineMs = ctx.config.workload.limits.drainTimeoutMs) {
        shutdown ??= (async () => {
          ctx.draining = true;
          watcher?.close();
          for (const server of servers) server.close();
          pool.closeAll();
          log.info("draining", { open: ctx.connections.size, deadlineMs });
          const leftOpen = await ctx.connections.drain(deadlineMs);
          admin.closeAllConnections?.();
          await new Promise<void>((resolve) => admin.close(() => resolve()));
          log.info("stopped", { closedAtDeadline: leftOpen });
          return { leftOpen };
        })();
        return shutdown;
      },
    };
  } catch (error) {
    watcher?.close();
    for (const server of servers) server.close();
    admin.close();
    throw error;
  }
}
