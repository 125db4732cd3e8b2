/** The subset of the tfjs "layers model" artifacts (model.json + weight shards) the converter reads. */

/** One inbound tensor reference: [layer name, node index, tensor index, kwargs]. */
export type KerasInboundRef = [string, number, number, Record<string, unknown>?];

export interface KerasLayer {
  name: string;
  class_name: string;
  config: Record<string, unknown>;
  /** One entry per call of the layer; each lists that call's inputs. Absent in Sequential configs. */
  inbound_nodes?: KerasInboundRef[][];
}

export interface KerasModelTopology {
  keras_version?: string;
  backend?: string;
  model_config: {
    class_name: string;
    config:
      | {
          name?: string;
          layers: KerasLayer[];
          input_layers?: KerasInboundRef[];
          output_layers?: KerasInboundRef[];
        }
      | KerasLayer[];
  };
}

export interface KerasWeightSpec {
  name: string;
  shape: number[];
  dtype: string;
  quantization?: { dtype: string; min?: number; scale?: number };
}

export interface KerasWeightsGroup {
  paths: string[];
  weights: KerasWeightSpec[];
}

export interface KerasModelJson {
  modelTopology: KerasModelTopology;
  weightsManifest: KerasWeightsGroup[];
}

export interface KerasWeight {
  shape: number[];
  values: Float32Array;
}

function float16ToFloat32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >> 10) & 0x1f;
  const fraction = h & 0x3ff;
  if (exponent === 0) {
    return sign * 2 ** -14 * (fraction / 1024);
  }
  if (exponent === 0x1f) {
    return fraction ? NaN : sign * Infinity;
  }
  return sign * 2 ** (exponent - 15) * (1 + fraction / 1024);
}

/**
 * Decodes the weights of every manifest group, given the concatenation of all groups' shards in manifest
 * order. Quantised values are restored as tfjs-core does: q * scale + min, evaluated in double and stored as
 * float32.
 */
export function decodeKerasWeights(
  manifest: readonly KerasWeightsGroup[],
  data: Uint8Array,
): Map<string, KerasWeight> {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const weights = new Map<string, KerasWeight>();
  let offset = 0;
  for (const spec of manifest.flatMap((g) => g.weights)) {
    if (spec.dtype !== 'float32') {
      throw new Error(`Weight ${spec.name}: dtype ${spec.dtype} is not supported`);
    }
    const count = spec.shape.reduce((a, b) => a * b, 1);
    const values = new Float32Array(count);
    const q = spec.quantization;
    const bytesPer = q === undefined ? 4 : q.dtype === 'uint8' ? 1 : 2;
    if (offset + count * bytesPer > data.byteLength) {
      throw new Error(`Weight ${spec.name}: the weight data is too short`);
    }
    if (q === undefined) {
      for (let i = 0; i < count; i++) {
        values[i] = view.getFloat32(offset + i * 4, true);
      }
    } else if (q.dtype === 'float16') {
      for (let i = 0; i < count; i++) {
        values[i] = float16ToFloat32(view.getUint16(offset + i * 2, true));
      }
    } else if (q.dtype === 'uint8' || q.dtype === 'uint16') {
      if (q.min === undefined || q.scale === undefined) {
        throw new Error(`Weight ${spec.name}: quantisation without min/scale`);
      }
      for (let i = 0; i < count; i++) {
        const v = q.dtype === 'uint8' ? view.getUint8(offset + i) : view.getUint16(offset + i * 2, true);
        values[i] = v * q.scale + q.min;
      }
    } else {
      throw new Error(`Weight ${spec.name}: quantisation ${q.dtype} is not supported`);
    }
    offset += count * bytesPer;
    weights.set(spec.name, { shape: spec.shape, values });
  }
  if (offset !== data.byteLength) {
    throw new Error(`The weight data has ${data.byteLength - offset} bytes the manifest does not describe`);
  }
  return weights;
}
