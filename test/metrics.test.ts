// The metrics registry against a MetricsSource over a real engine (real peers, allowed-IPs
// trie, counters): exposition text parsed back and checked series by series — names, types,
// labels (MindFlavor-compatible set, opt-in endpoint labels, the mdlayher family), values
// read from the shared counters, label escaping, a removed peer's series gone, no key
// material but public keys, handshake results and the duration histogram, drops by reason;
// `promtool check metrics` on the output when promtool is installed; the HTTP endpoint;
// the config-comment settings.

import t from 'tap';
import { spawnSync } from 'node:child_process';
import http from 'node:http';
import { MESSAGE_COOKIE_REPLY, MESSAGE_INITIATION, MESSAGE_RESPONSE } from '../src/constants.js';
import { nodeCrypto } from '../src/crypto/crypto.js';
import {
  CW_BUSY_NS, CW_OPENED, CW_SEALED, Drop, R_PACKETS, R_READS, R_SUPER, STAT_READER, STAT_UDP_READER, U_CALLS, U_DATAGRAMS, U_FAST, U_FULL_WAITS, U_INLINE_OPENED, STAT_MAIN, MAIN_INLINE_SEALED, MAIN_UDP_GIVEN, MAIN_TUN_TAKEN, statDrop, statReader, statWorker, tunRingId,
} from '../src/dataplane/layout.js';
import { parseMetricsConfig, resolveMetricsSettings } from '../src/metrics/config.js';
import { ATTEMPT_TIMEOUT_MS, HANDSHAKE_DURATION_BUCKETS } from '../src/metrics/handshakes.js';
import { PEERS_PER_CHUNK } from '../src/metrics/peer-families.js';
import { WirepoolMetrics, type MetricsOptions } from '../src/metrics/registry.js';
import { MetricsServer, parseListenAddress } from '../src/metrics/server.js';
import { parsePrefix } from '../src/protocol/allowedips.js';
import { DROP_REASONS, Direction } from '../src/protocol/drops.js';
import { endpointFromAddress } from '../src/protocol/endpoint.js';
import { type Peer, Stat, STATS_PER_PEER } from '../src/protocol/peer.js';
import { EngineMetricsSource } from './helpers/metrics-source.js';
import { type Exposition, one, parseExposition, series } from './helpers/exposition.js';
import { countTurns } from './helpers/event-loop.js';

// ───────────── fixture ─────────────

const b64 = (k: Uint8Array): string => Buffer.from(k).toString('base64');
const WALL_NOW = 1_800_000_000_000; // fixed wall clock for the registry (ms)
const NASTY_NAME = 'ali"ce \\ laptop\nline2';

interface Fixture {
  src: EngineMetricsSource;
  privateKey: Uint8Array;
  psk: Uint8Array;
  a: Peer; // two allowed IPs, friendly name, endpoint, handshake, counters
  b: Peer; // no allowed IPs, never handshaken
  c: Peer; // IPv6 endpoint
}

function fixture(): Fixture {
  const src = new EngineMetricsSource('wg0');
  const privateKey = nodeCrypto.randomBytes(32);
  src.engine.setPrivateKey(privateKey);
  const psk = nodeCrypto.randomBytes(32);
  const e = src.engine;
  const a = e.addPeer(nodeCrypto.randomBytes(32));
  const b = e.addPeer(nodeCrypto.randomBytes(32));
  const c = e.addPeer(nodeCrypto.randomBytes(32));
  e.setPresharedKey(a, psk);
  for (const [p, prefix] of [[a, '10.0.0.2/32'], [a, 'fd00::2/128'], [c, '10.0.0.3/32']] as const) {
    const pf = parsePrefix(prefix)!;
    e.allowedIPs.insert(pf.addr, pf.cidr, p);
  }
  e.setEndpoint(a, endpointFromAddress('198.51.100.7', 51820)!);
  e.setEndpoint(c, endpointFromAddress('2001:db8::7', 4500)!);
  a.lastHandshakeWall = WALL_NOW - 42_500;
  c.lastHandshakeWall = WALL_NOW - 200_000; // older than 180 s: not active
  const s = a.id * STATS_PER_PEER;
  e.stats[s + Stat.TxBytes] = 123_456;
  e.stats[s + Stat.RxBytes] = 654_321;
  e.stats[s + Stat.TxPackets] = 77;
  e.stats[s + Stat.RxPackets] = 88;
  return { src, privateKey, psk, a, b, c };
}

async function scrape(src: EngineMetricsSource, opts: MetricsOptions = {}): Promise<{ text: string; e: Exposition }> {
  const m = new WirepoolMetrics(src, { wallNow: () => WALL_NOW, processMetrics: false, ...opts });
  const text = await m.metrics();
  return { text, e: parseExposition(text) };
}

// ───────────── tests ─────────────

