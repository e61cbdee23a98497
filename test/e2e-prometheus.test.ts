// End to end: a real Prometheus scrapes a live wirepool with traffic flowing through a tunnel
// to wireguard-go, in network namespaces. wirepool runs in namespace A with
// `--metrics 127.0.0.1:9586` and a --config file (friendly name and the mdlayher family
// switched on by comments); Prometheus runs in the same namespace on 127.0.0.1:9090,
// scraping every second, with grafana/alerts.yml loaded. Checked:
//   - every PromQL expression in grafana/*.json (variables substituted) and the variable
//     queries return data through /api/v1/query; so do the MindFlavor dashboard's queries
//     and dashboard 12177's (mdlayher names);
//   - the byte counters agree with `wg show dump` on our side and with wireguard-go's on the
//     other, directly and as Prometheus stored them, and with an iperf3 transfer of known size;
//   - a garbage packet of each kind moves the right drop reason;
//   - the alert rules evaluate without errors in Prometheus; `promtool check metrics` on the
//     live output, `promtool check rules`, `promtool test rules`, `promtool check config`.
// Needs root, iproute2, wg, wireguard-go, ping, iperf3, ss, curl, prometheus and promtool.

import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { nodeCrypto } from '../src/crypto/crypto.js';
import { CookieGenerator } from '../src/protocol/cookie.js';
import { Initiation } from '../src/protocol/messages.js';
import { Handshake, createInitiation, initialState, precomputeStaticStatic } from '../src/protocol/noise.js';
import { DROP_REASONS } from '../src/protocol/drops.js';
import { Netns, genKey, run, vethPair, waitFor } from './helpers/netns.js';
import {
  INNER, PORT_A, PORT_B, REPO_ROOT, addressUp, configure, e2eSkipReason, ping, pingReplies,
  pingUntilUp, removeDir, removeStaleSockets, startIperfServer, startWireguardGo, startWirepool, tempDir, uniqueIfname,
} from './helpers/tunnel.js';
import { type Exposition, one, parseExposition, series } from './helpers/exposition.js';

const skip = e2eSkipReason({ extra: ['ping', 'iperf3', 'ss', 'curl', 'prometheus', 'promtool'] });

const METRICS = '127.0.0.1:9586';
const PROM = 'http://127.0.0.1:9090';
const GRAFANA_DIR = path.join(REPO_ROOT, 'grafana');
const FRIENDLY = 'wireguard-go "B" \\ peer';
const IPERF_BYTES = 8 * 1024 * 1024;
/** Grafana's built-in variables, as a dashboard would expand them. */
const GRAFANA_BUILTINS: Record<string, string> = { $__rate_interval: '1m', $__interval: '15s', $__range: '5m' };

const b64 = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'base64'));

/**
 * A handshake initiation to `responderPublic` with a valid mac1, claiming `claimedPublic`
 * and computing static-static DH with `staticPrivate` (which need not match it).
 */
function craftInitiation(claimedPublic: Uint8Array, staticPrivate: Uint8Array, responderPublic: Uint8Array, wallMs: number): Uint8Array {
  const c = nodeCrypto;
  const id = { privateKey: staticPrivate, publicKey: claimedPublic };
  const hs = new Handshake(responderPublic);
  precomputeStaticStatic(c, id, hs);
  const out = new Uint8Array(Initiation.SIZE);
  if (!createInitiation(c, initialState(c), id, hs, 0x1234_5678, wallMs, out)) throw new Error('createInitiation failed');
  new CookieGenerator(c, responderPublic).addMacs(out, 0);
  return out;
}

/** Sends each hex datagram from a fresh UDP socket in the namespace where it runs. */
const SEND_UDP = `
const [host, port, ...hex] = process.argv.slice(1);
const s = require('dgram').createSocket(host.includes(':') ? 'udp6' : 'udp4');
let left = hex.length;
for (const h of hex) s.send(Buffer.from(h, 'hex'), Number(port), host, () => { if (--left === 0) s.close(); });
`;

interface DumpPeer { rx: number; tx: number; latestHandshake: number }

/** `wg show IF dump` → the one peer with publicKey. */
async function dumpPeer(ns: Netns, ifname: string, publicKey: string): Promise<DumpPeer> {
  const r = await ns.exec('wg', ['show', ifname, 'dump'], { timeoutMs: 5_000 });
  if (r.code !== 0) throw new Error(`wg show dump: ${r.stderr}`);
  for (const line of r.stdout.trim().split('\n').slice(1)) {
    const f = line.split('\t');
    if (f[0] === publicKey) return { latestHandshake: Number(f[4]), rx: Number(f[5]), tx: Number(f[6]) };
  }
  throw new Error(`peer ${publicKey} not in wg show ${ifname} dump`);
}

