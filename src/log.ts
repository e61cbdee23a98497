// Structured logger: one JSON object per line, to stderr or a given stream.
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
// never put key material into it.

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

/** Copies already-sanitized fields into a line; the fixed keys cannot be overwritten. */
function addFields(line: LogFields, fields: LogFields): void {
  for (const key of Object.keys(fields)) if (!RESERVED.has(key)) line[key] = fields[key];
}

const LEVEL_RANK: Record<LogLevel, number> = { silent: 0, error: 1, verbose: 2 };

export function createLogger(options: LoggerOptions): Logger {
  const stream = options.stream ?? process.stderr;
  return makeLogger(options.level, options.ifname, stream, {});
}

function makeLogger(level: LogLevel, ifname: string, stream: NonNullable<LoggerOptions['stream']>, base: LogFields): Logger {
  const rank = LEVEL_RANK[level];

  const write = (lineLevel: 'error' | 'info' | 'verbose', msg: string, fields: LogFields | undefined): void => {
    const line: LogFields = { time: new Date().toISOString(), level: lineLevel, ifname, msg };
    addFields(line, base);
    if (fields !== undefined) addFields(line, sanitizeFields(fields, 0));
    stream.write(JSON.stringify(line) + '\n');
  };

  return {
    level,
    error(msg, fields) {
      if (rank >= LEVEL_RANK.error) write('error', msg, fields);
    },
    info(msg, fields) {
      if (rank >= LEVEL_RANK.verbose) write('info', msg, fields);
    },
    verbose(msg, fields) {
      if (rank >= LEVEL_RANK.verbose) write('verbose', msg, fields);
    },
    child(fields) {
      return makeLogger(level, ifname, stream, { ...base, ...sanitizeFields(fields, 0) });
    },
  };
}
