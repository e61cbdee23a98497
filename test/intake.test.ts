// Who reads an input (src/dataplane/intake.ts): the idleness rule that decides when an I/O thread
// hands its input to main and when main gives it back, on a fake clock; and that main gives it
// back while the other direction is busy (but not after a look that found nothing).
import t from 'tap';
import { HAND_TO_MAIN_MAX, HAND_TO_THREAD_MIN, IDLE_GAP_MS, Idleness, MainIntake } from '../src/dataplane/intake.js';
import { CONTROL_WORDS, CTL_UDP_OWNER, INTAKE_MAIN, RING_RECV, RING_TUN } from '../src/dataplane/layout.js';
import { RingView, allocRing } from '../src/dataplane/ring.js';

t.test('a thread hands over only a small batch after a gap, with nothing kept', async (t) => {
  const i = new Idleness();
  t.ok(i.handOver(1, 0, 1000), 'a lone packet after a long quiet: to main');
  t.ok(i.handOver(0, 0, 1000.1), 'a poll timeout (nothing read): to main');
  const k = new Idleness();
  k.handOver(HAND_TO_MAIN_MAX, 0, 0);
  t.notOk(k.handOver(1, 0, IDLE_GAP_MS / 2), 'a small batch right after another (a stream of ACKs): stays');
  t.notOk(k.handOver(1, 0, IDLE_GAP_MS / 2 + IDLE_GAP_MS), 'the same after one gap (the stream paused): stays');
  t.ok(k.handOver(1, 0, IDLE_GAP_MS / 2 + 2 * IDLE_GAP_MS), 'after a second gap in a row: to main');
  t.notOk(k.handOver(HAND_TO_MAIN_MAX + 1, 0, 100), 'a larger batch: stays');
  t.notOk(k.handOver(1, 3, 200), 'pieces of a super-packet kept by this thread: stays');
});

t.test('a thread that got its input back counts gaps from then', async (t) => {
  const i = new Idleness();
  i.handOver(1, 0, 0);
  i.resume(50);
  t.notOk(i.handOver(1, 0, 50 + IDLE_GAP_MS / 2), 'main gave it back for load: the next small batch is not idleness');
  t.notOk(i.handOver(1, 0, 60), 'one gap after that: not yet');
  t.ok(i.handOver(1, 0, 70), 'a second gap in a row: to main again');
});

t.test('main gives the input back on a large batch or a short gap', async (t) => {
  const i = new Idleness();
  t.notOk(i.busy(1, 1000), 'a lone packet after a quiet: keeps it');
  t.notOk(i.busy(1, 1020), 'another 20 ms later (a ping): keeps it');
  t.ok(i.busy(1, 1020 + IDLE_GAP_MS / 2), 'packets coming faster than the gap: back to the thread');
  t.ok(i.busy(HAND_TO_THREAD_MIN, 2000), 'a large batch: back to the thread');
});

t.test('handshake messages are not load: only what the workers would open is', async (t) => {
  // The UDP input passes the transport messages of a batch as its load; the rest main handles
  // whoever reads them, so a thread that reads them only adds a wake-up.
  const k = new Idleness();
  k.handOver(1, 0, 0, 1);
  t.ok(k.handOver(1, 0, IDLE_GAP_MS / 4, 0), 'a lone initiation right after a data packet: to main');
  t.ok(k.handOver(2, 0, IDLE_GAP_MS / 2, 0), 'initiations arriving faster than the gap: to main');
  t.notOk(k.handOver(2, 0, IDLE_GAP_MS * 0.75, 1), 'a data packet within the gap of the last one: stays');
  t.notOk(k.handOver(HAND_TO_MAIN_MAX + 1, 0, 100, 0), 'a larger batch, even of handshakes: stays');

  const m = new Idleness();
  t.notOk(m.busy(1, 1000, 1), 'a ping: main keeps it');
  for (let i = 1; i <= 5; i++) t.notOk(m.busy(1, 1000 + i * IDLE_GAP_MS / 4, 0), `initiation ${i}, ${i / 4} gap after it: main keeps it`);
  t.ok(m.busy(1, 1000 + IDLE_GAP_MS / 2, 1), 'a second data packet within the gap of the first: back to the thread');
  t.ok(m.busy(HAND_TO_THREAD_MIN, 3000, 0), 'a large batch of handshakes: back to the thread (it reads in batches)');
});

t.test('main gives an input back while the other direction is busy: the ACKs of a stream are not idleness', async (t) => {
  const ctl = new Int32Array(new SharedArrayBuffer(CONTROL_WORDS * 4));
  const recv = new RingView(RING_RECV, ctl, allocRing(64, 64));
  const tun = new RingView(RING_TUN, ctl, allocRing(64, 64));
  recv.partner = tun;
  // Each intake's first batch comes after an unbounded gap, so only the other direction decides.
  const intake = (got = 1): MainIntake => new MainIntake({
    ctl, ownerWord: CTL_UDP_OWNER, ring: recv, batch: 8, read: () => got, pending: () => 0,
    stats: new Float64Array(2), takenCell: 0, givenCell: 1, onReadable: () => {},
  });
  Atomics.store(ctl, CTL_UDP_OWNER, INTAKE_MAIN);
  const quiet = intake();
  quiet.readAll();
  t.ok(quiet.owned(), 'a lone datagram, the TUN ring quiet: main keeps reading');
  quiet.close();
  Atomics.store(ctl, tun.iProduced, 30); // a stream goes out: 30 packets read, none sent yet
  Atomics.store(ctl, tun.iReady, 30);
  const empty = intake(0);
  t.equal(empty.readAll(), 0, 'a look that finds nothing (main before it sleeps: pipeline.ts recheckInputs)');
  t.ok(empty.owned(), '… changes nothing, whatever the other direction does');
  empty.close();
  const busy = intake();
  t.equal(busy.readAll(), 1, 'one datagram read');
  t.notOk(busy.owned(), 'the other direction is busy: the thread reads again');
  busy.close();
});
