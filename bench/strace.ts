// Reading `strace -c` summaries (pure): the ping-pong profile's syscalls per round trip.

/** Calls per syscall from `strace -c` output (rows "% time seconds usecs/call calls [errors] syscall"). */
export function parseStraceCounts(text: string): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const line of text.split("\n")) {
    const f = line.trim().split(/\s+/);
    if (f.length < 5 || !/^\d+(\.\d+)?$/.test(f[0]) || !/^\d+$/.test(f[3])) continue;
    const name = f[f.length - 1];
    if (name !== "total") counts[name] = (counts[name] ?? 0) + Number(f[3]);
  }
  return counts;
}

/** Per round trip, the syscalls made at least `min` times (the steady state, not set-up). */
export function perRoundTrip(counts: Record<string, number>, roundTrips: number, min = 0.05): Record<string, number> {
  return Object.fromEntries(
    Object.entries(counts)
      .map(([k, v]) => [k, Math.round((v / roundTrips) * 100) / 100] as const)
      .filter(([, v]) => v >= min)
      .sort((a, b) => b[1] - a[1]),
  );
}
