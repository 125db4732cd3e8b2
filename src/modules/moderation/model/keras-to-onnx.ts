import {
  decodeKerasWeights,
  type KerasInboundRef,
  type KerasLayer,
  type KerasModelJson,
  type KerasWeight,
} from './keras-model';
import { attr, encodeOnnxModel, OnnxDataType, OnnxGraphBuilder, type OnnxAttribute } from './onnx-writer';

/**
 * Bump whenever the converter's output changes: cached conversions are keyed on it (and on the options).
 * 2: the default input is float32 (was uint8), so the served model gets the unrounded resize as nsfwjs does.
 */
export const CONVERTER_VERSION = '2';

export interface KerasToOnnxOptions {
  inputName?: string;
  outputName?: string;
  /**
   * `float32` (the default) takes pixels as floats, e.g. an unrounded resize; `uint8` takes raw pixels (e.g.
   * from sharp) and casts them inside the graph.
   */
  inputType?: 'uint8' | 'float32';
  /** The graph divides the input by this first (nsfwjs feeds pixels / 255). */
  inputDivisor?: number;
  docString?: string;
  metadata?: Record<string, string>;
}

interface Pads {
  top: number;
  bottom: number;
  left: number;
  right: number;
}

/**
 * A 4-D tensor, NCHW inside the graph; `pad` is a ZeroPadding2D not yet applied (a Conv folds it into its
 * pads).
 */
interface SpatialValue {
  kind: 'spatial';
  name: string;
  h: number;
  w: number;
  c: number;
  pad?: Pads;
}

interface FlatValue {
  kind: 'flat';
  name: string;
  features: number;
}

type Value = SpatialValue | FlatValue;

interface LayerCall {
  layer: KerasLayer;
  index: number;
  inputs: KerasInboundRef[];
}

const IDENTITY_LAYERS = new Set([
  'Dropout',
  'SpatialDropout2D',
  'GaussianNoise',
  'GaussianDropout',
  'AlphaDropout',
  'ActivityRegularization',
]);

/** The same shape under a new (already padded) tensor name. */
function renamed<T extends Value>(v: T, name: string): T {
  return (
    v.kind === 'spatial'
      ? { kind: v.kind, name, h: v.h, w: v.w, c: v.c }
      : { kind: v.kind, name, features: v.features }
  ) as T;
}

const key = (layer: string, node: number, tensor: number): string => `${layer}:${node}:${tensor}`;
const refKey = (ref: KerasInboundRef): string => key(ref[0], ref[1], ref[2]);

function pair(value: unknown, what: string): [number, number] {
  if (typeof value === 'number') {
    return [value, value];
  }
  if (Array.isArray(value) && value.length === 2 && value.every((v): v is number => typeof v === 'number')) {
    return [value[0], value[1]];
  }
  throw new Error(`${what}: expected a number or a pair, got ${JSON.stringify(value)}`);
}

function text(value: unknown, fallback: string, what: string): string {
  if (value === undefined || value === null) {
    return fallback;
  }
  if (typeof value !== 'string') {
    throw new Error(`${what}: expected a string, got ${JSON.stringify(value)}`);
  }
  return value;
}

function zeroPadding(value: unknown, what: string): Pads {
  if (Array.isArray(value) && value.length === 2 && value.every(Array.isArray)) {
    const [[top, bottom], [left, right]] = (value as unknown[]).map((v, i) => pair(v, `${what}[${i}]`));
    return { top, bottom, left, right };
  }
  const [h, w] = pair(value, what);
  return { top: h, bottom: h, left: w, right: w };
}

/**
 * Keras output size and (begin, end) padding along one axis; `same` puts the odd pixel at the end, as TF
 * does.
 */
function windowAxis(
  size: number,
  kernel: number,
  stride: number,
  dilation: number,
  padding: string,
  what: string,
) {
  const effective = (kernel - 1) * dilation + 1;
  if (padding === 'valid') {
    const out = Math.floor((size - effective) / stride) + 1;
    if (out < 1) {
      throw new Error(`${what}: the window is larger than the input`);
    }
    return { out, begin: 0, end: 0 };
  }
  if (padding === 'same') {
    const out = Math.ceil(size / stride);
    const total = Math.max((out - 1) * stride + effective - size, 0);
    const begin = Math.floor(total / 2);
    return { out, begin, end: total - begin };
  }
  throw new Error(`${what}: padding ${padding} is not supported`);
}

