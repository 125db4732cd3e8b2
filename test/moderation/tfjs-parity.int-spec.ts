import sharp from 'sharp';
import {
  decodeFrames,
  frameToModelInputs,
  MODEL_INPUT_BYTES,
  resizeToModelInput,
  type RawImage,
} from '../../src/modules/moderation/image-preprocess';
import { convertKerasToOnnx } from '../../src/modules/moderation/model/keras-to-onnx';
import { loadNsfwjsModel } from '../../src/modules/moderation/model/nsfwjs-source';
import { OnnxRunner } from './support/onnx-runner';
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
 * The reference is the same Keras model run by @tensorflow/tfjs (pure JS CPU backend) with nsfwjs' preprocessing.
 * tfjs needs ~1-3 s per image here, so this file keeps to a dozen images.
 */
jest.setTimeout(180_000);

const PARITY = 1e-5;

describe('parity with tfjs (nsfwjs reference)', () => {
  let reference: TfjsWorker;
  let uint8Model: OnnxRunner;
  let floatModel: OnnxRunner;
  const report: Record<string, number> = {};

  beforeAll(async () => {
    const source = loadNsfwjsModel();
    reference = await TfjsWorker.create(source.json, source.weightData);
    uint8Model = await OnnxRunner.create(convertKerasToOnnx(source.json, source.weightData));
    // The same graph with a float input (still ÷255 inside): lets the unrounded resize be compared exactly.
    floatModel = await OnnxRunner.create(
      convertKerasToOnnx(source.json, source.weightData, { inputType: 'float32', inputDivisor: 255 }),
    );
  });

  afterAll(async () => {
    await reference?.close();
    await uint8Model?.close();
    await floatModel?.close();
    console.log(
      'parity, max |ONNX − tfjs| per check:\n' +
        Object.entries(report)
          .map(([k, v]) => `  ${k}: ${v.toExponential(2)}`)
          .join('\n'),
    );
  });

  /** Our preprocessing starts from an encoded file, as uploads do. */
  async function decodePng(image: images.RgbImage): Promise<RawImage> {
    const png = await sharp(Buffer.from(image.data), {
      raw: { width: image.width, height: image.height, channels: 3 },
    })
      .png()
      .toBuffer();
    const [frame] = await decodeFrames(png, 1);
    return frame;
  }

  async function predictUint8(input: Uint8Array): Promise<Float32Array> {
    const [out] = await uint8Model.run({ input: { type: 'uint8', data: input, dims: [1, 224, 224, 3] } });
    return out.data;
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
    'should match tfjs within 1e-5 on %s through our preprocessing',
    async (name, image) => {
      const frame = await decodePng(image);
      const [input] = frameToModelInputs(frame);
      const [ours, theirs] = await Promise.all([
        predictUint8(input),
        reference.nsfwjs(image.data, image.width, image.height),
      ]);
      const diff = maxAbsDiff(ours, theirs);
      report[name] = diff;
      expect(diff).toBeLessThan(PARITY);
    },
  );

  describe('non-square images (resized)', () => {
    const resized = [images.scene(640, 360), images.scene(97, 131), images.noise(5, 300, 200)];

    it.each(resized.map((image) => [image.name, image] as const))(
      'should resize %s like tf.image.resizeBilinear(alignCorners) and then match tfjs within 1e-5',
      async (name, image) => {
        const frame = await decodePng(image);
        const ours = new Float32Array(MODEL_INPUT_BYTES);
        resizeToModelInput(frame, 255, ours);
        const theirs = await reference.resize(image.data, image.width, image.height);
        expect(
          maxAbsDiff(
            ours.map((v) => v / 255),
            theirs,
          ),
        ).toBeLessThan(1e-6);

        const [rounded] = frameToModelInputs(frame);
        expect(maxAbsDiff(rounded, ours)).toBeLessThanOrEqual(0.5);

        const expected = await reference.nsfwjs(image.data, image.width, image.height);
        const [floatOut] = await floatModel.run({
          input: { type: 'float32', data: ours, dims: [1, 224, 224, 3] },
        });
        report[`${name}, float resize`] = maxAbsDiff(floatOut.data, expected);
        expect(report[`${name}, float resize`]).toBeLessThan(PARITY);

        // What the server feeds: the resize rounded to uint8 (the model contract). Rounding moves every pixel by
        // up to 0.5/255; smooth images shift by a few 1e-3, far below any decision margin.
        report[`${name}, uint8 input (server path)`] = maxAbsDiff(await predictUint8(rounded), expected);
        expect(report[`${name}, uint8 input (server path)`]).toBeLessThan(0.02);
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

    it('should match tfjs on DepthwiseConv2D `same` stride 2 with BatchNormalization, ReLU6 and a Dense head', async () => {
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