t.test('MindFlavor-compatible per-peer series: names, types, labels, values', async (t) => {
  const f = fixture();
  const names = new Map([[b64(f.a.publicKey), NASTY_NAME]]);
  const { e } = await scrape(f.src, { friendlyNames: names });
  t.equal(e.types.get('wireguard_sent_bytes_total'), 'counter');
  t.equal(e.types.get('wireguard_received_bytes_total'), 'counter');
  t.equal(e.types.get('wireguard_latest_handshake_seconds'), 'gauge');
  t.equal(e.types.get('wireguard_latest_handshake_delay_seconds'), 'gauge');
  for (const name of ['wireguard_sent_bytes_total', 'wireguard_received_bytes_total', 'wireguard_latest_handshake_seconds', 'wireguard_latest_handshake_delay_seconds']) {
    t.equal(series(e, name).length, 3, `${name}: one series per peer`);
  }
  const aSent = one(e, 'wireguard_sent_bytes_total', { public_key: b64(f.a.publicKey) });
  t.same(aSent.labels, { interface: 'wg0', public_key: b64(f.a.publicKey), allowed_ips: '10.0.0.2/32,fd00::2/128', friendly_name: NASTY_NAME },
    'labels exactly interface, public_key, allowed_ips (comma-joined), friendly_name; escaped value parses back to the original');
  t.equal(aSent.value, 123_456);
  t.equal(one(e, 'wireguard_received_bytes_total', { public_key: b64(f.a.publicKey) }).value, 654_321);
  t.equal(one(e, 'wireguard_latest_handshake_seconds', { public_key: b64(f.a.publicKey) }).value, Math.floor((WALL_NOW - 42_500) / 1000));
  t.equal(one(e, 'wireguard_latest_handshake_delay_seconds', { public_key: b64(f.a.publicKey) }).value, 42.5);
  const bSent = one(e, 'wireguard_sent_bytes_total', { public_key: b64(f.b.publicKey) });
  t.same(bSent.labels, { interface: 'wg0', public_key: b64(f.b.publicKey), allowed_ips: '(none)' }, 'no friendly_name label when none is known');
  t.equal(bSent.value, 0);
  t.equal(one(e, 'wireguard_latest_handshake_seconds', { public_key: b64(f.b.publicKey) }).value, 0, 'never = 0');
  t.equal(one(e, 'wireguard_latest_handshake_delay_seconds', { public_key: b64(f.b.publicKey) }).value, WALL_NOW / 1000, 'never: age since the epoch, as time() - 0');
  t.notOk(e.samples.some((s) => 'remote_ip' in s.labels || 'remote_port' in s.labels), 'no endpoint labels by default');
  t.notOk(e.samples.some((s) => s.name.startsWith('wireguard_peer_transmit') || s.name === 'wireguard_peer_info'), 'no mdlayher family by default');
  t.equal(one(e, 'wireguard_peer_sent_packets_total', { public_key: b64(f.a.publicKey) }).value, 77);
  const rp = one(e, 'wireguard_peer_received_packets_total', { public_key: b64(f.a.publicKey) });
  t.equal(rp.value, 88);
  t.same(rp.labels, { interface: 'wg0', public_key: b64(f.a.publicKey), friendly_name: NASTY_NAME });
});

t.test('escaping: the raw text has the three escapes and no raw newline inside a label', async (t) => {
  const f = fixture();
  const { text } = await scrape(f.src, { friendlyNames: new Map([[b64(f.a.publicKey), NASTY_NAME]]) });
  t.ok(text.includes('friendly_name="ali\\"ce \\\\ laptop\\nline2"'), 'quote, backslash and newline escaped');
  for (const line of text.split('\n')) if (line !== '' && !line.startsWith('#')) t.match(line, /^[a-z_]+(\{.*\})? \S+$/, 'one sample per line');
});

t.test('endpoint labels are opt-in; the mdlayher family is an option', async (t) => {
  const f = fixture();
  const { e } = await scrape(f.src, { endpointLabels: true, mdlayher: true, friendlyNames: new Map([[b64(f.a.publicKey), 'alice']]) });
  const a = one(e, 'wireguard_sent_bytes_total', { public_key: b64(f.a.publicKey) });
  t.equal(a.labels.remote_ip, '198.51.100.7');
  t.equal(a.labels.remote_port, '51820');
  t.equal(one(e, 'wireguard_sent_bytes_total', { public_key: b64(f.c.publicKey) }).labels.remote_ip, '2001:db8::7');
  t.notOk('remote_ip' in one(e, 'wireguard_sent_bytes_total', { public_key: b64(f.b.publicKey) }).labels, 'no endpoint: no endpoint labels');
  t.equal(e.types.get('wireguard_peer_receive_bytes_total'), 'counter');
  t.equal(e.types.get('wireguard_peer_transmit_bytes_total'), 'counter');
  t.equal(e.types.get('wireguard_peer_last_handshake_seconds'), 'gauge');
  const rx = one(e, 'wireguard_peer_receive_bytes_total', { public_key: b64(f.a.publicKey) });
  t.same(rx.labels, { device: 'wg0', public_key: b64(f.a.publicKey) });
  t.equal(rx.value, 654_321);
  t.equal(one(e, 'wireguard_peer_transmit_bytes_total', { public_key: b64(f.a.publicKey) }).value, 123_456);
  t.same(one(e, 'wireguard_peer_info', { public_key: b64(f.a.publicKey) }).labels, { device: 'wg0', public_key: b64(f.a.publicKey), endpoint: '198.51.100.7:51820', name: 'alice' });
  t.equal(one(e, 'wireguard_peer_info', { public_key: b64(f.c.publicKey) }).labels.endpoint, '[2001:db8::7]:4500');
  t.same(series(e, 'wireguard_peer_allowed_ips_info', { public_key: b64(f.a.publicKey) }).map((s) => [s.labels.allowed_ips, s.labels.family]),
    [['10.0.0.2/32', 'IPv4'], ['fd00::2/128', 'IPv6']]);
  const dev = one(e, 'wireguard_device_info');
  t.equal(dev.labels.device, 'wg0', 'device_info carries mdlayher\'s device label');
  t.equal(dev.labels.public_key, b64(f.src.engine.publicKey!));
});

