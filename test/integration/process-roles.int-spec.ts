import type { INestApplicationContext } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { Queue } from 'bullmq';
import Redis from 'ioredis';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AppModule } from '../../src/app.module';
import { bullPrefix } from '../../src/common/jobs/bull';
import { PeriodicJob } from '../../src/common/jobs/periodic-job';
import { type ProcessRole, roleStarts } from '../../src/common/jobs/process-role';
import { loadConfig } from '../../src/config/app-config';
import { RequestCounterService } from '../../src/modules/api-keys/request-counter.service';
import { SessionsService } from '../../src/modules/auth/sessions.service';
import { ModerationService } from '../../src/modules/moderation/moderation.service';
import { JanitorService } from '../../src/modules/uploads/janitor.service';
import { WebhookDeliveryProcessor } from '../../src/modules/webhooks/delivery.processor';
import { OutboxRelay } from '../../src/modules/webhooks/outbox-relay.processor';
import { WebhookReconciler } from '../../src/modules/webhooks/webhook-reconciler.service';
import { WebhookRetentionService } from '../../src/modules/webhooks/webhook-retention.service';
import { readInfra } from '../setup/infra';
import { createTestDatabase, dropRedisKeys } from '../setup/test-app';
import { waitFor } from '../setup/wait';
import { HTTP_APP_OPTIONS } from '../../src/app.setup';

/** What each process role starts (src/common/jobs/process-role.ts), observed on the real app context. */
describe('process roles', () => {
  let db: { url: string; drop: () => Promise<void> };
  let dataDir: string;
  const prefix = `fxf-test:roles-${randomBytes(4).toString('hex')}:`;

  beforeAll(async () => {
    db = await createTestDatabase();
    dataDir = mkdtempSync(join(tmpdir(), 'fxf-roles-'));
    // A model file that fails to load at once: where the role loads the model, loading starts (and fails) quickly.
    writeFileSync(join(dataDir, 'broken.onnx'), 'not a model');
  });
  afterAll(async () => {
    await dropRedisKeys(readInfra().redisUrl, prefix);
    await db.drop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  function config(): ReturnType<typeof loadConfig> {
    return loadConfig({
      DATA_DIR: dataDir,
      DATABASE_URL: db.url,
      REDIS_URL: readInfra().redisUrl,
      REDIS_PREFIX: prefix,
      PUBLIC_URL: 'http://upload.test',
      MODERATION_ENABLED: 'true',
      MODERATION_MODEL_PATH: join(dataDir, 'broken.onnx'),
      LOG_LEVEL: 'silent',
      MIGRATE_ON_START: 'false',
    });
  }

  async function start(role: ProcessRole): Promise<INestApplicationContext> {
    const moduleRef = await Test.createTestingModule({
      imports: [AppModule.forRoot(config(), role)],
    }).compile();
    const app = moduleRef.createNestApplication({ logger: false, ...HTTP_APP_OPTIONS });
    await app.init();
    return app;
  }

  /** Which background parts exist in a started context. */
  function started(app: INestApplicationContext): Record<string, boolean> {
    return {
      model: Reflect.get(app.get(ModerationService), 'loading') !== undefined,
      relay: Reflect.get(app.get(OutboxRelay), 'loop') !== null,
      delivery: Reflect.get(app.get(WebhookDeliveryProcessor), 'worker') !== null,
      janitor: Reflect.get(app.get(JanitorService), 'job') !== null,
      retention: Reflect.get(app.get(WebhookRetentionService), 'job') !== null,
      reconciler: Reflect.get(app.get(WebhookReconciler), 'job') !== null,
      sessionCleanup: Reflect.get(app.get(SessionsService), 'job') !== null,
      countFlush: Reflect.get(app.get(RequestCounterService), 'job') !== null,
    };
  }

  const periodic = (on: boolean) => ({
    janitor: on,
    retention: on,
    reconciler: on,
    sessionCleanup: on,
    countFlush: on,
  });

  it.each<[ProcessRole, Record<string, boolean>]>([
    ['api', { model: true, relay: true, delivery: false, ...periodic(false) }],
    ['worker', { model: false, relay: true, delivery: true, ...periodic(true) }],
    ['cli', { model: false, relay: false, delivery: false, ...periodic(false) }],
    ['all', { model: true, relay: true, delivery: true, ...periodic(true) }],
  ])('should start in the %s role exactly what its row says', async (role, expected) => {
    const app = await start(role);
    try {
      expect(started(app)).toEqual(expected);
      expect(roleStarts(role, 'http')).toBe(role === 'api' || role === 'all');
    } finally {
      await app.close();
    }
  });

  it('should leave the model unloaded in the worker and cli roles, ready to load on first use', async () => {
    for (const role of ['worker', 'cli'] as const) {
      const app = await start(role);
      try {
        const moderation = app.get(ModerationService);
        expect(moderation.isReady()).toBe(false);
        expect(Reflect.get(moderation, 'classifier')).toBeUndefined();
        expect(Reflect.get(moderation, 'loading')).toBeUndefined();
      } finally {
        await app.close();
      }
    }
  });

  it('should run a periodic job once per period across two instances sharing Redis', async () => {
    const cfg = config();
    const runs: number[] = [];
    const spec = {
      queue: `roles-test-${randomBytes(3).toString('hex')}`,
      schedulerId: 'roles-test',
      name: 'tick',
      everyMs: 500,
      keep: 100,
    };
    const logger = { warn: () => undefined } as never;
    const a = PeriodicJob.start(cfg, { ...spec, run: () => Promise.resolve(runs.push(1)) }, logger);
    const b = PeriodicJob.start(cfg, { ...spec, run: () => Promise.resolve(runs.push(2)) }, logger);
    let closed = false;
    try {
      await waitFor('four periodic runs', async () => (await a.queue.getCompleted(0, 99)).length >= 4);
      expect(await a.queue.getJobSchedulers()).toHaveLength(1);
      expect(await a.queue.getGlobalConcurrency()).toBe(1);
    } finally {
      // Closing waits for a run in progress, so every run below is counted in both places.
      await a.close();
      await b.close();
      closed = true;
    }
    expect(closed).toBe(true);
    const connection = new Redis(cfg.redisUrl, { maxRetriesPerRequest: null });
    const queue = new Queue(spec.queue, { connection, prefix: bullPrefix(cfg) });
    try {
      const done = await queue.getCompleted(0, 99);
      // One job per period, whoever ran it: the scheduled times are distinct and exactly one period apart.
      const slots = done.map((j) => Number(j.id?.split(':').pop())).sort((x, y) => x - y);
      expect(slots.length).toBeGreaterThanOrEqual(4);
      expect(new Set(slots).size).toBe(slots.length);
      for (let i = 1; i < slots.length; i++) {
        expect(slots[i] - slots[i - 1]).toBe(spec.everyMs);
      }
      // And each job ran once, on one of the two instances.
      expect(runs).toHaveLength(slots.length);
    } finally {
      await queue.close();
      connection.disconnect();
    }
  });
});