/** Orders a Sequential or functional config as layer calls with explicit inputs. */
function layerCalls(json: KerasModelJson): {
  calls: LayerCall[];
  inputs: KerasInboundRef[];
  outputs: KerasInboundRef[];
} {
  const modelConfig = json.modelTopology.model_config;
  const config = modelConfig.config;
  if (modelConfig.class_name === 'Sequential') {
    const layers = Array.isArray(config) ? config : config.layers;
    const all: KerasLayer[] = [...layers];
    if (all[0]?.class_name !== 'InputLayer') {
      const shape = all[0]?.config.batch_input_shape;
      all.unshift({ name: 'input_1', class_name: 'InputLayer', config: { batch_input_shape: shape } });
    }
    const calls = all.map((layer, i) => ({
      layer,
      index: 0,
      inputs: i === 0 ? [] : [[all[i - 1].name, 0, 0] as KerasInboundRef],
    }));
    const last = all[all.length - 1];
    return { calls, inputs: [[all[0].name, 0, 0]], outputs: [[last.name, 0, 0]] };
  }
  if (modelConfig.class_name !== 'Model' && modelConfig.class_name !== 'Functional') {
    throw new Error(`Model class ${modelConfig.class_name} is not supported`);
  }
  if (Array.isArray(config) || !config.input_layers || !config.output_layers) {
    throw new Error('A functional model needs input_layers and output_layers');
  }
  const calls: LayerCall[] = [];
  for (const layer of config.layers) {
    const nodes = layer.inbound_nodes ?? [];
    if (layer.class_name === 'InputLayer') {
      calls.push({ layer, index: 0, inputs: [] });
    }
    nodes.forEach((inputs, index) => calls.push({ layer, index, inputs }));
  }
  return { calls, inputs: config.input_layers, outputs: config.output_layers };
}

class KerasToOnnxConverter {
  private readonly g = new OnnxGraphBuilder();
  private readonly values = new Map<string, Value>();
  private readonly materialised = new Map<SpatialValue, string>();
  private readonly consumers = new Map<string, LayerCall[]>();
  private readonly done = new Set<LayerCall>();
  private outputKey = '';

  constructor(
    private readonly json: KerasModelJson,
    private readonly weights: Map<string, KerasWeight>,
    private readonly options: Required<Omit<KerasToOnnxOptions, 'docString' | 'metadata'>>,
  ) {}

  convert(): { builder: OnnxGraphBuilder; inputShape: number[]; outputShape: number[] } {
    const { calls, inputs, outputs } = layerCalls(this.json);
    if (inputs.length !== 1 || outputs.length !== 1) {
      throw new Error('Only models with one input and one output are supported');
    }
    for (const call of calls) {
      for (const ref of call.inputs) {
        this.consumers.set(refKey(ref), [...(this.consumers.get(refKey(ref)) ?? []), call]);
      }
    }
    const outputKey = refKey(outputs[0]);
    this.outputKey = outputKey;

    const inputCall = calls.find((c) => c.layer.name === inputs[0][0] && c.layer.class_name === 'InputLayer');
    if (!inputCall) {
      throw new Error(`Input layer ${inputs[0][0]} not found`);
    }
    const inputShape = this.addInput(inputCall);
    this.done.add(inputCall);

    let pending = calls.filter((c) => !this.done.has(c));
    while (pending.length > 0) {
      const ready = pending.find((c) => c.inputs.every((ref) => this.values.has(refKey(ref))));
      if (!ready) {
        throw new Error(
          `Cannot order layers: ${pending.map((c) => c.layer.name).join(', ')} wait for missing inputs`,
        );
      }
      this.convertCall(ready);
      this.done.add(ready);
      pending = pending.filter((c) => !this.done.has(c));
    }

    const result = this.values.get(outputKey);
    if (!result) {
      throw new Error(`Output ${outputs[0][0]} was never produced`);
    }
    let outName: string;
    let outputShape: number[];
    if (result.kind === 'spatial') {
      outName = this.g.op('Transpose', 'to_nhwc', [this.plain(result)], { perm: attr.ints([0, 2, 3, 1]) });
      outputShape = [result.h, result.w, result.c];
    } else {
      outName = result.name;
      outputShape = [result.features];
    }
    const graphOutput = this.g.unique(this.options.outputName);
    this.g.nodes.push({
      opType: 'Identity',
      name: this.g.unique('output'),
      inputs: [outName],
      outputs: [graphOutput],
    });
    return { builder: this.g, inputShape, outputShape };
  }

