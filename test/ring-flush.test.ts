// The send flush of a ring (src/dataplane/ring.ts RingView.flushSends), on the ring buffers alone:
// in ring order, DONE slots are sent in batches per socket and become SENT, finished slots with
// nothing to send are passed, and C_SENT moves past all of them; and when the flusher or the TUN
// reader wakes main (tunMainWanted). In particular, SENT slots above
// C_SENT — a worker that died after marking its batch SENT but before storing C_SENT, its flush
// lock then freed by the supervisor — are passed too: before, every later flusher stopped there
// and the ring stayed jammed for good.
import t from 'tap';
import {
  C_SENT, CONTROL_WORDS, CTL_MAIN_ARMED, CTL_MAIN_BELL, CTL_READER_WAITING, CTL_WORKER_SLEEPERS, M_FD, M_STATE, META_WORDS,
  RING_RECV, RING_TUN, SlotState, cryptingState, ringCtl,
} from '../src/dataplane/layout.js';
import { ROUTE_LOW_WATER, RingView, SEND_LOCK_MAIN, allWorkersAsleep, allocRing, sendLockOwner } from '../src/dataplane/ring.js';

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

// Lazy wake-ups of main on the TUN ring (ring.ts "TUN ring wake-ups"): a 1024-slot ring, so the
// marks are ROUTE_LOW_WATER (64) routed-but-unsent slots and a quarter of the ring (256).
function cursors(o: { produced: number; ready: number; sent: number; retired: number; armed?: boolean }): { r: RingView; ctl: Int32Array } {
  const ctl = new Int32Array(new SharedArrayBuffer(CONTROL_WORDS * 4));
  const r = new RingView(RING_TUN, ctl, allocRing(1024, 64));
  Atomics.store(ctl, r.iProduced, o.produced);
  Atomics.store(ctl, r.iReady, o.ready);
  Atomics.store(ctl, r.iSent, o.sent);
  Atomics.store(ctl, r.iRetired, o.retired);
  Atomics.store(ctl, CTL_MAIN_ARMED, o.armed === false ? 0 : 1);
  return { r, ctl };
}

t.test('the TUN reader wakes main to route only when the workers run low on routed slots or many wait', async (t) => {
  t.notOk(cursors({ produced: 45, ready: 0, sent: 0, retired: 0, armed: false }).r.tunMainWanted(), 'main awake: it sees the store itself');
  t.ok(cursors({ produced: 45, ready: 0, sent: 0, retired: 0 }).r.tunMainWanted(), 'nothing routed is left: route now');
  t.ok(cursors({ produced: 245, ready: 200, sent: 137, retired: 137 }).r.tunMainWanted(), '63 routed slots left: below the low mark');
  t.notOk(cursors({ produced: 245, ready: 200, sent: 136, retired: 136 }).r.tunMainWanted(), '64 routed slots left: the workers are busy, routing can wait');
  t.ok(cursors({ produced: 556, ready: 300, sent: 0, retired: 0 }).r.tunMainWanted(), 'a quarter of the ring waits to be routed');
  t.notOk(ROUTE_LOW_WATER > 256, 'the low mark is below the high one');
});

t.test('a flusher wakes main to release only when a quarter of the ring is sent, or everything read is', async (t) => {
  t.notOk(cursors({ produced: 400, ready: 400, sent: 100, retired: 0 }).r.tunMainWanted(), '100 sent, 300 routed in flight: later');
  t.ok(cursors({ produced: 400, ready: 400, sent: 256, retired: 0 }).r.tunMainWanted(), 'a quarter of the ring sent');
  t.ok(cursors({ produced: 40, ready: 40, sent: 40, retired: 0 }).r.tunMainWanted(), 'all the ring holds is sent: nothing else would wake main');
  t.notOk(cursors({ produced: 40, ready: 40, sent: 40, retired: 40 }).r.tunMainWanted(), 'nothing to release');
});

t.test('the flush decides main\'s wake-up by those rules, and always asks for main at a slot that is main\'s to send', async (t) => {
  // 100 routed slots, the first 40 sealed: after sending them, 60 routed are left (below the low
  // mark) while 10 read slots wait to be routed: main is wanted.
  const { r, ctl } = cursors({ produced: 110, ready: 100, sent: 0, retired: 0 });
  for (let s = 0; s < 100; s++) {
    r.meta[s * META_WORDS + M_FD] = 7;
    Atomics.store(r.meta, s * META_WORDS + M_STATE, s < 40 ? SlotState.DONE : SlotState.PENDING);
  }
  t.notOk(r.flushSends(sendLockOwner(0), new Int32Array(64), (_ring, _fd, _list, n) => n), 'routing wanted: ring main');
  t.equal(Atomics.load(ctl, r.iSent), 40);
  // Main routed them; 70 routed slots are left after the next batch: no wake-up.
  Atomics.store(ctl, r.iReady, 110);
  for (let s = 40; s < 110; s++) Atomics.store(r.meta, s * META_WORDS + M_STATE, s < 40 + 30 ? SlotState.DONE : SlotState.PENDING);
  Atomics.store(ctl, r.iRetired, 40);
  t.ok(r.flushSends(sendLockOwner(0), new Int32Array(64), (_ring, _fd, _list, n) => n), '40 routed left and nothing unrouted, 30 unreleased: main may sleep on');
  // A sealed slot main is to send (fd -1) at the flush head: main is asked for even while awake.
  Atomics.store(ctl, CTL_MAIN_ARMED, 0);
  r.meta[70 * META_WORDS + M_FD] = -1;
  Atomics.store(r.meta, 70 * META_WORDS + M_STATE, SlotState.DONE);
  t.notOk(r.flushSends(sendLockOwner(0), new Int32Array(64), () => t.fail('main sends that one') as never), 'main\'s slot at the head: ring main');
});

