import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parser } from '@prometheus-io/lezer-promql';
import { UPLOAD_STAGES } from '../../src/common/metrics/metrics.service';
import { ModerationService } from '../../src/modules/moderation/moderation.service';
import { writeColourModel } from '../fixtures/moderation/make-colour-model';
import { png, solid } from '../fixtures/sample-images';
import { bearer, login, makeKey, makeUser } from '../setup/factories';
import { freePort } from '../setup/private-servers';
import { createTestApp, type TestApp } from '../setup/test-app';
import { waitFor } from '../setup/wait';
import { Receiver } from './webhooks-receiver';

const TOKEN = 'metrics-token-0123456789abcdef';
const RED = { r: 230, g: 20, b: 20 };
const BLUE = { r: 20, g: 40, b: 230 };
const DASHBOARD = join(__dirname, '..', '..', 'deploy', 'grafana', 'fixitfy.json');

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The samples of a Prometheus text exposition (no HELP/TYPE lines). */
function samples(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) {
      continue;
    }
    const labels: Record<string, string> = {};
    for (const [, k, v] of (m[2] ?? '').matchAll(/([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[k] = v;
    }
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

/** The sum of a metric's samples whose labels include `labels`. */
function total(text: string, name: string, labels: Record<string, string> = {}): number {
  return samples(text)
    .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((sum, s) => sum + s.value, 0);
}

/** Every metric name the PromQL expression selects, and whether it parsed without an error node. */
function selectedMetrics(expr: string): { names: string[]; valid: boolean } {
  const tree = parser.parse(expr);
  const names: string[] = [];
  let valid = true;
  const cursor = tree.cursor();
  do {
    if (cursor.type.isError) {
      valid = false;
    }
    if (cursor.name === 'Identifier' && cursor.node.parent?.name === 'VectorSelector') {
      names.push(expr.slice(cursor.from, cursor.to));
    }
  } while (cursor.next());
  return { names, valid };
}

function get(port: number, path: string, headers: Record<string, string> = {}) {
  return new Promise<{ status: number; type: string; body: string }>((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }),
      );
    });
    req.on('error', reject);
    req.end();
  });
}

describe('GET /metrics without METRICS_TOKEN (e2e)', () => {
  it('should answer 404 not_found, whatever the Authorization header', async () => {
    const t = await createTestApp();
    try {
      for (const res of [
        await t.http.get('/metrics'),
        await t.http.get('/metrics').set('Authorization', `Bearer ${TOKEN}`),
      ]) {
        expect({ status: res.status, body: res.body }).toEqual({
          status: 404,
          body: { ok: false, code: 'not_found', error: expect.any(String) },
        });
      }
    } finally {
      await t.close();
    }
  });
});

