// The handshake load generator's runtime: N simulated initiators (initiator.ts), each with its
// own UDP socket (so its own source port, on one of the given local addresses), do real
// Noise_IKpsk2 handshakes against one target, paced (--rate) or as fast as possible, until all
// are done or the deadline passes; optionally a flood of handshake-initiation junk (valid mac1)
// or of replayed initiations from other sockets at the same time. Runs in the caller's network
// namespace; the orchestration (namespaces, target daemon, keys) is load-target.ts.
//
// Per-initiator behaviour, as a real WireGuard initiator (spec §3, §4, §6):
// - the first initiation goes out when its turn in the pacing comes;
// - no response within REKEY_TIMEOUT + jitter (5 s + 0..333 ms) → a fresh initiation (new
//   ephemeral, timestamp and index), counted as a retransmit; repeated until the deadline;
// - a cookie reply is decrypted and the cookie stored. By default nothing is resent at once:
//   the retransmit timer resends with mac2, as wireguard-go and the kernel do. With
//   cookieRetryMs set, a fresh initiation with mac2 goes out that many ms after the cookie
//   arrived instead (counted as a cookie retry) — more aggressive than real peers;
// - after the response: 'none' = done; 'keepalive' = send one keepalive (the key confirmation
//   a responder waits for), done; 'ping' = send an ICMP echo request from the initiator's inner
//   address to the target's inner address through the session, resent every dataRetryMs,
//   done when the echo reply comes back decrypted through the same session.

import dgram from 'node:dgram';
import { performance } from 'node:perf_hooks';
import {
  COOKIE_NONCE_LEN, LABEL_COOKIE, LABEL_MAC1, MAC_LEN, MESSAGE_COOKIE_REPLY_SIZE, MESSAGE_INITIATION, MESSAGE_INITIATION_SIZE,
  REKEY_TIMEOUT, REKEY_TIMEOUT_JITTER_MAX,
} from '../../src/constants.js';
import { type Crypto, nativeCrypto } from '../../src/crypto/crypto.js';
import { mac1Offset } from '../../src/protocol/cookie.js';
import { CookieReply, writeType } from '../../src/protocol/messages.js';
import { initialState } from '../../src/protocol/noise.js';
import { echoRequest, ipv4Bytes, isEchoReply } from './echo-packet.js';
import { Initiator, Received } from './initiator.js';
import { cachingCrypto } from './keycache-crypto.js';
import { percentile } from './stats.js';

export type DataMode = 'none' | 'keepalive' | 'ping';
export type FloodKind = 'junk' | 'replay';

export interface FloodOptions {
  /** junk: random initiations with a valid mac1 (one per socket); replay: initiator 0's first initiation resent verbatim. */
  kind: FloodKind;
  ratePerSecond: number;
  durationMs: number;
  /** Start this long after the generator's start (time 0). */
  startAfterMs: number;
  /** Local addresses the flood sockets bind to, round-robin ([] = the wildcard address). */
  sources: string[];
  /** Number of flood sockets (distinct source ports). */
  sockets: number;
}

export interface GeneratorOptions {
  targetAddress: string;
  targetPort: number;
  targetPublicKey: Uint8Array;
  /** One private key per initiator; the generator zeroes them when it is done. */
  privateKeys: Uint8Array[];
  /** Local addresses the initiator sockets bind to, initiator i → sources[i % length] ([] = wildcard). */
  sources: string[];
  /** First initiations started per second; 0 = as fast as possible. */
  rate: number;
  /** Everything stops this long after time 0. */
  deadlineMs: number;
  /** Legit initiators start this long after time 0 (e.g. inside a flood); default 0. */
  startDelayMs?: number;
  data: DataMode;
  /** 'ping': the target's inner IPv4 address and each initiator's own (its allowed IP). */
  innerTarget?: string;
  innerAddresses?: string[];
  /** See the file comment; null = wait for the retransmit timer (real-peer behaviour). */
  cookieRetryMs: number | null;
  /** 'ping': echo request resend interval. Default 1000 ms. */
  dataRetryMs?: number;
  flood?: FloodOptions;
  /**
   * Light generator (data 'none' only): every initiator's first initiation is made before time 0
   * and responses are verified after the run, so during it the generator spends CPU only on its
   * sockets (and on the initiations a cookie or a retransmit needs) and the target gets the
   * machine: the target's capacity, not the generator's, is measured on a small host.
   */
  light?: boolean;
  /** Called about once a second with a one-line status. */
  progress?: (line: string) => void;
  /**
   * Default: nativeCrypto (native/handshake.c: X25519 on raw keys, no key objects, cheaper than any
   * cache of them), or cachingCrypto() (keycache-crypto.ts) when the addon is not built.
   */
  crypto?: Crypto;
}

