// Readiness of a raw file descriptor on the main thread's event loop (native/fdwatch.c: a
// level-triggered libuv uv_poll). Node's API watches only descriptors it created itself (sockets,
// pipes); the dataplane needs the interface's UDP sockets and TUN device, which its native addons
// own. Main-thread only: the callback runs on the loop, like any I/O callback.
import { createRequire } from 'node:module';
import { errorText } from '../error-text.js';

interface NativeFdWatch {
  create(fd: number, callback: (events: number) => void): object;
  start(handle: object): number;
  stop(handle: object): void;
  close(handle: object): void;
  setHook(handle: object, hook: object | null): void;
}

let native: NativeFdWatch | null = null;

function load(): NativeFdWatch {
  if (native !== null) return native;
  try {
    // dist/src/io/fd-watch.js → <repo>/native/build/Release
    native = createRequire(import.meta.url)('../../../native/build/Release/wirepool_fdwatch.node') as NativeFdWatch;
  } catch (err) {
    throw new Error(`wirepool's fd-watch addon is not built (run npm ci, or cd native && npx node-gyp rebuild): ${errorText(err)}`, { cause: err });
  }
  return native;
}

/** Watches one descriptor for readability; created stopped. Does not keep the process alive. */
export class FdWatch {
  private handle: object | null;
  private started = false;

  /**
   * `onReadable` runs on the event loop while the fd is readable and the watch is started (level-
   * triggered: again on the next loop turn if the caller left data unread); `onError` if polling
   * failed (a libuv error code, e.g. the fd was closed under the watch), after which it is stopped.
   */
  constructor(readonly fd: number, onReadable: () => void, onError: (code: number) => void) {
    this.handle = load().create(fd, (events) => {
      if (events >= 0) {
        if (events !== 0) onReadable();
        return;
      }
      this.stop();
      onError(events);
    });
  }

  get active(): boolean {
    return this.started;
  }

  start(): void {
    if (this.handle === null || this.started) return;
    const r = load().start(this.handle);
    if (r !== 0) throw new Error(`cannot watch fd ${this.fd} (libuv error ${r})`);
    this.started = true;
  }

  stop(): void {
    if (this.handle === null || !this.started) return;
    load().stop(this.handle);
    this.started = false;
  }

  /**
   * A native hook (the TUN or UDP addon's idle hook, src/dataplane/idle-lease.ts) that runs first
   * when the fd is readable; when it handled what was there, `onReadable` runs a little later
   * (native/idle.h IDLE_SETTLE_MS) instead of now. null removes it.
   */
  setHook(hook: object | null): void {
    if (this.handle !== null) load().setHook(this.handle, hook);
  }

  /** Stop and free the watcher (before the fd itself is closed). */
  close(): void {
    if (this.handle === null) return;
    load().close(this.handle);
    this.handle = null;
    this.started = false;
  }
}
