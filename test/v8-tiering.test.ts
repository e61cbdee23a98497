// The daemon's V8 tiering (src/cli/v8-tiering.ts), checked in child processes by what V8 says about
// their functions (%ActiveTierIs…, --allow-natives-syntax; synchronous optimization for a
// deterministic count): after tuneTiering() a function runs as baseline machine code from its
// first call and a hot one is optimized after a few thousand calls, where V8's defaults still
// interpret the first and have not optimized the second; a flag the operator gave node is kept.
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { TIERING_FLAGS } from '../src/cli/v8-tiering.js';

const MODULE = fileURLToPath(new URL('../src/cli/v8-tiering.js', import.meta.url));
/** Calls of a small function: enough to optimize it with TIERING_FLAGS, too few with V8's defaults (≈ 10,000). */
const HOT_CALLS = 6000;

interface Tiers { firstCallBaseline: boolean; hotOptimized: boolean }

function tiers(tune: boolean, nodeFlags: string[] = []): Tiers {
  const script = `
    ${tune ? `(await import(${JSON.stringify(MODULE)})).tuneTiering();` : ''}
    const once = new Function('x', 'return x + 1');
    once(1);
    const hot = new Function('x', 'return (x * 3) ^ 5');
    let s = 0;
    for (let i = 0; i < ${HOT_CALLS}; i++) s += hot(i);
    process.stdout.write(JSON.stringify({ firstCallBaseline: %ActiveTierIsSparkplug(once), hotOptimized: %ActiveTierIsTurbofan(hot) }));`;
  const out = execFileSync(process.execPath, ['--allow-natives-syntax', '--no-concurrent-recompilation', ...nodeFlags, '--input-type=module', '-e', script], {
    encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' }, timeout: 30_000,
  });
  return JSON.parse(out) as Tiers;
}

t.test('V8 defaults: interpreted at first, not yet optimized', async (t) => {
  t.same(tiers(false), { firstCallBaseline: false, hotOptimized: false });
});

t.test('tuned: baseline code from the first call, optimized after a few thousand calls', async (t) => {
  t.same(TIERING_FLAGS, ['--always-sparkplug', '--interrupt-budget=16000']);
  t.same(tiers(true), { firstCallBaseline: true, hotOptimized: true });
});

t.test("the operator's own flags on node's command line win", async (t) => {
  t.same(tiers(true, ['--no-always-sparkplug', '--interrupt-budget=67584']), { firstCallBaseline: false, hotOptimized: false },
    '--no-always-sparkplug and the default budget given explicitly');
  t.same(tiers(true, ['--interrupt_budget=67584']), { firstCallBaseline: true, hotOptimized: false }, 'one flag kept (either spelling), the other applied');
});