  private addInput(call: LayerCall): number[] {
    const shape = call.layer.config.batch_input_shape as (number | null)[] | undefined;
    if (!Array.isArray(shape) || shape.slice(1).some((d) => typeof d !== 'number')) {
      throw new Error(`Input ${call.layer.name}: a fixed batch_input_shape is required`);
    }
    const dims = shape.slice(1) as number[];
    if (dims.length !== 3 && dims.length !== 1) {
      throw new Error(`Input ${call.layer.name}: rank ${dims.length + 1} is not supported`);
    }
    const name = this.g.unique(this.options.inputName);
    let x = name;
    if (this.options.inputType === 'uint8') {
      x = this.g.op('Cast', 'input_float', [x], { to: attr.int(OnnxDataType.Float) });
    }
    if (this.options.inputDivisor !== 1) {
      const divisor = this.g.floatTensor('input_divisor', [], [this.options.inputDivisor]);
      x = this.g.op('Div', 'input_scaled', [x, divisor]);
    }
    const value: Value =
      dims.length === 3
        ? {
            kind: 'spatial',
            name: this.g.op('Transpose', 'input_nchw', [x], { perm: attr.ints([0, 3, 1, 2]) }),
            h: dims[0],
            w: dims[1],
            c: dims[2],
          }
        : { kind: 'flat', name: x, features: dims[0] };
    this.values.set(key(call.layer.name, 0, 0), value);
    return dims;
  }

  private convertCall(call: LayerCall): void {
    const inputs = call.inputs.map((ref) => this.values.get(refKey(ref))!);
    this.values.set(key(call.layer.name, call.index, 0), this.layerOutput(call, inputs));
  }

  private layerOutput(call: LayerCall, inputs: Value[]): Value {
    const { layer } = call;
    const cfg = layer.config;
    if (cfg.data_format !== undefined && cfg.data_format !== 'channels_last') {
      throw new Error(`${layer.name}: data_format ${JSON.stringify(cfg.data_format)} is not supported`);
    }
    if (layer.class_name !== 'Add' && inputs.length !== 1) {
      throw new Error(`${layer.name}: expected one input, got ${inputs.length}`);
    }
    const x = inputs[0];
    switch (layer.class_name) {
      case 'ZeroPadding2D': {
        const s = this.spatial(x, layer);
        const p = zeroPadding(cfg.padding, `${layer.name}.padding`);
        const prev = s.pad ?? { top: 0, bottom: 0, left: 0, right: 0 };
        const pad = {
          top: prev.top + p.top,
          bottom: prev.bottom + p.bottom,
          left: prev.left + p.left,
          right: prev.right + p.right,
        };
        return { ...s, h: s.h + p.top + p.bottom, w: s.w + p.left + p.right, pad };
      }
      case 'Conv2D':
      case 'DepthwiseConv2D':
        return this.convolution(call, this.spatial(x, layer));
      case 'BatchNormalization':
        return this.batchNorm(layer, x);
      case 'ReLU':
        return this.relu(layer, x);
      case 'Activation':
        return this.activation(layer.name, x, text(cfg.activation, 'linear', `${layer.name}.activation`));
      case 'Softmax':
        return this.activation(layer.name, x, 'softmax');
      case 'Add':
        return this.add(layer, inputs);
      case 'AveragePooling2D':
      case 'MaxPooling2D':
        return this.pool(layer, this.spatial(x, layer));
      case 'GlobalAveragePooling2D':
      case 'GlobalMaxPooling2D': {
        const s = this.spatial(x, layer);
        const op = layer.class_name === 'GlobalAveragePooling2D' ? 'GlobalAveragePool' : 'GlobalMaxPool';
        const pooled = this.g.op(op, layer.name, [this.plain(s)]);
        return { kind: 'flat', name: this.g.op('Flatten', `${layer.name}_flat`, [pooled]), features: s.c };
      }
      case 'Flatten':
        return this.flatten(layer, x);
      case 'Dense':
        return this.dense(layer, x);
      default:
        if (IDENTITY_LAYERS.has(layer.class_name)) {
          return x;
        }
        throw new Error(`${layer.name}: layer ${layer.class_name} is not supported`);
    }
  }

