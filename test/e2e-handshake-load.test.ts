// Handshake storms and floods against wirepool, end to end, with the load generator
// (bench/handshake-load.js) running in its own network namespace:
// - a storm: 500 initiators, each with its own key, UDP socket and source address, fire
//   their initiations as fast as the generator can; every one must end connected (a few
//   retransmits allowed) and get an ICMP echo back through its session before the deadline;
// - floods: junk initiations with a valid mac1, or one real initiation replayed, at a rate far
//   above what the responder can process, from 64 source ports on other addresses. The cookie
//   path must engage (cookie replies arrive and decrypt with the target's cookie key and the
//   mac1 we sent), a legitimate wireguard-go peer with an established session keeps pinging
//   through the flood, and a few fresh initiators started inside the flood still connect.

import t from 'tap';
import { LoadTarget, TARGET_INNER, wgShowMap } from '../bench/harness/load-target.js';
import { e2eSkipReason, ping, pingUntilUp } from './helpers/tunnel.js';

const skip = e2eSkipReason({ wireguardGo: true, extra: ['ping'] });

const STORM = 500;

t.test(`storm: ${STORM} initiators all connect and pass data`, { skip, timeout: 300_000 }, async (t) => {
  const lt = await LoadTarget.create({ impl: 'wirepool', peers: STORM, sources: STORM, prefix: 'storm' });
  t.teardown(() => lt.destroy());
  const run = await lt.runGenerator({ args: ['--deadline', '120', '--data', 'ping', '--rate', '0', '--quiet'] });
  const r = run.result;
  t.comment(
    `${r.connected}/${r.initiators} connected, ${r.confirmed} echo-confirmed in ${r.timeToAllConfirmedMs?.toFixed(0) ?? '—'} ms; ` +
      `${r.handshakesPerSecond.toFixed(0)} handshakes/s; ${r.initiations} initiations (${r.retransmits} retransmits, ` +
      `${r.cookieReplies} cookie replies); wirepool CPU ${run.targetCpuMs.toFixed(0)} ms, generator CPU ${r.generatorCpuMs.toFixed(0)} ms`,
  );
  t.equal(r.connected, STORM, 'every initiator completed a handshake');
  t.equal(r.confirmed, STORM, 'every initiator got its echo reply back through its session');
  t.equal(r.failed, 0);
  t.equal(r.invalidReplies, 0, 'nothing that failed to authenticate');
  const handshakes = await wgShowMap(lt.nsT, lt.ifname, 'latest-handshakes');
  const withHandshake = lt.initiators.filter((k) => Number(handshakes.get(k.publicKey)?.[0]) > 0).length;
  t.equal(withHandshake, STORM, 'wirepool reports a handshake for every peer');
  t.ok(lt.alive(), 'wirepool still running');
});

const FLOOD_RATE = 20_000;
const FLOOD_MS = 4_000;
const FRESH = 5;

for (const kind of ['junk', 'replay'] as const) {
  t.test(`flood of ${kind} initiations: cookies engage, legitimate traffic continues`, { skip, timeout: 180_000 }, async (t) => {
    // Sources 0..63 carry the flood and the fresh initiators; the legitimate peer is on 198.51.100.2.
    const lt = await LoadTarget.create({ impl: 'wirepool', peers: FRESH, sources: 64, legitPeer: true, prefix: `flood-${kind}` });
    t.teardown(() => lt.destroy());
    t.ok(await pingUntilUp(lt.nsG, TARGET_INNER, 15_000), 'legitimate peer has a session before the flood');

    // A ping running through the whole flood (-D: timestamped replies, lined up with the flood window).
    const pingRun = lt.nsG.exec('ping', ['-n', '-D', '-c', '50', '-i', '0.2', '-W', '1', TARGET_INNER], { timeoutMs: 40_000 });
    const run = await lt.runGenerator({
      args: [
        '--deadline', '40', '--data', 'ping', '--start-delay', '1000', '--cookie-retry-ms', '200',
        '--flood', kind, '--flood-rate', String(FLOOD_RATE), '--flood-ms', String(FLOOD_MS), '--flood-after', kind === 'replay' ? '200' : '0',
        '--flood-sockets', '64', '--quiet',
      ],
    });
    const p = await pingRun;
    const r = run.result;
    const f = r.flood!;
    const replyTimes = [...p.stdout.matchAll(/^\[(\d+\.\d+)\].*bytes from/gm)].map((m) => Number(m[1]) * 1000);
    const during = replyTimes.filter((ts) => ts >= f.startWallMs! && ts <= f.endWallMs!).length;
    t.comment(
      `flood: ${f.sent} sent in ${FLOOD_MS} ms, ${f.cookieReplies} cookie replies (${f.cookieRepliesValid} valid), first after ` +
        `${f.firstCookieAfterMs?.toFixed(0) ?? '—'} ms; fresh initiators ${r.connected}/${r.initiators} connected, ${r.cookieReplies} cookies; ` +
        `ping ${replyTimes.length}/50 replies, ${during} during the flood; wirepool CPU ${run.targetCpuMs.toFixed(0)} ms`,
    );
    t.ok(f.sent >= (FLOOD_RATE * FLOOD_MS) / 1000 * 0.9, 'the flood was sent');
    t.ok(f.cookieReplies > 0, 'the cookie path engaged: cookie replies came back to the flood sources');
    t.equal(f.cookieRepliesValid, f.cookieReplies, 'every cookie reply decrypts with the cookie key and our mac1');
    t.ok(during > 0, 'the legitimate peer got ping replies during the flood');
    const after = await ping(lt.nsG, TARGET_INNER, { count: 5 });
    t.equal(after.code, 0, 'and pings after it');
    t.equal(r.connected, FRESH, 'initiators started inside the flood all connected');
    t.equal(r.confirmed, FRESH, 'and passed data');
    const transfer = await wgShowMap(lt.nsT, lt.ifname, 'transfer');
    t.ok(lt.alive(), 'wirepool still running');
    t.ok(transfer.size === FRESH + 1, 'peer list intact');
  });
}
