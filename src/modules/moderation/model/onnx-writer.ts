/**
 * A minimal ONNX (protobuf) encoder: just the messages a feed-forward graph needs. Field numbers follow
 * onnx.proto (proto2); repeated scalars that onnx.proto does not mark `packed` are written unpacked, as
 * protoc would.
 */

export enum OnnxDataType {
  Float = 1,
  Uint8 = 2,
  Int64 = 7,
}

export type OnnxAttribute =
  | { type: 'float'; value: number }
  | { type: 'int'; value: number }
  | { type: 'string'; value: string }
  | { type: 'floats'; value: readonly number[] }
  | { type: 'ints'; value: readonly number[] };

export const attr = {
  float: (value: number): OnnxAttribute => ({ type: 'float', value }),
  int: (value: number): OnnxAttribute => ({ type: 'int', value }),
  string: (value: string): OnnxAttribute => ({ type: 'string', value }),
  floats: (value: readonly number[]): OnnxAttribute => ({ type: 'floats', value }),
  ints: (value: readonly number[]): OnnxAttribute => ({ type: 'ints', value }),
};

export interface OnnxNode {
  opType: string;
  name: string;
  inputs: readonly string[];
  outputs: readonly string[];
  attributes?: Readonly<Record<string, OnnxAttribute>>;
}

export interface OnnxInitializer {
  name: string;
  dataType: OnnxDataType;
  dims: readonly number[];
  data: Float32Array | Uint8Array | BigInt64Array;
}

/** A graph input or output; a string dim is symbolic (e.g. the batch size). */
export interface OnnxValueInfo {
  name: string;
  dataType: OnnxDataType;
  shape: readonly (number | string)[];
}

export interface OnnxGraph {
  name: string;
  nodes: readonly OnnxNode[];
  initializers: readonly OnnxInitializer[];
  inputs: readonly OnnxValueInfo[];
  outputs: readonly OnnxValueInfo[];
}

export interface OnnxModel {
  irVersion: number;
  opsetVersion: number;
  producerName: string;
  producerVersion: string;
  docString?: string;
  graph: OnnxGraph;
  metadata?: Readonly<Record<string, string>>;
}

const WIRE_VARINT = 0;
const WIRE_FIXED32 = 5;
const WIRE_BYTES = 2;

const ATTRIBUTE_TYPE = { float: 1, int: 2, string: 3, floats: 6, ints: 7 } as const;

class ProtoWriter {
  private readonly chunks: Uint8Array[] = [];
  private pending: number[] = [];

  varint(value: number | bigint): this {
    // int64 fields: negatives are ten-byte two's complement varints.
    let v = BigInt.asUintN(64, BigInt(value));
    while (v >= 0x80n) {
      this.pending.push(Number(v & 0x7fn) | 0x80);
      v >>= 7n;
    }
    this.pending.push(Number(v));
    return this;
  }

  private tag(field: number, wire: number): this {
    return this.varint((field << 3) | wire);
  }

  int(field: number, value: number | bigint): this {
    return this.tag(field, WIRE_VARINT).varint(value);
  }

  float(field: number, value: number): this {
    const bytes = new Uint8Array(4);
    new DataView(bytes.buffer).setFloat32(0, value, true);
    this.tag(field, WIRE_FIXED32);
    this.pending.push(...bytes);
    return this;
  }

  bytes(field: number, value: Uint8Array): this {
    this.tag(field, WIRE_BYTES).varint(value.length);
    this.flush();
    this.chunks.push(value);
    return this;
  }

  string(field: number, value: string): this {
    return this.bytes(field, Buffer.from(value, 'utf8'));
  }

  message(field: number, build: (w: ProtoWriter) => void): this {
    const inner = new ProtoWriter();
    build(inner);
    return this.bytes(field, inner.finish());
  }

  private flush(): void {
    if (this.pending.length > 0) {
      this.chunks.push(Uint8Array.from(this.pending));
      this.pending = [];
    }
  }

  finish(): Uint8Array {
    this.flush();
    return Buffer.concat(this.chunks);
  }
}

function littleEndianBytes(data: OnnxInitializer['data']): Uint8Array {
  const out = new Uint8Array(data.byteLength);
  const view = new DataView(out.buffer);
  if (data instanceof Float32Array) {
    data.forEach((v, i) => view.setFloat32(i * 4, v, true));
  } else if (data instanceof BigInt64Array) {
    data.forEach((v, i) => view.setBigInt64(i * 8, v, true));
  } else {
    out.set(data);
  }
  return out;
}

