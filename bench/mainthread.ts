// Benchmark: main-thread CPU per packet on each path of a real Device (src/device.ts), in
// test mode (tun: null), so no TUN device or namespace is needed.
//
// Two processes on 127.0.0.1: this one runs Device A (measured); a forked child runs Device
// B (the peer). They are configured through the same methods the UAPI uses and complete a
// real handshake over UDP. Then, per inner packet size (1420 and 64 bytes):
// - send path (TUN → UDP): A's main thread injects IP packets into its TUN ring as the TUN
//   reader thread would (reserveTun/tunData/publishTun, topped up every millisecond), then
//   route() → seal (crypto worker) → onSealed() → dgram send to B;
// - receive path (UDP → TUN): B blasts packets the same way; A receives the datagrams
//   (onDatagram) → open (crypto worker) → onOpened() → delivery (a no-op in test mode; the
//   TUN writer thread's write is not on the main thread).
// Main-thread CPU is read from /proc/self/task/<pid>/stat (the main thread's own utime+stime,
// 10 ms ticks), so the crypto workers and B do not count; event-loop-active time is shown
// too. A second, instrumented window per case times the Device's hooks with performance.now()
// wrappers (their own cost calibrated and subtracted), and also the sendmsg call and the
// per-datagram callback of the libuv UDP handle (private Node internals, found by shape).
// Each probe's share of that window's event-loop-active time, applied to the first window's
// CPU per packet, shows where the main thread's time goes (shares, because wall-clock probe
// times include preemption). "rest" is the pipeline's drain loop, wake-ups, the event loop,
// GC, and for receive the recvmsg call and Buffer allocation in C++. The injection standing
// in for the TUN reader costs main-thread time the daemon does not spend: it is timed and
// subtracted. Packets dropped because a ring was full are counted but do not divide.
//
// Run: node dist/bench/mainthread.js [seconds-per-window] [workers]   (default 3 s, 1 worker; ~40 s)