t.test('a removed peer\'s series disappear at the next scrape', async (t) => {
  const f = fixture();
  const m = new WirepoolMetrics(f.src, { wallNow: () => WALL_NOW, processMetrics: false, mdlayher: true });
  const before = parseExposition(await m.metrics());
  const key = b64(f.b.publicKey);
  t.ok(before.samples.filter((s) => s.labels.public_key === key).length >= 6, 'peer b present');
  f.src.engine.removePeer(f.b);
  const after = parseExposition(await m.metrics());
  t.equal(after.samples.filter((s) => s.labels.public_key === key).length, 0, 'no series of peer b left');
  t.equal(series(after, 'wireguard_sent_bytes_total').length, 2);
  t.equal(one(after, 'wireguard_peers', { state: 'configured' }).value, 2);
  // A new peer that takes b's id starts from zero.
  const d = f.src.engine.addPeer(nodeCrypto.randomBytes(32));
  t.equal(d.id, f.b.id, 'id reused');
  const again = parseExposition(await m.metrics());
  t.equal(one(again, 'wireguard_sent_bytes_total', { public_key: b64(d.publicKey) }).value, 0);
});

t.test('many peers: the scrape gives the event loop turns between chunks of peers, and a peer is in every family or in none', async (t) => {
  const src = new EngineMetricsSource('wg0', { maxPeers: 6 * PEERS_PER_CHUNK });
  src.engine.setPrivateKey(nodeCrypto.randomBytes(32));
  const peers: Peer[] = [];
  for (let i = 0; i < 6 * PEERS_PER_CHUNK; i++) {
    const p = src.engine.addPeer(nodeCrypto.randomBytes(32));
    src.engine.stats[p.id * STATS_PER_PEER + Stat.TxBytes] = 1000 + i;
    peers.push(p);
  }
  const m = new WirepoolMetrics(src, { wallNow: () => WALL_NOW, processMetrics: false, mdlayher: true });
  // Turns of the event loop while one scrape is pending (the data plane's wake-ups run in such turns).
  const turns = countTurns();
  const early = peers[1]!;
  const late = peers[peers.length - 2]!;
  const scrape = m.metrics();
  // After the first chunk's snapshot: the late peer goes before its row is read, the early one after.
  await new Promise<void>((r) => setImmediate(r));
  src.engine.removePeer(late);
  src.engine.removePeer(early);
  const e = parseExposition(await scrape);
  turns.stop();
  const families = 6 + 5; // compatible + extended, mdlayher
  t.ok(turns.now >= families, `the event loop turned ${turns.now} times during one scrape of ${peers.length} peers (≥ ${families})`);
  const of = (p: Peer): number => e.samples.filter((x) => x.labels.public_key === b64(p.publicKey)).length;
  t.equal(of(late), 0, 'a peer removed before its row was read: in no family');
  t.equal(of(early), 5 + 5, 'a peer removed after its row was read: in every per-peer family (no allowed IP: none of that info family)');
  t.equal(series(e, 'wireguard_sent_bytes_total').length, peers.length - 1);
  t.equal(one(e, 'wireguard_sent_bytes_total', { public_key: b64(early.publicKey) }).value, 1001, 'its values as read with its row');
});

t.test('no key material other than public keys', async (t) => {
  const f = fixture();
  const { text } = await scrape(f.src, { endpointLabels: true, mdlayher: true, processMetrics: true });
  const publicKeys = new Set([f.src.engine.publicKey!, f.a.publicKey, f.b.publicKey, f.c.publicKey].map(b64));
  for (const secret of [f.privateKey, f.psk]) {
    const buf = Buffer.from(secret);
    for (const form of [buf.toString('base64'), buf.toString('hex'), buf.toString('base64url'), buf.toString('hex').toUpperCase()]) {
      t.notOk(text.includes(form), 'secret not in output');
    }
    t.notOk(text.includes(buf.subarray(0, 12).toString('base64').slice(0, 16)), 'not even a prefix of it');
  }
  // Every 32-byte base64 value in the output is one of the public keys.
  const found = new Set(text.match(/[A-Za-z0-9+/]{43}=/g) ?? []);
  t.ok(found.size >= 4);
  for (const k of found) t.ok(publicKeys.has(k), `${k} is a public key`);
});

