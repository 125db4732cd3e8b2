import { createHash } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AppConfig } from '../../src/config/app-config';
import {
  builtModelDir,
  checksumFileOf,
  NSFW_MODEL_FILE,
  verifyBuiltModel,
} from '../../src/modules/moderation/model/built-model';
import { ensureNsfwModelIn } from '../../src/modules/moderation/model/nsfw-model-cache';
import { NSFW_MODEL_NOTICE } from '../../src/modules/moderation/model/third-party-notice';
import { decodeFrames } from '../../src/modules/media/decode';
import type { ModerationVerdict } from '../../src/modules/moderation/moderation.types';
import { BUILT_MODEL_DIR, ModerationService } from '../../src/modules/moderation/moderation.service';
import { bearer, makeKey } from '../setup/factories';
import { createTestApp, type TestApp } from '../setup/test-app';

/** As the upload pipeline does it: media decodes the frames the service asks for, the service reviews them. */
async function review(service: ModerationService, image: Buffer): Promise<ModerationVerdict> {
  return service.review(service.reviewFrames > 0 ? await decodeFrames(image, service.reviewFrames) : []);
}

const FIXTURES = join(__dirname, '..', 'fixtures', 'moderation');

/** A config whose DATA_DIR has no model cache: a service that converted there instead would be caught. */
function config(dataDir: string): AppConfig {
  return {
    dataDir,
    moderation: {
      enabled: true,
      modelPath: undefined,
      pornHentaiThreshold: 0.7,
      pornThreshold: 0.5,
      frames: 3,
      threads: 1,
      concurrency: 2,
    },
  } as AppConfig;
}

/** A copy of the built model directory, to damage. */
async function copyBuild(from: string, to: string): Promise<string> {
  await mkdir(to, { recursive: true });
  for (const file of [NSFW_MODEL_FILE, `${NSFW_MODEL_FILE}.checksum.json`, 'NOTICE']) {
    await copyFile(join(from, file), join(to, file));
  }
  return to;
}

/** Flips one byte in the middle of the weights. */
async function flipByte(file: string): Promise<void> {
  const bytes = await readFile(file);
  bytes[bytes.length >> 1] ^= 0xff;
  await writeFile(file, bytes);
}

describe('the model built by `npm run build` (dist/model)', () => {
  let work: string;
  /** What scripts/build-model.ts writes, made by the same function. */
  let build: string;
  let emptyDataDir: string;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'built-model-'));
    build = join(work, 'dist', 'model');
    emptyDataDir = join(work, 'data');
    await mkdir(emptyDataDir);
    await ensureNsfwModelIn(build);
  });

  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('should be looked for beside the compiled code only (the sources convert into a cache instead)', () => {
    expect(builtModelDir()).toBeUndefined();
  });

  it('should write the model, its sha256 and the notices', async () => {
    const model = await readFile(join(build, NSFW_MODEL_FILE));
    const checksum = JSON.parse(await readFile(checksumFileOf(join(build, NSFW_MODEL_FILE)), 'utf8'));
    expect(checksum.onnx).toBe(createHash('sha256').update(model).digest('hex'));
    expect(await readFile(join(build, 'NOTICE'), 'utf8')).toBe(NSFW_MODEL_NOTICE);
    await expect(verifyBuiltModel(build)).resolves.toBe(join(build, NSFW_MODEL_FILE));
  });

  it('should load it without converting anything into DATA_DIR and classify with it', async () => {
    const service = new ModerationService(config(emptyDataDir), build);
    try {
      await service.whenReady();
      expect(service.isReady()).toBe(true);
      const verdict = await review(service, await readFile(join(FIXTURES, 'adversarial-noise.png')));
      expect(verdict.rejected).toBe(true);
      expect(await readdir(emptyDataDir)).toEqual([]);
    } finally {
      await service.onModuleDestroy();
    }
  });

  it('should refuse a model that does not match its checksum, naming the file and the fix', async () => {
    const damaged = await copyBuild(build, join(work, 'damaged'));
    await flipByte(join(damaged, NSFW_MODEL_FILE));
    await expect(verifyBuiltModel(damaged)).rejects.toThrow(
      new RegExp(`${NSFW_MODEL_FILE} does not match its checksum .*run \`npm run build\` again`),
    );
    const service = new ModerationService(config(emptyDataDir), damaged);
    await expect(service.whenReady()).rejects.toThrow(/does not match its checksum/);
    expect(service.isReady()).toBe(false);
    await expect(service.review([])).rejects.toMatchObject({ code: 'unavailable' });
  });

  it('should say the build did not produce the model when the checksum file is missing', async () => {
    const partial = await copyBuild(build, join(work, 'no-checksum'));
    await rm(checksumFileOf(join(partial, NSFW_MODEL_FILE)));
    await expect(verifyBuiltModel(partial)).rejects.toThrow(
      /checksum\.json is missing: .*run `npm run build`/,
    );
  });

  it('should say so when the model file is missing, or the checksum file is not JSON', async () => {
    const noModel = await copyBuild(build, join(work, 'no-model'));
    await rm(join(noModel, NSFW_MODEL_FILE));
    await expect(verifyBuiltModel(noModel)).rejects.toThrow(
      new RegExp(`${NSFW_MODEL_FILE} is missing: run \`npm run build\``),
    );
    const garbled = await copyBuild(build, join(work, 'garbled'));
    await writeFile(checksumFileOf(join(garbled, NSFW_MODEL_FILE)), '{"onnx": ');
    await expect(verifyBuiltModel(garbled)).rejects.toThrow(/is not valid JSON/);
    await writeFile(checksumFileOf(join(garbled, NSFW_MODEL_FILE)), '{"onnx": "abc"}');
    await expect(verifyBuiltModel(garbled)).rejects.toThrow(/has no sha256 for the model/);
  });

  describe('through the app (e2e)', () => {
    let t: TestApp;

    beforeAll(async () => {
      const damaged = await copyBuild(build, join(work, 'damaged-app'));
      await flipByte(join(damaged, NSFW_MODEL_FILE));
      t = await createTestApp({
        env: { MODERATION_ENABLED: 'true' },
        overrides: [{ provide: BUILT_MODEL_DIR, useValue: damaged }],
      });
      await t.app
        .get(ModerationService)
        .whenReady()
        .catch(() => undefined);
    });
    afterAll(() => t.close());

    it('should report not ready (503) and refuse uploads while the built model fails its checksum', async () => {
      const ready = await t.http.get('/readyz');
      expect(ready.status).toBe(503);
      expect(ready.body).toMatchObject({ ok: false, code: 'unavailable' });
      const { token } = await makeKey(t);
      const res = await t.http
        .post('/api/v1/upload')
        .set(...bearer(token))
        .attach('file', await readFile(join(FIXTURES, 'seeded-noise.png')), 'noise.png');
      expect(res.status).toBe(503);
      expect(res.body.code).toBe('unavailable');
    });
  });
});
