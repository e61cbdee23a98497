// Command-line parsing: accepted command lines give the exact parsed values; rejected ones
// give ok:false with a message naming the problem. Also the daemon start-up bound read from
// WIREPOOL_START_TIMEOUT_MS (src/cli/main.ts), and LOG_LEVEL's values in --help, in the
// logger and in the README agreeing.

import t from 'tap';
import fs from 'node:fs';
import { defaultHandshakeWorkers, defaultTunQueues, parseArgs, usage, MAX_HANDSHAKE_WORKERS, MAX_WORKERS } from '../src/cli/args.js';
import { logLevelFromEnv } from '../src/log.js';

const defaults: Record<string, unknown> = { ok: true, foreground: false, ifname: '', workers: null, handshakeWorkers: null, tunQueues: null, config: null, pidFile: null, metrics: null, version: false, help: false };

t.test('accepted command lines', async (t) => {
  const cases: Array<[string[], Record<string, unknown>]> = [
    [['wg0'], { ifname: 'wg0' }],
    [['-f', 'wg0'], { ifname: 'wg0', foreground: true }],
    [['--foreground', 'wg0'], { ifname: 'wg0', foreground: true }],
    [['wg0', '-f'], { ifname: 'wg0', foreground: true }],
    [['--workers', '4', 'wg0'], { ifname: 'wg0', workers: 4 }],
    [['--workers=1', 'wg0'], { ifname: 'wg0', workers: 1 }],
    [['--workers', String(MAX_WORKERS), 'wg0'], { ifname: 'wg0', workers: MAX_WORKERS }],
    [['--handshake-workers', '0', 'wg0'], { ifname: 'wg0', handshakeWorkers: 0 }],
    [['--handshake-workers=3', 'wg0'], { ifname: 'wg0', handshakeWorkers: 3 }],
    [['--handshake-workers', String(MAX_HANDSHAKE_WORKERS), 'wg0'], { ifname: 'wg0', handshakeWorkers: MAX_HANDSHAKE_WORKERS }],
    [['--tun-queues', '1', 'wg0'], { ifname: 'wg0', tunQueues: 1 }],
    [['--tun-queues=8', 'wg0'], { ifname: 'wg0', tunQueues: 8 }],
    [['--config', '/etc/wireguard/wg0.conf', 'wg0'], { ifname: 'wg0', config: '/etc/wireguard/wg0.conf' }],
    [['--pid-file', '/run/wirepool/wg0.pid', 'wg0'], { ifname: 'wg0', pidFile: '/run/wirepool/wg0.pid' }],
    [['--metrics', '127.0.0.1:9586', 'wg0'], { ifname: 'wg0', metrics: '127.0.0.1:9586' }],
    [['--metrics=[::1]:9586', 'wg0'], { ifname: 'wg0', metrics: '[::1]:9586' }],
    [['--metrics', 'localhost:1', 'wg0'], { ifname: 'wg0', metrics: 'localhost:1' }],
    [['--metrics', '0.0.0.0:65535', 'wg0'], { ifname: 'wg0', metrics: '0.0.0.0:65535' }],
    [['-f', '--workers', '2', '--config', 'c.conf', '--metrics', '[::]:9100', 'wg-office'],
      { ifname: 'wg-office', foreground: true, workers: 2, config: 'c.conf', metrics: '[::]:9100' }],
    [['--version'], { version: true }],
    [['-h'], { help: true }],
    [['--help', 'wg0'], { help: true, ifname: 'wg0' }],
    [['abcdefghijklmno'], { ifname: 'abcdefghijklmno' }], // 15 characters
    [['--', '-wg'], { ifname: '-wg' }],
    [['wg.0_x-y'], { ifname: 'wg.0_x-y' }],
  ];
  for (const [argv, want] of cases) {
    t.same(parseArgs(argv), { ...defaults, ...want }, argv.join(' '));
  }
});

t.test('default handshake workers by CPU count: none below 4, then CPUs - 1 up to 8', async (t) => {
  t.same([1, 2, 3, 4, 6, 9, 16, 64].map(defaultHandshakeWorkers), [0, 0, 0, 3, 5, 8, 8, 8]);
});

t.test('default TUN queues by CPU count: 1 below 8, then one per 4 CPUs up to 4', async (t) => {
  t.same([1, 2, 4, 7, 8, 12, 16, 64].map(defaultTunQueues), [1, 1, 1, 1, 2, 3, 4, 4]);
});