t.test('device-wide series: info, peers, drops, queues, workers, UAPI, config', async (t) => {
  const f = fixture();
  const e0 = f.src.engine;
  e0.drops.count(Direction.Inbound, 'replay', 3);
  e0.drops.count(Direction.Inbound, 'invalid_mac');
  e0.drops.count(Direction.Outbound, 'no_peer_for_destination', 5);
  const dp = f.src.dataplane;
  dp.stats[statWorker(1) + CW_BUSY_NS] = 2.5e9;
  dp.stats[statWorker(1) + CW_SEALED] = 10;
  dp.stats[statWorker(1) + CW_OPENED] = 20;
  dp.stats[STAT_READER + R_PACKETS] = 30;
  dp.stats[STAT_READER + R_READS] = 3;
  dp.stats[STAT_READER + R_SUPER] = 2;
  dp.stats[STAT_UDP_READER + U_CALLS] = 4;
  dp.stats[STAT_UDP_READER + U_DATAGRAMS] = 40;
  dp.stats[STAT_UDP_READER + U_FAST] = 38;
  dp.stats[STAT_UDP_READER + U_FULL_WAITS] = 5;
  dp.stats[STAT_UDP_READER + U_INLINE_OPENED] = 7;
  dp.stats[STAT_MAIN + MAIN_INLINE_SEALED] = 6;
  dp.stats[STAT_MAIN + MAIN_TUN_TAKEN] = 9;
  dp.stats[STAT_MAIN + MAIN_UDP_GIVEN] = 4;
  dp.ringInFlight[2] = 17;
  f.src.handshakeQueue = { length: 200, capacity: 1024, underLoad: true, workers: { inFlight: 12, capacity: 64, prepared: 900, fallback: 16 } };
  f.src.uapiRequests.set('get:0', 4).set('set:-22', 1);
  f.src.configReloads.set('ok', 1);
  f.src.lastConfigReloadSuccess = 1_700_000_000_500;
  const { e } = await scrape(f.src);
  t.same(one(e, 'wireguard_device_info').labels, { interface: 'wg0', public_key: b64(e0.publicKey!), listen_port: '51820', fwmark: '0' });
  t.equal(one(e, 'wireguard_build_info').value, 1);
  t.equal(one(e, 'wireguard_peers', { state: 'configured' }).value, 3);
  t.equal(one(e, 'wireguard_peers', { state: 'active' }).value, 1, 'only a (42 s ago); c is 200 s old, b never');
  t.equal(e.types.get('wireguard_dropped_packets_total'), 'counter');
  t.equal(series(e, 'wireguard_dropped_packets_total').length, 2 * DROP_REASONS.length, 'every reason × direction, zeros included');
  t.equal(one(e, 'wireguard_dropped_packets_total', { direction: 'inbound', reason: 'replay' }).value, 3);
  t.equal(one(e, 'wireguard_dropped_packets_total', { direction: 'inbound', reason: 'invalid_mac' }).value, 1);
  t.equal(one(e, 'wireguard_dropped_packets_total', { direction: 'outbound', reason: 'no_peer_for_destination' }).value, 5);
  t.equal(one(e, 'wireguard_dropped_packets_total', { direction: 'outbound', reason: 'replay' }).value, 0);
  t.equal(one(e, 'wireguard_under_load').value, 1);
  t.equal(one(e, 'wireguard_queue_depth', { queue: 'recv' }).value, 17);
  t.equal(one(e, 'wireguard_queue_depth', { queue: 'handshake' }).value, 200);
  t.equal(one(e, 'wireguard_queue_capacity', { queue: 'local' }).value, 256);
  t.equal(one(e, 'wireguard_queue_capacity', { queue: 'handshake' }).value, 1024);
  t.equal(one(e, 'wireguard_queue_depth', { queue: 'handshake_workers' }).value, 12);
  t.equal(one(e, 'wireguard_queue_capacity', { queue: 'handshake_workers' }).value, 64);
  t.equal(one(e, 'wireguard_handshake_initiations_prepared_total', { where: 'worker' }).value, 900);
  t.equal(one(e, 'wireguard_handshake_initiations_prepared_total', { where: 'main_fallback' }).value, 16);
  t.equal(one(e, 'wireguard_worker_busy_seconds_total', { worker: '1' }).value, 2.5);
  t.equal(one(e, 'wireguard_worker_busy_seconds_total', { worker: '0' }).value, 0);
  t.equal(series(e, 'wireguard_worker_busy_seconds_total').length, 2, 'one series per worker');
  t.equal(one(e, 'wireguard_worker_packets_total', { worker: '1', direction: 'outbound' }).value, 10);
  t.equal(one(e, 'wireguard_worker_packets_total', { worker: '1', direction: 'inbound' }).value, 20);
  t.equal(one(e, 'wireguard_tun_packets_total', { direction: 'outbound' }).value, 30);
  t.equal(one(e, 'wireguard_dataplane_io_calls_total', { call: 'tun_read' }).value, 3, '30 packets in 3 reads');
  t.equal(one(e, 'wireguard_dataplane_io_calls_total', { call: 'udp_recv' }).value, 4);
  t.equal(one(e, 'wireguard_dataplane_io_calls_total', { call: 'tun_write' }).value, 0);
  t.equal(one(e, 'wireguard_udp_received_datagrams_total', { kind: 'all' }).value, 40);
  t.equal(one(e, 'wireguard_udp_received_datagrams_total', { kind: 'keyed' }).value, 38);
  t.equal(one(e, 'wireguard_tun_gso_superpackets_total').value, 2);
  t.equal(one(e, 'wireguard_dataplane_inline_crypto_total', { kind: 'main_seal' }).value, 6);
  t.equal(one(e, 'wireguard_dataplane_inline_crypto_total', { kind: 'udp_reader_open' }).value, 7);
  t.equal(one(e, 'wireguard_dataplane_intake_handoffs_total', { input: 'tun', to: 'main' }).value, 9);
  t.equal(one(e, 'wireguard_dataplane_intake_handoffs_total', { input: 'udp', to: 'thread' }).value, 4);
  t.equal(one(e, 'wireguard_dataplane_intake_handoffs_total', { input: 'udp', to: 'main' }).value, 0);
  t.equal(one(e, 'wireguard_dataplane_backpressure_waits_total', { thread: 'udp_reader' }).value, 5);
  t.equal(one(e, 'wireguard_dataplane_backpressure_waits_total', { thread: 'tun_reader' }).value, 0);
  t.same(one(e, 'wireguard_uapi_requests_total', { op: 'set' }).labels, { interface: 'wg0', op: 'set', result: 'error', errno: '-22' });
  t.equal(one(e, 'wireguard_uapi_requests_total', { op: 'get', result: 'ok' }).value, 4);
  t.equal(one(e, 'wireguard_config_reloads_total', { result: 'ok' }).value, 1);
  t.equal(one(e, 'wireguard_config_last_reload_success_timestamp_seconds').value, 1_700_000_000.5);
  for (const s of e.samples) if (s.name !== 'wireguard_build_info') t.equal(s.labels.interface ?? s.labels.device, 'wg0', `${s.name} has the interface label`);
});

