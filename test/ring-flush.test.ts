// The send flush of a ring (src/dataplane/ring.ts RingView.flushSends), on the ring buffers alone:
// in ring order, DONE slots are sent in batches per socket and become SENT, finished slots with
// nothing to send are passed, and C_SENT moves past all of them. In particular, SENT slots above
// C_SENT — a worker that died after marking its batch SENT but before storing C_SENT, its flush
// lock then freed by the supervisor — are passed too: before, every later flusher stopped there
// and the ring stayed jammed for good.
import t from 'tap';
import { C_SENT, CONTROL_WORDS, CTL_MAIN_ARMED, M_FD, M_STATE, META_WORDS, RING_TUN, SlotState, ringCtl } from '../src/dataplane/layout.js';
import { RingView, SEND_LOCK_MAIN, allocRing, sendLockOwner } from '../src/dataplane/ring.js';

function ring(states: number[], fds: number[] = []): { r: RingView; ctl: Int32Array } {
  const ctl = new Int32Array(new SharedArrayBuffer(CONTROL_WORDS * 4));
  const r = new RingView(RING_TUN, ctl, allocRing(8, 256));
  states.forEach((st, s) => {
    r.meta[s * META_WORDS + M_FD] = fds[s] ?? 7;
    Atomics.store(r.meta, s * META_WORDS + M_STATE, st);
  });
  Atomics.store(ctl, r.iReady, states.length);
  return { r, ctl };
}

const state = (r: RingView, s: number): number => Atomics.load(r.meta, s * META_WORDS + M_STATE);

t.test('SENT slots left above C_SENT by a dead flusher are passed; the DONE ones behind them go out', async (t) => {
  const { r, ctl } = ring([SlotState.SENT, SlotState.SENT, SlotState.DONE, SlotState.SKIP, SlotState.DONE, SlotState.PENDING]);
  const batches: number[][] = [];
  const ok = r.flushSends(sendLockOwner(0), new Int32Array(8), (_ring, fd, list, n) => {
    t.equal(fd, 7);
    batches.push(Array.from(list.subarray(0, n)));
    return n;
  });
  t.ok(ok, 'nothing was left for main');
  t.same(batches, [[2, 4]], 'one batch: the DONE slots, in order, past SENT and SKIP');
  t.equal(Atomics.load(ctl, ringCtl(RING_TUN, C_SENT)), 5, 'C_SENT stops at the slot still being sealed');
  t.equal(state(r, 2), SlotState.SENT);
  t.equal(state(r, 4), SlotState.SENT);
  t.equal(Atomics.load(ctl, r.iSendLock), 0, 'lock released');
});

t.test('a send that stops leaves the slot to main; a held lock means someone else flushes', async (t) => {
  const { r, ctl } = ring([SlotState.DONE, SlotState.DONE, SlotState.DONE]);
  const ok = r.flushSends(sendLockOwner(1), new Int32Array(8), () => 1); // only the first went
  t.notOk(ok, 'the caller must ring main');
  t.equal(Atomics.load(ctl, ringCtl(RING_TUN, C_SENT)), 1);
  t.equal(r.meta[1 * META_WORDS + M_FD], -1, 'slot 1 is main\'s now');
  t.ok(r.tryLockSend(SEND_LOCK_MAIN));
  t.ok(r.flushSends(sendLockOwner(1), new Int32Array(8), () => t.fail('must not send while another holds the lock') as never), 'returns: the holder re-checks');
  r.unlockSend(1);
});

t.test('a worker that took the lock before publishing flushes under it; a sleeping main is rung when C_SENT moved', async (t) => {
  const { r, ctl } = ring([SlotState.DONE, SlotState.DONE, SlotState.PENDING]);
  t.ok(r.tryLockSend(sendLockOwner(0)), 'taken before the results were published');
  const sent: number[] = [];
  t.ok(r.flushSends(sendLockOwner(0), new Int32Array(8), (_ring, _fd, list, n) => { sent.push(...list.subarray(0, n)); return n; }, true),
    'main is awake (not armed): nothing owed');
  t.same(sent, [0, 1], 'sent under the lock it already held');
  t.equal(Atomics.load(ctl, r.iSendLock), 0, 'and released it');
  // Main sleeps now; the next slot finishes and is flushed: main has slots to release.
  Atomics.store(ctl, CTL_MAIN_ARMED, 1);
  Atomics.store(r.meta, 2 * META_WORDS + M_STATE, SlotState.DONE);
  t.notOk(r.flushSends(sendLockOwner(0), new Int32Array(8), (_ring, _fd, _list, n) => n), 'C_SENT moved while main sleeps: ring it');
  t.equal(Atomics.load(ctl, ringCtl(RING_TUN, C_SENT)), 3);
  t.ok(r.flushSends(sendLockOwner(0), new Int32Array(8), () => t.fail('nothing left to send') as never), 'nothing moved: no ring');
});

t.test('sendFinished (main under the lock): sends the DONE runs, passes the rest, stops at main\'s own slot', async (t) => {
  const { r } = ring([SlotState.DONE, SlotState.FAILED, SlotState.DONE, SlotState.DONE, SlotState.DONE], [7, 7, 7, -1, 7]);
  const batches: number[][] = [];
  const to = r.sendFinished(0, 5, new Int32Array(8), (_ring, _fd, list, n) => { batches.push(Array.from(list.subarray(0, n))); return n; });
  t.equal(to, 3, 'stops at the slot main sends itself (fd -1)');
  t.same(batches, [[0, 2]]);
  t.notOk(r.sendStopped);
  t.equal(state(r, 1), SlotState.FAILED, 'passed, untouched');
});
