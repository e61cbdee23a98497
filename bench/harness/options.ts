// Command line of the side-by-side benchmark (`npm run bench -- [options]`) and the pair
// list it implies. Pure: parseBenchArgs() returns the options or an error message.

import { type PairSpec } from './topology.js';

export interface BenchOptions {
  quick: boolean;
  rounds: number;
  /** iperf3 seconds per run. */
  duration: number;
  /** Pings per latency sample (idle and under load), at pingIntervalMs. */
  pings: number;
  pingIntervalMs: number;
  /** wirepool --workers values to sweep; [] = wirepool's default. */
  workers: number[];
  /** wirepool --tun-queues values to sweep (with each --workers value); [] = wirepool's default. */
  tunQueues: number[];
  /** Pair kinds, in the order they are measured within a round. */
  pairs: PairKind[];
  /** Overall deadline, seconds: no measurement starts after it. */
  deadline: number;
  /** --deadline was given (otherwise `deadline` is the default, grown to fit the planned work). */
  deadlineGiven: boolean;
  /** Tunnel MTU on every interface. */
  mtu: number;
  outDir: string;
  help: boolean;
}

export const PAIR_KINDS = ['wp-wp', 'wg-wg', 'wp-wg', 'wg-wp'] as const;
export type PairKind = (typeof PAIR_KINDS)[number];

export const REFERENCE_PAIR_ID = 'wg-wg';

export const USAGE = `usage: npm run bench -- [options]      (as root)

  --quick              one short round: 2 s iperf3 runs, 50 pings (about 25 s per pair)
  --rounds N           rounds; each round measures every pair once, pairs alternating (default 3)
  --duration S         seconds per iperf3 run (default 5; --quick 2)
  --pings N            pings per latency sample, 20 ms apart (default 100; --quick 50)
  --workers 1,2,...    sweep wirepool's --workers: one wirepool↔wirepool pair per value
                       (the mixed pairs use the first value); default: wirepool's own default
  --tun-queues 1,2,... sweep wirepool's --tun-queues the same way (with every --workers value)
  --pairs LIST         any of wp-wp,wg-wg,wp-wg,wg-wp (default all; wp = wirepool,
                       wg = wireguard-go, client/sender first); wg-wg is the ratio reference
  --deadline S         overall time limit; no measurement starts after it (default 1800,
                       --quick 180, or 1.5× the planned work where that is more)
  --mtu N              tunnel MTU (default 1440: a 1400-byte UDP payload fits one packet)
  --out DIR            where the JSON and SVG go (default bench/results)
  -h, --help`;

type Parsed = { ok: true; options: BenchOptions } | { ok: false; message: string };

const positiveInt = (s: string | undefined, max: number): number | null => {
  if (s === undefined || !/^\d+$/.test(s)) return null;
  const n = Number(s);
  return n >= 1 && n <= max ? n : null;
};

export function parseBenchArgs(argv: string[], defaultOutDir: string): Parsed {
  const quick = argv.includes('--quick');
  const o: BenchOptions = {
    quick,
    rounds: quick ? 1 : 3,
    duration: quick ? 2 : 5,
    pings: quick ? 50 : 100,
    pingIntervalMs: 20,
    workers: [],
    tunQueues: [],
    pairs: [...PAIR_KINDS],
    deadline: quick ? 180 : 1800,
    deadlineGiven: false,
    mtu: 1440,
    outDir: defaultOutDir,
    help: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const [flag, inline] = a.startsWith('--') && a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    const value = (): string | undefined => inline ?? argv[++i];
    const int = (max: number): number | null => positiveInt(value(), max);
    let n: number | null;
    switch (flag) {
      case '--quick':
        break;
      case '-h':
      case '--help':
        o.help = true;
        break;
      case '--rounds':
        if ((n = int(100)) === null) return { ok: false, message: '--rounds needs an integer 1..100' };
        o.rounds = n;
        break;
      case '--duration':
        if ((n = int(600)) === null) return { ok: false, message: '--duration needs whole seconds 1..600' };
        o.duration = n;
        break;
      case '--pings':
        if ((n = int(10_000)) === null) return { ok: false, message: '--pings needs an integer 1..10000' };
        o.pings = n;
        break;
      case '--deadline':
        if ((n = int(86_400)) === null) return { ok: false, message: '--deadline needs seconds 1..86400' };
        o.deadline = n;
        o.deadlineGiven = true;
        break;
      case '--mtu':
        if ((n = int(9000)) === null || n < 1280) return { ok: false, message: '--mtu needs an integer 1280..9000' };
        o.mtu = n;
        break;
      case '--workers': {
        const list = (value() ?? '').split(',').map((s) => positiveInt(s.trim(), 64));
        if (list.length === 0 || list.some((w) => w === null)) return { ok: false, message: '--workers needs a list like 1,2,3 (each 1..64)' };
        o.workers = [...new Set(list as number[])];
        break;
      }
      case '--tun-queues': {
        const list = (value() ?? '').split(',').map((s) => positiveInt(s.trim(), 8));
        if (list.length === 0 || list.some((q) => q === null)) return { ok: false, message: '--tun-queues needs a list like 1,2 (each 1..8)' };
        o.tunQueues = [...new Set(list as number[])];
        break;
      }
      case '--pairs': {
        const list = (value() ?? '').split(',').map((s) => s.trim()).filter((s) => s !== '');
        const bad = list.find((s) => !(PAIR_KINDS as readonly string[]).includes(s));
        if (list.length === 0 || bad !== undefined) return { ok: false, message: `--pairs takes ${PAIR_KINDS.join(',')}${bad !== undefined ? ` (not ${bad})` : ''}` };
        o.pairs = [...new Set(list as PairKind[])];
        break;
      }
      case '--out': {
        const v = value();
        if (v === undefined || v === '') return { ok: false, message: '--out needs a directory' };
        o.outDir = v;
        break;
      }
      default:
        return { ok: false, message: `unknown argument ${a}` };
    }
  }
  if (!o.deadlineGiven) o.deadline = Math.max(o.deadline, Math.ceil(1.5 * plannedSeconds(o)));
  return { ok: true, options: o };
}