t.test("TUN queues: a send ring and a reader row each; the readers' counters summed and per queue", async (t) => {
  const f = fixture();
  const dp = f.src.dataplane;
  dp.tunQueues = 2;
  dp.ringSlots.push(1024); // ring 3: queue 1's send ring
  dp.ringInFlight.push(5);
  dp.stats[statReader(0) + R_PACKETS] = 30;
  dp.stats[statReader(1) + R_PACKETS] = 12;
  dp.stats[statReader(0) + R_READS] = 3;
  dp.stats[statReader(1) + R_READS] = 2;
  dp.stats[statDrop(tunRingId(1), Drop.HOOK_ERROR)] = 1;
  const { e } = await scrape(f.src);
  t.equal(one(e, 'wireguard_tun_packets_total', { direction: 'outbound' }).value, 42, 'both readers\' packets');
  t.equal(one(e, 'wireguard_tun_queue_read_packets_total', { queue: '0' }).value, 30);
  t.equal(one(e, 'wireguard_tun_queue_read_packets_total', { queue: '1' }).value, 12);
  t.equal(one(e, 'wireguard_dataplane_io_calls_total', { call: 'tun_read' }).value, 5);
  t.equal(one(e, 'wireguard_queue_depth', { queue: 'tun1' }).value, 5, 'queue 1\'s ring is "tun1"');
  t.equal(one(e, 'wireguard_queue_capacity', { queue: 'tun1' }).value, 1024);
  t.equal(one(e, 'wireguard_dataplane_errors_total', { ring: 'tun1', kind: 'hook_error' }).value, 1);
});

