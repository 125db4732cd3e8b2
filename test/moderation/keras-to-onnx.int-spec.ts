import { onnx } from 'onnx-proto';
import { decodeKerasWeights } from '../../src/modules/moderation/model/keras-model';
import { convertKerasToOnnx } from '../../src/modules/moderation/model/keras-to-onnx';
import {
  attr,
  encodeOnnxModel,
  OnnxDataType,
  OnnxGraphBuilder,
} from '../../src/modules/moderation/model/onnx-writer';
import * as ref from './support/keras-reference';
import { OnnxRunner } from './support/onnx-runner';
import {
  maxAbsDiff,
  randoms,
  runConverted,
  tinyModel,
  type TinyLayer,
  type TinyWeight,
} from './support/tiny-keras';

const TOLERANCE = 1e-5;

describe('ONNX writer', () => {
  function sampleModel(): Uint8Array {
    const g = new OnnxGraphBuilder();
    const input = g.unique('x');
    const clipped = g.op('Clip', 'clip', [input, g.floatTensor('lo', [], [0]), g.floatTensor('hi', [], [6])]);
    const pooled = g.op('AveragePool', 'pool', [clipped], {
      kernel_shape: attr.ints([2, 2]),
      pads: attr.ints([0, 0, 1, 1]),
      strides: attr.ints([2, 2]),
    });
    g.op('LeakyRelu', 'leaky', [pooled], { alpha: attr.float(0.25) });
    return encodeOnnxModel({
      irVersion: 7,
      opsetVersion: 13,
      producerName: 'test',
      producerVersion: '9',
      metadata: { classes: 'a,b' },
      graph: {
        name: 'g',
        nodes: g.nodes,
        initializers: g.initializers,
        inputs: [{ name: input, dataType: OnnxDataType.Float, shape: ['N', 1, 3, 3] }],
        outputs: [{ name: 'leaky', dataType: OnnxDataType.Float, shape: ['N', 1, 2, 2] }],
      },
    });
  }

  it('should write protobuf that the reference ONNX schema decodes field for field', () => {
    const decoded = onnx.ModelProto.decode(sampleModel());
    expect(Number(decoded.irVersion)).toBe(7);
    expect(decoded.opsetImport.map((o) => [o.domain, Number(o.version)])).toEqual([['', 13]]);
    expect(decoded.metadataProps.map((p) => [p.key, p.value])).toEqual([['classes', 'a,b']]);
    // The decoder's optional fields are all set here; protobufjs fills repeated fields with [] anyway.
    const graph = onnx.GraphProto.fromObject(decoded.graph!);
    expect(graph.node.map((n) => n.opType)).toEqual(['Clip', 'AveragePool', 'LeakyRelu']);
    const pool = onnx.NodeProto.fromObject(graph.node[1]);
    expect(pool.attribute.map((a) => [a.name, a.type, (a.ints ?? []).map(Number)])).toEqual([
      ['kernel_shape', onnx.AttributeProto.AttributeType.INTS, [2, 2]],
      ['pads', onnx.AttributeProto.AttributeType.INTS, [0, 0, 1, 1]],
      ['strides', onnx.AttributeProto.AttributeType.INTS, [2, 2]],
    ]);
    expect(graph.node[2].attribute?.[0].f).toBe(0.25);
    const hi = graph.initializer.find((t) => t.name === 'hi')!;
    expect(hi.dataType).toBe(onnx.TensorProto.DataType.FLOAT);
    expect(Buffer.from(hi.rawData!).readFloatLE(0)).toBe(6);
    const dims = graph.input[0].type!.tensorType!.shape!.dim!;
    expect(dims.map((d) => d.dimParam || Number(d.dimValue))).toEqual(['N', 1, 3, 3]);
  });

  it('should write the same bytes for the same model', () => {
    expect(Buffer.compare(sampleModel(), sampleModel())).toBe(0);
  });
});

