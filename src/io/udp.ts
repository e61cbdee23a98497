// The UDP edge: one IPv4 and one IPv6 socket on the same listen port (as wireguard-go
// binds them), delivering datagrams to one handler and sending to endpoints. Sends use
// one contiguous buffer without a callback (the cheapest dgram path measured here).
//
// Transport data goes out through a connected socket per endpoint: bound to the listen
// port (SO_REUSEADDR on every socket of the port) and connect()ed, so a send skips dgram's
// address lookup, its nextTick and the kernel's per-send route lookup (4.6 vs 6.1 µs of main
// CPU per packet, ../shared/notes/node-dataplane.md §5). On Linux the connected socket also
// receives that endpoint's datagrams (the most specific match wins); they go to the same
// handler. A connected socket is created on the first transport send to an endpoint (the
// unconnected socket carries the packets until connect() completes, and for good if it
// fails), and closed when it has sent nothing for CONNECTED_IDLE_MS (a peer that roamed away
// or was removed), on rebind and on close. Handshake and cookie replies stay unconnected:
// they go to unauthenticated sources.
//
// A connected socket's file descriptor (sendFd) is what crypto workers write sealed messages to
// (fs.writeSync, one datagram per write: workers/crypt-worker.ts). Since a worker may hold that
// number in a ring slot, closing goes through the owner's deferClose (Pipeline.afterInFlight): the
// fd is closed only once no slot can name it, so a worker never writes to a reused fd number.
import dgram from 'node:dgram';
import { type Endpoint } from '../protocol/endpoint.js';
import { setSocketMark } from './sockopt.js';

export type DatagramHandler = (msg: Buffer, address: string, port: number, family: 4 | 6) => void;

/** A connected socket that sent nothing for this long (one to two sweeps) is closed. */
export const CONNECTED_IDLE_MS = 15_000;
/** At most this many connected sockets (file descriptors); further endpoints use the unconnected socket. */
export const MAX_CONNECTED = 4096;

/** One endpoint's connected socket. `socket` is null while connecting and after a failure. */
interface Connected {
  readonly key: string;
  socket: dgram.Socket | null;
  failed: boolean;
  used: boolean;
  /** Closed or abandoned (rebind, idle, forget): the next send looks the endpoint up again. */
  dead: boolean;
  /** The connected socket's fd once connected, else -1. */
  fd: number;
}

/**
 * The OS file descriptor of a dgram socket, or -1. Read through dgram's internal state (the public
 * `_handle` getter is deprecated and warns); any change there degrades to -1: main sends.
 */
export function socketFd(s: dgram.Socket): number {
  const key = Object.getOwnPropertySymbols(s).find((k) => k.description === 'state symbol');
  const state = key === undefined ? undefined : (s as unknown as Record<symbol, { handle?: { fd?: unknown } } | undefined>)[key];
  const fd = state?.handle?.fd;
  return typeof fd === 'number' && Number.isInteger(fd) && fd >= 0 ? fd : -1;
}

function endpointKey(ep: Endpoint): string {
  return ep.family === 4 ? `${ep.address}:${ep.port}` : `[${ep.address}]:${ep.port}`;
}

export class UdpBind {
  private v4: dgram.Socket | null = null;
  private v6: dgram.Socket | null = null;
  private boundPort = 0;
  private mark = 0;
  /** Connected sockets by endpoint text; `byEndpoint` caches the entry per Endpoint object (a roam makes a new object). */
  private connected = new Map<string, Connected>();
  private byEndpoint = new WeakMap<Endpoint, Connected>();
  private sweepTimer: ReturnType<typeof setInterval> | null = null;

  /**
   * @param deferClose runs a connected socket's close once no in-flight work can still use its fd
   *   (default: at once).
   */
  constructor(
    private readonly onMessage: DatagramHandler,
    private readonly onError: (err: Error) => void,
    private readonly deferClose: (close: () => void) => void = (close) => close(),
  ) {}

  get port(): number {
    return this.boundPort;
  }

  private binding: Promise<void> = Promise.resolve();

  /** (Re)bind both families to `port` (0 = random, the same for both). Throws on failure. Calls are serialised. */
  bind(port: number): Promise<void> {
    const next = this.binding.catch(() => {}).then(() => this.bindNow(port));
    this.binding = next;
    return next;
  }

