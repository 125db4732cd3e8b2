import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onnx } from 'onnx-proto';
import { CONVERTER_VERSION, convertKerasToOnnx } from '../../src/modules/moderation/model/keras-to-onnx';
import { ensureNsfwModel, NSFW_MODEL_FILE } from '../../src/modules/moderation/model/nsfw-model-cache';
import { loadNsfwjsModel } from '../../src/modules/moderation/model/nsfwjs-source';
import { NSFW_MODEL_NOTICE } from '../../src/modules/moderation/model/third-party-notice';
import { OnnxRunner } from './support/onnx-runner';
import { gradient, noise, skin } from './support/synthetic-images';
import { maxAbsDiff } from './support/tiny-keras';

/** tfjs + nsfwjs on the deterministic inputs of the model notes (Drawing, Hentai, Neutral, Porn, Sexy). */
const GOLDEN = [
  { image: gradient(), expected: [0.8867121339, 0.0221450031, 0.0857118964, 0.0044060801, 0.0010248671] },
  { image: noise(42), expected: [0.1091626659, 0.0083437823, 0.8719090223, 0.0090711927, 0.0015133022] },
  { image: skin(), expected: [0.9024181366, 0.019707296, 0.0727495179, 0.0042951135, 0.0008299566] },
];

describe('converted nsfwjs model', () => {
  let cacheDir: string;
  let modelPath: string;

  beforeAll(async () => {
    cacheDir = await mkdtemp(join(tmpdir(), 'nsfw-model-'));
    modelPath = await ensureNsfwModel(cacheDir);
  });

  afterAll(async () => {
    await rm(cacheDir, { recursive: true, force: true });
  });

  it('should reproduce the reference probabilities on the golden inputs within 1e-5', async () => {
    const runner = await OnnxRunner.create(modelPath);
    try {
      let max = 0;
      for (const { image, expected } of GOLDEN) {
        const [out] = await runner.run({
          input: { type: 'float32', data: Float32Array.from(image.data), dims: [1, 224, 224, 3] },
        });
        expect(out.dims).toEqual([1, 5]);
        max = Math.max(max, maxAbsDiff(out.data, expected));
      }
      console.log(`golden: max |ONNX − reference| = ${max.toExponential(2)}`);
      expect(max).toBeLessThan(1e-5);
    } finally {
      await runner.close();
    }
  });

  const signature = async (path: string) => {
    const graph = onnx.GraphProto.fromObject(onnx.ModelProto.decode(await readFile(path)).graph!);
    const shape = (v: onnx.IValueInfoProto) =>
      v.type!.tensorType!.shape!.dim!.map((d) => d.dimParam || Number(d.dimValue));
    return {
      inputs: graph.input.map((i) => [i.name, i.type!.tensorType!.elemType, shape(i)]),
      outputs: graph.output.map((o) => [o.name, o.type!.tensorType!.elemType, shape(o)]),
    };
  };

  it('should take float32 NHWC [N,224,224,3] as `input` and give float32 [N,5] at opset 13', async () => {
    const model = onnx.ModelProto.decode(await readFile(modelPath));
    const { inputs, outputs } = await signature(modelPath);
    expect(inputs).toEqual([['input', onnx.TensorProto.DataType.FLOAT, ['N', 224, 224, 3]]]);
    expect(outputs).toEqual([['probabilities', onnx.TensorProto.DataType.FLOAT, ['N', 5]]]);
    expect(model.opsetImport.map((o) => Number(o.version))).toEqual([13]);
    expect(model.metadataProps.find((p) => p.key === 'classes')?.value).toBe(
      'Drawing,Hentai,Neutral,Porn,Sexy',
    );
  });

  it('should write the notices next to the model, identical to THIRD_PARTY_NOTICES.md', async () => {
    expect(await readFile(join(cacheDir, 'models', 'NOTICE'), 'utf8')).toBe(NSFW_MODEL_NOTICE);
    const notices = await readFile(join(__dirname, '..', '..', 'THIRD_PARTY_NOTICES.md'), 'utf8');
    expect(notices).toContain(NSFW_MODEL_NOTICE);
  });

  describe(ensureNsfwModel.name, () => {
    const checksumPath = () => join(cacheDir, 'models', `${NSFW_MODEL_FILE}.checksum.json`);

    it('should reuse a cached model that matches its checksum', async () => {
      const before = await stat(modelPath);
      expect(await ensureNsfwModel(cacheDir)).toBe(modelPath);
      expect((await stat(modelPath)).mtimeMs).toBe(before.mtimeMs);
    });

    it('should convert again, to the same bytes, when the cached file was altered', async () => {
      const original = await readFile(modelPath);
      const altered = Buffer.from(original);
      altered[altered.length - 1] ^= 0xff;
      await writeFile(modelPath, altered);
      await ensureNsfwModel(cacheDir);
      expect(Buffer.compare(await readFile(modelPath), original)).toBe(0);
    });

    it('should convert again when the source model files changed', async () => {
      const checksum = JSON.parse(await readFile(checksumPath(), 'utf8')) as { source: string };
      await writeFile(checksumPath(), JSON.stringify({ ...checksum, source: '0'.repeat(64) }));
      const before = await stat(modelPath);
      await ensureNsfwModel(cacheDir);
      expect((await stat(modelPath)).mtimeMs).not.toBe(before.mtimeMs);
      expect(JSON.parse(await readFile(checksumPath(), 'utf8'))).toEqual(checksum);
    });

    it('should convert again when the converter version changed', async () => {
      const checksum = JSON.parse(await readFile(checksumPath(), 'utf8')) as { converterVersion: string };
      expect(checksum.converterVersion).toBe(CONVERTER_VERSION);
      await writeFile(checksumPath(), JSON.stringify({ ...checksum, converterVersion: '0' }));
      const before = await stat(modelPath);
      await ensureNsfwModel(cacheDir);
      expect((await stat(modelPath)).mtimeMs).not.toBe(before.mtimeMs);
    });

    it('should convert again when the conversion options changed (an old uint8-input cache)', async () => {
      const checksum = JSON.parse(await readFile(checksumPath(), 'utf8')) as Record<string, unknown>;
      // What the cache held before the input became float32: the uint8 graph, recorded without options.
      const source = loadNsfwjsModel();
      const uint8 = convertKerasToOnnx(source.json, source.weightData, { inputType: 'uint8' });
      await writeFile(modelPath, uint8);
      await writeFile(
        checksumPath(),
        JSON.stringify({
          converterVersion: CONVERTER_VERSION,
          source: checksum.source,
          onnx: createHash('sha256').update(uint8).digest('hex'),
        }),
      );
      expect((await signature(modelPath)).inputs[0][1]).toBe(onnx.TensorProto.DataType.UINT8);
      await ensureNsfwModel(cacheDir);
      expect((await signature(modelPath)).inputs[0][1]).toBe(onnx.TensorProto.DataType.FLOAT);
      expect(JSON.parse(await readFile(checksumPath(), 'utf8'))).toEqual(checksum);

      // The same when only the recorded options differ.
      const conversion = checksum.conversion as Record<string, unknown>;
      await writeFile(
        checksumPath(),
        JSON.stringify({ ...checksum, conversion: { ...conversion, inputType: 'uint8' } }),
      );
      const before = await stat(modelPath);
      await ensureNsfwModel(cacheDir);
      expect((await stat(modelPath)).mtimeMs).not.toBe(before.mtimeMs);
      expect(JSON.parse(await readFile(checksumPath(), 'utf8'))).toEqual(checksum);
    });

    it('should give one conversion to concurrent callers', async () => {
      await rm(join(cacheDir, 'models'), { recursive: true });
      const paths = await Promise.all([ensureNsfwModel(cacheDir), ensureNsfwModel(cacheDir)]);
      expect(paths).toEqual([modelPath, modelPath]);
      expect((await stat(modelPath)).size).toBeGreaterThan(10_000_000);
    });
  });
});
