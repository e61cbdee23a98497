// UAPI socket server (spec §9, §10): the UNIX stream socket /var/run/wireguard/<ifname>.sock
// that `wg`, `wg-quick` and wgctrl talk to. Each connection gets its own UapiSession
// (protocol.ts); this file only moves bytes and owns the socket file:
//   - the directory is created 0755, the socket is bound under umask 077 (srwx------);
//   - an existing path that accepts a connection means "in use"; otherwise it is a stale
//     socket (or stray file) and is unlinked before listening again, like wireguard-go;
//   - `fd` adopts an already-listening socket (wireguard-go's WG_UAPI_FD, daemon mode);
//   - close() ends every connection and removes the socket file (a path we bound is
//     unlinked by libuv even if someone replaced it, like wireguard-go);
//   - onSocketRemoved() reports the socket file being deleted or replaced by someone
//     else (wireguard-go exits then), seen through fs.watch on the directory backed by a
//     1 s lstat poll that compares inode numbers;
//   - what a client sends is fed to its session FEED_SLICE bytes per event-loop turn. This
//     thread also routes every packet, and libuv reads a fast writer's data up to 2 MB at a
//     time: a `wg setconf` of 10,000 peers (≈ 1.5 MB) was applied in one turn, ≈ 0.4 s in which
//     no packet moved. The session is a byte-stream model, so slicing changes nothing it does;
//     and while one session is inside an operation (a set begun, not ended) no other session is
//     fed, as wireguard-go holds its IPC lock for a whole operation: a get never sees half a
//     set, two sets never interleave;
//   - a get reply is written GET_PEERS_PER_STEP peers per turn (10,000 peers were ≈ 10-13 ms of
//     one turn, 100,000 ten times that), the next step once the client has read the last
//     (wireguard-go's write blocks the same way); the reply is an operation too: no set lands
//     inside it, and the client's next request waits until it is written.

import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { UapiSession, type UapiDevice, type UapiLog, type UapiStep } from './protocol.js';

export const UAPI_SOCKET_DIR = '/var/run/wireguard';

/** How often the socket file is checked when inotify events are missed. */
const REMOVAL_POLL_MS = 1_000;
/** Bound on the "is the old socket still served?" probe. */
const PROBE_TIMEOUT_MS = 2_000;
/** Bytes of a client's input fed to its session per event-loop turn (≈ 50 peers of a set: a few ms). */
export const FEED_SLICE = 8 * 1024;

export interface UapiServerOptions {
  ifname: string;
  device: UapiDevice;
  /** Default /var/run/wireguard. */
  dir?: string;
  /** An already-listening UNIX socket to adopt instead of creating <dir>/<ifname>.sock. */
  fd?: number;
  onRequest?(op: 'get' | 'set', errno: number): void;
  log?: UapiLog;
}

export class UapiServer {
  readonly path: string;
  readonly #server: net.Server;
  readonly #device: UapiDevice;
  /** The connection whose session is inside an operation (see the header), and those waiting for it. */
  #owner: object | null = null;
  readonly #waiting: Array<() => void> = [];
  readonly #log: UapiLog;
  readonly #onRequest: ((op: 'get' | 'set', errno: number) => void) | undefined;
  readonly #conns = new Set<net.Socket>();
  /** Inode of our socket file, to tell deletion or replacement from our own file. */
  readonly #ino: number;
  readonly #removedCbs: Array<() => void> = [];
  #watcher: fs.FSWatcher | null = null;
  #poll: NodeJS.Timeout | null = null;
  #removed = false;
  #closing: Promise<void> | null = null;

