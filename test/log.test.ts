// Structured logger: one JSON object per line with time/level/ifname/msg first, level
// filtering as wireguard-go's LOG_LEVEL, and the key redaction guard.

import t from 'tap';
import { createLogger, logLevelFromEnv, REDACTED, type LogLevel } from '../src/log.js';

function capture(level: LogLevel): { lines: () => Record<string, unknown>[]; raw: () => string; log: ReturnType<typeof createLogger> } {
  let raw = '';
  const log = createLogger({ level, ifname: 'wg0', stream: { write: (s: string) => (raw += s) } });
  return {
    log,
    raw: () => raw,
    lines: () =>
      raw
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

t.test('line format', async (t) => {
  const c = capture('verbose');
  c.log.error('Failed to bind', { port: 51820, peer: 'xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=' });
  const raw = c.raw();
  t.ok(raw.endsWith('\n'), 'newline-terminated');
  t.equal(raw.split('\n').length, 2, 'exactly one line');
  const [line] = c.lines();
  t.same(Object.keys(line!), ['time', 'level', 'ifname', 'msg', 'port', 'peer'], 'fixed keys first, then fields in order');
  t.equal(line!.level, 'error');
  t.equal(line!.ifname, 'wg0');
  t.equal(line!.msg, 'Failed to bind');
  t.equal(line!.port, 51820);
  t.equal(line!.peer, 'xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=', 'base64 public keys pass');
  const time = line!.time as string;
  t.match(time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  t.equal(new Date(time).toISOString(), time, 'valid ISO time');
});

t.test('fields cannot overwrite the fixed keys; odd values are JSON-safe', async (t) => {
  const c = capture('verbose');
  c.log.verbose('hello', { msg: 'evil', level: 'error', ifname: 'x', time: 0, n: 2n ** 64n, err: Object.assign(new Error('boom'), { code: 'EX' }), when: new Date(0) });
  const [line] = c.lines();
  t.equal(line!.msg, 'hello');
  t.equal(line!.level, 'verbose');
  t.equal(line!.ifname, 'wg0');
  t.not(line!.time, 0);
  t.equal(line!.n, '18446744073709551616');
  t.same(line!.err, { name: 'Error', message: 'boom', code: 'EX' });
  t.equal(line!.when, '1970-01-01T00:00:00.000Z');
});

t.test('levels', async (t) => {
  const emitted = (level: LogLevel): string[] => {
    const c = capture(level);
    c.log.error('e');
    c.log.info('i');
    c.log.verbose('v');
    return c.lines().map((l) => `${l.level}:${l.msg}`);
  };
  t.same(emitted('silent'), []);
  t.same(emitted('error'), ['error:e']);
  t.same(emitted('verbose'), ['error:e', 'info:i', 'verbose:v']);
});

t.test('LOG_LEVEL mapping as wireguard-go', async (t) => {
  t.equal(logLevelFromEnv('verbose'), 'verbose');
  t.equal(logLevelFromEnv('debug'), 'verbose');
  t.equal(logLevelFromEnv('error'), 'error');
  t.equal(logLevelFromEnv('silent'), 'silent');
  t.equal(logLevelFromEnv(undefined), 'error');
  t.equal(logLevelFromEnv(''), 'error');
  t.equal(logLevelFromEnv('VERBOSE'), 'error', 'case-sensitive like wireguard-go');
});

t.test('redaction guard', async (t) => {
  const key = new Uint8Array(32).fill(0xab);
  const c = capture('verbose');
  c.log.verbose('keys', {
    raw: key,
    buf: Buffer.alloc(32, 0xcd),
    privateKey: 'c2VjcmV0LWJ1dC1zdHJpbmc=',
    presharedKey: 'cHNr',
    private_key: 42,
    clientSecret: { a: 1 },
    nested: { deeper: [key, { PrivateKey: 'x' }], ok: 'fine' },
    packet: new Uint8Array(60).fill(0xef),
    words: new Uint32Array(8),
    publicKey: 'xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=',
  });
  const [line] = c.lines();
  t.equal(line!.raw, REDACTED, '32-byte Uint8Array');
  t.equal(line!.buf, REDACTED, '32-byte Buffer');
  t.equal(line!.privateKey, REDACTED);
  t.equal(line!.presharedKey, REDACTED);
  t.equal(line!.private_key, REDACTED);
  t.equal(line!.clientSecret, REDACTED);
  t.same(line!.nested, { deeper: [REDACTED, { PrivateKey: REDACTED }], ok: 'fine' }, 'at any depth');
  t.equal(line!.packet, '<60 bytes>', 'other byte arrays: length only');
  t.equal(line!.words, '<32 bytes>');
  t.equal(line!.publicKey, 'xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=');
  const raw = c.raw();
  t.notMatch(raw, /abab|cdcd|efef|c2VjcmV0|cHNr/i, 'no key bytes or secret strings anywhere in the output');
});

t.test('child loggers add fields, also redacted', async (t) => {
  const c = capture('error');
  const peer = c.log.child({ peer: 'peer(xTIB…p8Dg)', secretThing: 'zzz' });
  const sub = peer.child({ endpoint: '192.0.2.1:51820' });
  sub.error('Handshake did not complete', { attempt: 3 });
  sub.verbose('not shown');
  t.equal(sub.level, 'error');
  const lines = c.lines();
  t.equal(lines.length, 1);
  t.same(Object.keys(lines[0]!), ['time', 'level', 'ifname', 'msg', 'peer', 'secretThing', 'endpoint', 'attempt']);
  t.equal(lines[0]!.secretThing, REDACTED);
  t.equal(lines[0]!.endpoint, '192.0.2.1:51820');
  t.notMatch(c.raw(), /zzz/);
});

t.test('each key once per line (pino appends, so nothing may repeat a fixed or child key)', async (t) => {
  const c = capture('verbose');
  const child = c.log.child({ peer: 'A', msg: 'evil', level: 'error' }).child({ endpoint: '192.0.2.1:51820' });
  child.info('up', { peer: 'B', time: 1, attempt: 2 });
  const raw = c.raw();
  for (const key of ['time', 'level', 'ifname', 'msg', 'peer', 'endpoint', 'attempt']) {
    t.equal(raw.split(`"${key}":`).length - 1, 1, `"${key}" once`);
  }
  const [line] = c.lines();
  t.same(Object.keys(line!), ['time', 'level', 'ifname', 'msg', 'peer', 'endpoint', 'attempt'], 'a line field replaces a child field in place');
  t.same(line, { time: line!.time, level: 'info', ifname: 'wg0', msg: 'up', peer: 'B', endpoint: '192.0.2.1:51820', attempt: 2 });
  t.equal(child.level, 'verbose');
});

t.test('silent: nothing, not even errors, from the logger or its children', async (t) => {
  const c = capture('silent');
  c.log.error('e', { a: 1 });
  c.log.child({ x: 1 }).error('e');
  t.equal(c.raw(), '');
});

t.test('writes to stderr by default', async (t) => {
  const original = process.stderr.write;
  let got = '';
  process.stderr.write = ((s: string) => {
    got += s;
    return true;
  }) as typeof process.stderr.write;
  try {
    createLogger({ level: 'error', ifname: 'wg9' }).error('to stderr');
  } finally {
    process.stderr.write = original;
  }
  t.equal((JSON.parse(got) as { ifname: string }).ifname, 'wg9');
});
