// Entry point of `bin/wirepool`: argument handling and daemonisation (spec §10).
//
// Without -f the parent re-executes itself in the foreground as a detached child with a
// readiness pipe on fd 3, waits until the child reports that the interface and the UAPI
// socket exist (or why it failed), and exits 0 or 1 accordingly — wg-quick runs
// `wg setconf` right after we return, so both must exist by then. With -f (or
// WG_PROCESS_FOREGROUND=1) the daemon runs in this process. A failed start is reported
// once: by the waiting parent in daemon mode, else as the foreground daemon's error log line;
// the parent exits only once the failed child has exited too (nothing is left running).
// --pid-file FILE: the foreground daemon writes its pid there just before it reports
// readiness (so it exists when the daemon-mode parent exits, as systemd's Type=forking with
// PIDFile= expects) and removes it when it exits.
//
// The parent's wait is bounded (our addition: wireguard-go's parent waits as long as its
// child takes): a child that neither reports nor exits within START_TIMEOUT_MS (30 s, or
// WIREPOOL_START_TIMEOUT_MS=<ms>, a positive integer; anything else means 30 s) is sent SIGKILL (its whole process
// group: it leads one, being detached), and the parent says so on stderr and exits 1.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import { createLogger, logLevelFromEnv } from '../log.js';
import { runDaemon } from '../daemon.js';
import { defaultHandshakeWorkers, defaultTunQueues, parseArgs, usage } from './args.js';
import { errorText } from '../error-text.js';
import { tuneTiering } from './v8-tiering.js';

const READY_FD_ENV = 'WIREPOOL_READY_FD';
const START_TIMEOUT_ENV = 'WIREPOOL_START_TIMEOUT_MS';
/** How long the parent waits for the child's readiness report by default (ms). */
export const START_TIMEOUT_MS = 30_000;
/** How long a failed child may take to exit before SIGKILL, and to be reaped after it (ms). */
const KILL_REAP_MS = 5_000;

/** The start-up bound: WIREPOOL_START_TIMEOUT_MS if it is a positive integer, else START_TIMEOUT_MS. */
export function startTimeoutMs(env: NodeJS.ProcessEnv): number {
  const v = env[START_TIMEOUT_ENV];
  if (v === undefined || !/^[1-9][0-9]*$/.test(v)) return START_TIMEOUT_MS;
  return Math.min(Number(v), 0x7fffffff); // setTimeout's limit
}

export function version(): string {
  const pkg = createRequire(import.meta.url)('../../../package.json') as { version: string };
  return pkg.version;
}

export async function main(argv: string[]): Promise<void> {
  const args = parseArgs(argv);
  if (!args.ok) {
    process.stderr.write(`wirepool: ${args.message}\n\n${usage()}\n`);
    process.exit(1);
  }
  if (args.help) {
    process.stdout.write(usage() + '\n');
    process.exit(0);
  }
  if (args.version) {
    process.stdout.write(`wirepool v${version()}\n\nUserspace WireGuard daemon for Node.js ${process.version} on ${os.platform()}-${os.arch()}.\n`);
    process.exit(0);
  }
  const level = logLevelFromEnv(process.env.LOG_LEVEL);
  const foreground = args.foreground || process.env.WG_PROCESS_FOREGROUND === '1';
  if (!foreground) return daemonize(argv, level !== 'silent' && process.env.LOG_LEVEL !== undefined);

  tuneTiering(); // before the dataplane's code first runs (v8-tiering.ts)
  const log = createLogger({ level, ifname: args.ifname });
  const readyFd = process.env[READY_FD_ENV] ? Number(process.env[READY_FD_ENV]) : -1;
  delete process.env[READY_FD_ENV];
  const report = (line: string): void => {
    if (readyFd < 0) return;
    try { fs.writeSync(readyFd, line + '\n'); fs.closeSync(readyFd); } catch { /* parent gone */ }
  };
  try {
    await runDaemon({
      ifname: args.ifname,
      workers: args.workers ?? Math.max(1, os.availableParallelism() - 1),
      handshakeWorkers: args.handshakeWorkers ?? defaultHandshakeWorkers(os.availableParallelism()),
      tunQueues: args.tunQueues ?? defaultTunQueues(os.availableParallelism()),
      config: args.config,
      metrics: args.metrics,
      log,
      onReady: () => {
        if (args.pidFile !== null) writePidFile(args.pidFile);
        report('ok');
      },
    });
  } catch (err) {
    const msg = errorText(err);
    if (readyFd >= 0) report(`error: ${msg}`);
    else log.error('failed to start', { error: msg });
    process.exit(1);
  }
}