t.test('handshake results, messages and the duration histogram', async (t) => {
  const f = fixture();
  const hs = f.src.handshakeStats;
  const id = f.a.id;
  // Initiator: initiation out at 1000, a retry at 6100 (the first timed out), response at 6140.
  f.src.monoNow = 1000;
  hs.message(MESSAGE_INITIATION, Direction.Outbound, id);
  f.src.monoNow = 6100;
  hs.message(MESSAGE_INITIATION, Direction.Outbound, id);
  f.src.monoNow = 6140;
  hs.message(MESSAGE_RESPONSE, Direction.Inbound, id);
  hs.completed(id, true);
  // Responder: initiation accepted at 7000, confirmed at 7300.
  f.src.monoNow = 7000;
  hs.message(MESSAGE_INITIATION, Direction.Inbound, f.c.id);
  hs.message(MESSAGE_RESPONSE, Direction.Outbound, f.c.id);
  f.src.monoNow = 7300;
  hs.completed(f.c.id, false);
  // Responder attempt that never completes; an initiation and a response refused; a cookie reply sent.
  f.src.monoNow = 8000;
  hs.message(MESSAGE_INITIATION, Direction.Inbound, f.b.id);
  hs.rejected(MESSAGE_INITIATION);
  hs.rejected(MESSAGE_RESPONSE);
  hs.message(MESSAGE_COOKIE_REPLY, Direction.Outbound, -1);
  let { e } = await scrape(f.src);
  const r = (role: string, result: string): number => one(e, 'wireguard_handshakes_total', { role, result }).value;
  t.equal(r('initiator', 'ok'), 1);
  t.equal(r('initiator', 'timeout'), 1, 'the retried attempt');
  t.equal(r('initiator', 'rejected'), 1);
  t.equal(r('responder', 'ok'), 1);
  t.equal(r('responder', 'timeout'), 0, 'b\'s attempt is still open');
  t.equal(r('responder', 'rejected'), 1);
  f.src.monoNow = 8000 + ATTEMPT_TIMEOUT_MS;
  ({ e } = await scrape(f.src));
  t.equal(r('responder', 'timeout'), 1, 'swept at scrape time once older than the timeout');
  t.equal(hs.openAttempts('responder'), 0);

  const msg = (type: string, direction: string): number => one(e, 'wireguard_handshake_messages_total', { type, direction }).value;
  t.equal(msg('initiation', 'outbound'), 2);
  t.equal(msg('initiation', 'inbound'), 2);
  t.equal(msg('response', 'inbound'), 1);
  t.equal(msg('response', 'outbound'), 1);
  t.equal(msg('cookie_reply', 'outbound'), 1);
  t.equal(msg('cookie_reply', 'inbound'), 0);

  t.equal(e.types.get('wireguard_handshake_duration_seconds'), 'histogram');
  const buckets = series(e, 'wireguard_handshake_duration_seconds_bucket', { role: 'initiator' });
  t.same(buckets.map((b) => b.labels.le), [...HANDSHAKE_DURATION_BUCKETS.map(String), '+Inf']);
  t.equal(HANDSHAKE_DURATION_BUCKETS[HANDSHAKE_DURATION_BUCKETS.length - 1], 5, 'buckets reach 5 s');
  // 40 ms for the initiator: in le=0.05 and above, not in le=0.025.
  for (const b of buckets) t.equal(b.value, Number(b.labels.le === '+Inf' ? Infinity : b.labels.le) >= 0.04 ? 1 : 0, `initiator le=${b.labels.le}`);
  t.equal(one(e, 'wireguard_handshake_duration_seconds_count', { role: 'initiator' }).value, 1);
  t.equal(one(e, 'wireguard_handshake_duration_seconds_sum', { role: 'initiator' }).value, 0.04);
  // 300 ms for the responder.
  for (const b of series(e, 'wireguard_handshake_duration_seconds_bucket', { role: 'responder' })) {
    t.equal(b.value, Number(b.labels.le === '+Inf' ? Infinity : b.labels.le) >= 0.3 ? 1 : 0, `responder le=${b.labels.le}`);
  }
  t.equal(one(e, 'wireguard_handshake_duration_seconds_sum', { role: 'responder' }).value, 0.3);
});

const promtoolSkip = spawnSync('promtool', ['--version'], { encoding: 'utf8' }).error ? 'promtool not installed (Debian package prometheus)' : false;

t.test('promtool check metrics passes on the output', { skip: promtoolSkip }, async (t) => {
  const f = fixture();
  f.src.handshakeStats.completed(f.a.id, true);
  for (const opts of [{}, { endpointLabels: true, mdlayher: true, processMetrics: true, friendlyNames: new Map([[b64(f.a.publicKey), NASTY_NAME]]) }] as MetricsOptions[]) {
    const { text } = await scrape(f.src, opts);
    const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8', timeout: 20_000 });
    t.equal(r.status, 0, `promtool check metrics with ${JSON.stringify(Object.keys(opts))}: ${r.stdout}${r.stderr}`);
  }
  // And promtool does catch problems here (the check can fail).
  const bad = spawnSync('promtool', ['check', 'metrics'], { input: '# HELP x_total a\n# TYPE x_total gauge\nx_total 1\n', encoding: 'utf8' });
  t.not(bad.status, 0, 'a gauge named _total is rejected');
});