function writeTensor(w: ProtoWriter, t: OnnxInitializer): void {
  for (const d of t.dims) {
    w.int(1, d);
  }
  w.int(2, t.dataType);
  w.string(8, t.name);
  w.bytes(9, littleEndianBytes(t.data));
}

function writeAttribute(w: ProtoWriter, name: string, a: OnnxAttribute): void {
  w.string(1, name);
  switch (a.type) {
    case 'float':
      w.float(2, a.value);
      break;
    case 'int':
      w.int(3, a.value);
      break;
    case 'string':
      w.string(4, a.value);
      break;
    case 'floats':
      a.value.forEach((v) => w.float(7, v));
      break;
    case 'ints':
      a.value.forEach((v) => w.int(8, v));
      break;
  }
  w.int(20, ATTRIBUTE_TYPE[a.type]);
}

function writeNode(w: ProtoWriter, n: OnnxNode): void {
  n.inputs.forEach((i) => w.string(1, i));
  n.outputs.forEach((o) => w.string(2, o));
  w.string(3, n.name);
  w.string(4, n.opType);
  for (const [name, a] of Object.entries(n.attributes ?? {})) {
    w.message(5, (aw) => writeAttribute(aw, name, a));
  }
}

function writeValueInfo(w: ProtoWriter, v: OnnxValueInfo): void {
  w.string(1, v.name);
  w.message(2, (type) =>
    type.message(1, (tensor) => {
      tensor.int(1, v.dataType);
      tensor.message(2, (shape) => {
        for (const d of v.shape) {
          shape.message(1, (dim) => (typeof d === 'number' ? dim.int(1, d) : dim.string(2, d)));
        }
      });
    }),
  );
}

function writeGraph(w: ProtoWriter, g: OnnxGraph): void {
  g.nodes.forEach((n) => w.message(1, (nw) => writeNode(nw, n)));
  w.string(2, g.name);
  g.initializers.forEach((t) => w.message(5, (tw) => writeTensor(tw, t)));
  g.inputs.forEach((v) => w.message(11, (vw) => writeValueInfo(vw, v)));
  g.outputs.forEach((v) => w.message(12, (vw) => writeValueInfo(vw, v)));
}

/** Serialises a model to ONNX protobuf bytes; the same model always gives the same bytes. */
export function encodeOnnxModel(model: OnnxModel): Uint8Array {
  const w = new ProtoWriter();
  w.int(1, model.irVersion);
  w.string(2, model.producerName);
  w.string(3, model.producerVersion);
  if (model.docString) {
    w.string(6, model.docString);
  }
  w.message(7, (gw) => writeGraph(gw, model.graph));
  w.message(8, (ow) => ow.string(1, '').int(2, model.opsetVersion));
  for (const [key, value] of Object.entries(model.metadata ?? {})) {
    w.message(14, (mw) => mw.string(1, key).string(2, value));
  }
  return w.finish();
}

/** Collects nodes and initializers with unique names; used by the converter and the test models. */
export class OnnxGraphBuilder {
  readonly nodes: OnnxNode[] = [];
  readonly initializers: OnnxInitializer[] = [];
  private readonly names = new Set<string>();

  /** Returns a name not used yet, derived from `base`. */
  unique(base: string): string {
    let name = base;
    for (let i = 1; this.names.has(name); i++) {
      name = `${base}_${i}`;
    }
    this.names.add(name);
    return name;
  }

  floatTensor(base: string, dims: readonly number[], data: Float32Array | readonly number[]): string {
    return this.initializer(base, OnnxDataType.Float, dims, Float32Array.from(data));
  }

  int64Tensor(base: string, dims: readonly number[], data: readonly number[]): string {
    return this.initializer(base, OnnxDataType.Int64, dims, BigInt64Array.from(data.map((v) => BigInt(v))));
  }

  private initializer(
    base: string,
    dataType: OnnxDataType,
    dims: readonly number[],
    data: OnnxInitializer['data'],
  ) {
    const expected = dims.reduce((a, b) => a * b, 1);
    if (data.length !== expected) {
      throw new Error(`Initializer ${base}: ${data.length} values for shape [${dims.join(',')}]`);
    }
    const name = this.unique(base);
    this.initializers.push({ name, dataType, dims, data });
    return name;
  }

  /** Adds a single-output node and returns its output name. */
  op(
    opType: string,
    base: string,
    inputs: readonly string[],
    attributes?: Record<string, OnnxAttribute>,
  ): string {
    const name = this.unique(base);
    this.nodes.push({ opType, name, inputs, outputs: [name], attributes });
    return name;
  }
}