  private spatial(v: Value, layer: KerasLayer): SpatialValue {
    if (v.kind !== 'spatial') {
      throw new Error(`${layer.name}: ${layer.class_name} needs a 4-D input`);
    }
    return v;
  }

  /** The value as a plain NCHW tensor name: a pending ZeroPadding2D becomes a Pad node here. */
  private plain(v: Value): string {
    if (v.kind === 'flat' || !v.pad) {
      return v.name;
    }
    const cached = this.materialised.get(v);
    if (cached) {
      return cached;
    }
    const { top, bottom, left, right } = v.pad;
    const pads = this.g.int64Tensor('pads', [8], [0, 0, top, left, 0, 0, bottom, right]);
    const name = this.g.op('Pad', 'zero_pad', [v.name, pads]);
    this.materialised.set(v, name);
    return name;
  }

  private weight(layer: KerasLayer, variable: string, shape: number[]): Float32Array {
    const w = this.weights.get(`${layer.name}/${variable}`);
    if (!w) {
      throw new Error(`${layer.name}: weight ${variable} is missing`);
    }
    if (w.shape.length !== shape.length || w.shape.some((d, i) => d !== shape[i])) {
      throw new Error(
        `${layer.name}/${variable}: shape [${w.shape.join(',')}], expected [${shape.join(',')}]`,
      );
    }
    return w.values;
  }

  /** The BatchNormalization variables; gamma and beta default to 1 and 0 when the layer has none. */
  private batchNormWeights(layer: KerasLayer, x: Value) {
    const cfg = layer.config;
    const channels = x.kind === 'spatial' ? x.c : x.features;
    const lastAxis = x.kind === 'spatial' ? 3 : 1;
    const axes: unknown = cfg.axis;
    const axis: unknown = Array.isArray(axes) && axes.length === 1 ? (axes as unknown[])[0] : (axes ?? -1);
    if (axis !== -1 && axis !== lastAxis) {
      throw new Error(`${layer.name}: only the channel axis (-1) is supported`);
    }
    return {
      channels,
      epsilon: typeof cfg.epsilon === 'number' ? cfg.epsilon : 0.001,
      gamma:
        cfg.scale === false ? new Float32Array(channels).fill(1) : this.weight(layer, 'gamma', [channels]),
      beta: cfg.center === false ? new Float32Array(channels) : this.weight(layer, 'beta', [channels]),
      mean: this.weight(layer, 'moving_mean', [channels]),
      variance: this.weight(layer, 'moving_variance', [channels]),
    };
  }

  /** gamma / sqrt(var + eps) and beta - mean * that, in double precision. */
  private batchNormAffine(layer: KerasLayer, x: SpatialValue): { scale: Float64Array; shift: Float64Array } {
    const { channels, epsilon, gamma, beta, mean, variance } = this.batchNormWeights(layer, x);
    const scale = new Float64Array(channels);
    const shift = new Float64Array(channels);
    for (let c = 0; c < channels; c++) {
      scale[c] = gamma[c] / Math.sqrt(variance[c] + epsilon);
      shift[c] = beta[c] - mean[c] * scale[c];
    }
    return { scale, shift };
  }

  /** The call this call's output feeds, when it is the only consumer and the output is not the model's. */
  private soleConsumer(call: LayerCall): LayerCall | undefined {
    const k = key(call.layer.name, call.index, 0);
    const users = this.consumers.get(k) ?? [];
    return users.length === 1 && k !== this.outputKey ? users[0] : undefined;
  }