/**
 * About how long a run takes on an idle machine: per pair, its set-up and warm-up, then per
 * round four iperf3 runs (each with about 1.5 s of start, stop and counter reads around it),
 * the idle pings, and the pings under load (1 s ramp-up, iperf3 start and stop).
 */
export function plannedSeconds(o: Pick<BenchOptions, 'pairs' | 'workers' | 'tunQueues' | 'rounds' | 'duration' | 'pings' | 'pingIntervalMs'>): number {
  const pingS = (o.pings * o.pingIntervalMs) / 1000;
  const perRound = 4 * (o.duration + 1.5) + (pingS + 1) + (pingS + 3.5);
  return pairSpecs(o).length * (5 + o.rounds * perRound);
}

/** A wirepool daemon's settings in a pair: --workers and --tun-queues (undefined: its default). */
interface Setting { workers?: number; tunQueues?: number }

/** The pairs to build, in measuring order: one wirepool↔wirepool pair per --workers × --tun-queues value. */
export function pairSpecs(o: Pick<BenchOptions, 'pairs' | 'workers'> & Partial<Pick<BenchOptions, 'tunQueues'>>): PairSpec[] {
  const queues = o.tunQueues ?? [];
  const sweep: Setting[] = [];
  for (const w of o.workers.length > 0 ? o.workers : [undefined]) {
    for (const q of queues.length > 0 ? queues : [undefined]) sweep.push({ ...(w === undefined ? {} : { workers: w }), ...(q === undefined ? {} : { tunQueues: q }) });
  }
  const tag = (s: Setting): string => (s.workers === undefined ? '' : ` w=${s.workers}`) + (s.tunQueues === undefined ? '' : ` q=${s.tunQueues}`);
  const idTag = (s: Setting): string => (s.workers === undefined ? '' : `-w${s.workers}`) + (s.tunQueues === undefined ? '' : `-q${s.tunQueues}`);
  const first = sweep[0]!;
  const specs: PairSpec[] = [];
  for (const kind of o.pairs) {
    switch (kind) {
      case 'wp-wp':
        for (const w of sweep) specs.push({ id: `wp-wp${idTag(w)}`, label: `wirepool↔wirepool${tag(w)}`, client: 'wirepool', server: 'wirepool', ...w });
        break;
      case 'wg-wg':
        specs.push({ id: REFERENCE_PAIR_ID, label: 'wg-go↔wg-go', client: 'wireguard-go', server: 'wireguard-go' });
        break;
      case 'wp-wg':
        specs.push({ id: `wp-wg${idTag(first)}`, label: `wirepool${tag(first)}→wg-go`, client: 'wirepool', server: 'wireguard-go', ...first });
        break;
      case 'wg-wp':
        specs.push({ id: `wg-wp${idTag(first)}`, label: `wg-go→wirepool${tag(first)}`, client: 'wireguard-go', server: 'wirepool', ...first });
        break;
    }
  }
  return specs;
}