describe(decodeKerasWeights.name, () => {
  it('should dequantise uint8 weights as q * scale + min rounded to float32, like tfjs-core', () => {
    const min = -0.87334511607301;
    const scale = 0.006666756611244351;
    const weights = decodeKerasWeights(
      [
        {
          paths: ['x'],
          weights: [
            { name: 'a/kernel', shape: [3], dtype: 'float32', quantization: { dtype: 'uint8', min, scale } },
          ],
        },
      ],
      Uint8Array.from([0, 131, 255]),
    );
    expect(Array.from(weights.get('a/kernel')!.values)).toEqual(
      [0, 131, 255].map((q) => Math.fround(q * scale + min)),
    );
  });

  it('should read float32 weights that follow quantised ones in the same buffer', () => {
    const data = Buffer.concat([Buffer.from([1, 2]), Buffer.from(Float32Array.from([1.5, -2.25]).buffer)]);
    const weights = decodeKerasWeights(
      [
        {
          paths: ['x'],
          weights: [
            { name: 'q', shape: [2], dtype: 'float32', quantization: { dtype: 'uint8', min: 0, scale: 0.5 } },
            { name: 'f', shape: [2], dtype: 'float32' },
          ],
        },
      ],
      data,
    );
    expect(Array.from(weights.get('q')!.values)).toEqual([0.5, 1]);
    expect(Array.from(weights.get('f')!.values)).toEqual([1.5, -2.25]);
  });

  it('should refuse weight data of the wrong length', () => {
    expect(() =>
      decodeKerasWeights(
        [{ paths: ['x'], weights: [{ name: 'f', shape: [2], dtype: 'float32' }] }],
        new Uint8Array(4),
      ),
    ).toThrow(/too short/);
  });
});

