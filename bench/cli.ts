// What the bench's command lines share: a user mistake (exit 2, no stack trace) and list flags.

export class UsageError extends Error {}

/** A comma list flag whose items must be among `allowed`. */
export function list<T extends string>(value: string, allowed: readonly T[], what: string): T[] {
  const items = value.split(",").map((s) => s.trim()).filter(Boolean);
  for (const i of items) if (!allowed.includes(i as T)) throw new UsageError(`unknown ${what} "${i}" (one of: ${allowed.join(", ")})`);
  return items as T[];
}
