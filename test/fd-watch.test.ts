// native/fdwatch.c through src/io/fd-watch.ts: readiness of a raw descriptor on the event loop
// (level-triggered), start/stop/close, and misuse refused with a clear error.
import fs from 'node:fs';
import t, { type Test } from 'tap';
import { FdWatch } from '../src/io/fd-watch.js';
import { udpNative } from '../src/io/udp-native.js';

/** A packet socket pair from the UDP addon: [a, b], each end non-blocking. */
function pair(t: Test): [number, number] {
  const [a, b] = udpNative().socketpair();
  t.teardown(() => {
    fs.closeSync(a);
    fs.closeSync(b);
  });
  return [a, b];
}

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

// Watches do not keep the process alive (unreferenced, as in the daemon where other handles do):
// a referenced timer keeps the loop running while a test waits for a callback.
const keepAlive = setInterval(() => {}, 1000);
t.teardown(() => clearInterval(keepAlive));

t.test('readable fires while data waits (level-triggered), and not after stop', async (t) => {
  const [a, b] = pair(t);
  let fired = 0;
  let resolveFirst: () => void = () => {};
  const first = new Promise<void>((resolve) => (resolveFirst = resolve));
  const w = new FdWatch(a, () => { fired++; resolveFirst(); }, () => t.fail('no error expected'));
  t.teardown(() => w.close());
  t.equal(w.active, false, 'created stopped');
  fs.writeSync(b, Buffer.from('x'));
  await turn();
  await turn();
  t.equal(fired, 0, 'a stopped watch does not fire');
  w.start();
  t.equal(w.active, true);
  await first;
  const n = fired;
  await turn();
  await turn();
  t.ok(fired > n, 'still readable (nothing was read): fires again on the next turn');
  fs.readSync(a, Buffer.alloc(16));
  w.stop();
  const stopped = fired;
  fs.writeSync(b, Buffer.from('y'));
  await turn();
  await turn();
  t.equal(fired, stopped, 'stopped: no more callbacks');
});

t.test('close frees the watch; misuse is a TypeError', async (t) => {
  const [a] = pair(t);
  const w = new FdWatch(a, () => {}, () => {});
  w.start();
  w.close();
  t.equal(w.active, false);
  t.doesNotThrow(() => w.close(), 'closing twice is harmless');
  t.doesNotThrow(() => w.start(), 'start after close does nothing');
  t.throws(() => new FdWatch(-1, () => {}, () => {}), TypeError, 'a negative fd is refused');
});
