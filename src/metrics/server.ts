// The /metrics HTTP endpoint: a small node:http server that answers GET /metrics with the
// registry's exposition text (Prometheus text format 0.0.4, which promtool 2.42 lints).
// Off unless --metrics ADDR:PORT (or `# Metrics =` in the config) asks for it; the usual
// port for WireGuard exporters is 9586. Anything else gets 404, other methods 405.
import http from 'node:http';
import { type AddressInfo } from 'node:net';
import { listenAddressProblem } from './config.js';
import { type WirepoolMetrics } from './registry.js';

/** The port WireGuard exporters conventionally use (MindFlavor, mdlayher). */
export const DEFAULT_METRICS_PORT = 9586;

/** "ADDR:PORT" (IPv6 in brackets) → host and port; throws RangeError on anything else. */
export function parseListenAddress(value: string): { host: string; port: number } {
  const problem = listenAddressProblem(value);
  if (problem !== null) throw new RangeError(`metrics address ${JSON.stringify(value)}: ${problem}`);
  const colon = value.lastIndexOf(':');
  const host = value.slice(0, colon);
  return { host: host.startsWith('[') ? host.slice(1, -1) : host, port: Number(value.slice(colon + 1)) };
}

/** The client of a scrape went away while it was being written. */
const CLIENT_GONE = new Error('metrics client gone');

export class MetricsServer {
  private constructor(private readonly server: http.Server) {}

  /** Listens on `listen` ("ADDR:PORT", or host and port, 0 = any free port); resolves once bound, rejects if the bind fails. */
  static async listen(listen: string | { host: string; port: number }, metrics: WirepoolMetrics, onError?: (err: Error) => void): Promise<MetricsServer> {
    const { host, port } = typeof listen === 'string' ? parseListenAddress(listen) : listen;
    const server = http.createServer((req, res) => {
      const path = (req.url ?? '').split('?')[0];
      if (path !== '/metrics') {
        res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('wirepool: metrics are at /metrics\n');
        return;
      }
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { allow: 'GET, HEAD' }).end();
        return;
      }
      if (req.method === 'HEAD') {
        res.writeHead(200, { 'content-type': metrics.contentType }).end();
        return;
      }
      // Each piece goes out as it is made (chunked transfer encoding), waiting while the client
      // has not read the last; a failure after the first piece can only cut the reply short.
      let started = false;
      metrics.writeExposition((piece) => {
        if (!started) {
          started = true;
          res.writeHead(200, { 'content-type': metrics.contentType });
        }
        if (res.destroyed) throw CLIENT_GONE; // stop making what nobody reads
        if (res.write(piece)) return undefined;
        return new Promise<void>((resolve) => {
          const done = (): void => {
            res.off('drain', done);
            res.off('close', done);
            resolve();
          };
          res.on('drain', done);
          res.on('close', done);
        });
      }).then(
        () => res.end(),
        (err: unknown) => {
          if (err === CLIENT_GONE) return;
          onError?.(err instanceof Error ? err : new Error(String(err)));
          if (started) res.destroy();
          else res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end('metrics collection failed\n');
        },
      );
    });
    server.keepAliveTimeout = 65_000; // longer than Prometheus's idle connection reuse
    server.headersTimeout = 10_000;
    server.requestTimeout = 30_000;
    await new Promise<void>((resolve, reject) => {
      // The daemon's start-up error: say that it is the metrics endpoint that cannot listen.
      const fail = (err: NodeJS.ErrnoException): void => {
        const where = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
        const why = err.code === 'EADDRINUSE' ? 'the address is already in use (EADDRINUSE): choose another --metrics or # Metrics = address' : err.message;
        reject(new Error(`metrics endpoint ${where}: ${why}`));
      };
      server.once('error', fail);
      server.listen({ host, port, exclusive: true }, () => {
        server.off('error', fail);
        if (onError) server.on('error', onError);
        resolve();
      });
    });
    server.unref();
    return new MetricsServer(server);
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }
}