/** Writes this process's pid to `file` (a failure fails start-up) and removes it at exit. */
function writePidFile(file: string): void {
  fs.writeFileSync(file, `${process.pid}\n`, { mode: 0o644 });
  process.once('exit', () => {
    try { fs.unlinkSync(file); } catch { /* already gone */ }
  });
}

/** Start the foreground daemon detached and wait (at most startTimeoutMs) for its readiness report. */
function daemonize(argv: string[], inheritOutput: boolean): Promise<void> {
  const script = process.argv[1]!;
  const timeoutMs = startTimeoutMs(process.env);
  const child = spawn(process.execPath, [...process.execArgv, script, '--foreground', ...argv.filter((a) => a !== '-f' && a !== '--foreground')], {
    detached: true,
    stdio: ['ignore', inheritOutput ? 'inherit' : 'ignore', inheritOutput ? 'inherit' : 'ignore', 'pipe'],
    env: { ...process.env, [READY_FD_ENV]: '3', WG_PROCESS_FOREGROUND: '1' },
  });
  // Never settles: every path ends the process with the child's verdict.
  return new Promise<void>(() => {
    let report = '';
    let timedOut = false;
    const pipe = child.stdio[3] as NodeJS.ReadableStream;
    pipe.setEncoding('utf8');
    pipe.on('data', (d: string) => { report += d; });
    // Exits 1 once the child is gone, so that a failed start leaves no daemon behind when we
    // return: at once if it has exited; else when it exits, after SIGKILL to its whole group
    // (it leads one, being detached) now if `kill`, or if it is still there after KILL_REAP_MS.
    const exitOnceGone = (kill: boolean): void => {
      process.exitCode = 1;
      if (child.exitCode !== null || child.signalCode !== null) process.exit(1);
      child.on('exit', () => process.exit(1));
      const killGroup = (): void => {
        const pid = child.pid;
        if (pid !== undefined) {
          try { process.kill(-pid, 'SIGKILL'); } catch { child.kill('SIGKILL'); }
        }
        setTimeout(() => process.exit(1), KILL_REAP_MS); // reaped or not
      };
      if (kill) killGroup();
      else setTimeout(killGroup, KILL_REAP_MS);
    };
    // The bound is ours; wireguard-go's parent has none (see the file comment).
    const timer = setTimeout(() => {
      if (report.trim() === 'ok') return finish(); // reported, pipe not yet closed
      timedOut = true;
      process.stderr.write(`wirepool: daemon (pid ${child.pid}) did not report readiness within ${timeoutMs} ms; killed it\n`);
      exitOnceGone(true);
    }, timeoutMs);
    const finish = (): void => {
      if (timedOut) return; // the timeout path owns the exit
      clearTimeout(timer);
      const line = report.trim();
      if (line === 'ok') {
        child.unref();
        process.exit(0);
      }
      process.stderr.write(`wirepool: ${line.startsWith('error: ') ? line.slice(7) : `daemon exited during start-up (${child.exitCode ?? child.signalCode ?? 'no report'})`}\n`);
      exitOnceGone(false);
    };
    pipe.on('end', finish);
    child.on('error', (err) => { process.stderr.write(`wirepool: cannot start daemon: ${err.message}\n`); process.exit(1); });
  });
}
