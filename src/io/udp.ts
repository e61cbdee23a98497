// The UDP edge: one IPv4 and one IPv6 socket on the same listen port (as wireguard-go
// binds them), delivering datagrams to one handler and sending to endpoints. Sends use
// one contiguous buffer without a callback (the cheapest dgram path measured here).
import dgram from 'node:dgram';
import { type Endpoint } from '../protocol/endpoint.js';
import { setSocketMark } from './sockopt.js';

export type DatagramHandler = (msg: Buffer, address: string, port: number, family: 4 | 6) => void;

export class UdpBind {
  private v4: dgram.Socket | null = null;
  private v6: dgram.Socket | null = null;
  private boundPort = 0;
  private mark = 0;

  constructor(private readonly onMessage: DatagramHandler, private readonly onError: (err: Error) => void) {}

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
      const s = dgram.createSocket({ type, ipv6Only: type === 'udp6', recvBufferSize: 4 << 20, sendBufferSize: 4 << 20 } as dgram.SocketOptions);
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
    const s = ep.family === 4 ? this.v4 : this.v6;
    if (!s) return false;
    if (s.getSendQueueCount() > 0) {
      s.send(view, ep.port, ep.address, () => release());
      return true;
    }
    s.send(view, ep.port, ep.address);
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
    const socks = [this.v4, this.v6].filter((s): s is dgram.Socket => s !== null);
    this.v4 = this.v6 = null;
    this.boundPort = 0;
    await Promise.all(socks.map((s) => new Promise<void>((r) => s.close(() => r()))));
  }
}
