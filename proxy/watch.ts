// Hot reload of the mounted files. Kubernetes updates a ConfigMap or Secret volume by writing a
// new timestamped directory and swapping the `..data` symlink: the watched directory sees the
// rename. We watch the directories (not the files: a symlinked file's inode changes under us),
// coalesce bursts, and also re-check on a slow timer in case an event is lost. The callback
// decides whether anything really changed (content hashes), so spurious wakeups are cheap.
import * as fs from "fs";

export interface Watcher {
  close(): void;
}

export function watchPaths(paths: string[], onChange: () => void, o: { debounceMs?: number; pollMs?: number } = {}): Watcher {
  const debounceMs = o.debounceMs ?? 100;
  let pending: NodeJS.Timeout | undefined;
  const schedule = () => {
    if (pending) clearTimeout(pending);
    pending = setTimeout(() => {
      pending = undefined;
      onChange();
    }, debounceMs);
  };
  const watchers: fs.FSWatcher[] = [];
  for (const path of [...new Set(paths)]) {
    try {
      const watcher = fs.watch(path, { persistent: false }, schedule);
      watcher.on("error", () => undefined); // A vanished directory: the poll still runs.
      watchers.push(watcher);
    } catch {
      // Not there yet (identity not mounted): the poll picks it up when it appears.
    }
  }
  const poll = setInterval(schedule, o.pollMs ?? 5_000);
  poll.unref();
  return {
    close() {
      clearInterval(poll);
      if (pending) clearTimeout(pending);
      for (const watcher of watchers) watcher.close();
    },
  };
}
