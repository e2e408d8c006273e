// Structured logs: one JSON object per line on stdout (or an injected sink in tests). Nothing is
// logged per byte or per successful connection by default; every refusal logs exactly one line
// with its reason, so an operator can tell why a peer was turned away.

export type Level = "debug" | "info" | "warn" | "error";
const RANK: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export type Fields = Record<string, unknown>;
export type Sink = (line: string) => void;

export class Logger {
  private readonly threshold: number;

  constructor(
    level: Level = "info",
    private readonly sink: Sink = (line) => process.stdout.write(line + "\n"),
  ) {
    this.threshold = RANK[level];
  }

  enabled(level: Level): boolean {
    return RANK[level] >= this.threshold;
  }

  log(level: Level, msg: string, fields: Fields = {}): void {
    if (!this.enabled(level)) return;
    this.sink(JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields }, errorsAsText));
  }

  debug(msg: string, fields?: Fields): void {
    this.log("debug", msg, fields);
  }
  info(msg: string, fields?: Fields): void {
    this.log("info", msg, fields);
  }
  warn(msg: string, fields?: Fields): void {
    this.log("warn", msg, fields);
  }
  error(msg: string, fields?: Fields): void {
    this.log("error", msg, fields);
  }
}

function errorsAsText(_key: string, value: unknown): unknown {
  if (value instanceof Error) return (value as NodeJS.ErrnoException).code ? `${(value as NodeJS.ErrnoException).code}: ${value.message}` : value.message;
  return value;
}

export function isLevel(text: string): text is Level {
  return Object.hasOwn(RANK, text);
}
