// This project's proxy as a benchmark pair, in its explicit-listener mode (no iptables): the
// client side listens on a port mapped to the server side's address and expected SPIFFE ID, the
// server side listens on a port mapped to the backend on loopback.
import * as fs from "node:fs";
import * as path from "node:path";
import { start } from "./processes";
import { PairPlan, Pair } from "./peers";

export interface OursOptions {
  /** Node binary that runs the proxy (a newer runtime is one of the levers). */
  node: string;
  /** Extra Node flags, e.g. --cpu-prof for the profile pass. */
  nodeFlags: string[];
  /** Where --cpu-prof writes, per side (the profile pass). */
  profileDirFor?: (side: "client" | "server") => string;
}

export const PROXY_CLI = path.resolve(__dirname, "../proxy/cli.js");

export function oursAvailable(): boolean {
  return fs.existsSync(PROXY_CLI);
}

export function startOurs(plan: PairPlan, o: OursOptions): Pair {
  throw new Error(`not yet: ${plan.dir} ${o.node}`);
}

export function startDummy(): ReturnType<typeof start> {
  throw new Error("unused");
}
