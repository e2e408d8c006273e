// Live connections (and tunnel streams): counted against maxConnections, re-checked when mode or
// policy changes, drained on SIGTERM. A connection that no longer conforms after a reload is
// closed (catalogue #5, as Linkerd and ztunnel do): tightening a port to strict must not leave
// yesterday's plaintext sessions open.
import { Direction } from "./metrics";
import { MeshConfig } from "./settings";

export interface Tracked {
  direction: Direction;
  /** Inbound: the app port. Outbound: the destination port. */
  port: number;
  /** Would this connection still be admitted under `config`? Absent: always (outbound). */
  conforms?: (config: MeshConfig) => boolean;
  /** Closes the connection now. */
  close(reason: string): void;
  /** Asks it to finish gracefully (a tunnel session sends GOAWAY and lets its streams end). */
  drain?(): void;
  /** Fingerprint of the identity (and bundle) a long-lived tunnel session was verified under. */
  identity?: string;
}

export class Connections {
  private readonly live = new Set<Tracked>();
  private emptied: Array<() => void> = [];
  private sockets = 0;

  /** Accepted sockets still open, handshaking or forwarding (the maxConnections budget). */
  get openSockets(): number {
    return this.sockets;
  }

  /** Counts an accepted socket until it closes. */
  countSocket(socket: { once(event: "close", listener: () => void): unknown }): void {
    this.sockets++;
    socket.once("close", () => this.sockets--);
  }

  get size(): number {
    return this.live.size;
  }

  add(connection: Tracked): () => void {
    this.live.add(connection);
    return () => {
      this.live.delete(connection);
      if (this.live.size === 0) {
        const waiters = this.emptied;
        this.emptied = [];
        for (const resolve of waiters) resolve();
      }
    };
  }

  /** Closes every connection for which `conforms` is false; returns how many. */
  closeNonConforming(config: MeshConfig, reason: string): number {
    let closed = 0;
    for (const connection of [...this.live]) {
      if (connection.conforms && !connection.conforms(config)) {
        connection.close(reason);
        closed++;
      }
    }
    return closed;
  }

  /**
   * Gracefully ends tunnel sessions verified under another identity or bundle: their open streams
   * finish, new streams make the client open a new session, verified against the new material.
   */
  drainStale(currentIdentity: string): number {
    let drained = 0;
    for (const connection of this.live) {
      if (connection.identity !== undefined && connection.identity !== currentIdentity) {
        connection.drain?.();
        drained++;
      }
    }
    return drained;
  }

  /** Resolves when no connection is left or after `deadlineMs`, then closes what remains. */
  async drain(deadlineMs: number): Promise<number> {
    for (const connection of [...this.live]) connection.drain?.();
    if (this.live.size > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, deadlineMs);
        this.emptied.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    const left = this.live.size;
    for (const connection of [...this.live]) connection.close("drain deadline");
    return left;
  }
}