t.test('a reader that finds the ring full rings a sleeping main before it waits', async (t) => {
  const { r, ctl } = cursors({ produced: 1024, ready: 1024, sent: 1000, retired: 0 });
  const bell = Atomics.load(ctl, CTL_MAIN_BELL);
  t.equal(r.room(1024, CTL_READER_WAITING, 1), 0, 'no room');
  t.equal(Atomics.load(ctl, CTL_MAIN_BELL), bell + 1, 'main was rung');
  Atomics.store(ctl, CTL_MAIN_ARMED, 0);
  t.equal(r.room(1024, CTL_READER_WAITING, 1), 0);
  t.equal(Atomics.load(ctl, CTL_MAIN_BELL), bell + 1, 'not while it is awake');
});

// Sharing a wake-up (ring.ts): a small batch of one direction waits for main's coming wake-up for
// the other, when that wake-up is sure (it waits for nothing else).
function recvRing(ctl: Int32Array, o: { produced: number; retired: number; headState?: number }): RingView {
  const r = new RingView(RING_RECV, ctl, allocRing(1024, 64));
  Atomics.store(ctl, r.iProduced, o.produced);
  Atomics.store(ctl, r.iReady, o.produced);
  Atomics.store(ctl, r.iRetired, o.retired);
  if (o.headState !== undefined) Atomics.store(r.meta, (o.retired & r.mask) * META_WORDS + M_STATE, o.headState);
  return r;
}

t.test('the TUN ring defers routing and release to a RECV head the workers are opening, never the quarter-ring marks', async (t) => {
  const { r, ctl } = cursors({ produced: 1, ready: 0, sent: 0, retired: 0 });
  const recv = recvRing(ctl, { produced: 10, retired: 4, headState: cryptingState(0) });
  r.partner = recv;
  t.ok(recv.headOpening(), 'the head is being opened: its worker rings main');
  t.notOk(r.tunMainWanted(), 'an ACK read: routed when main wakes for the RECV head');
  Atomics.store(recv.meta, 4 * META_WORDS + M_STATE, SlotState.DONE);
  t.notOk(recv.headOpening(), 'opened: its ring happened (or main is awake)');
  t.ok(r.tunMainWanted(), 'nothing to share: wake main');
  Atomics.store(recv.meta, 4 * META_WORDS + M_STATE, SlotState.PENDING);
  t.notOk(r.tunMainWanted(), 'a PENDING head counts too');
  Atomics.store(ctl, r.iProduced, 256);
  t.ok(r.tunMainWanted(), 'a quarter of the ring unrouted never waits');
  const full = cursors({ produced: 300, ready: 300, sent: 300, retired: 0 });
  full.r.partner = recvRing(full.ctl, { produced: 10, retired: 4, headState: SlotState.PENDING });
  t.ok(full.r.tunMainWanted(), 'a quarter of the ring unreleased never waits');
  const done = cursors({ produced: 40, ready: 40, sent: 40, retired: 0 });
  done.r.partner = recvRing(done.ctl, { produced: 10, retired: 4, headState: SlotState.PENDING });
  t.notOk(done.r.tunMainWanted(), 'everything read is sent: released when main wakes for the RECV head');
  t.notOk(recvRing(ctl, { produced: 4, retired: 4 }).headOpening(), 'an empty RECV ring has no head');
});

t.test('sends in flight and quiet rings', async (t) => {
  t.ok(cursors({ produced: 50, ready: 50, sent: 20, retired: 0 }).r.sendsInFlight(), 'routed slots with the workers');
  t.notOk(cursors({ produced: 50, ready: 20, sent: 20, retired: 0 }).r.sendsInFlight(), 'all routed ones sent (30 unrouted wait for main)');
  t.ok(cursors({ produced: 50, ready: 50, sent: 50, retired: 0 }).r.quiet(), 'TUN: everything read is sent (release is bookkeeping)');
  t.notOk(cursors({ produced: 51, ready: 50, sent: 50, retired: 0 }).r.quiet());
  const ctl = new Int32Array(new SharedArrayBuffer(CONTROL_WORDS * 4));
  t.ok(recvRing(ctl, { produced: 9, retired: 9 }).quiet(), 'RECV: everything received is checked');
  t.notOk(recvRing(ctl, { produced: 9, retired: 8 }).quiet());
});

t.test('all workers asleep: every configured worker has its sleeper bit, in either word', async (t) => {
  const ctl = new Int32Array(new SharedArrayBuffer(CONTROL_WORDS * 4));
  const asleep = (low: number, high: number, workers: number): boolean => {
    Atomics.store(ctl, CTL_WORKER_SLEEPERS, low);
    Atomics.store(ctl, CTL_WORKER_SLEEPERS + 1, high);
    return allWorkersAsleep(ctl, workers);
  };
  t.ok(asleep(1, 0, 1), 'the one worker sleeps');
  t.notOk(asleep(0, 0, 1), 'the one worker is awake (or dead: its bit cleared)');
  t.notOk(asleep(0b01, 0, 2), 'worker 1 of 2 awake');
  t.ok(asleep(0b11, 0, 2));
  t.ok(asleep(-1, 0, 32), '32 workers: the whole first word');
  t.notOk(asleep(-1, 0, 33), 'worker 32 is in the second word');
  t.ok(asleep(-1, 1, 33));
  t.ok(asleep(-1, -1, 64), 'all 64');
  t.notOk(asleep(-1, 0x7fff_ffff, 64), 'worker 63 awake');
});