  /** Conv2D or DepthwiseConv2D; a BatchNormalization that alone consumes it is folded in and marked done. */
  private convolution(call: LayerCall, x: SpatialValue): Value {
    const { layer } = call;
    const cfg = layer.config;
    const depthwise = layer.class_name === 'DepthwiseConv2D';
    const [kh, kw] = pair(cfg.kernel_size, `${layer.name}.kernel_size`);
    const [sh, sw] = pair(cfg.strides ?? 1, `${layer.name}.strides`);
    const [dh, dw] = pair(cfg.dilation_rate ?? 1, `${layer.name}.dilation_rate`);
    const padding = text(cfg.padding, 'valid', `${layer.name}.padding`);
    const rows = windowAxis(x.h, kh, sh, dh, padding, layer.name);
    const cols = windowAxis(x.w, kw, sw, dw, padding, layer.name);
    const cin = x.c;
    let cout: number;
    let kernel: Float32Array;
    let perIn: number;
    if (depthwise) {
      const multiplier = typeof cfg.depth_multiplier === 'number' ? cfg.depth_multiplier : 1;
      cout = cin * multiplier;
      perIn = 1;
      // [kh,kw,in,mult] → [in·mult,1,kh,kw]: TF's output channel c·mult+m is ONNX group c's m-th output.
      const src = this.weight(layer, 'depthwise_kernel', [kh, kw, cin, multiplier]);
      kernel = new Float32Array(cout * kh * kw);
      for (let y = 0; y < kh; y++) {
        for (let xx = 0; xx < kw; xx++) {
          for (let o = 0; o < cout; o++) {
            kernel[(o * kh + y) * kw + xx] = src[(y * kw + xx) * cout + o];
          }
        }
      }
    } else {
      cout = Number(cfg.filters);
      perIn = cin;
      const src = this.weight(layer, 'kernel', [kh, kw, cin, cout]);
      kernel = new Float32Array(cout * cin * kh * kw);
      for (let y = 0; y < kh; y++) {
        for (let xx = 0; xx < kw; xx++) {
          for (let i = 0; i < cin; i++) {
            for (let o = 0; o < cout; o++) {
              kernel[((o * cin + i) * kh + y) * kw + xx] = src[((y * kw + xx) * cin + i) * cout + o];
            }
          }
        }
      }
    }
    const useBias = cfg.use_bias !== false;
    const bias = useBias ? this.weight(layer, 'bias', [cout]) : null;
    const activation = text(cfg.activation, 'linear', `${layer.name}.activation`);

    let outputCall = call;
    let finalKernel: Float32Array = kernel;
    let finalBias: Float32Array | null = bias;
    const next = activation === 'linear' ? this.soleConsumer(call) : undefined;
    if (next?.layer.class_name === 'BatchNormalization') {
      // Fold the BatchNormalization into the convolution; the affine terms are computed in double.
      const { scale, shift } = this.batchNormAffine(next.layer, { ...x, c: cout });
      const per = kernel.length / cout;
      finalKernel = new Float32Array(kernel.length);
      finalBias = new Float32Array(cout);
      for (let o = 0; o < cout; o++) {
        for (let j = 0; j < per; j++) {
          finalKernel[o * per + j] = kernel[o * per + j] * scale[o];
        }
        finalBias[o] = (bias ? bias[o] : 0) * scale[o] + shift[o];
      }
      outputCall = next;
      this.done.add(next);
    }
    const pre = x.pad ?? { top: 0, bottom: 0, left: 0, right: 0 };
    const attributes: Record<string, OnnxAttribute> = {
      kernel_shape: attr.ints([kh, kw]),
      strides: attr.ints([sh, sw]),
      dilations: attr.ints([dh, dw]),
      pads: attr.ints([
        pre.top + rows.begin,
        pre.left + cols.begin,
        pre.bottom + rows.end,
        pre.right + cols.end,
      ]),
      group: attr.int(depthwise ? cin : 1),
    };
    const inputs = [x.name, this.g.floatTensor(`${layer.name}_W`, [cout, perIn, kh, kw], finalKernel)];
    if (finalBias) {
      inputs.push(this.g.floatTensor(`${layer.name}_B`, [cout], finalBias));
    }
    const conv: SpatialValue = {
      kind: 'spatial',
      name: this.g.op('Conv', outputCall.layer.name, inputs, attributes),
      h: rows.out,
      w: cols.out,
      c: cout,
    };
    const result = this.activation(`${layer.name}_act`, conv, activation);
    if (outputCall !== call) {
      this.values.set(key(outputCall.layer.name, outputCall.index, 0), result);
    }
    return result;
  }