  private async bindNow(port: number): Promise<void> {
    await this.close();
    for (let attempt = 0; attempt < 10; attempt++) {
      const v4 = await this.open('udp4', port).catch((e: NodeJS.ErrnoException) => e);
      if (v4 instanceof Error) throw v4;
      const actual = v4.address().port;
      const v6 = await this.open('udp6', actual).catch((e: NodeJS.ErrnoException) => e);
      if (v6 instanceof Error) {
        v4.close();
        // A random v4 port may be taken on v6: try another; a v6 stack that is absent is fine.
        if (v6.code === 'EADDRINUSE' && port === 0) continue;
        if (v6.code === 'EAFNOSUPPORT' || v6.code === 'EADDRNOTAVAIL') {
          const again = await this.open('udp4', actual);
          this.v4 = again;
          this.boundPort = actual;
          if (this.mark) this.setMark(this.mark);
          return;
        }
        throw v6;
      }
      this.v4 = v4;
      this.v6 = v6;
      this.boundPort = actual;
      if (this.mark) this.setMark(this.mark);
      return;
    }
    throw Object.assign(new Error('could not find a port free on both IPv4 and IPv6'), { code: 'EADDRINUSE' });
  }

  private open(type: 'udp4' | 'udp6', port: number): Promise<dgram.Socket> {
    return new Promise((resolve, reject) => {
      const s = dgram.createSocket({ type, ipv6Only: type === 'udp6', reuseAddr: true, recvBufferSize: 4 << 20, sendBufferSize: 4 << 20 } as dgram.SocketOptions);
      const family = type === 'udp4' ? 4 : 6;
      s.once('error', reject);
      s.bind(port, () => {
        s.off('error', reject);
        s.on('error', (err) => this.onError(err));
        s.on('message', (msg, rinfo) => this.onMessage(msg, rinfo.address, rinfo.port, family));
        resolve(s);
      });
    });
  }

  /** Apply (0 = clear) SO_MARK on both sockets, now and after every rebind. Throws if it cannot be applied. */
  setMark(mark: number): void {
    for (const s of [this.v4, this.v6]) {
      if (!s) continue;
      const err = setSocketMark(s, mark);
      if (err) throw new Error(err);
    }
    this.mark = mark;
    // Connected sockets follow; one that cannot take the mark is closed (its endpoint falls
    // back to the unconnected socket, which has it).
    for (const c of this.connected.values()) {
      if (c.socket && setSocketMark(c.socket, mark)) this.dropConnected(c);
    }
  }

  /** How many connected sockets are open (for tests and metrics). */
  get connectedCount(): number {
    let n = 0;
    for (const c of this.connected.values()) if (c.socket) n++;
    return n;
  }

  /** `ep`'s connected-socket entry (started on first use), marked used; undefined when there will be none. */
  private connectionFor(ep: Endpoint): Connected | undefined {
    let c = this.byEndpoint.get(ep);
    if (c === undefined || c.dead) c = this.connectedEntry(ep);
    if (c) c.used = true;
    return c;
  }

  /** Find or start the connected socket for `ep`; undefined when there will be none. */
  private connectedEntry(ep: Endpoint): Connected | undefined {
    const listener = ep.family === 4 ? this.v4 : this.v6;
    if (!listener || this.boundPort === 0) return undefined;
    const key = endpointKey(ep);
    let c = this.connected.get(key);
    if (!c) {
      if (this.connected.size >= MAX_CONNECTED) return undefined;
      c = { key, socket: null, failed: false, used: true, dead: false, fd: -1 };
      this.connected.set(key, c);
      this.openConnected(c, ep);
      if (!this.sweepTimer) {
        this.sweepTimer = setInterval(this.sweep, CONNECTED_IDLE_MS);
        this.sweepTimer.unref();
      }
    }
    this.byEndpoint.set(ep, c);
    return c;
  }

  private openConnected(c: Connected, ep: Endpoint): void {
    const type = ep.family === 4 ? 'udp4' : 'udp6';
    const family = ep.family;
    const s = dgram.createSocket({ type, ipv6Only: type === 'udp6', reuseAddr: true, recvBufferSize: 4 << 20, sendBufferSize: 4 << 20 } as dgram.SocketOptions);
    let closed = false;
    const fail = (): void => {
      c.failed = true;
      if (closed) return;
      closed = true;
      try { s.close(); } catch { /* already closed */ }
    };
    // Until connected, any error (bind, connect) leaves this endpoint on the unconnected socket.
    s.on('error', fail);
    // Between bind and connect this socket ties with the listener and may get any source's
    // datagrams (Linux prefers the newest socket on a tie): deliver them all the same.
    s.on('message', (msg, rinfo) => this.onMessage(msg, rinfo.address, rinfo.port, family));
    // dgram passes a connect error to this callback (not to 'error').
    const onConnect = (err?: Error): void => {
      if (err || c.dead) return fail();
      s.off('error', fail);
      // ICMP errors surface on a connected socket as recv errors (ECONNREFUSED while the
      // peer is down): not the daemon's concern, the socket keeps working.
      s.on('error', (err: NodeJS.ErrnoException) => {
        if (err.code !== 'ECONNREFUSED' && err.code !== 'EHOSTUNREACH' && err.code !== 'ENETUNREACH') this.onError(err);
      });
      c.fd = socketFd(s);
      c.socket = s;
    };
    s.bind(this.boundPort, () => {
      if (c.dead) return fail();
      if (this.mark && setSocketMark(s, this.mark)) return fail();
      try {
        s.connect(ep.port, ep.address, onConnect);
      } catch {
        fail(); // bad port or address: stay unconnected
      }
    });
  }

