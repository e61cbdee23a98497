// Benchmark: main-thread CPU per packet on each path of a real Device (src/device.ts), wired as
// in the daemon but on in-memory TUN devices (test/helpers/memtun.ts), so no TUN device,
// namespace or root is needed.
//
// Two processes on 127.0.0.1: this one runs Device A (measured); a forked child runs Device B
// (the peer). Each Device's TUN is a MemTun, a SOCK_SEQPACKET socketpair that the Device's real
// TUN reader and writer threads read and write as they would /dev/net/tun without offloads (one
// packet per read and write); the MemTun is in count-only mode, so its own reader thread counts
// what the Device writes and posts nothing to main. Both Devices use the real native dataplane:
// UDP sockets owned by src/io/bind.ts, a UDP reader thread, crypto workers that seal and send
// with sendmmsg. They are configured through the methods the UAPI uses and complete a real
// handshake over UDP (started by one packet written into A's MemTun). Then, per inner packet
// size (1420 and 64 bytes):
// - send path (TUN → UDP): a worker thread floods A's MemTun with one IP packet for B
//   (MemTun.flood); A's TUN reader thread reads it into the TUN ring and rings main per batch, as
//   in the daemon; main: send.route() → crypto worker: seal + sendmmsg → main: send.onSealed().
//   The flood keeps the ring full (backpressure through the socketpair): main at saturation;
// - receive path (UDP → TUN): B's MemTun is flooded the same way in the child, B sends at full
//   rate; A's UDP reader thread receives them (recvmmsg) into the RECV ring → main:
//   receive.classify() → crypto worker: open → main: receive.onOpened() → A's TUN writer thread
//   writes them to A's MemTun, where they are counted (a window that delivered none fails).
// Main-thread CPU is the main thread's own run time from /proc/self/task/<pid>/schedstat (ns;
// utime+stime from .../stat, 10 ms ticks, where schedstat is missing), so the flood, the TUN
// reader and writer, the crypto workers, the UDP reader and B do not count; event-loop-active
// time is shown too. The packets are produced by other threads, so nothing is subtracted: the
// figure is all main's own work, the wake-ups the TUN reader's bells cause included (the send
// path's wake-ups are the TUN reader's and the crypto workers'). A second,
// instrumented window per case times the main-thread stages with performance.now() wrappers
// (their own cost calibrated and subtracted): route(), onSealed() and main's own UDP sends
// (bind.sendTo) on the send path; classify() and onOpened() on the receive path; and the
// pipeline's pump(), which drains every stage and encloses those hooks (a private method: its
// rows are left out if it is renamed). Each probe's share of that window's event-loop-active
// time, applied to the first window's CPU per packet, shows where the main thread's time goes
// (shares, because wall-clock probe times include preemption): the hooks, the drain loop net of
// them (cursors, slot states, notifying workers, main's own TUN writes of small batches), and the
// rest (doorbell wake-ups through Atomics.waitAsync, the event loop, timers, GC). The pipeline's
// own counters give main's wake-ups and worker notifications per 1000 packets (the goal is far
// fewer than one per packet), a counting wrapper on bind.sendTo in the first window how many
// messages main had to send itself, one sendto each (no socket, or a worker's send failed), and
// the pipeline's MAIN_FLUSHED how many it sent in sendmmsg batches as a worker would (sealed
// slots no worker had sent when main's release stage reached them with the flush lock free).
// The flood, the MemTun readers and B's threads share the host's cores with A: on a small host
// they take CPU from A's threads (not from what is counted per packet, but from the rate).
//
// Run: node dist/bench/mainthread.js [seconds-per-window] [workers]   (default 3 s, 1 worker; ~35 s)

