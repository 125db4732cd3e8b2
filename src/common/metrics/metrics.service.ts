import { Injectable, type OnApplicationShutdown } from '@nestjs/common';
import { hostname } from 'node:os';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { isClusterWorker } from '../../cluster';
import { AppConfig } from '../../config/app-config';
import { ClusterMetricsClient } from './cluster-metrics';

/** Seconds buckets for request and work latencies: 5 ms to 60 s. */
const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** Seconds buckets for the steps of one upload, most of which take a millisecond or less: 0.5 ms to 60 s. */
const STAGE_BUCKETS = [0.0005, 0.001, 0.0025, ...LATENCY_BUCKETS];

/**
 * The steps of an upload's pipeline, in order, each timed from where the one before ended (README "Metrics"), from
 * the pipeline's start (once the key is known): `admission` the rate limits' answer where it is still pending (the
 * upload fast path asks for it beside the pipeline; Express's guards have it before), the key's upload slot and a
 * ut_ token's use; `receive` what was left of the body; `queue` the dedupe lookup of a body on disk and the wait for
 * the image byte budget; `decode` sniffing, the header read, the decode and the strip (the waits for their lanes and
 * the dedupe lookup's included); `review` the NSFW review (its lane's wait included; for a body of at most
 * EARLY_DECODE_MAX_BYTES, reviewed beside its dedupe lookup, until both are done); `store` what the write had left
 * once the review was done; `record` the database row.
 */
export const UPLOAD_STAGES = [
  'admission',
  'receive',
  'queue',
  'decode',
  'review',
  'store',
  'record',
] as const;
export type UploadStage = (typeof UPLOAD_STAGES)[number];

/** Webhook delivery jobs per BullMQ state, read from Redis at scrape time (the queue is shared: every instance sees it). */
export type QueueDepthSource = () => Promise<Record<string, number>>;

/** The label that says which process a series comes from (Prometheus' own `instance` is the scrape target). */
export function instanceId(config: AppConfig): string {
  return config.metrics.instanceId ?? `${hostname()}:${process.pid}`;
}

/**
 * The service's Prometheus metrics (GET /metrics, API.md Part 3). One registry per app, not prom-client's global
 * one: tests run several apps in one process. Every series carries `instance_id` and `role` (default labels), so
 * a dashboard can tell the instances behind a load balancer apart. Names are listed in README "Metrics". In a cluster
 * worker (WEB_CONCURRENCY > 1) a scrape answers for every HTTP process of the `npm start` (cluster-metrics.ts).
 */
@Injectable()
export class Metrics implements OnApplicationShutdown {
  readonly registry = new Registry();

  /** Every answer of POST /api/v1/upload, by outcome: `ok` or the error code (rate_limit, nsfw_rejected, ...). */
  readonly uploads: Counter<'outcome'>;
  readonly uploadDuration: Histogram<'outcome'>;
  /** Each step of an upload that reached it (UploadStage). */
  readonly uploadStages: Histogram<'stage'>;
  /** Every HTTP answer, by route pattern, method and status. */
  readonly httpRequests: Counter<'route' | 'method' | 'status'>;
  readonly httpDuration: Histogram<'route' | 'method'>;
  /** Error envelopes by code (db_failed, storage_failed, unavailable, ...). */
  readonly httpErrors: Counter<'code'>;
  readonly storageErrors: Counter<'operation'>;
  readonly databaseErrors: Counter<'source'>;
  readonly moderationDuration: Histogram<'verdict'>;
  readonly moderationVerdicts: Counter<'verdict'>;
  readonly variantRenders: Counter<'outcome'>;
  readonly variantRenderDuration: Histogram<'outcome'>;
  readonly webhookDeliveries: Counter<'outcome'>;
  readonly webhookQueueJobs: Gauge<'state'>;
  readonly rateLimitRefusals: Counter<'group' | 'code'>;

  private queueDepth: QueueDepthSource | null = null;
  /** A cluster worker's way to the other workers' series (null in a process of its own). */
  private readonly cluster: ClusterMetricsClient | null;

