// src/background-work.ts: slices, one per event-loop turn; nothing while busy, and no busy loop
// meanwhile; start() idempotent; stop() final.
import t from 'tap';
import { BackgroundWork } from '../src/background-work.js';
import { countTurns, turns } from './helpers/event-loop.js';

t.test('work runs a slice per turn until it says it is done; start() is idempotent', async (t) => {
  const turn = countTurns();
  const calls: { turn: number; budget: number }[] = [];
  let left = 4;
  let finished!: () => void;
  const done = new Promise<void>((resolve) => { finished = resolve; });
  const w = new BackgroundWork({
    work: (budget) => { calls.push({ turn: turn.now, budget }); left--; if (left === 0) finished(); return left > 0; },
    busy: () => false, sliceMs: 2, retryMs: 10,
  });
  for (let i = 0; i < 5; i++) w.start();
  t.equal(calls.length, 0, 'nothing in the caller\'s turn');
  await done;
  await turns(3);
  turn.stop();
  t.equal(calls.length, 4, 'four slices, the last said done; five start() calls made one run');
  t.ok(calls.every((c) => c.budget === 2), 'each with the slice budget');
  t.equal(new Set(calls.map((c) => c.turn)).size, 4, 'each in a turn of its own');
});

t.test('nothing while busy, looked at again every retryMs (no busy loop); stop() is final', async (t) => {
  let busy = true;
  let busyChecks = 0;
  let worked = 0;
  const w = new BackgroundWork({
    work: () => { worked++; return true; },
    busy: () => { busyChecks++; return busy; },
    sliceMs: 2, retryMs: 10,
  });
  w.start();
  const start = Date.now();
  await new Promise((r) => setTimeout(r, 60)); // busy for 60 ms: the scenario, not a wait for an event
  t.equal(worked, 0, 'no work while busy');
  t.ok(busyChecks >= 2 && busyChecks <= Math.ceil((Date.now() - start) / 10) + 2, `busy() looked at ${busyChecks} times in ${Date.now() - start} ms (every 10 ms, not every turn)`);
  busy = false;
  for (let i = 0; i < 1000 && worked < 3; i++) await turns(1);
  t.ok(worked >= 3, 'works once no longer busy');
  w.stop();
  const at = worked;
  await turns(5);
  t.equal(worked, at, 'no slice after stop()');
  w.start();
  await turns(3);
  t.equal(worked, at, 'start() after stop() does nothing');
});
