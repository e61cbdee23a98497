// The facts a benchmark result needs next to it: cores, CPU model, kernel, Node, the
// versions of wireguard-go and iperf3, and the load average when the run started (the
// 2-core development host is shared, so a busy start explains a noisy result).

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';

export interface MachineFacts {
  nproc: number;
  cpuModel: string;
  kernel: string;
  node: string;
  wireguardGo: string;
  iperf3: string;
  memoryGiB: number;
  loadAverage: number[];
}

function firstLine(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 5_000 });
  if (r.error !== undefined || r.stdout === null) return 'unknown';
  return r.stdout.split('\n').find((l) => l.trim() !== '')?.trim() ?? 'unknown';
}

export function machineFacts(): MachineFacts {
  let cpuModel = 'unknown';
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'));
    if (m !== null) cpuModel = m[1]!.trim();
  } catch {
    // not Linux
  }
  return {
    nproc: os.availableParallelism(),
    cpuModel,
    kernel: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    wireguardGo: firstLine('wireguard-go', ['--version']),
    iperf3: firstLine('iperf3', ['--version']),
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    loadAverage: os.loadavg().map((x) => Math.round(x * 100) / 100),
  };
}

export function describeMachine(m: MachineFacts): string {
  return `${m.nproc} × ${m.cpuModel}, ${m.memoryGiB} GiB, ${m.kernel}, Node ${m.node}, ${m.wireguardGo}, ${m.iperf3}, load average at start ${m.loadAverage.join(' ')}`;
}
