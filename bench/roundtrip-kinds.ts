// The catalogue of the real-protocol workloads (pure data, shared by the runner, the summary and
// the report): which server each talks to, how many connections it keeps busy and how many round
// trips one of its operations takes, so that a throughput turns into time per round trip.

export type ProtocolName = "redis" | "postgres" | "mariadb";
export const PROTOCOLS: ProtocolName[] = ["redis", "postgres", "mariadb"];
export const PROTOCOL_LABELS: Record<ProtocolName, string> = { redis: "Redis 7", postgres: "PostgreSQL 15", mariadb: "MariaDB 10.11" };

export type RoundTripId = "redis-get-c1" | "redis-get-c50" | "pgbench-select" | "pgbench-tpcb" | "mariadb-insert";

export interface RoundTripKind {
  id: RoundTripId;
  protocol: ProtocolName;
  label: string;
  /** What one operation is, for units ("GET/s", "tx/s", "INSERT/s"). */
  unit: string;
  /** Connections kept busy at once (closed loop: each waits for its answer). */
  connections: number;
  /** Client→server→client round trips per operation (pgbench's TPC-B-like transaction is 7
   * statements, each its own round trip in the simple query protocol). */
  roundTripsPerOp: number;
  /** Whether "added time per round trip" (connections / throughput, minus direct's) is reported:
   * it is latency only while connections do not queue for the CPU, so not for 50 connections. */
  addedPerRoundTrip: boolean;
}

export const ROUND_TRIPS: RoundTripKind[] = [
  { id: "redis-get-c1", protocol: "redis", label: "redis-benchmark GET, 1 connection", unit: "GET/s", connections: 1, roundTripsPerOp: 1, addedPerRoundTrip: true },
  { id: "redis-get-c50", protocol: "redis", label: "redis-benchmark GET, 50 connections", unit: "GET/s", connections: 50, roundTripsPerOp: 1, addedPerRoundTrip: false },
  { id: "pgbench-select", protocol: "postgres", label: "pgbench select-only (-S), 4 connections", unit: "tx/s", connections: 4, roundTripsPerOp: 1, addedPerRoundTrip: true },
  { id: "pgbench-tpcb", protocol: "postgres", label: "pgbench TPC-B-like, 4 connections", unit: "tx/s", connections: 4, roundTripsPerOp: 7, addedPerRoundTrip: true },
  { id: "mariadb-insert", protocol: "mariadb", label: "MariaDB single-row INSERTs, 1 connection", unit: "INSERT/s", connections: 1, roundTripsPerOp: 1, addedPerRoundTrip: true },
];

export const roundTripKind = (id: RoundTripId): RoundTripKind => ROUND_TRIPS.find((k) => k.id === id)!;

/** How much of each workload a run does. */
export interface RoundTripDurations {
  /** redis-benchmark -n, per client count. */
  redisRequests: number;
  /** pgbench -T, per script. */
  pgbenchSeconds: number;
  /** Single-row INSERTs over one connection. */
  mariadbInserts: number;
  /** Fresh connections per protocol for the connection-setup time. */
  setupConnections: number;
}

export interface RoundTripResult {
  /** Operations per second (GET/s, tx/s, INSERT/s). */
  opsPerSecond: number;
  ops?: number;
  seconds?: number;
  failed?: number;
}

export interface SetupResult {
  /** Milliseconds from connect() to the server's first byte, per connection. */
  samplesMs: number[];
  medianMs: number;
  failed: number;
}

/** One system's real-protocol measurements in one round. */
export interface RoundTripMeasurements {
  workloads: Partial<Record<RoundTripId, RoundTripResult>>;
  setup: Partial<Record<ProtocolName, SetupResult>>;
  errors: string[];
}
