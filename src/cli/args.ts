// Command-line parsing for `wirepool [-f|--foreground] [options] INTERFACE-NAME`, a pure
// function of argv, modelled on wireguard-go's. The caller prints usage() and
// exits 1 on { ok: false } (wireguard-go exits 0 on wrong arguments; we do not), prints
// the banner for --version and usage() for --help, both exiting 0. Environment variables
// (WG_TUN_FD, WG_PROCESS_FOREGROUND, LOG_LEVEL) are the caller's concern.

import { MAX_TUN_QUEUES, ifnameProblem } from '../io/tun.js';
import { listenAddressProblem } from '../metrics/config.js';

export const MAX_WORKERS = 64;
export const MAX_HANDSHAKE_WORKERS = 64;

/**
 * Handshake workers (src/handshake-offload.ts) by CPU count. Below 4 CPUs none: on the 2-vCPU
 * host a worker cost ≈ 20 % more CPU per handshake in all and raised neither the handshake rate
 * the device keeps up with nor an established peer's ping during a storm (bench/HANDSHAKES.md),
 * since a storm already keeps both CPUs busy. With more CPUs the arithmetic spreads over them.
 */
export function defaultHandshakeWorkers(cpus: number): number {
  return cpus >= 4 ? Math.min(8, cpus - 1) : 0;
}

/**
 * Queues of the TUN device by CPU count: one below 8 CPUs (a second reader thread has no core of
 * its own there, and one flow is always read from one queue), else one per four CPUs, at most 4.
 * Not yet measured on a many-core machine (README "Known limits").
 */
export function defaultTunQueues(cpus: number): number {
  return cpus >= 8 ? Math.min(4, cpus >> 2) : 1;
}

export type ParsedArgs =
  | {
      ok: true;
      foreground: boolean;
      /** '' only when version or help is set */
      ifname: string;
      workers: number | null;
      handshakeWorkers: number | null;
      tunQueues: number | null;
      config: string | null;
      /** file to write the daemon's pid to once it is ready (systemd's PIDFile=) */
      pidFile: string | null;
      /** "ADDR:PORT" as given, validated; IPv6 addresses in brackets */
      metrics: string | null;
      version: boolean;
      help: boolean;
    }
  | { ok: false; message: string };

export function usage(): string {
  return [
    'Usage: wirepool [-f|--foreground] [options] INTERFACE-NAME',
    '',
    'Creates the TUN interface INTERFACE-NAME and serves the WireGuard configuration',
    'socket /var/run/wireguard/INTERFACE-NAME.sock. Without -f it detaches once both exist.',
    '',
    'Options:',
    '  -f, --foreground      stay in the foreground',
    `  --workers N           crypto worker threads (1-${MAX_WORKERS}; default: from the CPU count)`,
    `  --handshake-workers N threads preparing initiations when the main thread falls behind`,
    `                        (0-${MAX_HANDSHAKE_WORKERS}, 0: none; default: none below 4 CPUs, else CPUs - 1, at most 8)`,
    `  --tun-queues N        queues of the TUN device, one reader thread each (1-${MAX_TUN_QUEUES};`,
    '                        default: 1 below 8 CPUs, else one per 4 CPUs, at most 4)',
    '  --config FILE         apply this wg(8) configuration file at start-up; SIGHUP re-reads it',
    '  --pid-file FILE       write the daemon\'s pid to FILE once it is ready (removed at exit)',
    '  --metrics ADDR:PORT   serve Prometheus metrics on ADDR:PORT (e.g. 127.0.0.1:9586, [::1]:9586)',
    '  --version             print the version and exit',
    '  -h, --help            print this help and exit',
    '',
    'Environment: LOG_LEVEL=error|verbose|debug|silent (default error; debug is verbose),',
    '  WG_TUN_FD, WG_UAPI_FD, WG_PROCESS_FOREGROUND=1',
  ].join('\n');
}

const fail = (message: string): ParsedArgs => ({ ok: false, message });

/** A thread-count option's value (v: null when none was given): the count, or why it is refused. */
function threadCount(option: string, v: string | null, min: number, max: number): number | string {
  if (v === null) return `${option} needs a value`;
  if (!/^[0-9]+$/.test(v) || Number(v) < min || Number(v) > max) {
    return `${option} must be an integer from ${min} to ${max}, not ${JSON.stringify(v)}`;
  }
  return Number(v);
}

/** Parses argv without the node and script entries (process.argv.slice(2)). */
export function parseArgs(argv: string[]): ParsedArgs {
  let foreground = false;
  let version = false;
  let help = false;
  let workers: number | null = null;
  let handshakeWorkers: number | null = null;
  let tunQueues: number | null = null;
  let config: string | null = null;
  let pidFile: string | null = null;
  let metrics: string | null = null;
  const positional: string[] = [];

  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--') {
      positional.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith('-') || arg === '-') {
      positional.push(arg);
      continue;
    }
    // "--opt=value" or "--opt value" for the options that take a value.
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    const option = eq < 0 ? arg : arg.slice(0, eq);
    const takeValue = (): string | null => {
      if (eq >= 0) return arg.slice(eq + 1);
      if (i + 1 < argv.length) return argv[++i];
      return null;
    };
    switch (option) {
      case '-f':
      case '--foreground':
        if (eq >= 0) return fail(`${option} takes no value`);
        foreground = true;
        break;
      case '--version':
        if (eq >= 0) return fail(`${option} takes no value`);
        version = true;
        break;
      case '-h':
      case '--help':
        if (eq >= 0) return fail(`${option} takes no value`);
        help = true;
        break;
      case '--workers': {
        const n = threadCount(option, takeValue(), 1, MAX_WORKERS);
        if (typeof n === 'string') return fail(n);
        workers = n;
        break;
      }
      case '--handshake-workers': {
        const n = threadCount(option, takeValue(), 0, MAX_HANDSHAKE_WORKERS);
        if (typeof n === 'string') return fail(n);
        handshakeWorkers = n;
        break;
      }
      case '--tun-queues': {
        const n = threadCount(option, takeValue(), 1, MAX_TUN_QUEUES);
        if (typeof n === 'string') return fail(n);
        tunQueues = n;
        break;
      }
      case '--config': {
        const v = takeValue();
        if (v === null || v === '') return fail('--config needs a file name');
        config = v;
        break;
      }
      case '--pid-file': {
        const v = takeValue();
        if (v === null || v === '') return fail('--pid-file needs a file name');
        pidFile = v;
        break;
      }
      case '--metrics': {
        const v = takeValue();
        if (v === null || v === '') return fail('--metrics needs ADDR:PORT');
        const problem = listenAddressProblem(v);
        if (problem !== null) return fail(`--metrics ${JSON.stringify(v)}: ${problem}`);
        metrics = v;
        break;
      }
      default:
        return fail(`unknown option ${JSON.stringify(option)}`);
    }
  }

  let ifname = '';
  if (positional.length > 1) {
    return fail(`expected one interface name, got ${positional.length}: ${positional.map((p) => JSON.stringify(p)).join(' ')}`);
  }
  if (positional.length === 1) {
    ifname = positional[0];
    const problem = ifnameProblem(ifname);
    if (problem !== null) return fail(`invalid interface name ${JSON.stringify(ifname)}: ${problem}`);
  } else if (!version && !help) {
    return fail('missing interface name');
  }
  return { ok: true, foreground, ifname, workers, handshakeWorkers, tunQueues, config, pidFile, metrics, version, help };
}