t.test('HTTP endpoint: GET /metrics (streamed), HEAD, 404 elsewhere, 405 for other methods', async (t) => {
  const f = fixture();
  const m = new WirepoolMetrics(f.src, { processMetrics: false, wallNow: () => WALL_NOW });
  const server = await MetricsServer.listen({ host: '127.0.0.1', port: 0 }, m);
  t.teardown(() => server.close());
  const get = (path: string, method = 'GET'): Promise<{ status: number; type: string; body: string; chunked: boolean }> =>
    new Promise((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: server.port, path, method }, (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (c: string) => (body += c)).on('end', () => resolve({
          status: res.statusCode ?? 0, type: String(res.headers['content-type']), body, chunked: res.headers['transfer-encoding'] === 'chunked',
        }));
      });
      req.on('error', reject).end();
    });
  const ok = await get('/metrics');
  t.equal(ok.status, 200);
  t.equal(ok.type, 'text/plain; version=0.0.4; charset=utf-8');
  t.equal(series(parseExposition(ok.body), 'wireguard_sent_bytes_total').length, 3);
  t.ok(ok.chunked, 'written piece by piece as made (chunked), never held whole');
  t.equal(ok.body, Buffer.concat(await m.exposition()).toString('utf8'), 'the same text the registry makes');
  const head = await get('/metrics', 'HEAD');
  t.same([head.status, head.type, head.body], [200, 'text/plain; version=0.0.4; charset=utf-8', ''], 'HEAD: the headers only');
  t.equal((await get('/metrics?x=1')).status, 200);
  t.equal((await get('/')).status, 404);
  t.equal((await get('/metrics', 'POST')).status, 405);
});

t.test('HTTP endpoint: a client that reads slowly gets the whole exposition; the writer waits for it', async (t) => {
  const src = new EngineMetricsSource('wg0', { maxPeers: 20_000 });
  src.engine.setPrivateKey(nodeCrypto.randomBytes(32));
  for (let i = 0; i < 20_000; i++) {
    const pf = parsePrefix(`10.${i >> 8}.${i & 255}.1/32`)!;
    src.engine.allowedIPs.insert(pf.addr, pf.cidr, src.engine.addPeer(nodeCrypto.randomBytes(32)));
  }
  const m = new WirepoolMetrics(src, { processMetrics: false, wallNow: () => WALL_NOW });
  const server = await MetricsServer.listen({ host: '127.0.0.1', port: 0 }, m);
  t.teardown(() => server.close());
  const warnings: string[] = [];
  const onWarning = (w: Error): void => { warnings.push(w.name); };
  process.on('warning', onWarning);
  t.teardown(() => { process.off('warning', onWarning); });
  const body = await new Promise<string>((resolve, reject) => {
    http.get({ host: '127.0.0.1', port: server.port, path: '/metrics' }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.pause(); // a slow reader: the socket fills and the server must wait for it
      setTimeout(() => res.resume(), 300);
      res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    }).on('error', reject);
  });
  t.equal(series(parseExposition(body), 'wireguard_sent_bytes_total').length, 20_000, 'every peer, once');
  t.equal(body, Buffer.concat(await m.exposition()).toString('utf8'), 'the whole text');
  t.same(warnings, [], 'no warning (a listener per wait would pile up)');
});

t.test('listen addresses', async (t) => {
  t.same(parseListenAddress('127.0.0.1:9586'), { host: '127.0.0.1', port: 9586 });
  t.same(parseListenAddress('[::1]:9586'), { host: '::1', port: 9586 });
  t.same(parseListenAddress('localhost:1'), { host: 'localhost', port: 1 });
  for (const bad of ['9586', '127.0.0.1:0', '127.0.0.1:65536', '::1:9586', ':9586', '127.0.0.1:x', '[::1', '[::1]']) t.throws(() => parseListenAddress(bad), { name: 'RangeError' }, bad);
  t.throws(() => parseListenAddress('[::1'), { message: 'metrics address "[::1": no "]" after the IPv6 address: write it as [ADDR]:PORT, like [::1]:9586' });
});

t.test('a metrics address in use: the error says it is the metrics endpoint', async (t) => {
  const f = fixture();
  const m = new WirepoolMetrics(f.src, { processMetrics: false });
  const first = await MetricsServer.listen({ host: '127.0.0.1', port: 0 }, m);
  t.teardown(() => first.close());
  await t.rejects(MetricsServer.listen(`127.0.0.1:${first.port}`, m),
    { message: `metrics endpoint 127.0.0.1:${first.port}: the address is already in use (EADDRINUSE): choose another --metrics or # Metrics = address` });
});