  /** A BatchNormalization that could not be folded (e.g. after a Dense or an Add) stays an ONNX op. */
  private batchNorm(layer: KerasLayer, x: Value): Value {
    const { channels, epsilon, gamma, beta, mean, variance } = this.batchNormWeights(layer, x);
    const inputs = [
      this.plain(x),
      this.g.floatTensor(`${layer.name}_gamma`, [channels], gamma),
      this.g.floatTensor(`${layer.name}_beta`, [channels], beta),
      this.g.floatTensor(`${layer.name}_mean`, [channels], mean),
      this.g.floatTensor(`${layer.name}_var`, [channels], variance),
    ];
    return renamed(x, this.g.op('BatchNormalization', layer.name, inputs, { epsilon: attr.float(epsilon) }));
  }

  private relu(layer: KerasLayer, x: Value): Value {
    const cfg = layer.config;
    const max = cfg.max_value ?? null;
    const slope = Number(cfg.negative_slope ?? 0);
    const threshold = Number(cfg.threshold ?? 0);
    if (threshold !== 0) {
      throw new Error(`${layer.name}: ReLU threshold is not supported`);
    }
    const input = this.plain(x);
    let name: string;
    if (slope !== 0) {
      if (max !== null) {
        throw new Error(`${layer.name}: ReLU with both negative_slope and max_value is not supported`);
      }
      name = this.g.op('LeakyRelu', layer.name, [input], { alpha: attr.float(slope) });
    } else if (max === null) {
      name = this.g.op('Relu', layer.name, [input]);
    } else {
      const lo = this.g.floatTensor(`${layer.name}_min`, [], [0]);
      const hi = this.g.floatTensor(`${layer.name}_max`, [], [Number(max)]);
      name = this.g.op('Clip', layer.name, [input, lo, hi]);
    }
    return renamed(x, name);
  }

  private activation(base: string, x: Value, activation: string): Value {
    if (activation === 'linear') {
      return x;
    }
    const input = this.plain(x);
    let name: string;
    switch (activation) {
      case 'relu':
        name = this.g.op('Relu', base, [input]);
        break;
      case 'relu6':
        name = this.g.op('Clip', base, [
          input,
          this.g.floatTensor(`${base}_min`, [], [0]),
          this.g.floatTensor(`${base}_max`, [], [6]),
        ]);
        break;
      case 'sigmoid':
        name = this.g.op('Sigmoid', base, [input]);
        break;
      case 'tanh':
        name = this.g.op('Tanh', base, [input]);
        break;
      case 'softmax':
        // Keras normalises over the last (channel) axis, which is axis 1 in NCHW.
        name = this.g.op('Softmax', base, [input], { axis: attr.int(x.kind === 'spatial' ? 1 : -1) });
        break;
      default:
        throw new Error(`${base}: activation ${activation} is not supported`);
    }
    return renamed(x, name);
  }

  private add(layer: KerasLayer, inputs: Value[]): Value {
    if (inputs.length < 2) {
      throw new Error(`${layer.name}: Add needs at least two inputs`);
    }
    const [first] = inputs;
    const same = (v: Value) =>
      v.kind === first.kind &&
      (v.kind === 'flat'
        ? v.features === (first as FlatValue).features
        : v.h === (first as SpatialValue).h &&
          v.w === (first as SpatialValue).w &&
          v.c === (first as SpatialValue).c);
    if (!inputs.every(same)) {
      throw new Error(`${layer.name}: Add inputs differ in shape`);
    }
    let name = this.plain(first);
    for (let i = 1; i < inputs.length; i++) {
      name = this.g.op('Add', layer.name, [name, this.plain(inputs[i])]);
    }
    return renamed(first, name);
  }

