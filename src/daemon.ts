// The daemon's life cycle: create the TUN interface and the device, serve the UAPI socket,
// report readiness, reload --config on SIGHUP, and shut down cleanly on SIGTERM/SIGINT, when the socket file is
// deleted, or when the TUN link disappears (wg-quick down deletes it). On the way out the
// socket is removed and the workers stopped. A --config file is read, checked and resolved
// whole before any of it is applied, at start-up (before the interface is created) and on
// every reload (src/config.ts).
import { execFileSync } from 'node:child_process';
import { DEFAULT_MTU } from './constants.js';
import { Device } from './device.js';
import { createTun, openTunFromFd, type TunDevice, watchTunRemoval } from './io/tun.js';
import { type Logger } from './log.js';
import { applyConfig, loadConfigFile } from './config.js';
import { UapiServer } from './uapi/server.js';
import { resolveMetricsSettings } from './metrics/config.js';
import { MetricsEndpoint } from './metrics/endpoint.js';
import { errorText } from './error-text.js';

export interface DaemonOptions {
  ifname: string;
  workers: number;
  /** Threads answering initiations (src/handshake-offload.ts); 0: the main thread. */
  handshakeWorkers: number;
  /** Queues of the TUN device (one reader thread each); an inherited WG_TUN_FD is one queue. */
  tunQueues: number;
  config: string | null;
  metrics: string | null;
  log: Logger;
  onReady(): void;
}

export async function runDaemon(opts: DaemonOptions): Promise<void> {
  const { ifname, log } = opts;
  const cleanups: (() => Promise<void> | void)[] = [];
  const loaded = opts.config ? await loadConfigFile(opts.config, opts.metrics) : null;
  let tun: TunDevice;
  try {
    const inheritedFd = process.env.WG_TUN_FD;
    tun = inheritedFd ? openTunFromFd(Number(inheritedFd), ifname) : createTun(ifname, DEFAULT_MTU, { queues: opts.tunQueues });
    // Deleting the link is what wakes the TUN reader thread blocked in read() (closing the
    // fd does not), and a thread blocked in a syscall would keep the process from exiting.
    // wireguard-go's interface also disappears when it exits.
    const removeLink = (): void => {
      if (tun.exists()) {
        try { execFileSync('ip', ['link', 'delete', 'dev', tun.name], { stdio: 'ignore', timeout: 5000 }); } catch { /* already gone */ }
      }
    };
    cleanups.push(() => { removeLink(); tun.close(); });
    const device = await Device.create({ ifname, tun, workers: opts.workers, handshakeWorkers: opts.handshakeWorkers, log });
    cleanups.unshift(() => device.close());
    if (loaded !== null) {
      device.peerNames = loaded.metrics.friendlyNames; // log lines name peers as the metrics do
      await applyConfig(device.uapi, loaded.config);
      device.metrics.countConfigReload(true);
    }
    const uapiFd = process.env.WG_UAPI_FD;
    const uapi = await UapiServer.listen({
      ifname,
      device: device.uapi,
      ...(uapiFd ? { fd: Number(uapiFd) } : {}),
      onRequest: (op, errno) => device.metrics.countUapiRequest(op, errno),
      log: (level, msg, fields) => (level === 'error' ? log.error(msg, fields as Record<string, unknown>) : log.verbose(msg, fields as Record<string, unknown>)),
    });
    cleanups.unshift(() => uapi.close());
    // A bind failure of the metrics endpoint fails start-up.
    const metrics = new MetricsEndpoint(device.metrics, log);
    cleanups.unshift(() => metrics.close());
    await metrics.apply(loaded?.metrics ?? resolveMetricsSettings(opts.metrics, null));

    let stopping = false;
    const shutdown = (why: string): void => {
      if (stopping) return;
      stopping = true;
      log.info('shutting down', { reason: why });
      // Last resort: a thread stuck in a syscall would make process.exit() wait forever.
      const hard = setTimeout(() => process.kill(process.pid, 'SIGKILL'), 5000);
      hard.unref();
      // Delete the link first: that wakes the TUN reader thread at once, so stopping the
      // dataplane does not wait out its timeout (the reader then reports the TUN gone,
      // which is ignored while stopping).
      removeLink();
      void runCleanups(cleanups, log).then(() => process.exit(0));
    };
    process.on('SIGTERM', () => shutdown('SIGTERM'));
    process.on('SIGINT', () => shutdown('SIGINT'));
    // SIGHUP re-reads --config and applies only the difference (as `wg syncconf`): peers and
    // settings that did not change keep their sessions. Everything the file says applies,
    // metrics comments included; a file with any error changes nothing. Reloads run one at a
    // time, in order. Without --config SIGHUP is ignored.
    const reload = async (file: string): Promise<void> => {
      try {
        const next = await loadConfigFile(file, opts.metrics);
        if (stopping) return;
        await uapi.exclusive(() => metrics.apply(next.metrics, () => applyConfig(device.uapi, next.config, 'sync')));
        device.peerNames = next.metrics.friendlyNames;
        device.metrics.countConfigReload(true);
        log.info('configuration reloaded', { file });
      } catch (err) {
        device.metrics.countConfigReload(false);
        log.error('configuration reload failed; keeping the running configuration', { file, error: errorText(err) });
      }
    };
    let reloads = Promise.resolve();
    process.on('SIGHUP', () => {
      const file = opts.config;
      if (!file) {
        log.info('SIGHUP ignored: no --config file');
        return;
      }
      reloads = reloads.then(() => reload(file));
    });
    uapi.onSocketRemoved(() => shutdown('UAPI socket removed'));
    const stopWatch = watchTunRemoval(ifname, () => shutdown('TUN device removed'));
    cleanups.push(stopWatch);
    device.onTunGone(() => shutdown('TUN device removed'));
    log.info('interface is up', { workers: opts.workers, handshake_workers: opts.handshakeWorkers, tun_queues: 1 + (tun.queueFds?.length ?? 0), listen_port: device.listenPort });
    opts.onReady();
  } catch (err) {
    await runCleanups(cleanups, log);
    throw err;
  }
}

async function runCleanups(cleanups: (() => Promise<void> | void)[], log: Logger): Promise<void> {
  for (const c of cleanups.splice(0)) {
    try {
      await c();
    } catch (err) {
      log.error('error during shutdown', { error: errorText(err) });
    }
  }
}