/** Every `expr` of every panel (rows included) of a Grafana dashboard, and its variable queries. */
function dashboardQueries(dash: unknown): { exprs: string[]; variables: string[] } {
  const exprs: string[] = [];
  const walk = (panels: unknown): void => {
    if (!Array.isArray(panels)) return;
    for (const p of panels as Array<{ targets?: Array<{ expr?: string }>; panels?: unknown }>) {
      for (const target of p.targets ?? []) if (typeof target.expr === 'string' && target.expr.trim() !== '') exprs.push(target.expr);
      walk(p.panels);
    }
  };
  const d = dash as { panels?: unknown; templating?: { list?: Array<{ type?: string; query?: unknown }> } };
  walk(d.panels);
  const variables: string[] = [];
  for (const v of d.templating?.list ?? []) {
    if (v.type !== 'query') continue;
    const q = typeof v.query === 'string' ? v.query : (v.query as { query?: string } | undefined)?.query;
    if (q) variables.push(q);
  }
  return { exprs, variables };
}

/** Expands dashboard variables: $__builtins, and the instance/interface template variables (All = .+). */
function substitute(expr: string): string {
  let out = expr;
  for (const [k, v] of Object.entries(GRAFANA_BUILTINS)) out = out.split(k).join(v);
  return out.replace(/\$\{?(instance|interface|datasource)\}?/g, '.+');
}

