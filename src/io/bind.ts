// The interface's UDP sockets for the native dataplane: one IPv4 and one IPv6 socket on the same
// port (as wireguard-go binds them), opened by wirepool's UDP addon (native/udp.c) and owned by
// main. Nobody reads them through Node: the UDP reader thread (workers/udp-reader.ts) receives with
// recvSlots on the fds published to it, crypto workers and main send ring slots with sendSlots,
// and main sends handshake messages with sendTo() here.
//
// bind() is synchronous and replaces the pair only once the new one is open: a failed bind (the
// port is taken: EADDRINUSE) throws and leaves the current sockets working. A replaced pair is not
// closed at once: other threads may still hold its fd numbers (the reader in poll(), a slot naming
// the fd in a send ring), so its close goes to the `deferClose` callback given to the constructor,
// which runs it once nothing can use them (the lead passes Pipeline.afterInFlight, or a function
// that publishes the new fds with Pipeline.setUdpSockets and closes the old ones when it calls
// back; it is called on every swap, so it is also the place to publish the new fds). `generation`
// counts the swaps.
import { getSystemErrorName } from 'node:util';
import { type Endpoint, Sent } from '../protocol/endpoint.js';
import type { ScopedEndpoint } from './endpoint-words.js';
import { udpNative, type UdpNative } from './udp-native.js';

/** Socket buffer sizes (wireguard-go's: 7 MiB, forced past net.core.*mem_max as root). */
export const SOCKET_BUFFER_BYTES = 7 << 20;
/** Tries to find a random port free on both families. */
const RANDOM_PORT_TRIES = 10;

export interface NativeBindOptions {
  /** SO_RCVBUF of both sockets (default SOCKET_BUFFER_BYTES; 0 = the system default). */
  rcvbuf?: number;
  /** SO_SNDBUF of both sockets (default SOCKET_BUFFER_BYTES; 0 = the system default). */
  sndbuf?: number;
  /** The addon (tests may substitute one); default udpNative(). */
  native?: UdpNative;
}

export interface BindErrno extends Error {
  code: string;
  errno: number;
  syscall?: string;
}

function errnoError(message: string, errno: number, syscall?: string): BindErrno {
  let code = 'UNKNOWN';
  try { code = getSystemErrorName(errno); } catch { /* not an errno */ }
  return Object.assign(new Error(`${message}: ${code}`), { code, errno, ...(syscall ? { syscall } : {}) });
}

export class NativeBind {
  private readonly native: UdpNative;
  private readonly rcvbuf: number;
  private readonly sndbuf: number;
  private v4 = -1;
  private v6 = -1;
  private boundPort = 0;
  private mark = 0;
  private gen = 0;
  private gso4 = false;
  private gso6 = false;
  private gro4 = false;
  private gro6 = false;
  /** Handshake sends that failed (EAGAIN included), and those that had to drop the sticky source. */
  readonly stats = { sendErrors: 0, sourceFallbacks: 0 };

  /**
   * @param deferClose runs the close of a replaced (or closed) socket pair once no other thread can
   *   still use its fds. Called after every swap (the first bind too, with nothing to close; close()
   *   too, with fds -1), once the new fds are installed: it may read fd4/fd6/generation to publish
   *   them, e.g. `(close) => pipeline.setUdpSockets(bind.fd4, bind.fd6, close)`. Default: close at once.
   */
  constructor(
    private readonly deferClose: (close: () => void) => void = (close) => close(),
    opts: NativeBindOptions = {},
  ) {
    this.native = opts.native ?? udpNative();
    this.rcvbuf = opts.rcvbuf ?? SOCKET_BUFFER_BYTES;
    this.sndbuf = opts.sndbuf ?? SOCKET_BUFFER_BYTES;
  }

  /** The bound port (0: not bound). */
  get port(): number {
    return this.boundPort;
  }

  /** The IPv4 socket's fd (-1: none). */
  get fd4(): number {
    return this.v4;
  }

  /** The IPv6 socket's fd (-1: none, e.g. no IPv6 on this host). */
  get fd6(): number {
    return this.v6;
  }

  /** The socket for an endpoint of `family` (-1: none). */
  fdFor(family: 4 | 6): number {
    return family === 4 ? this.v4 : this.v6;
  }

  /** Bumped on every swap of the socket pair (bind, close). */
  get generation(): number {
    return this.gen;
  }

  /** Whether the socket of `family` sends with UDP GSO (probed at open, where sendSlots also learns it; false after the kernel refused it with EIO). */
  gso(family: 4 | 6): boolean {
    const fd = this.fdFor(family);
    if (fd < 0) return false;
    return (family === 4 ? this.gso4 : this.gso6) && !this.native.gsoDisabled(fd);
  }

