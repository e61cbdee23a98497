// The daemon's /metrics endpoint over its life: started with the settings of --metrics, the
// --config comments and the environment, and changed by a configuration reload. A reload that
// moves the endpoint binds the new address before anything else of the file is applied, so a
// busy address fails the reload with nothing changed; the old address is closed once the rest
// of the file has been applied.
import { type Logger } from '../log.js';
import { type MetricsSettings } from './config.js';
import { WirepoolMetrics } from './registry.js';
import { MetricsServer } from './server.js';
import { type MetricsSource } from './source.js';

export class MetricsEndpoint {
  private metrics: WirepoolMetrics | null = null;
  private server: MetricsServer | null = null;
  private listen: string | null = null;

  constructor(private readonly source: MetricsSource, private readonly log: Logger) {}

  /**
   * Applies `settings`, and `applyRest` (the rest of the configuration) in between: a new
   * address is bound first, and if that or `applyRest` throws, the endpoint stays as it was.
   */
  async apply(settings: MetricsSettings, applyRest: () => void | Promise<void> = () => {}): Promise<void> {
    const move = settings.listen !== this.listen;
    let next: MetricsServer | null = null;
    if (move && settings.listen !== null) {
      this.metrics ??= new WirepoolMetrics(this.source, settings);
      next = await MetricsServer.listen(settings.listen, this.metrics, (err) => this.log.error('metrics endpoint error', { error: err.message }));
    }
    try {
      await applyRest();
    } catch (err) {
      await next?.close();
      throw err;
    }
    this.metrics?.reconfigure(settings);
    if (!move) return;
    await this.server?.close();
    this.server = next;
    this.listen = settings.listen;
    if (settings.listen !== null) this.log.info('serving metrics', { address: settings.listen, path: '/metrics' });
    else this.log.info('metrics endpoint closed');
  }

  async close(): Promise<void> {
    await this.server?.close();
    this.server = null;
  }
}
