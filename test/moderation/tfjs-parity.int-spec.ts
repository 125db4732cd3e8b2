import sharp from 'sharp';
import { join } from 'node:path';
import { decodeFrames, type RawImage } from '../../src/modules/media/decode';
import { DEFAULT_IMAGE_OPTIONS } from '../../src/modules/media/image-limits';
import { processImage } from '../../src/modules/media/image-processor';
import { MODEL_INPUT_VALUES, resizeToModelInput } from '../../src/modules/moderation/image-preprocess';
import { ensureNsfwModel } from '../../src/modules/moderation/model/nsfw-model-cache';
import { type Classification, NsfwClassifier } from '../../src/modules/moderation/nsfw-classifier';
import * as images from './support/synthetic-images';
import { TfjsWorker } from './support/tfjs-worker';
import {
  maxAbsDiff,
  randoms,
  runConverted,
  tinyModel,
  type TinyLayer,
  type TinyWeight,
} from './support/tiny-keras';

/*
 * The reference is nsfwjs itself (nsfwjs.load('MobileNetV2'), its own infer() on @tensorflow/tfjs, pure JS
 * CPU backend) given the original pixels: it divides by 255, applies tf.image.resizeBilinear(alignCorners =
 * true) to 224×224 when the size differs, and runs the model. Our side is the server's whole path: the
 * encoded PNG → decodeFrames → frameToModelInputs (float32, unrounded) → the served ONNX model (from
 * ensureNsfwModel) in the inference worker. tfjs needs ~1-3 s per image here, so this file keeps to about a
 * dozen images.
 *
 * Measured max |ours − nsfwjs| over the five probabilities (nsfwjs 4.4.0, tfjs 4.22, onnxruntime-node 1.30):
 * 1.2e-6 on the 224×224 images (blobs), 4.8e-7 on the resized ones (noise 300×200; 640×360 6.0e-8, 97×131
 * 1.6e-7, 1000×563 1.2e-7). With the former uint8 model input, which rounded the resize, it was 5.1e-3 on
 * 640×360 and 7.4e-3 on 97×131.
 */
jest.setTimeout(180_000);

const PARITY = 1e-5;
/** Shared with the other moderation specs and scripts; .tmp/ is git-ignored. */
const MODEL_CACHE = join(__dirname, '..', '..', '.tmp', 'moderation-cache');