t.test('Prometheus scrapes wirepool: dashboard queries, counters, drop reasons, alert rules', { skip, timeout: 240_000 }, async (t) => {
  const dir = tempDir('prom');
  const ifA = uniqueIfname('wpa');
  const ifB = uniqueIfname('wgb');
  const namespaces: Netns[] = [];
  t.teardown(async () => {
    await Promise.all(namespaces.map((ns) => ns.destroy()));
    removeStaleSockets([ifA, ifB]);
    removeDir(dir);
  });
  const nsA = await Netns.create('prom-a');
  namespaces.push(nsA);
  const nsB = await Netns.create('prom-b');
  namespaces.push(nsB);
  await vethPair(nsA, nsB, { aAddrs: ['198.51.100.1/24'], bAddrs: ['198.51.100.2/24'] });
  const keysA = genKey();
  const keysB = genKey();

  // wirepool: --metrics and a --config file with the metrics comments.
  const confA = path.join(dir, 'a.conf');
  fs.writeFileSync(confA, [
    '[Interface]', `PrivateKey = ${keysA.privateKey}`, `ListenPort = ${PORT_A}`, '# MetricsMdlayher = true', '',
    '[Peer]', `PublicKey = ${keysB.publicKey}`, `# friendly_name = ${FRIENDLY}`, `Endpoint = 198.51.100.2:${PORT_B}`,
    `AllowedIPs = ${INNER.b4}/32, ${INNER.b6}/128`, '',
  ].join('\n'), { mode: 0o600 });
  const dA = await startWirepool(nsA, ifA, { workers: 1, extraArgs: ['--metrics', METRICS, '--config', confA] });
  await startWireguardGo(nsB, ifB);
  await configure(nsB, ifB, {
    privateKey: keysB.privateKey, listenPort: PORT_B,
    peers: [{ publicKey: keysA.publicKey, endpoint: `198.51.100.1:${PORT_A}`, allowedIps: [`${INNER.a4}/32`, `${INNER.a6}/128`] }],
  });
  await addressUp(nsA, ifA, [`${INNER.a4}/24`, `${INNER.a6}/64`]);
  await addressUp(nsB, ifB, [`${INNER.b4}/24`, `${INNER.b6}/64`]);

  const scrape = async (): Promise<{ text: string; e: Exposition }> => {
    const r = await nsA.exec('curl', ['-sf', '--max-time', '5', `http://${METRICS}/metrics`], { timeoutMs: 8_000 });
    if (r.code !== 0) throw new Error(`curl /metrics failed (${r.code}): ${r.stderr}\n${dA.stderr.slice(-2000)}`);
    return { text: r.stdout, e: parseExposition(r.stdout) };
  };
  const drop = (e: Exposition, direction: string, reason: string): number => one(e, 'wireguard_dropped_packets_total', { direction, reason }).value;

  // Prometheus inside namespace A, scraping every second, with our alert rules.
  const promConf = path.join(dir, 'prometheus.yml');
  fs.writeFileSync(promConf, [
    'global:', '  scrape_interval: 1s', '  evaluation_interval: 1s',
    'rule_files:', `  - ${JSON.stringify(path.join(GRAFANA_DIR, 'alerts.yml'))}`,
    'scrape_configs:', '  - job_name: wirepool', '    static_configs:', `      - targets: ['${METRICS}']`, '',
  ].join('\n'));
  const prom = nsA.spawn('prometheus', [
    `--config.file=${promConf}`, `--storage.tsdb.path=${path.join(dir, 'data')}`,
    '--web.listen-address=127.0.0.1:9090', '--log.level=warn',
  ]);
  let promLog = '';
  prom.stderr?.setEncoding('utf8').on('data', (s: string) => (promLog += s));
  const api = async (pathAndQuery: string[]): Promise<{ status: string; data?: any; error?: string }> => {
    const r = await nsA.exec('curl', ['-s', '--max-time', '10', '-G', ...pathAndQuery], { timeoutMs: 12_000 });
    if (r.code !== 0) throw new Error(`curl ${pathAndQuery[0]} failed (${r.code}): ${r.stderr}`);
    return JSON.parse(r.stdout) as { status: string; data?: unknown; error?: string };
  };
  const query = (expr: string): Promise<{ status: string; data?: any; error?: string }> =>
    api([`${PROM}/api/v1/query`, '--data-urlencode', `query=${expr}`]);
  const up = await waitFor(async () => {
    const targets = await api([`${PROM}/api/v1/targets`]);
    return targets.data?.activeTargets?.[0]?.health === 'up';
  }, 30_000, 250);
  t.ok(up, `Prometheus target up ${up ? '' : promLog.slice(-2000)}`);
  if (!up) return;

  // ── traffic: B initiates (so A has B's initiation timestamp on record), then A pings and sends a known amount ──
  t.ok(await pingUntilUp(nsB, INNER.a4), 'B → A ping through the tunnel');
  const before = await scrape();
  const pingRes = await ping(nsA, INNER.b4, { count: 5 });
  t.equal(pingReplies(pingRes), 5, 'A → B: 5 echo replies');
  const afterPing = await scrape();
  const keyB = keysB.publicKey;
  const pkt = (e: Exposition, name: string): number => one(e, name, { public_key: keyB }).value;
  t.ok(pkt(afterPing.e, 'wireguard_peer_sent_packets_total') - pkt(before.e, 'wireguard_peer_sent_packets_total') >= 5, 'sent packets moved by ≥ 5');
  t.ok(pkt(afterPing.e, 'wireguard_peer_received_packets_total') - pkt(before.e, 'wireguard_peer_received_packets_total') >= 5, 'received packets moved by ≥ 5');

  // ── counters agree with `wg show dump` on both ends once the tunnel is quiet (ping traffic: nothing lost) ──
  const agree = async (exactWithPeer: boolean): Promise<{ ok: boolean; m: DumpPeer; other: DumpPeer; detail: string }> => {
    let m: DumpPeer = { rx: 0, tx: 0, latestHandshake: 0 };
    let other = m;
    let detail = '';
    const ok = await waitFor(async () => {
      const d1 = await dumpPeer(nsA, ifA, keyB);
      const { e } = await scrape();
      const d2 = await dumpPeer(nsA, ifA, keyB);
      other = await dumpPeer(nsB, ifB, keysA.publicKey);
      m = {
        latestHandshake: one(e, 'wireguard_latest_handshake_seconds', { public_key: keyB }).value,
        rx: one(e, 'wireguard_received_bytes_total', { public_key: keyB }).value,
        tx: one(e, 'wireguard_sent_bytes_total', { public_key: keyB }).value,
      };
      detail = JSON.stringify({ d1, m, d2, other });
      const eq = (x: DumpPeer, y: DumpPeer): boolean => x.rx === y.rx && x.tx === y.tx && x.latestHandshake === y.latestHandshake;
      const same = eq(d1, d2) && eq(m, d1);
      return same && (exactWithPeer ? other.rx === m.tx && other.tx === m.rx : other.rx <= m.tx && other.tx >= m.rx);
    }, 30_000, 500);
    return { ok, m, other, detail };
  };
  const afterPings = await agree(true);
  t.ok(afterPings.ok, `metrics = wg show dump (A), and A's tx/rx = wireguard-go's rx/tx: ${afterPings.detail}`);
  t.ok(afterPings.m.latestHandshake > 0, 'a handshake is on record');
  {
    const { e } = await scrape();
    t.ok(one(e, 'wireguard_handshakes_total', { role: 'responder', result: 'ok' }).value >= 1, 'B initiated: a responder handshake completed');
    t.ok(one(e, 'wireguard_handshake_duration_seconds_count', { role: 'responder' }).value >= 1, '… and its duration was observed');
    t.ok(one(e, 'wireguard_handshake_messages_total', { type: 'initiation', direction: 'inbound' }).value >= 1, 'inbound initiation counted');
    t.ok(one(e, 'wireguard_handshake_messages_total', { type: 'response', direction: 'outbound' }).value >= 1, 'outbound response counted');
    // An idle ping is sealed by the main thread itself (no worker wake-up): in C on the idle path,
    // or inline in the pipeline; a burst by the worker.
    const sealed = one(e, 'wireguard_worker_packets_total', { worker: '0', direction: 'outbound' }).value
      + one(e, 'wireguard_dataplane_inline_crypto_total', { kind: 'main_seal' }).value
      + one(e, 'wireguard_dataplane_inline_crypto_total', { kind: 'idle_send' }).value;
    t.ok(sealed >= 5, `the pings were sealed (${sealed}: by the crypto worker, or by main at idle)`);
    t.ok(one(e, 'wireguard_tun_packets_total', { direction: 'inbound' }).value >= 5, 'the TUN writer delivered the replies');
    t.equal(one(e, 'wireguard_peers', { state: 'active' }).value, 1, 'one active peer');
  }

  // ── an iperf3 transfer: the payload the server received was carried in what A counted as sent ──
  // Inner packets wirepool read from TUN, as it counts them: with TSO on, the kernel's interface
  // counters count one 64 KiB super-packet where wirepool reads (and seals) ~45 packets.
  const tunStats = async (): Promise<{ bytes: number; packets: number }> => {
    const { e } = await scrape();
    return {
      bytes: one(e, 'wireguard_tun_bytes_total', { direction: 'outbound' }).value,
      packets: one(e, 'wireguard_tun_packets_total', { direction: 'outbound' }).value,
    };
  };
  await startIperfServer(nsB, INNER.b4);
  const tunBefore = await tunStats();
  const iperf = await nsA.exec('iperf3', ['-c', INNER.b4, '-n', String(IPERF_BYTES), '-J', '--connect-timeout', '5000'], { timeoutMs: 60_000 });
  t.equal(iperf.code, 0, `iperf3 -n ${IPERF_BYTES}`);
  const received = (JSON.parse(iperf.stdout) as { end: { sum_received: { bytes: number } } }).end.sum_received.bytes;
  t.ok(received > IPERF_BYTES / 4, `iperf3 server received ${received} bytes`);
  const afterIperf = await agree(false);
  t.ok(afterIperf.ok, `after iperf3: metrics = wg show dump (A); wireguard-go received no more than A sent: ${afterIperf.detail}`);
  const tunAfter = await tunStats();
  const txDelta = afterIperf.m.tx - afterPings.m.tx;
  const tunBytes = tunAfter.bytes - tunBefore.bytes;
  const tunPackets = tunAfter.packets - tunBefore.packets;
  t.ok(txDelta >= received, `wireguard_sent_bytes_total grew by ${txDelta} ≥ the ${received} payload bytes delivered`);
  // Each inner packet leaves as 16 header + padded payload (≤ +15) + 16 tag bytes; allow two handshake messages.
  t.ok(txDelta <= tunBytes + 47 * tunPackets + 2 * 148, `… and by no more than the ${tunBytes} bytes in ${tunPackets} packets read from TUN plus WireGuard overhead`);
  const quiet = afterIperf;
  const stored = await waitFor(async () => {
    const r = await query(`wireguard_sent_bytes_total{public_key="${keyB}"}`);
    return Number(r.data?.result?.[0]?.value?.[1]) === quiet.m.tx;
  }, 15_000, 500);
  t.ok(stored, 'Prometheus stored the same wireguard_sent_bytes_total');
  const labels = await query(`wireguard_received_bytes_total{public_key="${keyB}"}`);
  t.same(labels.data?.result?.[0]?.metric, {
    __name__: 'wireguard_received_bytes_total', instance: METRICS, job: 'wirepool', interface: ifA, public_key: keyB,
    allowed_ips: `${INNER.b4}/32,${INNER.b6}/128`, friendly_name: FRIENDLY,
  }, 'MindFlavor label set, friendly name from the config comment, escaped and read back intact');

  // ── a garbage packet of each kind moves the right drop reason ──
  const pubA = b64(keysA.publicKey);
  const stranger = nodeCrypto.randomBytes(32);
  const initiation = (claimed: Uint8Array, priv: Uint8Array, wall: number): string => Buffer.from(craftInitiation(claimed, priv, pubA, wall)).toString('hex');
  const transport = Buffer.alloc(48);
  transport[0] = 4;
  transport.writeUInt32LE(0xdeadbeef, 4);
  const garbage: Array<{ reason: string; hex: string }> = [
    { reason: 'malformed', hex: '09000000' + '00'.repeat(20) },
    { reason: 'invalid_mac', hex: '01000000' + nodeCrypto.randomBytes(144).reduce((s, b) => s + b.toString(16).padStart(2, '0'), '') },
    { reason: 'unknown_index', hex: transport.toString('hex') },
    { reason: 'unknown_peer', hex: initiation(nodeCrypto.publicKey(stranger), stranger, Date.now()) },
    { reason: 'decrypt_failed', hex: initiation(b64(keyB), nodeCrypto.randomBytes(32), Date.now()) },
    { reason: 'replay', hex: initiation(b64(keyB), b64(keysB.privateKey), Date.now() - 3_600_000) },
  ];
  const sumInbound = (e: Exposition): number => series(e, 'wireguard_dropped_packets_total', { direction: 'inbound' }).reduce((s, x) => s + x.value, 0);
  for (const g of garbage) {
    const b = (await scrape()).e;
    const r = await nsB.exec(process.execPath, ['-e', SEND_UDP, '198.51.100.1', String(PORT_A), g.hex], { timeoutMs: 10_000 });
    t.equal(r.code, 0, `sent a ${g.reason} datagram ${r.stderr}`);
    let a = b;
    await waitFor(async () => {
      a = (await scrape()).e;
      return drop(a, 'inbound', g.reason) > drop(b, 'inbound', g.reason);
    }, 5_000, 100);
    t.equal(drop(a, 'inbound', g.reason) - drop(b, 'inbound', g.reason), 1, `${g.reason}: +1`);
    t.equal(sumInbound(a) - sumInbound(b), 1, `${g.reason}: no other inbound reason moved`);
  }
  const hsRejected = (e: Exposition): number => one(e, 'wireguard_handshakes_total', { role: 'responder', result: 'rejected' }).value;
  t.ok(hsRejected((await scrape()).e) >= 4, 'the refused initiations count as rejected handshakes');

  // Inner source address not allowed for the sending peer (B sends from 10.77.0.50).
  {
    const b = (await scrape()).e;
    await nsB.ip(['addr', 'add', '10.77.0.50/32', 'dev', ifB]);
    await ping(nsB, INNER.a4, { count: 1, src: '10.77.0.50' });
    let a = b;
    await waitFor(async () => ((a = (await scrape()).e), drop(a, 'inbound', 'source_not_allowed') > drop(b, 'inbound', 'source_not_allowed')), 5_000, 100);
    t.ok(drop(a, 'inbound', 'source_not_allowed') - drop(b, 'inbound', 'source_not_allowed') >= 1, 'source_not_allowed moved');
  }
  // A destination inside the tunnel's /24 that no peer owns.
  {
    const b = (await scrape()).e;
    await ping(nsA, '10.77.0.99', { count: 1 });
    let a = b;
    await waitFor(async () => ((a = (await scrape()).e), drop(a, 'outbound', 'no_peer_for_destination') > drop(b, 'outbound', 'no_peer_for_destination')), 5_000, 100);
    t.ok(drop(a, 'outbound', 'no_peer_for_destination') - drop(b, 'outbound', 'no_peer_for_destination') >= 1, 'no_peer_for_destination (outbound) moved');
  }

  // ── promtool check metrics on the live output ──
  const live = (await scrape()).text;
  const lint = await run('promtool', ['check', 'metrics'], { input: live, timeoutMs: 20_000 });
  t.equal(lint.code, 0, `promtool check metrics on the live /metrics: ${lint.stdout}${lint.stderr}`);
  t.notOk(live.includes(keysA.privateKey) || live.includes(Buffer.from(keysA.privateKey, 'base64').toString('hex')), 'the private key is not in /metrics');

  // Let Prometheus scrape the latest state a few times.
  await new Promise((r) => setTimeout(r, 3_000));

  // ── every dashboard query returns data ──
  const dashboards = fs.readdirSync(GRAFANA_DIR).filter((f) => f.endsWith('.json'));
  t.ok(dashboards.length >= 1, 'grafana/ has a dashboard');
  for (const file of dashboards) {
    const { exprs, variables } = dashboardQueries(JSON.parse(fs.readFileSync(path.join(GRAFANA_DIR, file), 'utf8')));
    t.ok(exprs.length >= 10, `${file}: ${exprs.length} queries`);
    for (const expr of exprs) {
      const q = substitute(expr);
      const r = await query(q);
      t.equal(r.status, 'success', `${file}: ${q} ${r.error ?? ''}`);
      t.ok((r.data?.result?.length ?? 0) > 0, `${file}: ${q} returns data`);
    }
    for (const v of variables) {
      const m = /^label_values\((.*),\s*([a-zA-Z_]+)\)$/.exec(v);
      t.ok(m, `${file}: variable query ${v} has the label_values(metric, label) form`);
      if (!m) continue;
      const r = await query(substitute(m[1]!));
      const values = (r.data?.result ?? []).map((s: { metric: Record<string, string> }) => s.metric[m[2]!]).filter(Boolean);
      t.ok(values.length > 0, `${file}: ${v} has values (${values.join(', ')})`);
    }
  }
  // The public MindFlavor-based dashboard (secshellnet wireguard.json) and dashboard 12177 (mdlayher names).
  const external = [
    'time() - wireguard_latest_handshake_seconds',
    'wireguard_received_bytes_total',
    'wireguard_sent_bytes_total',
    'irate(wireguard_received_bytes_total[5m])',
    '-irate(wireguard_sent_bytes_total[5m])',
    'irate(wireguard_peer_receive_bytes_total[5m]) * on (public_key, device) group_left(name) wireguard_peer_info * on (instance) group_left(device) wireguard_device_info',
    'irate(wireguard_peer_transmit_bytes_total[5m]) * on (public_key, device) group_left(name) wireguard_peer_info * on (instance) group_left(device) wireguard_device_info',
    'time() - (wireguard_peer_last_handshake_seconds * on (public_key, device) group_left(name) wireguard_peer_info)',
  ];
  for (const q of external) {
    const r = await query(q);
    t.equal(r.status, 'success', `${q} ${r.error ?? ''}`);
    t.ok((r.data?.result?.length ?? 0) > 0, `${q} returns data`);
  }
  const irate = await query(`irate(wireguard_received_bytes_total{public_key="${keyB}"}[5m])`);
  t.ok(Number.isFinite(Number(irate.data?.result?.[0]?.value?.[1])), 'irate is a number');
  // Each garbage reason is in Prometheus too.
  for (const reason of [...garbage.map((g) => g.reason), 'source_not_allowed']) {
    const r = await query(`wireguard_dropped_packets_total{direction="inbound", reason="${reason}"}`);
    t.ok(Number(r.data?.result?.[0]?.value?.[1]) >= 1, `Prometheus has inbound ${reason} ≥ 1`);
  }
  const reasons = await query('count(wireguard_dropped_packets_total)');
  t.equal(Number(reasons.data?.result?.[0]?.value?.[1]), 2 * DROP_REASONS.length, 'every reason × direction is exported');

  // ── alert rules: loaded and evaluated by Prometheus without errors ──
  const rules = await api([`${PROM}/api/v1/rules`]);
  const all = (rules.data?.groups ?? []).flatMap((g: { rules: Array<{ name: string; health: string; lastError?: string }> }) => g.rules);
  t.ok(all.length >= 4, `${all.length} alert rules loaded`);
  for (const rule of all) t.equal(rule.health, 'ok', `rule ${rule.name} evaluates ${rule.lastError ?? ''}`);

  // ── promtool on the shipped files ──
  for (const args of [['check', 'rules', 'alerts.yml'], ['test', 'rules', 'alerts.test.yml'], ['check', 'config', 'prometheus.yml']]) {
    const r = await run('sh', ['-c', `cd "${GRAFANA_DIR}" && promtool ${args.join(' ')}`], { timeoutMs: 30_000 });
    t.equal(r.code, 0, `promtool ${args.join(' ')}: ${r.stdout}${r.stderr}`);
  }
});