import { fork, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { nodeCrypto } from '../src/crypto/crypto.js';
import { Device } from '../src/device.js';
import { createLogger } from '../src/log.js';
import { Direction } from '../src/protocol/drops.js';
import { type Peer, Stat, STATS_PER_PEER } from '../src/protocol/peer.js';
import { parseProcStatTicks } from './harness/parse.js';

const INNER_A = [10, 0, 0, 1];
const INNER_B = [10, 0, 0, 2];
const LOOPBACK = Uint8Array.from([127, 0, 0, 1]);
const SIZES = [1420, 64];
const WARM_MS = 500;
const SETTLE_MS = 300;
const DEADLINE_MS = 180_000;

type Msg =
  | { type: 'ready'; pub: string; port: number }
  | { type: 'configure'; pub: string; port: number }
  | { type: 'configured' }
  | { type: 'blast'; size: number; ms: number }
  | { type: 'blasted'; injected: number }
  | { type: 'exit' };

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** An IPv4/UDP packet of `size` bytes from src to dst (header fields the Device checks are valid). */
function ipv4Packet(size: number, src: number[], dst: number[]): Uint8Array {
  const p = new Uint8Array(size);
  p[0] = 0x45;
  p[2] = size >> 8;
  p[3] = size & 0xff;
  p[8] = 64;
  p[9] = 17;
  p.set(src, 12);
  p.set(dst, 16);
  return p;
}

/** Stands in for the TUN reader: keeps A's TUN ring topped up every millisecond; times itself. */
class Injector {
  injected = 0;
  ms = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  constructor(private readonly device: Device, private readonly packet: Uint8Array) {}

  fill = (): void => {
    const t0 = performance.now();
    const p = this.device.dataplane;
    const pkt = this.packet;
    for (let s = p.reserveTun(); s >= 0; s = p.reserveTun()) {
      p.tunData(s).set(pkt, 16);
      p.publishTun(s, pkt.length);
      this.injected++;
    }
    this.ms += performance.now() - t0;
    if (this.timer !== null) this.timer = setTimeout(this.fill, 1);
  };

  start(): void {
    this.timer = setTimeout(this.fill, 0);
  }

  stop(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }
}

function mainThreadCpuMs(): number {
  return parseProcStatTicks(fs.readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8')) * 10;
}

const silentLog = (ifname: string) => createLogger({ level: 'silent', ifname });

async function makeDevice(ifname: string, workers: number): Promise<{ device: Device; priv: Uint8Array; pub: Uint8Array }> {
  const device = await Device.create({ ifname, tun: null, workers, log: silentLog(ifname), listenPort: 0 });
  const priv = nodeCrypto.generatePrivateKey();
  device.setPrivateKey(priv);
  return { device, priv, pub: nodeCrypto.publicKey(priv) };
}

function addPeer(device: Device, pub: Uint8Array, port: number, allowed: number[]): void {
  device.createPeer(pub);
  device.setEndpoint(pub, LOOPBACK, port);
  device.addAllowedIp(pub, Uint8Array.from(allowed), 32);
  device.commit();
}

// ───────────────────────── child: Device B ─────────────────────────

async function peerMain(): Promise<void> {
  const workers = Number(process.argv[3] ?? 1);
  const { device, pub } = await makeDevice('bench-b', workers);
  const send = (m: Msg): void => void process.send?.(m);
  process.on('disconnect', () => process.exit(0));
  process.on('message', (m: Msg) => {
    void (async () => {
      if (m.type === 'configure') {
        addPeer(device, Buffer.from(m.pub, 'base64'), m.port, INNER_A);
        send({ type: 'configured' });
      } else if (m.type === 'blast') {
        const inj = new Injector(device, ipv4Packet(m.size, INNER_B, INNER_A));
        inj.start();
        await sleep(m.ms);
        inj.stop();
        send({ type: 'blasted', injected: inj.injected });
      } else if (m.type === 'exit') {
        await device.close();
        process.exit(0);
      }
    })();
  });
  send({ type: 'ready', pub: Buffer.from(pub).toString('base64'), port: device.listenPort });
}

// ───────────────────────── parent: Device A, measured ─────────────────────────

interface Acc {
  ms: number;
  calls: number;
}

type Hook = (a: unknown, b: unknown, c: unknown, d: unknown, e: unknown, f: unknown) => unknown;

/** Replaces obj[name] (a method) by a timing wrapper; returns the undo. */
function instrument(obj: object, name: string, acc: Acc): () => void {
  const o = obj as Record<string, Hook>;
  const orig = o[name];
  if (typeof orig !== 'function') throw new Error(`no method ${name} to time (renamed?)`);
  o[name] = function (this: unknown) {
    const t = performance.now();
    try {
      // apply(arguments): native methods check their argument count (a connected socket's
      // handle.send takes 4 arguments, an unconnected one's 6).
      // eslint-disable-next-line prefer-rest-params
      return (orig as (...a: unknown[]) => unknown).apply(obj, arguments as unknown as unknown[]);
    } finally {
      acc.ms += performance.now() - t;
      acc.calls++;
    }
  };
  const own = Object.prototype.hasOwnProperty.call(obj, name);
  return () => {
    if (own) o[name] = orig; // e.g. a handle's onmessage, set per instance
    else delete o[name]; // a prototype method shows through again
  };
}

/** ms a timing wrapper adds to what it measures, per call (measured on a no-op). */
function wrapperBias(): number {
  const target = { noop: (_a: unknown) => 0 };
  const acc: Acc = { ms: 0, calls: 0 };
  instrument(target, 'noop', acc);
  const f = target.noop as (a: unknown) => number;
  for (let i = 0; i < 200_000; i++) f(i);
  return acc.ms / acc.calls;
}

/** A method to time: obj[name], reported under `key`. */
interface Probe {
  key: string;
  obj: object;
  name: string;
}

/**
 * The libuv UDP handles under the Device's dgram sockets (Device.udp → UdpBind.v4/v6 and
 * the per-endpoint connected sockets in UdpBind.connected → socket[state symbol].handle): their send() is the sendmsg call, their onmessage the
 * callback libuv makes per received datagram. Private internals of Node and of the Device:
 * returns [] if the shape differs, and the breakdown then leaves those rows out.
 */
function udpHandles(device: Device): { send: (...a: unknown[]) => unknown; onmessage: (...a: unknown[]) => unknown }[] {
  const udp = (device as unknown as { udp?: { v4?: object | null; v6?: object | null; connected?: Map<string, { socket: object | null }> } }).udp;
  const out: ReturnType<typeof udpHandles> = [];
  const connected = udp?.connected ? [...udp.connected.values()].map((c) => c.socket) : [];
  for (const sock of [udp?.v4, udp?.v6, ...connected]) {
    if (sock === null || sock === undefined) continue;
    for (const sym of Object.getOwnPropertySymbols(sock)) {
      const handle = ((sock as Record<symbol, { handle?: unknown } | undefined>)[sym])?.handle as
        { send?: unknown; onmessage?: unknown } | undefined;
      if (handle && typeof handle.send === 'function' && typeof handle.onmessage === 'function') out.push(handle as never);
    }
  }
  return out;
}

interface Window {
  packets: number;
  seconds: number;
  cpuMs: number;
  eluMs: number;
  injectMs: number;
  ringFull: number;
  probes: Map<string, Acc>;
}

async function measureWindow(a: Device, peer: Peer, path: 'send' | 'recv', seconds: number, probes: Probe[], during: () => { done: Promise<void>; injector?: Injector }): Promise<Window> {
  const accs = new Map<string, Acc>();
  for (const p of probes) if (!accs.has(p.key)) accs.set(p.key, { ms: 0, calls: 0 });
  const undo = probes.map((p) => instrument(p.obj, p.name, accs.get(p.key)!));
  const load = during();
  await sleep(WARM_MS);
  const stat = path === 'send' ? Stat.TxPackets : Stat.RxPackets;
  const s = peer.id * STATS_PER_PEER + stat;
  const dir = path === 'send' ? Direction.Outbound : Direction.Inbound;
  const pk0 = a.engine.stats[s]!;
  const rf0 = a.engine.drops.get(dir, 'ring_full');
  const cpu0 = mainThreadCpuMs();
  const elu0 = performance.eventLoopUtilization();
  const inj0 = load.injector?.ms ?? 0;
  for (const acc of accs.values()) { acc.ms = 0; acc.calls = 0; }
  const t0 = performance.now();
  await sleep(seconds * 1000);
  const elu = performance.eventLoopUtilization(elu0);
  const cpuMs = mainThreadCpuMs() - cpu0;
  const t1 = performance.now();
  const w: Window = {
    packets: a.engine.stats[s]! - pk0,
    seconds: (t1 - t0) / 1000,
    cpuMs,
    eluMs: elu.active,
    injectMs: (load.injector?.ms ?? 0) - inj0,
    ringFull: a.engine.drops.get(dir, 'ring_full') - rf0,
    probes: new Map([...accs].map(([k, v]) => [k, { ...v }])),
  };
  await load.done;
  for (const u of undo) u();
  await sleep(SETTLE_MS);
  return w;
}

async function parentMain(): Promise<void> {
  const seconds = Number(process.argv[2] ?? 3);
  const workers = Number(process.argv[3] ?? 1);
  if (!(seconds > 0 && seconds <= 60) || !Number.isInteger(workers) || workers < 1) {
    throw new Error('usage: node dist/bench/mainthread.js [seconds-per-window 1..60] [workers]');
  }
  const deadline = setTimeout(() => { console.error('mainthread bench: deadline passed'); process.exit(2); }, DEADLINE_MS);
  deadline.unref();
  const A = await makeDevice('bench-a', workers);
  let child: ChildProcess | null = null;
  try {
    child = fork(fileURLToPath(import.meta.url), ['--peer', String(workers)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const inbox: Msg[] = [];
    const waiters: (() => void)[] = [];
    child.on('message', (m: Msg) => { inbox.push(m); for (const w of waiters.splice(0)) w(); });
    const exited = new Promise<void>((r) => child!.once('exit', () => r()));
    const next = async <T extends Msg['type']>(type: T, timeoutMs: number): Promise<Extract<Msg, { type: T }>> => {
      const end = Date.now() + timeoutMs;
      for (;;) {
        const i = inbox.findIndex((m) => m.type === type);
        if (i >= 0) return inbox.splice(i, 1)[0] as Extract<Msg, { type: T }>;
        if (Date.now() > end || child!.exitCode !== null) throw new Error(`peer process: no '${type}' within ${timeoutMs} ms`);
        await Promise.race([new Promise<void>((r) => waiters.push(r)), sleep(100), exited]);
      }
    };
    const ready = await next('ready', 15_000);
    const pubB = Buffer.from(ready.pub, 'base64');
    addPeer(A.device, pubB, ready.port, INNER_B);
    child.send({ type: 'configure', pub: Buffer.from(A.pub).toString('base64'), port: A.device.listenPort } satisfies Msg);
    await next('configured', 5_000);
    const peer = A.device.engine.peerByKey(pubB)!;

    // Handshake: the first packet is staged, an initiation goes out, the response brings keys.
    const first = new Injector(A.device, ipv4Packet(100, INNER_A, INNER_B));
    first.fill();
    const t0 = Date.now();
    while (A.device.engine.stats[peer.id * STATS_PER_PEER + Stat.TxPackets]! < 1) {
      if (Date.now() - t0 > 10_000) throw new Error('no handshake with the peer process within 10 s');
      await sleep(20);
    }
    await sleep(200); // B confirms the session on that first packet

    const bias = wrapperBias();
    const handles = udpHandles(A.device);
    const usPer = (ms: number, n: number): number => (ms * 1000) / n;
    const row = (label: string, us: number, total: number | null): string =>
      `    ${label.padEnd(62)} ${us.toFixed(2).padStart(6)} µs${total !== null ? `  ${((100 * us) / total).toFixed(0).padStart(3)}%` : ''}`;
    for (const size of SIZES) {
      for (const path of ['send', 'recv'] as const) {
        const dev = A.device as object;
        const probes: Probe[] = path === 'send'
          ? [{ key: 'route', obj: dev, name: 'route' }, { key: 'onSealed', obj: dev, name: 'onSealed' }, ...handles.map((h) => ({ key: 'sendmsg', obj: h, name: 'send' }))]
          : [{ key: 'onDatagram', obj: dev, name: 'onDatagram' }, { key: 'onOpened', obj: dev, name: 'onOpened' }, ...handles.map((h) => ({ key: 'dispatch', obj: h, name: 'onmessage' }))];
        // 'dispatch' (libuv → JS callback → 'message' emit) encloses onDatagram: reported net of it.
        const during = (): { done: Promise<void>; injector?: Injector } => {
          if (path === 'send') {
            const inj = new Injector(A.device, ipv4Packet(size, INNER_A, INNER_B));
            inj.start();
            return { done: sleep(WARM_MS + seconds * 1000 + 50).then(() => inj.stop()), injector: inj };
          }
          child!.send({ type: 'blast', size, ms: WARM_MS + seconds * 1000 + 200 } satisfies Msg);
          return { done: next('blasted', 30_000 + seconds * 1000).then(() => undefined) };
        };
        const plain = await measureWindow(A.device, peer, path, seconds, [], during);
        const inst = await measureWindow(A.device, peer, path, seconds, probes, during);
        if (plain.packets === 0 || inst.packets === 0) throw new Error(`${path} ${size} B: no packets moved`);
        const total = usPer(plain.cpuMs - plain.injectMs, plain.packets);
        // Probe times are wall-clock (a preempted call keeps counting on this shared 2-core
        // host), so each probe's share of the instrumented window's event-loop-active time is
        // applied to the plain window's CPU per packet.
        const activeMs = inst.eluMs - inst.injectMs;
        const share = (key: string, minus = 0): number => {
          const acc = inst.probes.get(key);
          return acc === undefined ? NaN : (Math.max(0, acc.ms - bias * acc.calls - minus) / activeMs) * total;
        };
        const title = path === 'send' ? `send path (TUN → UDP), ${size} B` : `receive path (UDP → TUN), ${size} B`;
        const out = [
          `${title}: ${Math.round(plain.packets / plain.seconds).toLocaleString('en-US')} packets/s, ` +
            `main thread ${total.toFixed(2)} µs of CPU per packet (event-loop active ${usPer(plain.eluMs - plain.injectMs, plain.packets).toFixed(2)})` +
            (plain.ringFull > 0 ? `; ${plain.ringFull} dropped on a full ring` : ''),
        ];
        const parts: [string, number][] = path === 'send'
          ? [
              ['route(): allowed-IPs, keypair, counter, header, padding', share('route')],
              // On a connected socket dgram.send() calls sendmsg synchronously, inside onSealed():
              // reported net of it.
              ['onSealed(): counters, timers, dgram.send() JS (net of sendmsg)', share('onSealed', inst.probes.get('sendmsg')?.ms ?? 0)],
              ['UDP sendmsg (libuv handle.send, incl. loopback delivery)', share('sendmsg')],
            ]
          : [
              ["libuv → JS per datagram: rinfo, 'message' emit", share('dispatch', inst.probes.get('onDatagram')?.ms ?? 0)],
              ['onDatagram(): type filter, index lookup, copy into ring', share('onDatagram')],
              ['onOpened(): replay window, timers, source check', share('onOpened')],
            ];
        let accounted = 0;
        for (const [label, us] of parts) {
          if (!Number.isFinite(us)) continue;
          accounted += us;
          out.push(row(label, us, total));
        }
        out.push(row(path === 'send' ? 'rest: ring drain, wake-ups, event loop, GC' : 'rest: recvmsg and Buffer (C++), ring drain, event loop, GC', total - accounted, total));
        if (path === 'send') out.push(row('(not counted: test injection standing in for the TUN reader)', usPer(plain.injectMs, plain.packets), null));
        console.log(out.join('\n'));
      }
    }
    console.log(`\n(${workers} crypto worker(s) per device, ${seconds} s windows, hook timer bias ${(bias * 1e6).toFixed(0)} ns/call subtracted; main-thread CPU has 10 ms resolution)`);
    child.send({ type: 'exit' } satisfies Msg);
    await Promise.race([exited, sleep(3_000)]);
  } finally {
    if (child !== null && child.exitCode === null) child.kill('SIGKILL');
    await A.device.close();
  }
}

if (process.argv[2] === '--peer') {
  await peerMain();
} else {
  try {
    await parentMain();
    process.exit(0);
  } catch (err) {
    console.error(`mainthread bench failed: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  }
}