import { fork, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { nodeCrypto } from '../src/crypto/crypto.js';
import { CW_SEND_FALLBACKS, MAIN_FLUSHED, MAIN_INLINE_SEALED, MAIN_WAKEUPS, MAIN_WORKER_NOTIFIES, STAT_MAIN, statWorker } from '../src/dataplane/layout.js';
import { Device } from '../src/device.js';
import { createLogger } from '../src/log.js';
import { type Peer, Stat, STATS_PER_PEER } from '../src/protocol/peer.js';
import { MemTun } from '../test/helpers/memtun.js';
import { parseProcStatTicks } from './harness/parse.js';
import { errorText } from '../src/error-text.js';

const INNER_A = [10, 0, 0, 1];
const INNER_B = [10, 0, 0, 2];
const LOOPBACK = Uint8Array.from([127, 0, 0, 1]);
const SIZES = [1420, 64];
/** The MemTuns' MTU: the largest inner packet measured. */
const TUN_MTU = 1420;
const WARM_MS = 500;
const SETTLE_MS = 300;
const DEADLINE_MS = 180_000;

type Msg =
  | { type: 'ready'; pub: string; port: number }
  | { type: 'configure'; pub: string; port: number }
  | { type: 'configured' }
  | { type: 'blast'; size: number; ms: number }
  | { type: 'blasted'; flooded: number }
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

const SCHEDSTAT = `/proc/self/task/${process.pid}/schedstat`;
const haveSchedstat = ((): boolean => {
  try {
    return Number(fs.readFileSync(SCHEDSTAT, 'utf8').split(' ')[0]) > 0;
  } catch {
    return false;
  }
})();

/** CPU ms the main thread has run so far (this is the main thread: its tid is the pid). */
function mainThreadCpuMs(): number {
  if (haveSchedstat) return Number(fs.readFileSync(SCHEDSTAT, 'utf8').split(' ')[0]) / 1e6;
  return parseProcStatTicks(fs.readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8')) * 10;
}

const silentLog = (ifname: string) => createLogger({ level: 'silent', ifname });

/** A Device on a count-only MemTun. Close the device first, then the MemTun (memtun.ts teardown). */
async function makeDevice(ifname: string, workers: number): Promise<{ device: Device; memtun: MemTun; pub: Uint8Array }> {
  const memtun = await MemTun.create(ifname, TUN_MTU, { keep: false });
  try {
    const device = await Device.create({ ifname, tun: memtun.tun, workers, log: silentLog(ifname), listenPort: 0 });
    const priv = nodeCrypto.generatePrivateKey();
    device.uapi.setPrivateKey(priv);
    return { device, memtun, pub: nodeCrypto.publicKey(priv) };
  } catch (err) {
    await memtun.close();
    throw err;
  }
}

function addPeer(device: Device, pub: Uint8Array, port: number, allowed: number[]): void {
  device.uapi.createPeer(pub);
  device.uapi.setEndpoint(pub, LOOPBACK, port);
  device.uapi.addAllowedIp(pub, Uint8Array.from(allowed), 32);
  device.uapi.commit();
}

// ───────────────────────── child: Device B ─────────────────────────

async function peerMain(): Promise<void> {
  const workers = Number(process.argv[3] ?? 1);
  const { device, memtun, pub } = await makeDevice('bench-b', workers);
  const send = (m: Msg): void => void process.send?.(m);
  process.on('disconnect', () => process.exit(0));
  process.on('message', (m: Msg) => {
    void (async () => {
      if (m.type === 'configure') {
        addPeer(device, Buffer.from(m.pub, 'base64'), m.port, INNER_A);
        send({ type: 'configured' });
      } else if (m.type === 'blast') {
        const flooded0 = memtun.floodedCount;
        await memtun.flood(ipv4Packet(m.size, INNER_B, INNER_A));
        await sleep(m.ms);
        await memtun.stopFlood();
        send({ type: 'blasted', flooded: memtun.floodedCount - flooded0 });
      } else if (m.type === 'exit') {
        await device.close();
        await memtun.close();
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

type Method = (...a: unknown[]) => unknown;

/**
 * Replaces obj[name] (a method) by a timing wrapper (an own property); returns the undo, or null
 * when there is no such method and `optional`. Only outermost calls are timed (a method that
 * re-enters itself is not counted twice).
 */
function instrument(obj: object, name: string, acc: Acc, optional = false): (() => void) | null {
  const o = obj as Record<string, Method>;
  const orig = o[name];
  if (typeof orig !== 'function') {
    if (optional) return null;
    throw new Error(`no method ${name} to time (renamed?)`);
  }
  let depth = 0;
  o[name] = function (...args: unknown[]) {
    if (depth > 0) return orig.apply(obj, args);
    depth++;
    const t = performance.now();
    try {
      return orig.apply(obj, args);
    } finally {
      acc.ms += performance.now() - t;
      acc.calls++;
      depth--;
    }
  };
  const own = Object.prototype.hasOwnProperty.call(obj, name);
  return () => {
    if (own) o[name] = orig;
    else delete o[name]; // the prototype method shows through again
  };
}

/**
 * ms a timing wrapper adds to what it measures, per call: measured on a no-op, the least of a few
 * trials (preemption on a busy host only ever adds).
 */
function wrapperBias(): number {
  const target = { noop: (_a: unknown) => 0 };
  const acc: Acc = { ms: 0, calls: 0 };
  instrument(target, 'noop', acc);
  const f = target.noop as (a: unknown) => number;
  let best = Infinity;
  for (let trial = 0; trial < 7; trial++) {
    acc.ms = 0;
    acc.calls = 0;
    for (let i = 0; i < 50_000; i++) f(i);
    best = Math.min(best, acc.ms / acc.calls);
  }
  return best;
}

/** A method to time: obj[name], reported under `key`. */
interface Probe {
  key: string;
  obj: object;
  name: string;
  /** Leave the row out (instead of failing) if the method is gone: private internals. */
  optional?: boolean;
}

/**
 * The objects that hold the main-thread stages: the Device's send and receive paths (the
 * pipeline's hooks call device.send.route etc. through the field on every packet, so a wrapper
 * on the instance is seen) and its UDP bind. TypeScript-private fields, read by name: a rename
 * makes instrument() throw rather than report nothing.
 */
function stages(device: Device): { send: object; receive: object; bind: object } {
  const d = device as unknown as { send?: object; receive?: object; udp?: object };
  if (!d.send || !d.receive || !d.udp) throw new Error('Device has no send/receive/udp fields (renamed?)');
  return { send: d.send, receive: d.receive, bind: d.udp };
}

/** Main-thread counters of A's pipeline (summed over workers where per worker). */
function pipelineCounters(device: Device, workers: number): { wakeups: number; notifies: number; fallbacks: number; inlineSealed: number; flushed: number } {
  const s = device.dataplane.stats;
  let fallbacks = 0;
  for (let id = 0; id < workers; id++) fallbacks += s[statWorker(id) + CW_SEND_FALLBACKS]!;
  return {
    wakeups: s[STAT_MAIN + MAIN_WAKEUPS]!, notifies: s[STAT_MAIN + MAIN_WORKER_NOTIFIES]!, fallbacks, inlineSealed: s[STAT_MAIN + MAIN_INLINE_SEALED]!,
    flushed: s[STAT_MAIN + MAIN_FLUSHED]!,
  };
}

interface Window {
  packets: number;
  seconds: number;
  cpuMs: number;
  eluMs: number;
  /** Packets A's TUN writer delivered to its MemTun. */
  delivered: number;
  wakeups: number;
  notifies: number;
  fallbacks: number;
  inlineSealed: number;
  flushed: number;
  probes: Map<string, Acc>;
}

async function measureWindow(a: Device, memtun: MemTun, workers: number, peer: Peer, path: 'send' | 'recv', seconds: number, probes: Probe[], during: () => Promise<{ done: Promise<void> }>): Promise<Window> {
  const accs = new Map<string, Acc>();
  for (const p of probes) if (!accs.has(p.key)) accs.set(p.key, { ms: 0, calls: 0 });
  const undo = probes.map((p) => instrument(p.obj, p.name, accs.get(p.key)!, p.optional));
  for (let i = 0; i < probes.length; i++) if (undo[i] === null) accs.delete(probes[i]!.key);
  const load = await during();
  await sleep(WARM_MS);
  const s = peer.id * STATS_PER_PEER + (path === 'send' ? Stat.TxPackets : Stat.RxPackets);
  const pk0 = a.engine.stats[s]!;
  const pc0 = pipelineCounters(a, workers);
  const cpu0 = mainThreadCpuMs();
  const elu0 = performance.eventLoopUtilization();
  const delivered0 = memtun.receivedCount;
  for (const acc of accs.values()) { acc.ms = 0; acc.calls = 0; }
  const t0 = performance.now();
  await sleep(seconds * 1000);
  const elu = performance.eventLoopUtilization(elu0);
  const cpuMs = mainThreadCpuMs() - cpu0;
  const t1 = performance.now();
  const pc1 = pipelineCounters(a, workers);
  const delivered = memtun.receivedCount - delivered0;
  const w: Window = {
    packets: a.engine.stats[s]! - pk0,
    seconds: (t1 - t0) / 1000,
    cpuMs,
    eluMs: elu.active,
    delivered,
    wakeups: pc1.wakeups - pc0.wakeups,
    notifies: pc1.notifies - pc0.notifies,
    fallbacks: pc1.fallbacks - pc0.fallbacks,
    inlineSealed: pc1.inlineSealed - pc0.inlineSealed,
    flushed: pc1.flushed - pc0.flushed,
    probes: new Map([...accs].map(([k, v]) => [k, { ...v }])),
  };
  await load.done;
  for (const u of undo) u?.();
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
    if (!A.memtun.write(ipv4Packet(100, INNER_A, INNER_B))) throw new Error('memory TUN full before the first packet');
    const t0 = Date.now();
    while (A.device.engine.stats[peer.id * STATS_PER_PEER + Stat.TxPackets]! < 1) {
      if (Date.now() - t0 > 10_000) throw new Error('no handshake with the peer process within 10 s');
      await sleep(20);
    }
    await sleep(200); // B confirms the session on that first packet

    const bias = wrapperBias();
    const st = stages(A.device);
    const usPer = (ms: number, n: number): number => (ms * 1000) / n;
    const row = (label: string, us: number, total: number): string =>
      `    ${label.padEnd(68)} ${us.toFixed(2).padStart(6)} µs  ${((100 * us) / total).toFixed(0).padStart(3)}%`;
    const results: { path: string; size: number; pps: number; usPerPacket: number }[] = [];
    for (const size of SIZES) {
      for (const path of ['send', 'recv'] as const) {
        const pump: Probe = { key: 'pump', obj: A.device.dataplane, name: 'pump', optional: true };
        // The plain window only counts main's own sends (the wrapper costs nothing on messages the
        // workers send, and little next to a sendto syscall).
        const mainSends: Probe = { key: 'sendTo', obj: st.bind, name: 'sendTo' };
        // Main's send flush of sealed slots no worker sent (pipeline.ts releaseStage): sendmmsg batches.
        const mainBatches: Probe = { key: 'sendBatch', obj: A.device.dataplane, name: 'sendBatch', optional: true };
        const probes: Probe[] = path === 'send'
          ? [{ key: 'route', obj: st.send, name: 'route' }, { key: 'onSealed', obj: st.send, name: 'onSealed' }, mainSends, mainBatches, pump]
          : [{ key: 'classify', obj: st.receive, name: 'classify' }, { key: 'onOpened', obj: st.receive, name: 'onOpened' }, pump];
        const during = async (): Promise<{ done: Promise<void> }> => {
          if (path === 'send') {
            await A.memtun.flood(ipv4Packet(size, INNER_A, INNER_B));
            return { done: sleep(WARM_MS + seconds * 1000 + 50).then(() => A.memtun.stopFlood()) };
          }
          child!.send({ type: 'blast', size, ms: WARM_MS + seconds * 1000 + 200 } satisfies Msg);
          return { done: next('blasted', 30_000 + seconds * 1000).then(() => undefined) };
        };
        const plain = await measureWindow(A.device, A.memtun, workers, peer, path, seconds, path === 'send' ? [mainSends] : [], during);
        const inst = await measureWindow(A.device, A.memtun, workers, peer, path, seconds, probes, during);
        if (plain.packets === 0 || inst.packets === 0) throw new Error(`${path} ${size} B: no packets moved`);
        if (path === 'recv' && (plain.delivered === 0 || inst.delivered === 0)) throw new Error(`recv ${size} B: nothing delivered to the TUN`);
        const total = usPer(plain.cpuMs, plain.packets);
        const pps = plain.packets / plain.seconds;
        results.push({ path, size, pps, usPerPacket: total });
        // Probe times are wall-clock (a preempted call keeps counting on a shared host), so each
        // probe's share of the instrumented window's event-loop-active time is applied to the
        // plain window's CPU per packet.
        const activeMs = inst.eluMs;
        const share = (key: string, minus = 0): number => {
          const acc = inst.probes.get(key);
          return acc === undefined ? NaN : (Math.max(0, acc.ms - bias * acc.calls - minus) / activeMs) * total;
        };
        const perK = (n: number): string => ((1000 * n) / plain.packets).toFixed(n === 0 ? 0 : 1);
        const title = path === 'send' ? `send path (TUN → UDP), ${size} B` : `receive path (UDP → TUN), ${size} B`;
        // Messages main sent itself (bind.sendTo: one sendto each), not in a worker's batch.
        const mainSent = plain.probes.get('sendTo')?.calls ?? 0;
        const out = [
          `${title}: ${Math.round(pps).toLocaleString('en-US')} packets/s, ` +
            `main thread ${total.toFixed(2)} µs of CPU per packet (event-loop active ${usPer(plain.eluMs, plain.packets).toFixed(2)})`,
          `    per 1000 packets: ${perK(plain.wakeups)} main wake-ups, ${perK(plain.notifies)} worker notifications` +
            (path === 'send' ? `, ${perK(mainSent)} sent by main itself (${perK(plain.inlineSealed)} sealed by main at idle, ` +
              `${plain.fallbacks} after a failed worker write), ${perK(plain.flushed)} sent by main in sendmmsg batches` : ''),
        ];
        const sendToMs = inst.probes.get('sendTo')?.ms ?? 0;
        const hooks: [string, number][] = path === 'send'
          ? [
              ['route(): allowed-IPs, keypair, counter, header, padding', share('route')],
              // bind.sendTo runs inside onSealed (a message no worker sent): reported net of it.
              ['onSealed(): counters, timers (net of main sends)', share('onSealed', sendToMs)],
              [`main's own UDP sends (bind.sendTo, one per message; ${inst.probes.get('sendTo')?.calls ?? 0} calls)`, share('sendTo')],
              [`main's flush of slots no worker sent (sendmmsg; ${inst.probes.get('sendBatch')?.calls ?? 0} batches)`, share('sendBatch')],
            ]
          : [
              ['classify(): type filter, receiver index → keypair', share('classify')],
              ['onOpened(): replay window, roaming, timers, source check', share('onOpened')],
            ];
        let inHooks = 0;
        for (const [label, us] of hooks) {
          inHooks += us;
          out.push(row(label, us, total));
        }
        // pump() (the drain of every stage) encloses the hooks.
        const inPump = share('pump');
        if (Number.isFinite(inPump)) {
          out.push(row('drain loop net of the above: cursors, slot states, notifications', Math.max(0, inPump - inHooks), total));
          out.push(row('rest: doorbell wake-ups (waitAsync), event loop, timers, GC', total - Math.max(inPump, inHooks), total));
        } else {
          out.push(row('rest: drain loop, wake-ups, event loop, timers, GC', total - inHooks, total));
        }
        console.log(out.join('\n'));
      }
    }
    console.log(`\nsummary, main-thread CPU µs per packet: ${results.map((r) => `${r.path} ${r.size} B ${r.usPerPacket.toFixed(2)}`).join(', ')}`);
    console.log(`(${workers} crypto worker(s) per device, ${seconds} s windows, hook timer bias ${(bias * 1e6).toFixed(0)} ns/call subtracted; ` +
      `main-thread CPU from ${haveSchedstat ? 'schedstat (ns)' : 'stat (10 ms ticks)'})`);
    child.send({ type: 'exit' } satisfies Msg);
    await Promise.race([exited, sleep(3_000)]);
  } finally {
    if (child !== null && child.exitCode === null) child.kill('SIGKILL');
    await A.device.close();
    await A.memtun.close();
  }
}

if (process.argv[2] === '--peer') {
  await peerMain();
} else {
  try {
    await parentMain();
    process.exit(0);
  } catch (err) {
    console.error(`mainthread bench failed: ${errorText(err)}`);
    process.exit(1);
  }
}
