// A legitimate peer gets through a handshake flood (issue 8 item 5), end to end against
// wireguard-go in network namespaces. wirepool runs in T; in G run the load generator
// (bench/handshake-load.js, from 64 source addresses) and two wireguard-go peers:
//   E  — established: a session before anything starts, pinging T through every phase;
//   F  — fresh: in each phase its session is removed (peer removed and re-added on its side)
//        and a ping makes it start a new handshake in the middle of the load.
// Phases:
//   A. 20,000 initiations/s with a valid mac1 (random content, zero mac2) — or as many as the
//      generator manages next to everything else on this machine (the rate reached is printed);
//   B. 1,000 real handshakes (configured initiator keys) from the same 64 addresses, all started
//      at once, so they are in flight together.
// In both: F's handshake completes within 6 s of its first initiation — under load the first
// initiation is answered with a cookie reply and wireguard-go's own retransmit 5 s later carries
// mac2 and is accepted (wireguard-go as the concentrator: 5.0–5.1 s) — and E loses ≤ 1 % of its
// pings. wirepool runs with one handshake worker (src/handshake-offload.ts; the default on this
// 2-vCPU host is none): in phase B the queue backs up and initiations are prepared there, none
// left to the main thread by a failed task. The flood always puts the device under load (cookie
// replies); 1,000 real handshakes do on a slow or busy host and not on a fast one, so phase B asks
// instead that no initiation goes unanswered (a retransmit only after a cookie reply). Everything
// is bounded: the flood by count and time, the generator by its deadline.
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { GEN_OUTER, LoadTarget, TARGET_INNER, TARGET_OUTER, TARGET_PORT } from '../bench/harness/load-target.js';
import { genKey, type Netns } from './helpers/netns.js';
import {
  configText, e2eSkipReason, METRICS_ADDR, METRICS_ARGS, pingUntilUp, removeStaleSockets, startWireguardGo, uniqueIfname, wg,
} from './helpers/tunnel.js';

const skip = e2eSkipReason({ wireguardGo: true, extra: ['ping'] });

const FLOOD_RATE = 20_000;
const FLOOD_MS = 9_000;
const REAL_HANDSHAKES = 1_000;
const SOURCES = 64;
/** F's inner address, and a second address of T that only F routes to (E routes TARGET_INNER). */
const FRESH_INNER = '10.64.0.3';
const FRESH_TARGET = '10.65.0.1';
const FRESH_PORT = 51822;
const HANDSHAKE_LIMIT_MS = 6_000;
const PING_INTERVAL_S = 0.05;

interface PingRun { sent: number; received: number; loss: number; lostSeqs: number[] }

/** `ping -c count -i interval` in ns (stops sending after count, waits 1 s for the last replies). */
async function pingRun(ns: Netns, dst: string, count: number): Promise<PingRun> {
  const r = await ns.exec('ping', ['-n', '-c', String(count), '-i', String(PING_INTERVAL_S), '-W', '1', dst], { timeoutMs: count * PING_INTERVAL_S * 1000 + 15_000 });
  const seqs = new Set([...r.stdout.matchAll(/icmp_seq=(\d+)/g)].map((m) => Number(m[1])));
  const lostSeqs: number[] = [];
  for (let s = 1; s <= count; s++) if (!seqs.has(s)) lostSeqs.push(s);
  return { sent: count, received: seqs.size, loss: lostSeqs.length / count, lostSeqs };
}

/**
 * F starts afresh: its peer (T) is removed and added again on its side, so it holds no session
 * and no cookie; then a ping through it. Resolves to the ms from the ping's start (its first packet
 * makes wireguard-go send the initiation) to the first echo reply (which needs the handshake done).
 */
async function freshHandshake(nsG: Netns, fif: string, targetKey: string, limitMs: number): Promise<number | null> {
  await wg(nsG, ['set', fif, 'peer', targetKey, 'remove']);
  await wg(nsG, ['set', fif, 'peer', targetKey, 'endpoint', `${TARGET_OUTER}:${TARGET_PORT}`, 'allowed-ips', `${FRESH_TARGET}/32`]);
  const start = Date.now();
  const r = await nsG.exec('ping', ['-n', '-D', '-i', '0.02', '-w', String(Math.ceil(limitMs / 1000) + 2), '-c', '1', FRESH_TARGET], { timeoutMs: limitMs + 10_000 });
  const m = /^\[(\d+\.\d+)\].*bytes from/m.exec(r.stdout);
  return m === null ? null : Number(m[1]) * 1000 - start;
}

