// The log-line rate limit (src/log-limit.ts) on a fake clock: a burst per kind, then one line
// a second, with the suppressed lines counted and reported once the kind may write again.
import t from 'tap';
import { LOG_BURST, LogLimiter } from '../src/log-limit.js';

function limiter(): { clock: { t: number }; lim: LogLimiter } {
  const clock = { t: 5_000 };
  return { clock, lim: new LogLimiter(() => clock.t) };
}

t.test('a burst of LOG_BURST, then refused and counted', async (t) => {
  const { lim } = limiter();
  t.equal(LOG_BURST, 10);
  for (let i = 0; i < LOG_BURST; i++) t.equal(lim.take('a'), 0, `line ${i + 1} written`);
  t.equal(lim.take('a'), -1, 'the 11th at the same instant is refused');
  t.equal(lim.take('a'), -1);
  t.equal(lim.take('b'), 0, 'another kind has its own bucket');
});

t.test('one line a second after the burst; the first written reports the suppressed count', async (t) => {
  const { clock, lim } = limiter();
  for (let i = 0; i < LOG_BURST; i++) lim.take('a');
  for (let i = 0; i < 25; i++) t.equal(lim.take('a'), -1);
  clock.t += 999;
  t.equal(lim.take('a'), -1, 'not yet a whole token');
  clock.t += 1;
  t.equal(lim.take('a'), 26, 'written, and 26 were suppressed before it');
  t.equal(lim.take('a'), -1, 'the token is spent');
  clock.t += 1000;
  t.equal(lim.take('a'), 1, 'the count restarts after a report');
  clock.t += 1000;
  t.equal(lim.take('a'), 0);
});

t.test('the bucket refills to LOG_BURST at most; a clock going backwards earns nothing', async (t) => {
  const { clock, lim } = limiter();
  for (let i = 0; i < LOG_BURST; i++) lim.take('a');
  clock.t += 3_600_000;
  let written = 0;
  while (lim.take('a') >= 0) written++;
  t.equal(written, LOG_BURST, 'an hour of quiet buys one burst, not 3600 lines');
  clock.t -= 10_000;
  t.equal(lim.take('a'), -1, 'backwards: still empty');
  clock.t += 1000;
  t.ok(lim.take('a') >= 0, 'a second after the step back: one line');
});

t.test('drain reports quiet kinds once they may write again, then nothing', async (t) => {
  const { clock, lim } = limiter();
  const reports: [string, number][] = [];
  const drain = (): void => lim.drain((kind, n) => reports.push([kind, n]));
  drain();
  t.same(reports, [], 'nothing suppressed, nothing reported');
  for (let i = 0; i < LOG_BURST + 3; i++) lim.take('a');
  for (let i = 0; i < LOG_BURST + 1; i++) lim.take('b');
  lim.take('c');
  drain();
  t.same(reports, [], 'no token yet: the report waits');
  clock.t += 1000;
  drain();
  t.same(reports, [['a', 3], ['b', 1]], 'one report per kind with suppressed lines');
  drain();
  clock.t += 5000;
  drain();
  t.same(reports, [['a', 3], ['b', 1]], 'reported once');
  t.equal(lim.take('a'), 0, 'and the next line reports nothing again');
});
