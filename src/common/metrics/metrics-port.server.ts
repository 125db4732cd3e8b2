import { Injectable, Logger, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { createServer, type Server } from 'node:http';
import { AppConfig } from '../../config/app-config';
import { writeErrorAnswer } from '../errors/all-exceptions.filter';
import { metricsAccess } from './metrics-access';
import { Metrics } from './metrics.service';

const envelope = (code: string, error: string): string => JSON.stringify({ ok: false, code, error });

/**
 * METRICS_PORT: /metrics on a port of its own, in every role. The worker (APP_ROLE=worker) has no HTTP server, so
 * this is how its webhook and periodic-job series are scraped; an api instance may use it to keep /metrics off the
 * public port. METRICS_TOKEN, when set, is required here too.
 */
@Injectable()
export class MetricsPortServer implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(MetricsPortServer.name);
  private server: Server | null = null;

  constructor(
    private readonly metrics: Metrics,
    private readonly config: AppConfig,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    const port = this.config.metrics.port;
    if (!port) {
      return;
    }
    const server = createServer((req, res) => {
      const send = (status: number, type: string, body: string) => {
        res.writeHead(status, { 'Content-Type': type, 'Cache-Control': 'no-store' });
        res.end(body);
      };
      const json = 'application/json; charset=utf-8';
      if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
        send(404, json, envelope('not_found', 'No such resource.'));
        return;
      }
      if (metricsAccess(this.config.metrics, req.headers.authorization, true) !== 'ok') {
        res.setHeader('WWW-Authenticate', 'Bearer realm="metrics"');
        send(401, json, envelope('unauthorized', 'Send Authorization: Bearer <METRICS_TOKEN>.'));
        return;
      }
      this.metrics.text().then(
        (text) => send(200, this.metrics.registry.contentType, text),
        // As on the app's port: 503 `unavailable` when a cluster's other processes could not be asked, else 500.
        (error: unknown) =>
          writeErrorAnswer(res, error, { path: '/metrics', bodyIsJson: false, logger: this.logger }),
      );
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, () => resolve());
    });
    this.server = server;
    this.logger.log(`metrics on port ${port}`);
  }

  async onApplicationShutdown(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (server) {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  }
}
