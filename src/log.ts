// Structured logger: one JSON object per line, to stderr or a given stream, written by pino.
//
// Line shape: {"time":"<ISO 8601>","level":"error"|"info"|"verbose","ifname":"wg0","msg":"...",...fields}
// Levels follow wireguard-go's LOG_LEVEL environment variable: 'silent'
// prints nothing, 'error' prints errors only (the default), 'verbose' prints everything.
// wireguard-go has no separate info level; info() lines (start-up, shutdown) are printed
// at 'verbose' like wireguard-go's Verbosef, but labelled "info" so they can be filtered.
//
// Redaction guard, applied to every field value at any depth: a Uint8Array (Buffer) of
// 32 bytes, the size of every WireGuard key, and any field whose name contains "private",
// "preshared" or "secret" become "[redacted]". Other byte arrays are logged as their length
// only. Public keys must be passed as base64 strings. The message text is not inspected:
// never put key material into it. pino's own `redact` takes fixed paths, which cannot say
// "any 32-byte array at any depth", so the guard runs here, before pino sees the fields.
//
// How pino is set up to write that shape: pino writes a line as the level formatter's JSON
// (without its closing brace), then the timestamp string, then its bindings (here only
// ifname), then the call's fields, then the message. Our level formatter writes nothing ("{"),
// the timestamp writes `"time":"…","level":"…"` (one pino instance per line level, so that
// string is fixed but for the time), and the message is passed as the first field, followed by
// a child logger's fields, so both come before the line's own fields. test/log.test.ts pins
// the shape, so a pino release that changes this order fails there.

import { pino, type DestinationStream, type Logger as PinoLogger } from 'pino';
import { KEY_LEN } from './constants.js';

export type LogLevel = 'silent' | 'error' | 'verbose';
export type LogFields = Record<string, unknown>;

export interface Logger {
  readonly level: LogLevel;
  error(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  verbose(msg: string, fields?: LogFields): void;
  /** A logger that adds `fields` to every line (after this logger's own fields). */
  child(fields: LogFields): Logger;
}

export interface LoggerOptions {
  level: LogLevel;
  ifname: string;
  stream?: { write(line: string): unknown };
}

export const REDACTED = '[redacted]';
const SECRET_NAME = /private|preshared|secret/i;
const RESERVED = new Set(['time', 'level', 'ifname', 'msg']);
const MAX_DEPTH = 4;

/** LOG_LEVEL as wireguard-go reads it: verbose/debug → verbose, silent → silent, anything else → error. */
export function logLevelFromEnv(value: string | undefined): LogLevel {
  switch (value) {
    case 'verbose':
    case 'debug':
      return 'verbose';
    case 'silent':
      return 'silent';
    default:
      return 'error';
  }
}

/** Makes `value` safe and JSON-friendly; `name` is the field name it is stored under. */
function sanitize(name: string, value: unknown, depth: number): unknown {
  if (SECRET_NAME.test(name)) return REDACTED;
  if (value instanceof Uint8Array) {
    return value.length === KEY_LEN ? REDACTED : `<${value.length} bytes>`;
  }
  switch (typeof value) {
    case 'bigint':
      return value.toString();
    case 'function':
    case 'symbol':
      return String(value);
    case 'object':
      break;
    default:
      return value;
  }
  if (value === null) return null;
  if (depth >= MAX_DEPTH) return '[nested too deep]';
  if (value instanceof Error) {
    const out: LogFields = { name: value.name, message: value.message };
    const code = (value as NodeJS.ErrnoException).code;
    if (code !== undefined) out.code = code;
    return out;
  }
  if (value instanceof Date) return value.toISOString();
  if (Array.isArray(value)) return value.map((v) => sanitize(name, v, depth + 1));
  if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer || value instanceof SharedArrayBuffer) {
    return `<${value.byteLength} bytes>`;
  }
  if (value instanceof Map) return sanitizeFields(Object.fromEntries(value), depth + 1);
  return sanitizeFields(value as LogFields, depth + 1);
}

function sanitizeFields(fields: LogFields, depth: number): LogFields {
  const out: LogFields = {};
  for (const key of Object.keys(fields)) out[key] = sanitize(key, fields[key], depth);
  return out;
}

/** Copies sanitized fields into a line's fields; the fixed keys cannot be overwritten. */
function addFields(out: LogFields, fields: LogFields): void {
  for (const key of Object.keys(fields)) if (!RESERVED.has(key)) out[key] = sanitize(key, fields[key], 0);
}

type LineLevel = 'error' | 'info' | 'verbose';
/** pino's numbers: a line is written when its number is at least the logger's threshold. */
const PINO_LEVELS: Record<LineLevel, number> = { error: 50, info: 30, verbose: 20 };
/** LOG_LEVEL → pino threshold: 'error' passes error lines only, 'verbose' also info and verbose. */
const THRESHOLD: Record<LogLevel, string> = { silent: 'silent', error: 'error', verbose: 'verbose' };

type Pino = PinoLogger<LineLevel, boolean>;

function pinoFor(lineLevel: LineLevel, options: LoggerOptions, stream: DestinationStream): Pino {
  const afterTime = `","level":"${lineLevel}"`;
  return pino<LineLevel, true>(
    {
      level: THRESHOLD[options.level],
      customLevels: PINO_LEVELS,
      useOnlyCustomLevels: true,
      base: { ifname: options.ifname },
      messageKey: 'msg',
      // The guard already made every value plain; pino's default `err` serializer would add a stack.
      serializers: { err: (value: unknown) => value },
      formatters: { level: () => ({}) },
      timestamp: () => `"time":"${new Date().toISOString()}${afterTime}`,
    },
    stream,
  );
}

export function createLogger(options: LoggerOptions): Logger {
  // process.stderr, not pino.destination(2): on Linux its writes to files, pipes and terminals
  // are synchronous already (a crash loses no line), and it is the stream tests and embedders replace.
  const stream = (options.stream ?? process.stderr) as DestinationStream;
  return wrap(options.level, pinoFor('error', options, stream), pinoFor('info', options, stream), pinoFor('verbose', options, stream), {});
}

function wrap(level: LogLevel, e: Pino, i: Pino, v: Pino, base: LogFields): Logger {
  // Checked before the fields are sanitized, so a line that is not written costs nothing.
  const errorOn = e.isLevelEnabled('error');
  const verboseOn = v.isLevelEnabled('verbose');
  // The message goes in as the first field (pino would write it last), then the child's fields
  // (as plain fields, not pino bindings: those would come before the message).
  const line = (msg: string, fields: LogFields | undefined): LogFields => {
    const out: LogFields = { msg, ...base };
    if (fields !== undefined) addFields(out, fields);
    return out;
  };
  return {
    level,
    error(msg, fields) {
      if (errorOn) e.error(line(msg, fields));
    },
    info(msg, fields) {
      if (verboseOn) i.info(line(msg, fields));
    },
    verbose(msg, fields) {
      if (verboseOn) v.verbose(line(msg, fields));
    },
    child(fields) {
      const more: LogFields = { ...base };
      addFields(more, fields);
      return wrap(level, e, i, v, more);
    },
  };
}
