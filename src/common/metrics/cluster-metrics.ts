import type { MetricObjectWithValues, MetricValue, Registry } from 'prom-client';
import { AppError } from '../errors/app-error';
import type { IpcChannel, IpcPeer } from '../ipc';

/**
 * One scrape for all the HTTP processes of one `npm start` (WEB_CONCURRENCY > 1). The cluster hands each connection
 * to one worker in turn, so a scrape of `/metrics` (or of METRICS_PORT, which the workers share the same way) reached
 * one process and showed its series alone: Prometheus saw each worker's series on some scrapes and not on others
 * (stale in between), and every figure covered part of the traffic.
 *
 * Now the worker that takes a scrape asks the primary (ClusterMetricsClient), which collects every listening
 * worker's series (ClusterScrapes) and answers with them together, merged by prom-client's AggregatorRegistry:
 * series whose labels differ (each worker's `instance_id`, `hostname:pid` by default) stay apart; series with the
 * same labels (an `INSTANCE_ID` set for the instance) add up, per each metric's aggregator. A worker that does not
 * answer within COLLECT_MS (a blocked event loop) is left out of that scrape, and the answer says how many were
 * (`fixitfy_scrape_processes_missing`, which counts a worker that failed or exited meanwhile too). Only a scrape,
 * never a request's work, crosses the channel.
 */

/** How long the primary waits for the workers' series before it answers with those it has. */
export const COLLECT_MS = 3000;
/** How long a worker waits for the primary's answer before the scrape fails (503 `unavailable`). */
const ANSWER_MS = COLLECT_MS + 2000;

/** A worker asks for the scrape (`id`: its own number), or sends its series for the primary's collect `id`. */
export type WorkerMetricsMessage =
  | { fxf: 'metrics-scrape'; id: number }
  | {
      fxf: 'metrics-part';
      id: number;
      metrics?: MetricObjectWithValues<MetricValue<string>>[];
      error?: string;
    };
/** The primary asks a worker for its series, or answers a worker's scrape. */
export type PrimaryMetricsMessage =
  | { fxf: 'metrics-collect'; id: number }
  | { fxf: 'metrics-text'; id: number; text?: string; error?: string };

type Part = MetricObjectWithValues<MetricValue<string>>[];

const ignore = (): void => undefined;

/** Request ids, unique in the process. */
let nextId = 1;

/**
 * A worker's side: answers the primary's collects with this process's series, and takes a scrape through the
 * primary.
 */
export class ClusterMetricsClient {
  private readonly waiting = new Map<number, { settle: (text?: string, error?: string) => void }>();
  private readonly onMessage = (message: unknown): void => {
    const m = message as Partial<PrimaryMetricsMessage> | null;
    if (typeof m?.id !== 'number') {
      return;
    }
    if (m.fxf === 'metrics-collect') {
      const id = m.id;
      this.registry.getMetricsAsJSON().then(
        (metrics) => this.tell({ fxf: 'metrics-part', id, metrics: metrics as Part }),
        (error: unknown) =>
          this.tell({ fxf: 'metrics-part', id, error: String((error as Error)?.message ?? error) }),
      );
    } else if (m.fxf === 'metrics-text') {
      const answer = m as Extract<PrimaryMetricsMessage, { fxf: 'metrics-text' }>;
      this.waiting.get(m.id)?.settle(answer.text, answer.error);
    }
  };

  constructor(
    private readonly channel: IpcChannel<WorkerMetricsMessage>,
    private readonly registry: Registry,
  ) {
    channel.on('message', this.onMessage);
  }

  /** Every HTTP process's series, in the Prometheus text format; 503 `unavailable` when the primary cannot answer. */
  scrape(): Promise<string> {
    const id = nextId++;
    return new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => settle(undefined, 'the primary did not answer in time'), ANSWER_MS);
      const settle = (text?: string, error?: string): void => {
        if (!this.waiting.delete(id)) {
          return;
        }
        clearTimeout(timer);
        if (text === undefined) {
          reject(
            new AppError('unavailable', 'The metrics of the other HTTP processes could not be gathered.', {
              cause: new Error(error ?? 'no answer'),
            }),
          );
        } else {
          resolve(text);
        }
      };
      this.waiting.set(id, { settle });
      this.tell({ fxf: 'metrics-scrape', id }, (error) => error && settle(undefined, error.message));
    });
  }

  /** Stops answering (the app closes); scrapes still waiting fail. */
  close(): void {
    this.channel.off('message', this.onMessage);
    for (const { settle } of [...this.waiting.values()]) {
      settle(undefined, 'the app is closing');
    }
  }

  private tell(message: WorkerMetricsMessage, sent: (error: Error | null) => void = ignore): void {
    if (!this.channel.send || this.channel.connected === false) {
      sent(new Error('the channel to the primary is closed'));
      return;
    }
    this.channel.send(message, undefined, {}, sent);
  }
}