  private pool(layer: KerasLayer, x: SpatialValue): SpatialValue {
    const cfg = layer.config;
    const [kh, kw] = pair(cfg.pool_size ?? 2, `${layer.name}.pool_size`);
    const [sh, sw] = pair(cfg.strides ?? [kh, kw], `${layer.name}.strides`);
    const padding = text(cfg.padding, 'valid', `${layer.name}.padding`);
    const rows = windowAxis(x.h, kh, sh, 1, padding, layer.name);
    const cols = windowAxis(x.w, kw, sw, 1, padding, layer.name);
    const attributes: Record<string, OnnxAttribute> = {
      kernel_shape: attr.ints([kh, kw]),
      strides: attr.ints([sh, sw]),
      pads: attr.ints([rows.begin, cols.begin, rows.end, cols.end]),
    };
    // TF's `same` average pooling divides by the number of real pixels in the window, like
    // count_include_pad=0.
    const op = layer.class_name === 'AveragePooling2D' ? 'AveragePool' : 'MaxPool';
    const name = this.g.op(op, layer.name, [this.plain(x)], attributes);
    return { kind: 'spatial', name, h: rows.out, w: cols.out, c: x.c };
  }

  private flatten(layer: KerasLayer, x: Value): FlatValue {
    if (x.kind === 'flat') {
      return x;
    }
    // Keras flattens in NHWC order; flattening NCHW directly would scramble the features for the next Dense.
    const nhwc = this.g.op('Transpose', `${layer.name}_nhwc`, [this.plain(x)], {
      perm: attr.ints([0, 2, 3, 1]),
    });
    const name = this.g.op('Flatten', layer.name, [nhwc], { axis: attr.int(1) });
    return { kind: 'flat', name, features: x.h * x.w * x.c };
  }

  private dense(layer: KerasLayer, x: Value): FlatValue {
    if (x.kind !== 'flat') {
      throw new Error(`${layer.name}: Dense on a 4-D input is not supported (add a Flatten)`);
    }
    const cfg = layer.config;
    const units = Number(cfg.units);
    const inputs = [
      x.name,
      this.g.floatTensor(
        `${layer.name}_W`,
        [x.features, units],
        this.weight(layer, 'kernel', [x.features, units]),
      ),
    ];
    if (cfg.use_bias !== false) {
      inputs.push(this.g.floatTensor(`${layer.name}_B`, [units], this.weight(layer, 'bias', [units])));
    }
    const gemm: FlatValue = { kind: 'flat', name: this.g.op('Gemm', layer.name, inputs), features: units };
    return this.activation(
      `${layer.name}_act`,
      gemm,
      text(cfg.activation, 'linear', `${layer.name}.activation`),
    ) as FlatValue;
  }
}

/** Converts a tfjs Keras layers model (topology + weight bytes) to ONNX (opset 13) protobuf bytes. */
export function convertKerasToOnnx(
  json: KerasModelJson,
  weightData: Uint8Array,
  options: KerasToOnnxOptions = {},
): Uint8Array {
  const resolved = {
    inputName: options.inputName ?? 'input',
    outputName: options.outputName ?? 'probabilities',
    inputType: options.inputType ?? 'float32',
    inputDivisor: options.inputDivisor ?? 255,
  };
  const weights = decodeKerasWeights(json.weightsManifest, weightData);
  const { builder, inputShape, outputShape } = new KerasToOnnxConverter(json, weights, resolved).convert();
  const inputType = resolved.inputType === 'uint8' ? OnnxDataType.Uint8 : OnnxDataType.Float;
  return encodeOnnxModel({
    irVersion: 7,
    opsetVersion: 13,
    producerName: 'fixitfy-upload keras-to-onnx',
    producerVersion: CONVERTER_VERSION,
    docString: options.docString,
    metadata: options.metadata,
    graph: {
      name: json.modelTopology.model_config.class_name === 'Sequential' ? 'sequential' : 'model',
      nodes: builder.nodes,
      initializers: builder.initializers,
      inputs: [{ name: resolved.inputName, dataType: inputType, shape: ['N', ...inputShape] }],
      outputs: [{ name: resolved.outputName, dataType: OnnxDataType.Float, shape: ['N', ...outputShape] }],
    },
  });
}