describe(convertKerasToOnnx.name, () => {
  const rand = randoms(1234);

  async function check(
    inputShape: number[],
    layers: TinyLayer[],
    weights: TinyWeight[],
    reference: (x: ref.Nhwc, w: (name: string) => number[]) => ArrayLike<number>,
  ): Promise<number> {
    const { json, data, dequantised } = tinyModel(inputShape, layers, weights);
    const input = rand(inputShape.reduce((a, b) => a * b, 1));
    const { output } = await runConverted(json, data, input, inputShape);
    const x =
      inputShape.length === 3
        ? ref.nhwc(inputShape[0], inputShape[1], inputShape[2], input)
        : ref.nhwc(1, 1, inputShape[0], input);
    const expected = reference(x, (name) => dequantised.get(name)!);
    const diff = maxAbsDiff(output, expected);
    expect(diff).toBeLessThan(TOLERANCE);
    return diff;
  }

  it('should pad Conv2D `same` with stride 2 like TF: the odd row and column go at the end', async () => {
    // 8×7 input: rows need 1 pixel of padding (after), columns 2 (one each side).
    const kernel = rand(3 * 3 * 2 * 4);
    const bias = rand(4);
    await check(
      [8, 7, 2],
      [
        {
          name: 'conv',
          class_name: 'Conv2D',
          config: {
            filters: 4,
            kernel_size: [3, 3],
            strides: [2, 2],
            padding: 'same',
            use_bias: true,
            activation: 'linear',
          },
        },
      ],
      [
        { name: 'conv/kernel', shape: [3, 3, 2, 4], values: kernel },
        { name: 'conv/bias', shape: [4], values: bias },
      ],
      (x) => ref.conv2d(x, { kernel, bias, kh: 3, kw: 3, stride: 2, padding: 'same', filters: 4 }).data,
    );
  });

  it('should fold an asymmetric ZeroPadding2D into the next `valid` convolution', async () => {
    const kernel = rand(3 * 3 * 3 * 5);
    await check(
      [9, 8, 3],
      [
        {
          name: 'pad',
          class_name: 'ZeroPadding2D',
          config: {
            padding: [
              [0, 1],
              [2, 1],
            ],
          },
        },
        {
          name: 'conv',
          class_name: 'Conv2D',
          config: { filters: 5, kernel_size: [3, 3], strides: [2, 2], padding: 'valid', use_bias: false },
        },
      ],
      [{ name: 'conv/kernel', shape: [3, 3, 3, 5], values: kernel, quantise: true }],
      (x, w) =>
        ref.conv2d(ref.zeroPad(x, 0, 1, 2, 1), {
          kernel: w('conv/kernel'),
          kh: 3,
          kw: 3,
          stride: 2,
          padding: 'valid',
          filters: 5,
        }).data,
    );
  });

  it('should apply a ZeroPadding2D that feeds a pooling layer as a real Pad', async () => {
    await check(
      [5, 5, 2],
      [
        { name: 'pad', class_name: 'ZeroPadding2D', config: { padding: 1 } },
        {
          name: 'pool',
          class_name: 'AveragePooling2D',
          config: { pool_size: [2, 2], strides: [2, 2], padding: 'valid' },
        },
      ],
      [],
      (x) => ref.avgPool(ref.zeroPad(x, 1, 1, 1, 1), 2, 2, 'valid').data,
    );
  });

  it('should convert DepthwiseConv2D with a depth multiplier to a grouped convolution', async () => {
    const kernel = rand(3 * 3 * 3 * 2);
    const bias = rand(6);
    await check(
      [6, 6, 3],
      [
        {
          name: 'dw',
          class_name: 'DepthwiseConv2D',
          config: {
            kernel_size: [3, 3],
            strides: [1, 1],
            padding: 'same',
            depth_multiplier: 2,
            use_bias: true,
          },
        },
      ],
      [
        { name: 'dw/depthwise_kernel', shape: [3, 3, 3, 2], values: kernel },
        { name: 'dw/bias', shape: [6], values: bias },
      ],
      (x) => ref.depthwise(x, { kernel, bias, kh: 3, kw: 3, padding: 'same', multiplier: 2 }).data,
    );
  });

  it('should convert a MobileNet strided depthwise block (pad, depthwise valid, BN, ReLU6)', async () => {
    const kernel = rand(3 * 3 * 4);
    const bn = {
      gamma: rand(4, 0.5, 2),
      beta: rand(4),
      mean: rand(4),
      variance: [0, 0.5, 1, 2],
      epsilon: 0.001,
    };
    await check(
      [7, 8, 4],
      [
        {
          name: 'pad',
          class_name: 'ZeroPadding2D',
          config: {
            padding: [
              [0, 1],
              [0, 1],
            ],
          },
        },
        {
          name: 'dw',
          class_name: 'DepthwiseConv2D',
          config: { kernel_size: [3, 3], strides: [2, 2], padding: 'valid', use_bias: false },
        },
        {
          name: 'dw_BN',
          class_name: 'BatchNormalization',
          config: { axis: -1, epsilon: 0.001, center: true, scale: true },
        },
        { name: 'relu', class_name: 'ReLU', config: { max_value: 6 } },
      ],
      [
        { name: 'dw/depthwise_kernel', shape: [3, 3, 4, 1], values: kernel },
        { name: 'dw_BN/gamma', shape: [4], values: bn.gamma },
        { name: 'dw_BN/beta', shape: [4], values: bn.beta },
        { name: 'dw_BN/moving_mean', shape: [4], values: bn.mean },
        { name: 'dw_BN/moving_variance', shape: [4], values: bn.variance },
      ],
      (x) =>
        ref.map(
          ref.batchNorm(
            ref.depthwise(ref.zeroPad(x, 0, 1, 0, 1), {
              kernel,
              kh: 3,
              kw: 3,
              stride: 2,
              padding: 'valid',
              multiplier: 1,
            }),
            bn,
          ),
          ref.relu6,
        ).data,
    );
  });

  describe('BatchNormalization epsilon', () => {
    // A zero moving variance (as some nsfwjs channels have) makes epsilon decide the scale: 1/sqrt(eps).
    const bn = { gamma: [1, 0.5], beta: [0.1, -0.2], mean: [0.3, 0], variance: [0, 0], epsilon: 0.001 };
    const weights = (prefix: string): TinyWeight[] => [
      { name: `${prefix}/gamma`, shape: [2], values: bn.gamma },
      { name: `${prefix}/beta`, shape: [2], values: bn.beta },
      { name: `${prefix}/moving_mean`, shape: [2], values: bn.mean },
      { name: `${prefix}/moving_variance`, shape: [2], values: bn.variance },
    ];

    it('should use the layer epsilon when folded into a convolution', async () => {
      const kernel = rand(2 * 2);
      await check(
        [3, 3, 2],
        [
          {
            name: 'conv',
            class_name: 'Conv2D',
            config: { filters: 2, kernel_size: 1, strides: 1, padding: 'same', use_bias: false },
          },
          { name: 'bn', class_name: 'BatchNormalization', config: { axis: -1, epsilon: 0.001 } },
        ],
        [{ name: 'conv/kernel', shape: [1, 1, 2, 2], values: kernel }, ...weights('bn')],
        (x) => ref.batchNorm(ref.conv2d(x, { kernel, kh: 1, kw: 1, padding: 'same', filters: 2 }), bn).data,
      );
    });

    it('should use the layer epsilon when kept as a BatchNormalization op', async () => {
      await check(
        [3, 3, 2],
        [
          { name: 'relu', class_name: 'ReLU', config: { max_value: null } },
          { name: 'bn', class_name: 'BatchNormalization', config: { axis: -1, epsilon: 0.001 } },
        ],
        weights('bn'),
        (x) =>
          ref.batchNorm(
            ref.map(x, (v) => Math.max(0, v)),
            bn,
          ).data,
      );
    });
  });

  it('should flatten a 2×2 map in NHWC order before a Dense layer', async () => {
    const kernel = rand(2 * 2 * 3 * 4);
    const bias = rand(4);
    await check(
      [2, 2, 3],
      [
        { name: 'flatten', class_name: 'Flatten' },
        { name: 'drop', class_name: 'Dropout', config: { rate: 0.5 } },
        { name: 'dense', class_name: 'Dense', config: { units: 4, activation: 'softmax', use_bias: true } },
      ],
      [
        { name: 'dense/kernel', shape: [12, 4], values: kernel },
        { name: 'dense/bias', shape: [4], values: bias },
      ],
      (x) => ref.softmax(ref.dense(x.data, kernel, bias, 4)),
    );
  });

  it('should follow inbound_nodes through an Add, `same` average pooling and a Dense head', async () => {
    const k1 = rand(1 * 1 * 3 * 3);
    const k2 = rand(3 * 3 * 3 * 3);
    const d1 = rand(2 * 2 * 3 * 5);
    const b1 = rand(5);
    await check(
      [4, 4, 3],
      [
        {
          name: 'a',
          class_name: 'Conv2D',
          config: { filters: 3, kernel_size: 1, padding: 'valid', use_bias: false },
          inputs: ['input_1'],
        },
        {
          name: 'b',
          class_name: 'Conv2D',
          config: { filters: 3, kernel_size: 3, padding: 'same', use_bias: false, activation: 'relu' },
          inputs: ['input_1'],
        },
        { name: 'sum', class_name: 'Add', inputs: ['a', 'b'] },
        {
          name: 'pool',
          class_name: 'AveragePooling2D',
          config: { pool_size: [3, 3], strides: [2, 2], padding: 'same' },
        },
        { name: 'flat', class_name: 'Flatten' },
        { name: 'head', class_name: 'Dense', config: { units: 5, activation: 'relu' } },
      ],
      [
        { name: 'a/kernel', shape: [1, 1, 3, 3], values: k1 },
        { name: 'b/kernel', shape: [3, 3, 3, 3], values: k2 },
        { name: 'head/kernel', shape: [12, 5], values: d1 },
        { name: 'head/bias', shape: [5], values: b1 },
      ],
      (x) => {
        const a = ref.conv2d(x, { kernel: k1, kh: 1, kw: 1, padding: 'valid', filters: 3 });
        const b = ref.map(ref.conv2d(x, { kernel: k2, kh: 3, kw: 3, padding: 'same', filters: 3 }), (v) =>
          Math.max(0, v),
        );
        const pooled = ref.avgPool(ref.add(a, b), 3, 2, 'same');
        return ref.dense(pooled.data, d1, b1, 5).map((v) => Math.max(0, v));
      },
    );
  });

  it('should return a spatial output in NHWC order', async () => {
    const kernel = rand(2 * 2 * 1 * 2);
    const { json, data } = tinyModel(
      [3, 4, 1],
      [
        {
          name: 'conv',
          class_name: 'Conv2D',
          config: { filters: 2, kernel_size: 2, padding: 'valid', use_bias: false },
        },
      ],
      [{ name: 'conv/kernel', shape: [2, 2, 1, 2], values: kernel }],
    );
    const input = rand(12);
    const { output, dims } = await runConverted(json, data, input, [3, 4, 1]);
    expect(dims).toEqual([1, 2, 3, 2]);
    const expected = ref.conv2d(ref.nhwc(3, 4, 1, input), {
      kernel,
      kh: 2,
      kw: 2,
      padding: 'valid',
      filters: 2,
    });
    expect(maxAbsDiff(output, expected.data)).toBeLessThan(TOLERANCE);
  });

  it('should convert a Sequential config', async () => {
    const kernel = rand(3 * 2);
    const bias = rand(2);
    const { json, data } = tinyModel(
      [3],
      [],
      [
        { name: 'dense/kernel', shape: [3, 2], values: kernel },
        { name: 'dense/bias', shape: [2], values: bias },
      ],
    );
    json.modelTopology.model_config = {
      class_name: 'Sequential',
      config: [
        {
          name: 'dense',
          class_name: 'Dense',
          config: { units: 2, activation: 'sigmoid', batch_input_shape: [null, 3] },
        },
      ],
    };
    const input = rand(3);
    const { output } = await runConverted(json, data, input, [3]);
    const expected = ref.dense(input, kernel, bias, 2).map((v) => 1 / (1 + Math.exp(-v)));
    expect(maxAbsDiff(output, expected)).toBeLessThan(TOLERANCE);
  });

  it('should take float32 pixels by default (uint8 on request) and divide them by inputDivisor', async () => {
    const kernel = rand(3 * 2);
    const bias = rand(2);
    const { json, data } = tinyModel(
      [3],
      [{ name: 'dense', class_name: 'Dense', config: { units: 2 } }],
      [
        { name: 'dense/kernel', shape: [3, 2], values: kernel },
        { name: 'dense/bias', shape: [2], values: bias },
      ],
    );
    const pixels = [0, 127.5, 255];
    const expected = ref.dense(
      pixels.map((v) => v / 255),
      kernel,
      bias,
      2,
    );
    const run = async (
      model: Uint8Array,
      input: { type: 'float32' | 'uint8'; data: Float32Array | Uint8Array },
    ) => {
      const runner = await OnnxRunner.create(model);
      try {
        const [out] = await runner.run({ input: { ...input, dims: [1, 3] } });
        return out.data;
      } finally {
        await runner.close();
      }
    };
    const float = await run(convertKerasToOnnx(json, data), {
      type: 'float32',
      data: Float32Array.from(pixels),
    });
    expect(maxAbsDiff(float, expected)).toBeLessThan(TOLERANCE);
    // A fraction survives the float input; the uint8 variant can only take whole levels.
    const whole = [0, 128, 255];
    const uint8 = await run(convertKerasToOnnx(json, data, { inputType: 'uint8' }), {
      type: 'uint8',
      data: Uint8Array.from(whole),
    });
    expect(
      maxAbsDiff(
        uint8,
        ref.dense(
          whole.map((v) => v / 255),
          kernel,
          bias,
          2,
        ),
      ),
    ).toBeLessThan(TOLERANCE);
  });

  it('should name unsupported layers instead of converting them wrongly', () => {
    const { json, data } = tinyModel([4, 4, 1], [{ name: 'lstm_1', class_name: 'LSTM' }], []);
    expect(() => convertKerasToOnnx(json, data)).toThrow('lstm_1: layer LSTM is not supported');
  });

  it('should refuse a missing weight', () => {
    const { json, data } = tinyModel(
      [4, 4, 1],
      [{ name: 'conv', class_name: 'Conv2D', config: { filters: 1, kernel_size: 1, use_bias: false } }],
      [],
    );
    expect(() => convertKerasToOnnx(json, data)).toThrow('conv: weight kernel is missing');
  });
});