export interface Percentiles {
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

export interface FloodResult {
  sent: number;
  sendErrors: number;
  /** Cookie replies received on the flood sockets. */
  cookieReplies: number;
  /** …of which decrypted with the cookie key of the target and the mac1 we sent as ad. */
  cookieRepliesValid: number;
  /** Any other datagram received on the flood sockets (e.g. a response to a replayed initiation). */
  otherReplies: number;
  /** Time of the first valid cookie reply after the flood started, or null. */
  firstCookieAfterMs: number | null;
  /** Wall-clock (Date.now()) start and end of the flood, for lining up other observations. */
  startWallMs: number | null;
  endWallMs: number | null;
}

export interface GeneratorResult {
  initiators: number;
  /** Initiators that consumed a response (session established). */
  connected: number;
  /** 'ping': initiators whose echo reply came back through the session; otherwise = connected. */
  confirmed: number;
  /** Initiators not done at the deadline. */
  failed: number;
  /** From time 0 to the end of the run. */
  elapsedMs: number;
  /** From the first initiation to the last initiator connecting, when all did; else null. */
  timeToAllConnectedMs: number | null;
  timeToAllConfirmedMs: number | null;
  /** connected / (last connection − first initiation) in s. */
  handshakesPerSecond: number;
  /** Initiations sent in total (first ones + retransmits + cookie retries). */
  initiations: number;
  /** Initiations resent because no response came within REKEY_TIMEOUT + jitter. */
  retransmits: number;
  /** Initiations resent early because a cookie arrived (cookieRetryMs set). */
  cookieRetries: number;
  /** Cookie replies to legit initiators that decrypted and were stored. */
  cookieReplies: number;
  /** Responses / cookie replies for an index an initiator had already replaced. */
  staleReplies: number;
  /** Datagrams that did not authenticate or did not fit (should be 0). */
  invalidReplies: number;
  /** Data packets (keepalives, echo requests) sent. */
  dataSent: number;
  /** First initiation → connected, per connected initiator. */
  connectLatencyMs: Percentiles | null;
  /** CPU time of this process during the run (user + system, all threads). */
  generatorCpuMs: number;
  flood: FloodResult | null;
}

interface Slot {
  readonly index: number;
  readonly ini: Initiator;
  readonly sock: dgram.Socket;
  timer: NodeJS.Timeout | null;
  firstSentAt: number;
  connectedAt: number;
  confirmedAt: number;
  done: boolean;
  echoSeq: number;
  readonly innerSrc: Uint8Array | null;
}

const BATCH = 64; // initiations started per event-loop turn when not paced
const FLOOD_TICK_MS = 5;
const EMPTY = new Uint8Array(0);

function percentiles(values: number[]): Percentiles | null {
  if (values.length === 0) return null;
  return {
    p50: percentile(values, 50),
    p90: percentile(values, 90),
    p99: percentile(values, 99),
    max: percentile(values, 100),
  };
}

function familyOf(addr: string): 'udp4' | 'udp6' {
  return addr.includes(':') ? 'udp6' : 'udp4';
}

function bindSocket(local: string | undefined, family: 'udp4' | 'udp6'): Promise<dgram.Socket> {
  return new Promise((resolve, reject) => {
    const sock = dgram.createSocket({ type: family });
    const onError = (err: Error): void => {
      sock.close();
      reject(err);
    };
    sock.once('error', onError);
    sock.bind({ port: 0, ...(local !== undefined ? { address: local } : {}) }, () => {
      sock.off('error', onError);
      sock.on('error', () => {}); // send errors are counted through the send callback
      resolve(sock);
    });
  });
}

/** Binds `count` sockets, source i on `sources[i % length]`, at most 256 binds in flight. */
async function bindAll(count: number, sources: string[], target: string): Promise<dgram.Socket[]> {
  const family = familyOf(target);
  const out: dgram.Socket[] = new Array(count);
  for (let start = 0; start < count; start += 256) {
    const end = Math.min(count, start + 256);
    const batch: Promise<void>[] = [];
    for (let i = start; i < end; i++) {
      const local = sources.length > 0 ? sources[i % sources.length] : undefined;
      batch.push(bindSocket(local, family).then((s) => void (out[i] = s)));
    }
    try {
      await Promise.all(batch);
    } catch (err) {
      for (const s of out) s?.close();
      throw new Error(`binding ${count} UDP sockets failed at ${start}..${end}: ${(err as Error).message}`);
    }
  }
  return out;
}

/** Runs the generator; resolves when every initiator is done and the flood is over, or at the deadline. */
export async function runGenerator(opts: GeneratorOptions): Promise<GeneratorResult> {
  const cache = opts.crypto === undefined && nativeCrypto === null ? cachingCrypto() : null;
  const c = opts.crypto ?? nativeCrypto ?? cache!;
  const init = initialState(c);
  const n = opts.privateKeys.length;
  const dataRetryMs = opts.dataRetryMs ?? 1000;
  if (opts.data === 'ping' && (opts.innerTarget === undefined || (opts.innerAddresses?.length ?? 0) < n)) {
    throw new Error("data 'ping' needs innerTarget and one inner address per initiator");
  }
  if (opts.flood?.kind === 'replay' && n === 0) throw new Error('a replay flood needs at least one initiator to replay');
  const innerTarget = opts.data === 'ping' ? ipv4Bytes(opts.innerTarget!) : null;
  const target = { publicKey: opts.targetPublicKey };

  const initiators = opts.privateKeys.map((k) => new Initiator(c, init, k, target));
  const light = opts.light === true;
  if (light && opts.data !== 'none') throw new Error("a light generator needs data 'none'");
  /** light: the first initiation of each initiator, made before time 0 (mac1 only; no cookie yet). */
  const premade: (Uint8Array | null)[] = initiators.map((ini) => (light ? ini.createInitiation(performance.now(), Date.now()) : null));
  const sockets = await bindAll(n, opts.sources, opts.targetAddress);
  const flood = opts.flood;
  const floodSockets = flood !== undefined ? await bindAll(flood.sockets, flood.sources, opts.targetAddress) : [];

  const slots: Slot[] = initiators.map((ini, index) => ({
    index, ini, sock: sockets[index]!, timer: null, firstSentAt: -1, connectedAt: -1, confirmedAt: -1, done: false, echoSeq: 0,
    innerSrc: opts.data === 'ping' ? ipv4Bytes(opts.innerAddresses![index]!) : null,
  }));

  const stats = {
    initiations: 0, retransmits: 0, cookieRetries: 0, cookieReplies: 0, staleReplies: 0, invalidReplies: 0, dataSent: 0,
    connected: 0, confirmed: 0, doneCount: 0, started: 0,
  };
  const floodStats: FloodResult = { sent: 0, sendErrors: 0, cookieReplies: 0, cookieRepliesValid: 0, otherReplies: 0, firstCookieAfterMs: null, startWallMs: null, endWallMs: null };
  let replayPacket: Uint8Array | null = null;
  let stopped = false;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const now = (): number => performance.now();
  const startDelay = opts.startDelayMs ?? 0;

  let finish!: () => void;
  const finished = new Promise<void>((r) => (finish = r));
  let floodFinished = false;
  const floodDone = (): boolean => flood === undefined || floodFinished;
  const checkDone = (): void => {
    if (!stopped && stats.doneCount === n && floodDone()) finish();
  };

  const send = (sock: dgram.Socket, pkt: Uint8Array): void => {
    sock.send(pkt, opts.targetPort, opts.targetAddress);
  };

  const jitter = (): number => Math.floor(Math.random() * REKEY_TIMEOUT_JITTER_MAX);

  const arm = (s: Slot, ms: number, fn: () => void): void => {
    if (s.timer !== null) clearTimeout(s.timer);
    s.timer = stopped ? null : setTimeout(fn, ms);
  };

  const sendInitiation = (s: Slot): void => {
    if (stopped || s.ini.connected) return;
    const pkt = premade[s.index] ?? s.ini.createInitiation(now(), Date.now());
    premade[s.index] = null;
    if (s.index === 0 && replayPacket === null) replayPacket = pkt.slice();
    if (s.firstSentAt < 0) s.firstSentAt = now();
    stats.initiations++;
    send(s.sock, pkt);
    arm(s, REKEY_TIMEOUT + jitter(), () => {
      s.timer = null;
      stats.retransmits++;
      sendInitiation(s);
    });
  };

  const markDone = (s: Slot): void => {
    if (s.done) return;
    s.done = true;
    if (s.timer !== null) clearTimeout(s.timer);
    s.timer = null;
    stats.doneCount++;
    checkDone();
  };

  const sendEcho = (s: Slot): void => {
    if (stopped || s.done) return;
    s.echoSeq = (s.echoSeq + 1) & 0xffff;
    send(s.sock, s.ini.sealData(echoRequest(s.innerSrc!, innerTarget!, s.index & 0xffff, s.echoSeq)));
    stats.dataSent++;
    arm(s, dataRetryMs, () => {
      s.timer = null;
      sendEcho(s);
    });
  };

  const onMessage = (s: Slot, msg: Buffer, rinfo: dgram.RemoteInfo): void => {
    if (stopped) return;
    if (rinfo.port !== opts.targetPort) {
      stats.invalidReplies++;
      return;
    }
    const t = now();
    switch (s.ini.receive(msg, t, light)) {
      case Received.Connected:
        s.connectedAt = t;
        stats.connected++;
        if (opts.data === 'none') {
          markDone(s);
        } else if (opts.data === 'keepalive') {
          send(s.sock, s.ini.sealData(EMPTY));
          stats.dataSent++;
          markDone(s);
        } else {
          sendEcho(s);
        }
        break;
      case Received.Cookie:
        stats.cookieReplies++;
        if (opts.cookieRetryMs !== null) {
          arm(s, opts.cookieRetryMs, () => {
            s.timer = null;
            stats.cookieRetries++;
            sendInitiation(s);
          });
        }
        break;
      case Received.Data:
        if (opts.data === 'ping' && !s.done && isEchoReply(s.ini.lastPlaintext, innerTarget!, s.innerSrc!, s.index & 0xffff)) {
          s.confirmedAt = t;
          stats.confirmed++;
          markDone(s);
        }
        break;
      case Received.Stale:
        stats.staleReplies++;
        break;
      case Received.Invalid:
        stats.invalidReplies++;
        break;
    }
  };
  for (const s of slots) s.sock.on('message', (msg, rinfo) => onMessage(s, msg, rinfo));

  // ── launcher: paced or as fast as possible, a batch per event-loop turn ──
  let launcher: NodeJS.Timeout | null = null;
  let launcherImmediate: NodeJS.Immediate | null = null;
  const launch = (): void => {
    launcher = null;
    launcherImmediate = null;
    if (stopped) return;
    const elapsed = now() - t0 - startDelay;
    const due = opts.rate > 0 ? Math.min(n, Math.floor((elapsed * opts.rate) / 1000) + 1) : n;
    const until = Math.min(due, stats.started + BATCH);
    while (stats.started < until) sendInitiation(slots[stats.started++]!);
    if (stats.started >= n) return;
    if (opts.rate > 0) launcher = setTimeout(launch, Math.max(1, Math.min(20, 1000 / opts.rate)));
    else launcherImmediate = setImmediate(launch);
  };
  if (n > 0) {
    if (startDelay > 0) launcher = setTimeout(launch, startDelay);
    else launch();
  }

  // ── flood ──
  let floodTimer: NodeJS.Timeout | null = null;
  if (flood !== undefined) {
    const mac1Key = c.hash(new TextEncoder().encode(LABEL_MAC1), opts.targetPublicKey);
    const cookieKey = c.hash(new TextEncoder().encode(LABEL_COOKIE), opts.targetPublicKey);
    const off = mac1Offset(MESSAGE_INITIATION_SIZE);
    const junk = (): Uint8Array => {
      const p = c.randomBytes(MESSAGE_INITIATION_SIZE);
      writeType(p, MESSAGE_INITIATION);
      p.set(c.mac(mac1Key, p.subarray(0, off)), off);
      p.fill(0, off + MAC_LEN); // mac2: none (no cookie)
      return p;
    };
    let packets: Uint8Array[] = [];
    let floodStart = -1;
    let next = 0;
    const onFloodMessage = (sockIndex: number, msg: Buffer): void => {
      if (msg.length !== MESSAGE_COOKIE_REPLY_SIZE || msg[0] !== 3) {
        floodStats.otherReplies++;
        return;
      }
      floodStats.cookieReplies++;
      const sent = packets.length > 0 ? packets[sockIndex % packets.length]! : null;
      if (sent === null) return;
      const nonce = msg.subarray(CookieReply.NONCE, CookieReply.NONCE + COOKIE_NONCE_LEN);
      const cookie = c.xaeadOpen(cookieKey, nonce, msg.subarray(CookieReply.COOKIE), sent.subarray(off, off + MAC_LEN));
      if (cookie !== null && cookie.length === MAC_LEN && msg.subarray(4, 8).every((b, i) => b === sent[4 + i])) {
        floodStats.cookieRepliesValid++;
        if (floodStats.firstCookieAfterMs === null) floodStats.firstCookieAfterMs = now() - floodStart;
      }
    };
    floodSockets.forEach((sock, i) => sock.on('message', (msg) => onFloodMessage(i, msg)));
    const onSent = (err: Error | null): void => {
      if (err !== null) floodStats.sendErrors++;
    };
    const tick = (): void => {
      floodTimer = null;
      if (stopped) return;
      const t = now();
      if (floodStart < 0) {
        if (flood.kind === 'replay') {
          if (replayPacket === null) {
            floodTimer = setTimeout(tick, FLOOD_TICK_MS); // initiator 0 has not sent yet
            return;
          }
          packets = [replayPacket];
        } else {
          packets = floodSockets.map(() => junk());
        }
        floodStart = t;
        floodStats.startWallMs = Date.now();
      }
      const elapsed = t - floodStart;
      const target = Math.floor((Math.min(elapsed, flood.durationMs) * flood.ratePerSecond) / 1000);
      for (; floodStats.sent < target; floodStats.sent++) {
        const k = next++ % floodSockets.length;
        floodSockets[k]!.send(packets[k % packets.length]!, opts.targetPort, opts.targetAddress, onSent);
      }
      if (elapsed < flood.durationMs) {
        floodTimer = setTimeout(tick, FLOOD_TICK_MS);
      } else {
        floodFinished = true;
        floodStats.endWallMs = Date.now();
        checkDone();
      }
    };
    floodTimer = setTimeout(tick, flood.startAfterMs);
  }

  // ── progress, deadline ──
  const progress = opts.progress;
  const progressTimer = progress !== undefined
    ? setInterval(() => {
      progress(
        `t=${((now() - t0) / 1000).toFixed(1)}s started=${stats.started}/${n} connected=${stats.connected} ` +
          `confirmed=${stats.confirmed} cookies=${stats.cookieReplies} retransmits=${stats.retransmits}` +
          (flood !== undefined ? ` flood sent=${floodStats.sent} cookie-replies=${floodStats.cookieReplies}` : ''),
      );
    }, 1000)
    : null;
  const deadline = setTimeout(finish, opts.deadlineMs);
  checkDone();
  await finished;

  stopped = true;
  const tEnd = now();
  clearTimeout(deadline);
  if (progressTimer !== null) clearInterval(progressTimer);
  if (launcher !== null) clearTimeout(launcher);
  if (launcherImmediate !== null) clearImmediate(launcherImmediate);
  if (floodTimer !== null) clearTimeout(floodTimer);
  for (const s of slots) if (s.timer !== null) clearTimeout(s.timer);
  const cpu = process.cpuUsage(cpu0);
  if (light) { // now the responses taken during the run: one that does not authenticate un-connects its initiator
    for (const s of slots) {
      if (s.connectedAt < 0 || s.ini.verifyDeferred()) continue;
      s.connectedAt = -1;
      stats.connected--;
      stats.doneCount--;
      stats.invalidReplies++;
    }
  }
  await Promise.all([...sockets, ...floodSockets].map((s) => new Promise<void>((r) => s.close(() => r()))));
  for (const ini of initiators) ini.destroy();
  for (const k of opts.privateKeys) k.fill(0);
  cache?.clearCache();

  const firstSent = slots.reduce((m, s) => (s.firstSentAt >= 0 ? Math.min(m, s.firstSentAt) : m), Infinity);
  const lastConnected = slots.reduce((m, s) => Math.max(m, s.connectedAt), -1);
  const lastConfirmed = slots.reduce((m, s) => Math.max(m, s.confirmedAt), -1);
  const connectSpan = lastConnected - firstSent;
  const confirmed = opts.data === 'ping' ? stats.confirmed : stats.connected;
  return {
    initiators: n,
    connected: stats.connected,
    confirmed,
    failed: n - stats.doneCount,
    elapsedMs: tEnd - t0,
    timeToAllConnectedMs: n > 0 && stats.connected === n ? connectSpan : null,
    timeToAllConfirmedMs:
      n > 0 && confirmed === n ? (opts.data === 'ping' ? lastConfirmed : lastConnected) - firstSent : null,
    handshakesPerSecond: stats.connected > 0 && connectSpan > 0 ? (stats.connected * 1000) / connectSpan : 0,
    initiations: stats.initiations,
    retransmits: stats.retransmits,
    cookieRetries: stats.cookieRetries,
    cookieReplies: stats.cookieReplies,
    staleReplies: stats.staleReplies,
    invalidReplies: stats.invalidReplies,
    dataSent: stats.dataSent,
    connectLatencyMs: percentiles(slots.filter((s) => s.connectedAt >= 0).map((s) => s.connectedAt - s.firstSentAt)),
    generatorCpuMs: (cpu.user + cpu.system) / 1000,
    flood: flood !== undefined ? floodStats : null,
  };
}