  private dropConnected(c: Connected): void {
    if (this.connected.get(c.key) === c) this.connected.delete(c.key);
    const s = c.socket;
    c.socket = null;
    c.failed = true;
    c.dead = true;
    c.fd = -1;
    if (s) {
      // A send still queued in libuv holds a ring slot: close only once it has left.
      const closeWhenDrained = (): void => {
        let queued = 0;
        try { queued = s.getSendQueueCount(); } catch { return; }
        if (queued > 0) setTimeout(closeWhenDrained, 1);
        else try { s.close(); } catch { /* already closed */ }
      };
      this.deferClose(closeWhenDrained);
    }
  }

  /** Close connected sockets that sent nothing since the last sweep, and entries that failed. */
  private readonly sweep = (): void => {
    for (const c of [...this.connected.values()]) {
      if (!c.used || c.failed) this.dropConnected(c);
      else c.used = false;
    }
    if (this.connected.size === 0 && this.sweepTimer) {
      clearInterval(this.sweepTimer);
      this.sweepTimer = null;
    }
  };

  /** Close every connected socket (rebind, close); endpoints reconnect on their next send. */
  private dropAllConnected(): void {
    for (const c of [...this.connected.values()]) this.dropConnected(c);
    this.connected.clear();
    if (this.sweepTimer) {
      clearInterval(this.sweepTimer);
      this.sweepTimer = null;
    }
  }

  /** Forget `ep`'s connected socket now (its peer was removed or moved); the next send to it reconnects. */
  forget(ep: Endpoint): void {
    const c = this.connected.get(endpointKey(ep));
    if (c) this.dropConnected(c);
  }

  /**
   * The fd of `ep`'s connected socket for a crypto worker to write a transport message to, or -1
   * (none yet, or none at all: send through sendFromRing). Counts as use of that socket.
   */
  sendFd(ep: Endpoint): number {
    const c = this.connectionFor(ep);
    return c !== undefined && c.socket !== null ? c.fd : -1;
  }

  /** Send one datagram; false when there is no socket of that family. */
  send(ep: Endpoint, msg: Uint8Array): boolean {
    const s = ep.family === 4 ? this.v4 : this.v6;
    if (!s) return false;
    s.send(msg, ep.port, ep.address);
    return true;
  }

  /**
   * Send bytes that live in a ring slot. dgram may keep a reference to them until a
   * queued send completes (libuv queues when the kernel buffer is full); then the slot
   * must not be reused. Returns true when the slot must be held until `release` runs.
   * The common case (nothing queued) sends without a callback and holds nothing.
   */
  sendFromRing(ep: Endpoint, view: Uint8Array, release: () => void): boolean {
    const c = this.connectionFor(ep);
    const connected = c !== undefined && c.socket !== null;
    const s = connected ? c.socket! : ep.family === 4 ? this.v4 : this.v6;
    if (!s) return false;
    if (s.getSendQueueCount() > 0) {
      if (connected) s.send(view, () => release());
      else s.send(view, ep.port, ep.address, () => release());
      return true;
    }
    if (connected) s.send(view);
    else s.send(view, ep.port, ep.address);
    if (s.getSendQueueCount() === 0) return false;
    // This send was queued without a callback: release once the queue has drained.
    this.heldUntilDrained.push({ socket: s, release });
    if (this.heldUntilDrained.length === 1) setImmediate(this.pollHeld);
    return true;
  }

  private heldUntilDrained: { socket: dgram.Socket; release: () => void }[] = [];
  private readonly pollHeld = (): void => {
    const still: { socket: dgram.Socket; release: () => void }[] = [];
    for (const h of this.heldUntilDrained) {
      let queued = 0;
      try { queued = h.socket.getSendQueueCount(); } catch { queued = 0; }
      if (queued === 0) h.release(); else still.push(h);
    }
    this.heldUntilDrained = still;
    if (still.length) setTimeout(this.pollHeld, 1);
  };

  async close(): Promise<void> {
    this.dropAllConnected();
    const socks = [this.v4, this.v6].filter((s): s is dgram.Socket => s !== null);
    this.v4 = this.v6 = null;
    this.boundPort = 0;
    await Promise.all(socks.map((s) => new Promise<void>((r) => s.close(() => r()))));
  }
}