describe('GET /metrics with METRICS_TOKEN (e2e)', () => {
  let t: TestApp;
  let receiver: Receiver;
  let modelDir: string;

  beforeAll(async () => {
    modelDir = mkdtempSync(join(tmpdir(), 'fxf-colour-model-'));
    receiver = await Receiver.start();
    t = await createTestApp({
      env: {
        METRICS_TOKEN: TOKEN,
        INSTANCE_ID: 'api-a',
        MODERATION_ENABLED: 'true',
        MODERATION_MODEL_PATH: await writeColourModel(join(modelDir, 'colour.onnx')),
        ALLOW_PRIVATE_WEBHOOKS: 'true',
        RATE_LIMIT_UPLOADS_PER_MINUTE: '5',
      },
    });
    await t.app.get(ModerationService).whenReady();
  });
  afterAll(async () => {
    await t.close();
    await receiver.close();
    rmSync(modelDir, { recursive: true, force: true });
  });

  const scrape = async (): Promise<string> => {
    const res = await t.http.get('/metrics').set('Authorization', `Bearer ${TOKEN}`).expect(200);
    return res.text;
  };

  it.each([
    ['no Authorization header', undefined],
    ['a wrong token', 'Bearer metrics-token-0123456789abcdeX'],
    ['the token with a byte more', `Bearer ${TOKEN}x`],
    ['a prefix of the token', `Bearer ${TOKEN.slice(0, -1)}`],
    ['the token without the scheme', TOKEN],
    ['another scheme', `Basic ${Buffer.from(`x:${TOKEN}`).toString('base64')}`],
  ])('should answer 401 unauthorized to %s', async (_what, authorization) => {
    const req = t.http.get('/metrics');
    const res = await (authorization ? req.set('Authorization', authorization) : req);
    expect({ status: res.status, body: res.body }).toEqual({
      status: 401,
      body: { ok: false, code: 'unauthorized', error: expect.any(String) },
    });
    expect(res.text).not.toContain('fixitfy_');
  });

  it.each(['bearer', 'BEARER', 'BeArEr'])(
    'should take the scheme word in any case (%s), as every other endpoint does',
    async (scheme) => {
      await t.http.get('/metrics').set('Authorization', `${scheme} ${TOKEN}`).expect(200);
      // The token itself is case-sensitive.
      await t.http.get('/metrics').set('Authorization', `${scheme} ${TOKEN.toUpperCase()}`).expect(401);
    },
  );

  it('should serve the Prometheus text format to Bearer <METRICS_TOKEN>, labelled with the instance', async () => {
    const res = await t.http.get('/metrics').set('Authorization', `Bearer ${TOKEN}`).expect(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.text).toContain('# TYPE fixitfy_uploads_total counter');
    const mem = samples(res.text).find((s) => s.name === 'fixitfy_process_resident_memory_bytes');
    expect(mem?.labels).toEqual({ instance_id: 'api-a', role: 'all' });
  });

  it('should count uploads by outcome, moderation verdicts, renders, deliveries and refusals after traffic', async () => {
    const user = await makeUser(t);
    const session = await login(t, user);
    const { token } = await makeKey(t, user);
    await t.http
      .post('/api/v1/webhooks')
      .set('Cookie', session.cookie)
      .set('X-CSRF-Token', session.csrf)
      .send({ url: receiver.url() })
      .expect(201);
    const before = await scrape();
    const upload = (bytes: Buffer, name = 'a.png') =>
      t.http
        .post('/api/v1/upload')
        .set(...bearer(token))
        .attach('file', bytes, name);

    const ok = await upload(await solid(BLUE));
    expect(ok.status).toBe(200);
    expect((await upload(await solid(RED))).body.code).toBe('nsfw_rejected');
    expect((await upload(Buffer.from('just text'), 'a.txt')).body.code).toBe('unsupported_type');
    expect((await upload(await solid(BLUE, 33, 33))).status).toBe(200);
    expect((await upload(await solid(BLUE, 34, 34))).status).toBe(200);
    expect((await upload(await png(903))).body.code).toBe('rate_limit');
    await t.http.get(`/images/${ok.body.filename as string}?w=64&format=png`).expect(200);
    await waitFor('three deliveries', () => receiver.requests.length >= 3);

    const after = await waitFor('the delivered count', async () => {
      const text = await scrape();
      return total(text, 'fixitfy_webhook_deliveries_total', { outcome: 'delivered' }) >= 3 ? text : null;
    });
    const delta = (name: string, labels: Record<string, string>) =>
      total(after, name, labels) - total(before, name, labels);
    expect({
      ok: delta('fixitfy_uploads_total', { outcome: 'ok' }),
      nsfw: delta('fixitfy_uploads_total', { outcome: 'nsfw_rejected' }),
      type: delta('fixitfy_uploads_total', { outcome: 'unsupported_type' }),
      limited: delta('fixitfy_uploads_total', { outcome: 'rate_limit' }),
      latencyObservations: delta('fixitfy_upload_duration_seconds_count', { outcome: 'ok' }),
      accepted: delta('fixitfy_moderation_verdicts_total', { verdict: 'accepted' }),
      rejected: delta('fixitfy_moderation_verdicts_total', { verdict: 'rejected' }),
      moderationTimed: delta('fixitfy_moderation_duration_seconds_count', {}),
      renders: delta('fixitfy_variant_renders_total', { outcome: 'ok' }),
      delivered: delta('fixitfy_webhook_deliveries_total', { outcome: 'delivered' }),
      refusals: delta('fixitfy_rate_limit_refusals_total', { group: 'uploads', code: 'rate_limit' }),
      errors: delta('fixitfy_http_errors_total', { code: 'nsfw_rejected' }),
      // Each step, for the uploads that reached it: all five with a body admitted, four decoded (not the text file),
      // four reviewed (the rejected one too), three stored and recorded.
      stages: Object.fromEntries(
        UPLOAD_STAGES.map((stage) => [stage, delta('fixitfy_upload_stage_seconds_count', { stage })]),
      ),
    }).toEqual({
      ok: 3,
      nsfw: 1,
      type: 1,
      limited: 1,
      latencyObservations: 3,
      accepted: 3,
      rejected: 1,
      moderationTimed: 4,
      renders: 1,
      delivered: 3,
      refusals: 1,
      errors: 1,
      stages: { admission: 5, receive: 5, queue: 5, decode: 4, review: 4, store: 3, record: 3 },
    });
    // The steps add up to no more than the answers' own times (each is timed from where the one before ended).
    const stageSum = UPLOAD_STAGES.reduce(
      (sum, stage) => sum + delta('fixitfy_upload_stage_seconds_sum', { stage }),
      0,
    );
    const answered = ['ok', 'nsfw_rejected', 'unsupported_type'].reduce(
      (sum, outcome) => sum + delta('fixitfy_upload_duration_seconds_sum', { outcome }),
      0,
    );
    expect(stageSum).toBeGreaterThan(0);
    expect(stageSum).toBeLessThanOrEqual(answered);
    // The queue depth is read from Redis at scrape time.
    expect(
      samples(after).some((s) => s.name === 'fixitfy_webhook_queue_jobs' && s.labels.state === 'waiting'),
    ).toBe(true);
    // Every series says which instance it came from.
    for (const s of samples(after)) {
      expect(s.labels.instance_id).toBe('api-a');
    }
  });

  it("should only use metrics the scrape has in the Grafana dashboard's queries, all valid PromQL", async () => {
    const text = await scrape();
    const sampled = new Set(samples(text).map((s) => s.name));
    const typed = new Set([...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]));
    const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as {
      panels: { title: string; targets: { expr: string }[] }[];
    };
    const problems: string[] = [];
    let checked = 0;
    for (const panel of dashboard.panels) {
      expect(panel.targets.length).toBeGreaterThan(0);
      for (const { expr } of panel.targets) {
        const { names, valid } = selectedMetrics(expr);
        if (!valid || names.length === 0) {
          problems.push(`${panel.title}: not a PromQL query selecting a metric: ${expr}`);
        }
        for (const name of names) {
          checked++;
          // A histogram's _bucket/_count/_sum series exist once it has observations; its TYPE line always does.
          const base = name.replace(/_(bucket|count|sum)$/, '');
          if (!sampled.has(name) && !typed.has(name) && !(typed.has(base) && name !== base)) {
            problems.push(`${panel.title}: ${name} is not in the scrape`);
          }
        }
      }
    }
    expect(problems).toEqual([]);
    expect(checked).toBeGreaterThanOrEqual(dashboard.panels.length);
    // The panels cover every family the service exports (a new metric gets a panel).
    const ours = [...typed].filter((n) => n.startsWith('fixitfy_') && !/fixitfy_(process|nodejs)_/.test(n));
    const used = new Set(
      dashboard.panels.flatMap((p) =>
        p.targets.flatMap((q) =>
          selectedMetrics(q.expr).names.map((n) => n.replace(/_(bucket|count|sum)$/, '')),
        ),
      ),
    );
    expect(ours.filter((n) => !used.has(n))).toEqual([]);
  });
});

