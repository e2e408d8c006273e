// The one bidirectional copy every path uses (plain, TLS, tunnel stream). Per direction:
// `pipe` gives backpressure (no unbounded buffering) and forwards FIN as end() (half-close);
// the other direction keeps flowing until its own FIN. An error or abnormal close on either side
// destroys both. Nothing runs per chunk: byte counts are read from the sockets at close.
import { Duplex } from "stream";

export interface CopyEnd {
  /** Set when the copy ended abnormally (error, reset, timeout, policy). */
  error?: Error;
}

/**
 * Copies a ⇄ b until both directions are done or one side fails; calls onDone exactly once, after
 * both sides are closed. `idleTimeoutMs` (> 0) closes the pair when `a` sees no traffic in either
 * direction for that long.
 */
export function copyBidirectional(a: Duplex, b: Duplex, idleTimeoutMs: number, onDone: (end: CopyEnd) => void): void {
  let failure: Error | undefined;
  let closed = 0;
  const fail = (error: Error) => {
    failure ??= error;
    a.destroy();
    b.destroy();
  };
  const onClose = (self: Duplex, other: Duplex) => () => {
    // A clean close means this side both received FIN and flushed everything it was sent; then the
    // other side is finishing its own write and closes by itself. Anything else is a reset.
    if (!(self.readableEnded && self.writableFinished)) {
      failure ??= new Error("peer closed abruptly");
      other.destroy();
    }
    if (++closed === 2) onDone({ error: failure });
  };
  a.on("error", fail);
  b.on("error", fail);
  a.once("close", onClose(a, b));
  b.once("close", onClose(b, a));
  if (idleTimeoutMs > 0 && "setTimeout" in a) {
    (a as Duplex & { setTimeout(ms: number, cb: () => void): void }).setTimeout(idleTimeoutMs, () => fail(new Error("idle timeout")));
  }
  a.pipe(b);
  b.pipe(a);
}