  constructor(config: AppConfig) {
    const r = this.registry;
    r.setDefaultLabels({ instance_id: instanceId(config), role: config.appRole });
    const counter = <L extends string>(name: string, help: string, labelNames: L[]) =>
      new Counter<L>({ name, help, labelNames, registers: [r] });
    const histogram = <L extends string>(name: string, help: string, labelNames: L[]) =>
      new Histogram<L>({ name, help, labelNames, buckets: LATENCY_BUCKETS, registers: [r] });

    this.uploads = counter('fixitfy_uploads_total', 'Upload requests by outcome (ok or the error code).', [
      'outcome',
    ]);
    this.uploadDuration = histogram(
      'fixitfy_upload_duration_seconds',
      'Time from the upload request to its answer, by outcome.',
      ['outcome'],
    );
    this.uploadStages = new Histogram<'stage'>({
      name: 'fixitfy_upload_stage_seconds',
      help: `Time of each step of an upload that reached it (${UPLOAD_STAGES.join(', ')}).`,
      labelNames: ['stage'],
      buckets: STAGE_BUCKETS,
      registers: [r],
    });
    this.httpRequests = counter('fixitfy_http_requests_total', 'HTTP answers by route, method and status.', [
      'route',
      'method',
      'status',
    ]);
    this.httpDuration = histogram('fixitfy_http_request_duration_seconds', 'HTTP answer time by route.', [
      'route',
      'method',
    ]);
    this.httpErrors = counter('fixitfy_http_errors_total', 'Error answers by envelope code.', ['code']);
    this.storageErrors = counter(
      'fixitfy_storage_errors_total',
      'Object storage failures seen by requests (storage_failed answers).',
      ['operation'],
    );
    this.databaseErrors = counter(
      'fixitfy_database_errors_total',
      'PostgreSQL failures seen by requests (db_failed answers).',
      ['source'],
    );
    this.moderationDuration = histogram(
      'fixitfy_moderation_duration_seconds',
      'NSFW review time per upload, by verdict.',
      ['verdict'],
    );
    this.moderationVerdicts = counter(
      'fixitfy_moderation_verdicts_total',
      'NSFW reviews by verdict (accepted, rejected, error).',
      ['verdict'],
    );
    this.variantRenders = counter(
      'fixitfy_variant_renders_total',
      'Variant renders by outcome (ok or code).',
      ['outcome'],
    );
    this.variantRenderDuration = histogram(
      'fixitfy_variant_render_duration_seconds',
      'Variant render time (decode, resize, encode).',
      ['outcome'],
    );
    this.webhookDeliveries = counter(
      'fixitfy_webhook_deliveries_total',
      'Webhook delivery attempts by outcome (delivered, retry, given_up, busy, done).',
      ['outcome'],
    );
    this.rateLimitRefusals = counter(
      'fixitfy_rate_limit_refusals_total',
      'Requests refused with 429, by group.',
      ['group', 'code'],
    );
    this.webhookQueueJobs = new Gauge<'state'>({
      name: 'fixitfy_webhook_queue_jobs',
      help: 'Webhook delivery jobs in the shared queue, by state (the same figure on every instance).',
      labelNames: ['state'],
      registers: [r],
      // The processes of one instance read the same queue: merged into one scrape, the figure is not added up.
      aggregator: 'max',
      collect: async () => {
        const source = this.queueDepth;
        if (!source) {
          return;
        }
        const counts = await source().catch(() => null);
        for (const [state, n] of Object.entries(counts ?? {})) {
          this.webhookQueueJobs.set({ state }, n);
        }
      },
    });
    if (config.metrics.token || config.metrics.port) {
      // Process CPU, memory, event-loop lag, GC: only when someone can read them.
      collectDefaultMetrics({ register: r, prefix: 'fixitfy_' });
    }
    this.cluster = isClusterWorker() ? new ClusterMetricsClient(process, r) : null;
  }

  onApplicationShutdown(): void {
    this.cluster?.close();
  }

  /** The webhook queue tells where to read its depth (it owns the BullMQ handle). */
  watchQueueDepth(source: QueueDepthSource): void {
    this.queueDepth = source;
  }

  /** The scrape: this process's series, or in a cluster worker every HTTP process's (503 `unavailable` if not). */
  async text(): Promise<string> {
    return this.cluster ? this.cluster.scrape() : this.registry.metrics();
  }
}