/** One scrape the primary is collecting for a worker. */
interface Collect {
  asker: IpcPeer<PrimaryMetricsMessage>;
  askerId: number;
  waiting: Set<IpcPeer<PrimaryMetricsMessage>>;
  /** How many workers were asked; those whose series are not in `parts` (late, failed, exited) are missing. */
  asked: number;
  parts: Part[];
  timer: NodeJS.Timeout;
}

/**
 * The primary's side: a worker's scrape becomes a collect from every worker `peers()` names (those listening),
 * answered once all have sent their series, or after COLLECT_MS with those that have.
 */
export class ClusterScrapes {
  private readonly collects = new Map<number, Collect>();

  constructor(
    private readonly peers: () => Iterable<IpcPeer<PrimaryMetricsMessage>>,
    private readonly collectMs = COLLECT_MS,
  ) {}

  /** Handles a worker's metrics message; false for any other message. */
  handle(peer: IpcPeer<PrimaryMetricsMessage>, message: unknown): boolean {
    const m = message as Partial<WorkerMetricsMessage> | null;
    if (typeof m?.id !== 'number') {
      return false;
    }
    if (m.fxf === 'metrics-scrape') {
      this.start(peer, m.id);
      return true;
    }
    if (m.fxf === 'metrics-part') {
      const collect = this.collects.get(m.id);
      if (collect?.waiting.delete(peer)) {
        const part = m as Extract<WorkerMetricsMessage, { fxf: 'metrics-part' }>;
        if (part.metrics) {
          collect.parts.push(part.metrics);
        }
        this.finishIfDone(m.id, collect);
      }
      return true;
    }
    return false;
  }

  /** A worker exited: no collect waits for it any more. */
  gone(peer: IpcPeer<PrimaryMetricsMessage>): void {
    for (const [id, collect] of [...this.collects]) {
      if (collect.waiting.delete(peer)) {
        this.finishIfDone(id, collect);
      }
    }
  }

  private start(asker: IpcPeer<PrimaryMetricsMessage>, askerId: number): void {
    const id = nextId++;
    const collect: Collect = {
      asker,
      askerId,
      waiting: new Set(),
      asked: 0,
      parts: [],
      timer: setTimeout(() => this.finish(id, collect), this.collectMs),
    };
    this.collects.set(id, collect);
    for (const peer of this.peers()) {
      collect.waiting.add(peer);
      collect.asked++;
      peer.send({ fxf: 'metrics-collect', id }, undefined, {}, (error) => {
        // Its channel closed: it is exiting, and gone() would come too.
        if (error && collect.waiting.delete(peer)) {
          this.finishIfDone(id, collect);
        }
      });
    }
    this.finishIfDone(id, collect);
  }

  private finishIfDone(id: number, collect: Collect): void {
    if (collect.waiting.size === 0) {
      this.finish(id, collect);
    }
  }

  private finish(id: number, collect: Collect): void {
    if (this.collects.get(id) !== collect) {
      return;
    }
    this.collects.delete(id);
    clearTimeout(collect.timer);
    const answer = (message: PrimaryMetricsMessage): void => {
      collect.asker.send(message, undefined, {}, ignore);
    };
    mergeScrapes(collect.parts, collect.asked - collect.parts.length).then(
      (text) => answer({ fxf: 'metrics-text', id: collect.askerId, text }),
      (error: unknown) =>
        answer({
          fxf: 'metrics-text',
          id: collect.askerId,
          error: String((error as Error)?.message ?? error),
        }),
    );
  }
}

/**
 * The workers' series as one scrape (prom-client's AggregatorRegistry; loaded on the first scrape, not at start-up),
 * with how many processes are missing from it. prom-client drops `process_start_time_seconds` when it merges
 * (aggregator `omit`); each process keeps its own here, and processes sharing labels show the latest start.
 */
export async function mergeScrapes(parts: Part[], missing: number): Promise<string> {
  const { AggregatorRegistry, Gauge } = await import('prom-client');
  for (const metric of parts.flat()) {
    if (metric.aggregator === 'omit') {
      metric.aggregator = 'max';
    }
  }
  const registry = AggregatorRegistry.aggregate(parts);
  new Gauge({
    name: 'fixitfy_scrape_processes_missing',
    help: 'HTTP processes of this instance whose series are not in this scrape (no answer in time, failed or exited).',
    registers: [registry],
  }).set(missing);
  return registry.metrics();
}