  private constructor(server: net.Server, sockPath: string, ino: number, opts: UapiServerOptions) {
    this.path = sockPath;
    this.#server = server;
    this.#ino = ino;
    this.#device = opts.device;
    this.#log = opts.log ?? (() => {});
    this.#onRequest = opts.onRequest;
    server.on('connection', (sock) => this.#serve(sock));
    server.on('error', (err) => this.#log('error', 'UAPI listener error', { error: err.message }));
  }

  static async listen(opts: UapiServerOptions): Promise<UapiServer> {
    const { ifname } = opts;
    if (ifname === '' || ifname === '.' || ifname === '..' || /[/\0]/.test(ifname)) {
      throw new Error(`invalid interface name for a UAPI socket: ${JSON.stringify(ifname)}`);
    }
    const dir = opts.dir ?? UAPI_SOCKET_DIR;
    const sockPath = path.join(dir, `${ifname}.sock`);
    let server: net.Server;
    if (opts.fd !== undefined) {
      server = newServer();
      await listenOn(server, { fd: opts.fd });
    } else {
      await fs.promises.mkdir(dir, { recursive: true, mode: 0o755 });
      try {
        server = await listenPath(sockPath);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
        if (await connectable(sockPath)) throw new Error(`UAPI socket ${sockPath} is in use`);
        await fs.promises.unlink(sockPath).catch((e: NodeJS.ErrnoException) => {
          if (e.code !== 'ENOENT') throw e;
        });
        server = await listenPath(sockPath);
      }
    }
    let ino: number;
    try {
      ino = (await fs.promises.lstat(sockPath)).ino;
    } catch (err) {
      server.close();
      throw new Error(`UAPI socket ${sockPath} not found: ${(err as Error).message}`);
    }
    return new UapiServer(server, sockPath, ino, opts);
  }

  /** Stops listening, ends every connection and unlinks the socket file. */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  /** cb runs once when the socket file is deleted or replaced by someone else. */
  onSocketRemoved(cb: () => void): void {
    if (this.#closing !== null) return;
    this.#removedCbs.push(cb);
    if (this.#removed) {
      queueMicrotask(cb);
      return;
    }
    this.#startWatching();
    this.#check();
  }

  async #close(): Promise<void> {
    this.#stopWatching();
    for (const sock of this.#conns) sock.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
    // libuv unlinks a path it bound itself, unconditionally (as Go's SetUnlinkOnClose
    // does); an adopted fd's file is removed here, only if it is still our inode.
    try {
      if ((await fs.promises.lstat(this.path)).ino === this.#ino) await fs.promises.unlink(this.path);
    } catch {
      // already gone
    }
  }

  #serve(sock: net.Socket): void {
    this.#conns.add(sock);
    sock.once('close', () => this.#conns.delete(sock));
    const session = new UapiSession(this.#device, this.#log);
    /** Received and not yet fed to the session; while it holds anything, reading is paused. */
    const queue: Buffer[] = [];
    let ended = false;
    let writeBlocked = false;
    let feeding = false;
    /** The connection closed: what it sent and was not fed yet is dropped (a set it was inside ends there). */
    let gone = false;
    const apply = (step: UapiStep): void => {
      if (step.output.length > 0 && !sock.destroyed) {
        // Like wireguard-go's blocking write: stop reading until the client reads.
        if (!sock.write(step.output)) {
          writeBlocked = true;
          sock.pause();
        }
      }
      for (const r of step.requests) {
        try {
          this.#onRequest?.(r.op, r.errno);
        } catch (err) {
          this.#log('error', 'UAPI onRequest hook failed', { error: (err as Error).message });
        }
      }
      if (step.close) sock.end(() => sock.destroy());
    };
    const me = {};
    /** A get reply's next step waits for the client to read what was written (sock 'drain'). */
    let replyWaits = false;
    // One slice (or one step of a get reply, or the EOF) now, the rest one per turn (setImmediate: after the loop's I/O).
    const feed = (): void => {
      feeding = false;
      if (gone) return;
      if (this.#owner !== null && this.#owner !== me) { // another session is inside an operation
        feeding = true;
        this.#waiting.push(feed);
        return;
      }
      if (session.replying) {
        apply(session.resume());
      } else if (queue.length !== 0) {
        let budget = FEED_SLICE;
        while (queue.length !== 0 && budget > 0 && !session.closed && !session.replying) {
          const head = queue[0]!;
          const piece = head.length <= budget ? head : head.subarray(0, budget);
          if (piece === head) queue.shift();
          else queue[0] = head.subarray(budget);
          budget -= piece.length;
          apply(session.feed(piece));
        }
      } else if (ended) {
        ended = false;
        if (!session.closed) apply(session.end()); // a get reply begun here goes on below, then the session closes
      }
      if (session.closed) queue.length = 0;
      this.#hold(me, session.midOperation); // false once closed
      if (session.replying && writeBlocked) { // like wireguard-go's blocking write: on once the client has read
        feeding = true;
        replyWaits = true;
      } else if (session.replying || queue.length !== 0 || (ended && !session.closed)) {
        feeding = true;
        setImmediate(feed);
      } else if (!writeBlocked && !session.closed && !sock.destroyed) {
        sock.resume();
      }
    };
    sock.on('drain', () => {
      writeBlocked = false;
      if (replyWaits) {
        replyWaits = false;
        feed();
      } else if (!session.closed && queue.length === 0 && !feeding) {
        sock.resume();
      }
    });
    sock.on('data', (chunk: Buffer) => {
      queue.push(chunk);
      sock.pause();
      if (!feeding) feed();
    });
    sock.on('end', () => {
      ended = true;
      if (!feeding) feed();
    });
    sock.once('close', () => { // a client gone mid-set releases the others, as wireguard-go's failed read ends the set
      gone = true;
      queue.length = 0;
      this.#hold(me, false);
    });
    sock.on('error', (err) => {
      this.#log('verbose', 'UAPI connection error', { error: err.message });
      sock.destroy();
    });
  }

  /**
   * Runs `fn` once no session is inside an operation, and feeds no session until it settles: a --config
   * reload (src/daemon.ts) is one operation among the clients' as wireguard-go's lock would make it.
   */
  async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    while (this.#owner !== null) await new Promise<void>((resolve) => this.#waiting.push(resolve));
    const token = {};
    this.#owner = token;
    try {
      return await fn();
    } finally {
      this.#hold(token, false);
    }
  }

  /** `conn` is inside an operation (hold) or not: the others wait, or the first waiting is fed. */
  #hold(conn: object, inside: boolean): void {
    if (inside) {
      this.#owner = conn;
      return;
    }
    if (this.#owner !== conn) return;
    this.#owner = null;
    const waiting = this.#waiting.splice(0);
    for (const next of waiting) setImmediate(next);
  }

  #startWatching(): void {
    if (this.#poll !== null) return;
    const base = path.basename(this.path);
    try {
      this.#watcher = fs.watch(path.dirname(this.path), { persistent: false }, (_event, name) => {
        if (name === null || name === base) this.#check();
      });
      this.#watcher.on('error', () => {
        this.#watcher?.close();
        this.#watcher = null; // the poll still runs
      });
    } catch {
      this.#watcher = null;
    }
    this.#poll = setInterval(() => this.#check(), REMOVAL_POLL_MS);
    this.#poll.unref();
  }

  #stopWatching(): void {
    this.#watcher?.close();
    this.#watcher = null;
    if (this.#poll !== null) clearInterval(this.#poll);
    this.#poll = null;
  }

  #check(): void {
    if (this.#removed || this.#closing !== null) return;
    fs.lstat(this.path, (err, st) => {
      if (this.#removed || this.#closing !== null) return;
      const gone = err ? err.code === 'ENOENT' || err.code === 'ENOTDIR' : st.ino !== this.#ino;
      if (!gone) return;
      this.#removed = true;
      this.#stopWatching();
      this.#log('verbose', 'UAPI socket file removed', { path: this.path });
      for (const cb of this.#removedCbs) cb();
    });
  }
}

function newServer(): net.Server {
  // allowHalfOpen: a client may shut down its side and still read the reply (EOF ends a set).
  return net.createServer({ allowHalfOpen: true });
}

function listenOn(server: net.Server, target: string | { fd: number }): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => {
      server.off('listening', onListening);
      reject(err);
    };
    const onListening = (): void => {
      server.off('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(target);
  });
}

/** Binds under umask 077 so the socket is created srwx------ (bind runs synchronously in listen()). */
async function listenPath(sockPath: string): Promise<net.Server> {
  const server = newServer();
  let oldMask: number | null = null;
  try {
    oldMask = process.umask(0o077);
  } catch {
    oldMask = null; // worker threads cannot change the umask: chmod below instead
  }
  let listening: Promise<void>;
  try {
    listening = listenOn(server, sockPath);
  } finally {
    if (oldMask !== null) process.umask(oldMask);
  }
  await listening;
  if (oldMask === null) await fs.promises.chmod(sockPath, 0o700);
  return server;
}

/** Whether something accepts connections on sockPath (a live daemon). */
function connectable(sockPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.createConnection(sockPath);
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      sock.destroy();
      resolve(ok);
    };
    // A listener that never completes the connect is alive but stuck: still "in use".
    const timer = setTimeout(() => done(true), PROBE_TIMEOUT_MS);
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
  });
}