t.test('reconfigure (a config reload): friendly names, endpoint labels and the mdlayher family change at the next scrape', async (t) => {
  const f = fixture();
  const key = b64(f.a.publicKey);
  const m = new WirepoolMetrics(f.src, { wallNow: () => WALL_NOW, processMetrics: false, friendlyNames: new Map([[key, 'alice']]) });
  const scrapeNow = async (): Promise<Exposition> => parseExposition(await m.metrics());
  let e = await scrapeNow();
  t.equal(one(e, 'wireguard_sent_bytes_total', { public_key: key }).labels.friendly_name, 'alice');
  t.notOk(e.types.has('wireguard_peer_info'), 'no mdlayher family yet');
  m.reconfigure({ friendlyNames: new Map([[key, 'alice2']]), endpointLabels: true, mdlayher: true });
  e = await scrapeNow();
  t.equal(one(e, 'wireguard_sent_bytes_total', { public_key: key }).labels.friendly_name, 'alice2', 'renamed');
  t.equal(one(e, 'wireguard_sent_bytes_total', { public_key: key }).labels.remote_ip, '198.51.100.7', 'endpoint labels on');
  t.equal(one(e, 'wireguard_peer_info', { public_key: key }).labels.name, 'alice2', 'mdlayher family on');
  t.equal(one(e, 'wireguard_device_info', {}).labels.device, 'wg0');
  m.reconfigure({});
  e = await scrapeNow();
  t.notOk('friendly_name' in one(e, 'wireguard_sent_bytes_total', { public_key: key }).labels, 'name gone');
  t.notOk('remote_ip' in one(e, 'wireguard_sent_bytes_total', { public_key: key }).labels, 'endpoint labels off');
  for (const name of ['wireguard_peer_receive_bytes_total', 'wireguard_peer_transmit_bytes_total', 'wireguard_peer_last_handshake_seconds', 'wireguard_peer_info', 'wireguard_peer_allowed_ips_info']) {
    t.notOk(e.types.has(name), `${name} gone`);
  }
  t.notOk('device' in one(e, 'wireguard_device_info', {}).labels, 'device label gone');
});

t.test('a peer\'s labels follow its allowed IPs and endpoint from one scrape to the next; its counters are read each time', async (t) => {
  const f = fixture();
  const key = b64(f.a.publicKey);
  const m = new WirepoolMetrics(f.src, { wallNow: () => WALL_NOW, processMetrics: false, endpointLabels: true });
  const sent = async (): Promise<{ labels: Record<string, string>; value: number }> => one(parseExposition(await m.metrics()), 'wireguard_sent_bytes_total', { public_key: key });
  let s = await sent();
  t.same([s.labels.allowed_ips, s.labels.remote_ip, s.value], ['10.0.0.2/32,fd00::2/128', '198.51.100.7', 123_456]);
  const pf = parsePrefix('10.9.0.0/16')!;
  f.src.engine.allowedIPs.insert(pf.addr, pf.cidr, f.a);
  f.src.engine.stats[f.a.id * STATS_PER_PEER + Stat.TxBytes] = 200_000;
  s = await sent();
  t.same([s.labels.allowed_ips, s.value], ['10.0.0.2/32,fd00::2/128,10.9.0.0/16', 200_000], 'a new allowed IP and the new counter');
  f.src.engine.setEndpoint(f.a, endpointFromAddress('203.0.113.9', 4242)!);
  s = await sent();
  t.same([s.labels.remote_ip, s.labels.remote_port], ['203.0.113.9', '4242'], 'the peer roamed');
  f.src.engine.allowedIPs.removeByPeer(f.a);
  s = await sent();
  t.equal(s.labels.allowed_ips, '(none)', 'allowed IPs removed');
});

t.test('metrics settings from config comments and the environment', async (t) => {
  const text = [
    '[Interface]',
    'PrivateKey = yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=',
    '# Metrics = 127.0.0.1:9586',
    '# MetricsEndpointLabels = true',
    '[Peer]',
    '# friendly_name = alice',
    'PublicKey = xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=',
    'AllowedIPs = 10.0.0.2/32',
    '[Peer]',
    'PublicKey = TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0= # comment',
    '; FRIENDLY_NAME = bob the "builder"',
    '[Peer]',
    'PublicKey = gN65BkIKy1eCE9pP1wdc8ROUtkHLF2PfAqYdyYBz6EA=',
  ].join('\n');
  const c = parseMetricsConfig(text);
  t.equal(c.listen, '127.0.0.1:9586');
  t.equal(c.endpointLabels, true);
  t.equal(c.mdlayher, false);
  t.same([...c.friendlyNames], [['xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=', 'alice'], ['TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0=', 'bob the "builder"']]);
  t.equal(resolveMetricsSettings('[::1]:9000', text, {}).listen, '[::1]:9000', '--metrics wins');
  t.equal(resolveMetricsSettings(null, text, {}).listen, '127.0.0.1:9586');
  t.equal(resolveMetricsSettings(null, null, {}).listen, null, 'off unless asked for');
  const env = resolveMetricsSettings(null, null, { WIREPOOL_METRICS: '127.0.0.1:9100', WIREPOOL_METRICS_OPTIONS: 'mdlayher, endpoint-labels' });
  t.same({ listen: env.listen, mdlayher: env.mdlayher, endpointLabels: env.endpointLabels }, { listen: '127.0.0.1:9100', mdlayher: true, endpointLabels: true });
});