describe('parity with nsfwjs (tfjs reference)', () => {
  let reference: TfjsWorker;
  let classifier: NsfwClassifier;
  const report: Record<string, number> = {};

  beforeAll(async () => {
    [reference, classifier] = await Promise.all([
      TfjsWorker.nsfwjs(),
      ensureNsfwModel(MODEL_CACHE).then((path) => NsfwClassifier.load(path, { threads: 1, concurrency: 1 })),
    ]);
  });

  afterAll(async () => {
    await reference?.close();
    await classifier?.close();
    console.log(
      'parity, max |ours − tfjs| per check:\n' +
        Object.entries(report)
          .map(([k, v]) => `  ${k}: ${v.toExponential(2)}`)
          .join('\n'),
    );
  });

  /** Uploads arrive encoded: the server path starts from PNG bytes of the test pixels. */
  const encodePng = (image: images.RgbImage): Promise<Buffer> =>
    sharp(Buffer.from(image.data), { raw: { width: image.width, height: image.height, channels: 3 } })
      .png()
      .toBuffer();

  const probabilities = ({ scores }: Classification): number[] =>
    scores.flatMap((s) => [s.drawing, s.hentai, s.neutral, s.porn, s.sexy]);

  /** The server's path (bytes in, scores out) against nsfwjs on the same pixels; records the difference. */
  async function endToEnd(image: images.RgbImage): Promise<number> {
    const png = await encodePng(image);
    const [ours, theirs] = await Promise.all([
      // The upload's one decode: the validity check of the stored bytes yields the review frame.
      processImage(
        png,
        { ext: 'png', mime: 'image/png' },
        { ...DEFAULT_IMAGE_OPTIONS, reviewFrames: 1 },
      ).then(({ review }) => classifier.classify(review)),
      reference.nsfwjs(image.data, image.width, image.height),
    ]);
    expect(ours.frames).toBe(1);
    expect(ours.scores).toHaveLength(1);
    const diff = maxAbsDiff(probabilities(ours), theirs);
    report[`${image.name}, end to end`] = diff;
    return diff;
  }

  async function decode(png: Buffer): Promise<RawImage> {
    const [frame] = await decodeFrames(png, 1);
    return frame;
  }

  const square = [
    images.gradient(),
    images.noise(42),
    images.skin(),
    images.checkerboard(),
    images.stripes(),
    images.blobs(7),
    images.solid([228, 182, 150]),
    images.solid([20, 24, 30]),
  ];

  it.each(square.map((image) => [image.name, image] as const))(
    'should match nsfwjs within 1e-5 on %s, end to end',
    async (_name, image) => {
      expect(await endToEnd(image)).toBeLessThan(PARITY);
    },
  );

  it('should match nsfwjs within 1e-5 as the service runs the model (two sessions of two intra-op threads each)', async () => {
    // The service's default (MODERATION_THREADS and MODERATION_SESSION_THREADS 2): the convolutions split between two
    // threads must not move a score past the parity bound, whether an input runs alone or beside another.
    const service = await NsfwClassifier.load(await ensureNsfwModel(MODEL_CACHE), {
      threads: 2,
      sessionThreads: 2,
      concurrency: 2,
    });
    try {
      const picked = [images.skin(), images.noise(42), images.blobs(7)];
      const frames = await Promise.all(picked.map(async (image) => decode(await encodePng(image))));
      const theirs = await Promise.all(
        picked.map((image) => reference.nsfwjs(image.data, image.width, image.height)),
      );
      const alone = await service.classify([frames[0]]);
      const split = await service.classify(frames);
      expect(split.scores).toHaveLength(3);
      const diffs = [
        maxAbsDiff(probabilities(alone), theirs[0]),
        ...split.scores.map((_, i) =>
          maxAbsDiff(probabilities({ frames: 1, scores: [split.scores[i]] }), theirs[i]),
        ),
      ];
      report['two sessions × two threads'] = Math.max(...diffs);
      expect(Math.max(...diffs)).toBeLessThan(PARITY);
    } finally {
      await service.close();
    }
  });

  describe('non-square images (resized)', () => {
    const resized = [
      images.scene(640, 360),
      images.scene(97, 131),
      { ...images.noise(5, 300, 200), name: 'noise(5) 300x200' },
      { ...images.gradient(1000, 563), name: 'gradient 1000x563' },
    ];

    it.each(resized.map((image) => [image.name, image] as const))(
      'should match nsfwjs within 1e-5 on %s, end to end (float input, resize not rounded)',
      async (_name, image) => {
        // The pieces first, so a failure says where: the same pixels decoded, and the same resize.
        const frame = await decode(await encodePng(image));
        expect([frame.width, frame.height, frame.channels]).toEqual([image.width, image.height, 3]);
        expect(Buffer.compare(frame.data, image.data)).toBe(0);
        const ours = new Float32Array(MODEL_INPUT_VALUES);
        resizeToModelInput(frame, 255, ours);
        const theirs = await reference.resize(image.data, image.width, image.height);
        report[`${image.name}, resize (/255)`] = maxAbsDiff(
          ours.map((v) => v / 255),
          theirs,
        );
        expect(report[`${image.name}, resize (/255)`]).toBeLessThan(1e-6);
        expect(ours.some((v) => !Number.isInteger(v))).toBe(true);

        expect(await endToEnd(image)).toBeLessThan(PARITY);
      },
    );
  });

  describe('Keras semantics (tfjs as the oracle for the converter)', () => {
    const rand = randoms(99);

    async function compare(
      inputShape: number[],
      layers: TinyLayer[],
      weights: TinyWeight[],
    ): Promise<number> {
      const { json, data } = tinyModel(inputShape, layers, weights);
      const input = rand(inputShape.reduce((a, b) => a * b, 1));
      const model = await TfjsWorker.create(json, data);
      const [expected, { output }] = await Promise.all([
        model.predict(input, inputShape).finally(() => model.close()),
        runConverted(json, data, input, inputShape),
      ]);
      return maxAbsDiff(output, expected);
    }

    it('should pad Conv2D `same` with stride 2 as tfjs does', async () => {
      const diff = await compare(
        [8, 7, 2],
        [
          {
            name: 'conv',
            class_name: 'Conv2D',
            config: { filters: 3, kernel_size: [3, 3], strides: [2, 2], padding: 'same', use_bias: true },
          },
        ],
        [
          { name: 'conv/kernel', shape: [3, 3, 2, 3], values: rand(54) },
          { name: 'conv/bias', shape: [3], values: rand(3) },
        ],
      );
      report['tiny Conv2D same stride 2'] = diff;
      expect(diff).toBeLessThan(PARITY);
    });

    it('should match tfjs on DepthwiseConv2D `same` stride 2, BatchNormalization, ReLU6, Dense', async () => {
      const diff = await compare(
        [6, 5, 3],
        [
          {
            name: 'dw',
            class_name: 'DepthwiseConv2D',
            config: {
              kernel_size: [3, 3],
              strides: [2, 2],
              padding: 'same',
              depth_multiplier: 2,
              use_bias: false,
            },
          },
          { name: 'bn', class_name: 'BatchNormalization', config: { axis: -1, epsilon: 0.001 } },
          { name: 'relu', class_name: 'ReLU', config: { max_value: 6 } },
          { name: 'flat', class_name: 'Flatten' },
          { name: 'dense', class_name: 'Dense', config: { units: 4, activation: 'softmax' } },
        ],
        [
          { name: 'dw/depthwise_kernel', shape: [3, 3, 3, 2], values: rand(54), quantise: true },
          { name: 'bn/gamma', shape: [6], values: rand(6, 0.5, 2) },
          { name: 'bn/beta', shape: [6], values: rand(6) },
          { name: 'bn/moving_mean', shape: [6], values: rand(6) },
          { name: 'bn/moving_variance', shape: [6], values: [0, 0.1, 0.5, 1, 2, 0] },
          { name: 'dense/kernel', shape: [3 * 3 * 6, 4], values: rand(3 * 3 * 6 * 4) },
          { name: 'dense/bias', shape: [4], values: rand(4) },
        ],
      );
      report['tiny depthwise/BN/ReLU6/Dense'] = diff;
      expect(diff).toBeLessThan(PARITY);
    });
  });
});