/**
 * wirepool's drop counters by reason (inbound ones by their name, others as DIRECTION:reason) and
 * its initiations prepared off main (prepared:worker, prepared:main_fallback), from its metrics
 * endpoint in T.
 */
async function dropsByReason(ns: Netns): Promise<Map<string, number>> {
  const script = `fetch("http://${METRICS_ADDR}/metrics").then((r) => r.text()).then((t) => process.stdout.write(t), (e) => { console.error(String(e)); process.exit(1); })`;
  const r = await ns.exec(process.execPath, ['-e', script], { timeoutMs: 10_000 });
  const out = new Map<string, number>();
  for (const line of r.stdout.split('\n')) {
    const p = /^wireguard_handshake_initiations_prepared_total\{[^}]*where="([^"]+)"[^}]*\}\s+(\S+)/.exec(line);
    if (p !== null) out.set(`prepared:${p[1]}`, Number(p[2]));
    const m = /^wireguard_dropped_packets_total\{([^}]*)\}\s+(\S+)/.exec(line);
    const reason = m === null ? undefined : /reason="([^"]+)"/.exec(m[1]!)?.[1];
    if (reason === undefined) continue;
    const dir = /direction="([^"]+)"/.exec(m![1]!)?.[1];
    out.set(dir === 'inbound' ? reason : `${dir}:${reason}`, Number(m![2]));
  }
  return out;
}

/** Datagrams the kernel dropped for a full socket receive buffer in ns (nstat UdpRcvbufErrors), so far. */
async function rcvbufErrors(ns: Netns): Promise<number> {
  const r = await ns.exec('nstat', ['-az', 'UdpRcvbufErrors']);
  return Number(/UdpRcvbufErrors\s+(\d+)/.exec(r.stdout)?.[1] ?? NaN);
}

function delta(after: Map<string, number>, before: Map<string, number>, reason: string): number {
  return (after.get(reason) ?? 0) - (before.get(reason) ?? 0);
}

