import type {
  KerasLayer,
  KerasModelJson,
  KerasWeightSpec,
} from '../../../src/modules/moderation/model/keras-model';
import { convertKerasToOnnx } from '../../../src/modules/moderation/model/keras-to-onnx';
import { OnnxRunner } from './onnx-runner';

export interface TinyLayer {
  name: string;
  class_name: string;
  config?: Record<string, unknown>;
  /** Inbound layer names; defaults to the previous layer. */
  inputs?: string[];
}

export interface TinyWeight {
  name: string;
  shape: number[];
  values: number[];
  /** Store as uint8 with min/scale, the way nsfwjs ships its weights. */
  quantise?: boolean;
}

/** A seeded generator of floats in [-1, 1). */
export function randoms(seed: number): (n: number, lo?: number, hi?: number) => number[] {
  let s = seed >>> 0;
  const next = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
  return (n, lo = -1, hi = 1) => Array.from({ length: n }, () => lo + (hi - lo) * next());
}

/** Builds functional-model artifacts (model.json shape + weight bytes) from a short layer list. */
export function tinyModel(
  inputShape: number[],
  layers: TinyLayer[],
  weights: TinyWeight[],
): { json: KerasModelJson; data: Uint8Array; dequantised: Map<string, number[]> } {
  const all: KerasLayer[] = [
    {
      name: 'input_1',
      class_name: 'InputLayer',
      config: { batch_input_shape: [null, ...inputShape] },
      inbound_nodes: [],
    },
  ];
  for (const layer of layers) {
    const inputs = layer.inputs ?? [all[all.length - 1].name];
    all.push({
      name: layer.name,
      class_name: layer.class_name,
      config: { name: layer.name, ...(layer.config ?? {}) },
      inbound_nodes: [inputs.map((i) => [i, 0, 0, {}])],
    });
  }
  const specs: KerasWeightSpec[] = [];
  const chunks: Buffer[] = [];
  const dequantised = new Map<string, number[]>();
  for (const w of weights) {
    if (w.quantise) {
      const min = Math.min(...w.values);
      const scale = (Math.max(...w.values) - min) / 255 || 1;
      const q = w.values.map((v) => Math.round((v - min) / scale));
      specs.push({
        name: w.name,
        shape: w.shape,
        dtype: 'float32',
        quantization: { dtype: 'uint8', min, scale },
      });
      chunks.push(Buffer.from(q));
      dequantised.set(
        w.name,
        q.map((v) => Math.fround(v * scale + min)),
      );
    } else {
      specs.push({ name: w.name, shape: w.shape, dtype: 'float32' });
      chunks.push(Buffer.from(Float32Array.from(w.values).buffer));
      dequantised.set(w.name, Array.from(Float32Array.from(w.values)));
    }
  }
  const json: KerasModelJson = {
    modelTopology: {
      model_config: {
        class_name: 'Model',
        config: {
          name: 'tiny',
          layers: all,
          input_layers: [['input_1', 0, 0]],
          output_layers: [[all[all.length - 1].name, 0, 0]],
        },
      },
    },
    weightsManifest: [{ paths: ['tiny'], weights: specs }],
  };
  return { json, data: Buffer.concat(chunks), dequantised };
}

/** Converts with a float32 input taken as is (no /255) and runs one sample through onnxruntime. */
export async function runConverted(
  json: KerasModelJson,
  data: Uint8Array,
  input: ArrayLike<number>,
  inputShape: number[],
): Promise<{ output: Float32Array; dims: readonly number[] }> {
  const bytes = convertKerasToOnnx(json, data, { inputType: 'float32', inputDivisor: 1 });
  const runner = await OnnxRunner.create(bytes);
  try {
    const [out] = await runner.run({
      input: { type: 'float32', data: Float32Array.from(input), dims: [1, ...inputShape] },
    });
    return { output: out.data, dims: out.dims };
  } finally {
    await runner.close();
  }
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) {
    throw new Error(`Lengths differ: ${a.length} vs ${b.length}`);
  }
  let max = 0;
  for (let i = 0; i < a.length; i++) {
    max = Math.max(max, Math.abs(a[i] - b[i]));
  }
  return max;
}