  /** Whether the socket of `family` receives with UDP GRO. */
  gro(family: 4 | 6): boolean {
    return this.fdFor(family) >= 0 && (family === 4 ? this.gro4 : this.gro6);
  }

  /**
   * (Re)bind both families to `port` (0 = random, the same for both; on a bound bind, a fresh one).
   * Synchronous. The new pair is opened first and only then swapped in (the old one's close goes
   * to deferClose); on failure the current sockets stay and the error is thrown (code
   * 'EADDRINUSE', errno -98, when the port is taken). Binding to the port already bound is a no-op.
   * An absent IPv6 stack (EAFNOSUPPORT / EADDRNOTAVAIL) leaves the bind IPv4-only.
   */
  bind(port: number): void {
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new RangeError(`port must be in 0..65535, got ${port}`);
    if (port !== 0 && port === this.boundPort) return;
    const opts = { rcvbuf: this.rcvbuf, sndbuf: this.sndbuf, mark: this.mark };
    for (let attempt = 0; attempt < RANDOM_PORT_TRIES; attempt++) {
      const v4 = this.native.open(4, port, opts); // throws: nothing changed
      let v6: ReturnType<UdpNative['open']> | null = null;
      try {
        v6 = this.native.open(6, v4.port, opts);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EAFNOSUPPORT' || code === 'EADDRNOTAVAIL') {
          v6 = null; // no IPv6 here: IPv4 only
        } else {
          this.native.close(v4.fd);
          if (code === 'EADDRINUSE' && port === 0) continue; // that random port is taken on IPv6: another
          throw err;
        }
      }
      this.swap(v4.fd, v6 ? v6.fd : -1, v4.port);
      this.gso4 = v4.gso;
      this.gro4 = v4.gro;
      this.gso6 = v6 ? v6.gso : false;
      this.gro6 = v6 ? v6.gro : false;
      return;
    }
    throw Object.assign(new Error('could not find a port free on both IPv4 and IPv6'), { code: 'EADDRINUSE', errno: -98, syscall: 'bind' });
  }

  private swap(fd4: number, fd6: number, port: number): void {
    const old = [this.v4, this.v6].filter((fd) => fd >= 0);
    this.v4 = fd4;
    this.v6 = fd6;
    this.boundPort = port;
    this.gen++;
    const native = this.native;
    this.deferClose(() => { for (const fd of old) native.close(fd); });
  }

  /** Apply (0 = clear) SO_MARK on both sockets, now and after every rebind. Throws (sockets unchanged) if it cannot be applied. */
  setMark(mark: number): void {
    if (!Number.isInteger(mark) || mark < 0 || mark > 0xffffffff) throw new RangeError(`mark must be a u32, got ${mark}`);
    const done: number[] = [];
    for (const fd of [this.v4, this.v6]) {
      if (fd < 0) continue;
      const r = this.native.setMark(fd, mark);
      if (r < 0) {
        for (const d of done) this.native.setMark(d, this.mark);
        throw errnoError('setsockopt(SO_MARK) failed', r, 'setsockopt');
      }
      done.push(fd);
    }
    this.mark = mark;
  }

  /**
   * Send one datagram (handshake and cookie messages), from the endpoint's sticky source
   * (ep.src / ep.srcIfindex) if it has one; a source the kernel refuses is dropped for this send
   * (Sent.WithoutSource: the caller should drop it from the peer's endpoint). Sent.No when it
   * could not be sent: no socket of that family, socket buffer full (never blocks), or another error.
   */
  sendTo(ep: Endpoint, msg: Uint8Array): Sent {
    const fd = this.fdFor(ep.family);
    if (fd < 0) return Sent.No;
    const src = ep.src !== undefined && ep.src.length === ep.bytes.length ? ep.src : null;
    const r = this.native.sendTo(fd, msg, 0, msg.length, ep.family, ep.bytes, ep.port, (ep as ScopedEndpoint).scope ?? 0, src, src ? ep.srcIfindex ?? 0 : 0);
    if (r < 0) {
      this.stats.sendErrors++;
      return Sent.No;
    }
    if (r === 1) {
      this.stats.sourceFallbacks++;
      return Sent.WithoutSource;
    }
    return Sent.Yes;
  }

  /** Unbind: the sockets are closed through deferClose; port becomes 0 and the fds -1. */
  close(): void {
    if (this.v4 < 0 && this.v6 < 0) return;
    this.swap(-1, -1, 0);
    this.gso4 = this.gso6 = this.gro4 = this.gro6 = false;
  }
}