describe('METRICS_PORT (e2e)', () => {
  it('should serve /metrics on a port of its own, token required when set, 404 elsewhere', async () => {
    // Free now: a fixed 40xxx port sits in the ephemeral range, where an outgoing connection may hold it.
    const port = await freePort();
    const t = await createTestApp({ env: { METRICS_PORT: String(port), METRICS_TOKEN: TOKEN } });
    try {
      const denied = await get(port, '/metrics');
      expect({ status: denied.status, body: JSON.parse(denied.body) as unknown }).toEqual({
        status: 401,
        body: { ok: false, code: 'unauthorized', error: expect.any(String) },
      });
      const ok = await get(port, '/metrics', { Authorization: `bearer ${TOKEN}` });
      expect(ok.status).toBe(200);
      expect(ok.type).toMatch(/^text\/plain/);
      expect(ok.body).toContain('fixitfy_uploads_total');
      const other = await get(port, '/api/v1/me', { Authorization: `Bearer ${TOKEN}` });
      expect({ status: other.status, code: (JSON.parse(other.body) as { code: string }).code }).toEqual({
        status: 404,
        code: 'not_found',
      });
    } finally {
      await t.close();
    }
    // Closed with the app.
    await expect(get(port, '/metrics')).rejects.toThrow(/ECONNREFUSED/);
  });
});