t.test('a legitimate peer gets through a handshake flood', { skip, timeout: 150_000 }, async (t) => {
  const lt = await LoadTarget.create({
    impl: 'wirepool', peers: REAL_HANDSHAKES, sources: SOURCES, legitPeer: true, prefix: 'hsflood',
    wirepoolArgs: [...METRICS_ARGS, '--handshake-workers', '1'],
  });
  const fif = uniqueIfname('hlf');
  t.teardown(async () => {
    await lt.destroy();
    removeStaleSockets([fif]);
  });
  const { nsT, nsG } = lt;

  // F: a second wireguard-go in G, a peer of T on its own inner addresses.
  const fKeys = genKey();
  await startWireguardGo(nsG, fif, { logLevel: 'error', timeoutMs: 15_000 });
  const fconf = path.join(lt.dir, 'fresh.conf');
  fs.writeFileSync(fconf, configText({
    privateKey: fKeys.privateKey, listenPort: FRESH_PORT,
    peers: [{ publicKey: lt.targetPublicKey, endpoint: `${TARGET_OUTER}:${TARGET_PORT}`, allowedIps: [`${FRESH_TARGET}/32`] }],
  }), { mode: 0o600 });
  await nsG.mustExec('wg', ['setconf', fif, fconf]);
  await nsG.ip(['addr', 'add', `${FRESH_INNER}/32`, 'dev', fif]);
  await nsG.ip(['link', 'set', 'dev', fif, 'up']);
  await nsG.ip(['route', 'add', `${FRESH_TARGET}/32`, 'dev', fif]);
  await wg(nsT, ['set', lt.ifname, 'peer', fKeys.publicKey, 'endpoint', `${GEN_OUTER}:${FRESH_PORT}`, 'allowed-ips', `${FRESH_INNER}/32`]);
  await nsT.ip(['addr', 'add', `${FRESH_TARGET}/32`, 'dev', lt.ifname]);

  t.ok(await pingUntilUp(nsG, TARGET_INNER, 15_000), 'E has a session');
  t.ok(await pingUntilUp(nsG, FRESH_TARGET, 15_000), 'F has a session (removed in each phase)');

  const phases = [
    {
      name: `junk flood, ${FLOOD_RATE}/s valid mac1 + zero mac2 from ${SOURCES} addresses`,
      args: ['--deadline', String(FLOOD_MS / 1000 + 5), '--data', 'none', '--flood', 'junk', '--flood-rate', String(FLOOD_RATE),
        '--flood-ms', String(FLOOD_MS), '--flood-sockets', String(SOURCES)],
      indices: [] as number[],
      pingMs: FLOOD_MS,
    },
    {
      name: `${REAL_HANDSHAKES} real handshakes from ${SOURCES} addresses in flight`,
      args: ['--deadline', '13', '--data', 'keepalive', '--rate', '0'],
      indices: Array.from({ length: REAL_HANDSHAKES }, (_, i) => i),
      pingMs: 10_000,
    },
  ];
  for (const phase of phases) {
    await t.test(phase.name, async (t) => {
      const before = await dropsByReason(nsT);
      const rcvbuf0 = await rcvbufErrors(nsT);
      const pings = pingRun(nsG, TARGET_INNER, Math.round(phase.pingMs / 1000 / PING_INTERVAL_S));
      // F starts when the generator reports its first second of load (its first progress line).
      let loadRunning!: () => void;
      const running = new Promise<void>((r) => (loadRunning = r));
      const gen = lt.runGenerator({ indices: phase.indices, args: phase.args, timeoutMs: 60_000, onProgress: () => loadRunning() });
      await Promise.race([running, new Promise((r) => setTimeout(r, 5_000))]);
      const handshakeMs = await freshHandshake(nsG, fif, lt.targetPublicKey, HANDSHAKE_LIMIT_MS);
      const [run, p] = await Promise.all([gen, pings]);
      const after = await dropsByReason(nsT);
      const rcvbuf = (await rcvbufErrors(nsT)) - rcvbuf0;
      const r = run.result;
      const f = r.flood;
      const rate = f !== null && f.startWallMs !== null && f.endWallMs !== null ? f.sent / ((f.endWallMs - f.startWallMs) / 1000) : 0;
      const drops = [...after.keys()].map((k) => [k, delta(after, before, k)] as const).filter(([k, v]) => v !== 0 && !k.startsWith('prepared:'));
      t.comment(
        (f !== null ? `flood: ${f.sent} sent (${rate.toFixed(0)}/s achieved, ${f.sendErrors} send errors), ${f.cookieReplies} cookie replies back; ` : '') +
          (phase.indices.length > 0 ? `initiators: ${r.connected}/${r.initiators} connected, ${r.cookieReplies} cookies, ${r.retransmits} retransmits; ` : '') +
          `F's handshake ${handshakeMs === null ? 'did not complete' : `${handshakeMs.toFixed(0)} ms`}; ` +
          `E ping ${p.received}/${p.sent} (${(p.loss * 100).toFixed(2)} % lost${p.lostSeqs.length > 0 ? ` at ${p.lostSeqs.slice(0, 10).map((s) => `${(s * PING_INTERVAL_S).toFixed(2)} s`).join(', ')}` : ''}); ` +
          `wirepool: CPU ${run.targetCpuMs.toFixed(0)} ms, drops ${drops.map(([k, v]) => `${k} ${v}`).join(', ') || 'none'}, socket buffer overflows ${rcvbuf}; ` +
          `load average ${fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`,
      );
      t.ok(handshakeMs !== null && handshakeMs <= HANDSHAKE_LIMIT_MS, `F's fresh handshake completed within ${HANDSHAKE_LIMIT_MS} ms`);
      t.ok(p.loss <= 0.01, 'E lost at most 1 % of its pings');
      t.equal(delta(after, before, 'queue_full'), 0, 'no handshake message dropped for a full queue');
      if (f !== null) {
        t.ok(delta(after, before, 'cookie_required') > 0, 'the load brought cookies into play');
        t.ok(f.sent > 0 && f.cookieReplies > 0, 'the flood was sent and answered with cookie replies');
        t.equal(f.cookieRepliesValid, f.cookieReplies, 'every cookie reply decrypts with the cookie key and the mac1 sent');
      } else {
        t.equal(r.connected, REAL_HANDSHAKES, 'the real handshakes complete too');
        // Whether 1,000 at once put the device under load depends on how fast this host answers them
        // (cookies for most of them, or none); either way no initiation may go unanswered without a
        // reason: a cookie reply, or (under load, 16 initiators share each source address) the
        // per-source rate limiter's counted drop (spec §7).
        const limited = delta(after, before, 'rate_limited');
        t.ok(r.retransmits <= r.cookieReplies + limited,
          `every retransmit followed a cookie reply or a counted rate-limit drop (${r.retransmits} retransmits, ${r.cookieReplies} cookies, ${limited} rate-limited)`);
        t.ok(delta(after, before, 'prepared:worker') > 0, 'initiations were prepared by the handshake worker');
        t.equal(delta(after, before, 'prepared:main_fallback'), 0, 'no worker task failed');
      }
      t.ok(lt.alive(), 'wirepool still running');
    });
  }
});
