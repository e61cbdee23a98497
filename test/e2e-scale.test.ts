// Scale, end to end: wirepool in a network namespace configured with 10,000 peers by one
// `wg setconf` of a generated file (one [Peer] per generated key, a /32 allowed IP each);
// `wg show` lists all of them; then 20 of them, spread over the whole list, handshake from the
// load generator (bench/handshake-load.js, run in a second namespace with its own UDP socket
// per initiator) and exchange an ICMP echo through their sessions — the echo reply coming back
// decrypted proves wirepool routed the kernel's answer to the right peer among 10,000. wirepool's
// own counters must agree: traffic and a handshake for exactly the sampled peers.

import t from 'tap';
import { LoadTarget, initiatorInner, peerCount, wgShowMap } from '../bench/harness/load-target.js';
import { e2eSkipReason } from './helpers/tunnel.js';

const PEERS = 10_000;
const SAMPLE = 20;
const skip = e2eSkipReason({ wireguardGo: false });

t.test(`${PEERS} peers through the UAPI, then a sample handshakes and passes traffic`, { skip, timeout: 400_000 }, async (t) => {
  const lt = await LoadTarget.create({ impl: 'wirepool', peers: PEERS, sources: SAMPLE, prefix: 'scale' });
  t.teardown(() => lt.destroy());
  t.comment(`wg setconf of ${PEERS} peers: ${lt.setconfMs.toFixed(0)} ms; RSS ${(lt.rssBefore / 2 ** 20).toFixed(1)} → ${(lt.rssAfter / 2 ** 20).toFixed(1)} MiB`);

  t.equal(await peerCount(lt.nsT, lt.ifname), PEERS, `wg show peers lists ${PEERS}`);
  const allowed = await wgShowMap(lt.nsT, lt.ifname, 'allowed-ips');
  t.equal(allowed.size, PEERS);
  t.same(allowed.get(lt.initiators[PEERS - 1]!.publicKey), [`${initiatorInner(PEERS - 1)}/32`], 'the last peer has its /32');

  const sample = Array.from({ length: SAMPLE }, (_, k) => Math.round((k * (PEERS - 1)) / (SAMPLE - 1)));
  const run = await lt.runGenerator({ indices: sample, args: ['--deadline', '60', '--data', 'ping', '--quiet'] });
  const r = run.result;
  t.comment(`sample of ${SAMPLE}: connected ${r.connected}, echo confirmed ${r.confirmed}, ${r.initiations} initiations, ` +
    `${r.retransmits} retransmits, time to all confirmed ${r.timeToAllConfirmedMs?.toFixed(0) ?? '—'} ms`);
  t.equal(r.connected, SAMPLE, 'every sampled initiator completed its handshake');
  t.equal(r.confirmed, SAMPLE, 'every sampled initiator got its echo reply back through its session');
  t.equal(r.invalidReplies, 0, 'nothing that failed to authenticate');

  const transfer = await wgShowMap(lt.nsT, lt.ifname, 'transfer');
  const handshakes = await wgShowMap(lt.nsT, lt.ifname, 'latest-handshakes');
  const endpoints = await wgShowMap(lt.nsT, lt.ifname, 'endpoints');
  const sampled = new Set(sample);
  for (const i of sample) {
    const key = lt.initiators[i]!.publicKey;
    const [rx, tx] = (transfer.get(key) ?? []).map(Number);
    t.ok(rx! > 0 && tx! > 0, `peer ${i}: rx ${rx} and tx ${tx} bytes`);
    t.ok(Number(handshakes.get(key)?.[0]) > 0, `peer ${i}: has a handshake`);
    const ep = endpoints.get(key)?.[0] ?? '';
    t.ok(lt.sources.some((s) => ep.startsWith(`${s}:`)), `peer ${i}: endpoint ${ep} learned from the initiator's source`);
  }
  let untouched = 0;
  for (let i = 0; i < PEERS; i++) {
    if (sampled.has(i)) continue;
    const key = lt.initiators[i]!.publicKey;
    if (transfer.get(key)?.join(',') === '0,0' && handshakes.get(key)?.[0] === '0') untouched++;
  }
  t.equal(untouched, PEERS - SAMPLE, 'no other peer saw traffic or a handshake');
  t.ok(lt.alive(), 'wirepool still running');
});