t.test('rejected command lines', async (t) => {
  const cases: Array<[string[], RegExp]> = [
    [[], /missing interface name/],
    [['-f'], /missing interface name/],
    [['wg0', 'wg1'], /one interface name, got 2/],
    [['--bogus', 'wg0'], /unknown option "--bogus"/],
    [['-x', 'wg0'], /unknown option "-x"/],
    [['--foreground=yes', 'wg0'], /takes no value/],
    [['wg0', '--workers'], /--workers needs a value/],
    [['--workers', '0', 'wg0'], /--workers must be an integer from 1 to 64/],
    [['--workers', String(MAX_WORKERS + 1), 'wg0'], /from 1 to 64/],
    [['--workers', '1.5', 'wg0'], /from 1 to 64/],
    [['--workers', '-2', 'wg0'], /from 1 to 64/],
    [['--workers', 'four', 'wg0'], /from 1 to 64/],
    [['--workers=', 'wg0'], /from 1 to 64/],
    [['wg0', '--handshake-workers'], /--handshake-workers needs a value/],
    [['--handshake-workers', String(MAX_HANDSHAKE_WORKERS + 1), 'wg0'], /--handshake-workers must be an integer from 0 to 64/],
    [['--handshake-workers', '-1', 'wg0'], /from 0 to 64/],
    [['--handshake-workers', 'all', 'wg0'], /from 0 to 64/],
    [['wg0', '--tun-queues'], /--tun-queues needs a value/],
    [['--tun-queues', '0', 'wg0'], /--tun-queues must be an integer from 1 to 8/],
    [['--tun-queues', '9', 'wg0'], /from 1 to 8/],
    [['wg0', '--config'], /--config needs a file name/],
    [['--metrics', '9586', 'wg0'], /expected ADDR:PORT/],
    [['--metrics', '127.0.0.1:0', 'wg0'], /port "0"/],
    [['--metrics', '127.0.0.1:65536', 'wg0'], /port "65536"/],
    [['--metrics', '127.0.0.1:http', 'wg0'], /port "http"/],
    [['--metrics', '::1:9586', 'wg0'], /in brackets/],
    [['--metrics', '[127.0.0.1]:9586', 'wg0'], /not an IPv6 address/],
    [['--metrics', '[::1', 'wg0'], /^--metrics "\[::1": no "\]" after the IPv6 address: write it as \[ADDR\]:PORT/],
    [['--metrics', '[::1]', 'wg0'], /expected \[ADDR\]:PORT/],
    [['--metrics', '[::1]9586', 'wg0'], /expected \[ADDR\]:PORT/],
    [['--metrics', '[::1]:x', 'wg0'], /port "x"/],
    [['wg0', '--pid-file'], /--pid-file needs a file name/],
    [['--metrics', 'bad host:9586', 'wg0'], /not an address or host name/],
    [['abcdefghijklmnop'], /longer than 15/], // 16 characters
    [['wg/0'], /cannot contain '\/'/],
    [['wg:0'], /cannot contain ':'/],
    [['wg%d'], /cannot contain '%'/],
    [['wg 0'], /whitespace/],
    [['wg\t0'], /whitespace/],
    [['.'], /"\." or "\.\."/],
    [['..'], /"\." or "\.\."/],
    [['--', ''], /empty/],
    [['wgé'], /printable ASCII/],
  ];
  for (const [argv, want] of cases) {
    const r = parseArgs(argv);
    t.equal(r.ok, false, `${JSON.stringify(argv)} is rejected`);
    if (!r.ok) t.match(r.message, want, JSON.stringify(argv));
  }
});

t.test('usage names every option', async (t) => {
  const text = usage();
  for (const opt of ['-f', '--foreground', '--workers', '--config', '--pid-file', '--metrics', '--version', '--help', 'INTERFACE-NAME']) {
    t.ok(text.includes(opt), opt);
  }
});

t.test('daemon start-up bound: WIREPOOL_START_TIMEOUT_MS or 30 s', async (t) => {
  const { START_TIMEOUT_MS, startTimeoutMs } = await import('../src/cli/main.js');
  t.equal(START_TIMEOUT_MS, 30_000);
  t.equal(startTimeoutMs({}), START_TIMEOUT_MS, 'unset: the default');
  t.equal(startTimeoutMs({ WIREPOOL_START_TIMEOUT_MS: '1500' }), 1500);
  t.equal(startTimeoutMs({ WIREPOOL_START_TIMEOUT_MS: '99999999999' }), 0x7fffffff, 'capped at what setTimeout accepts');
  for (const bad of ['', '0', '-5', '1.5', '1e3', ' 100', 'abc', '010']) {
    t.equal(startTimeoutMs({ WIREPOOL_START_TIMEOUT_MS: bad }), START_TIMEOUT_MS, `${JSON.stringify(bad)}: the default`);
  }
});

t.test('LOG_LEVEL: --help and the README list the values the logger knows', async (t) => {
  const values = (text: string, where: string): string[] => {
    const m = /LOG_LEVEL=([a-z]+(?:\|[a-z]+)+)/.exec(text);
    t.ok(m, `${where} names the LOG_LEVEL values`);
    return (m?.[1] ?? '').split('|').sort();
  };
  const help = values(usage(), '--help');
  t.same(help, ['debug', 'error', 'silent', 'verbose']);
  const known = (v: string): boolean => v === 'error' || logLevelFromEnv(v) !== 'error';
  t.same(help.filter((v) => !known(v)), [], 'every value --help lists means something to the logger');
  const readme = fs.readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  t.same(values(readme, 'the README'), help, 'the README lists the same values');
});
