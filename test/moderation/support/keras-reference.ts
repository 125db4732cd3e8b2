/** A plain, slow, double-precision Keras (channels_last) reference for the converter tests. */
export interface Nhwc {
  h: number;
  w: number;
  c: number;
  data: Float64Array;
}

export const at = (x: Nhwc, y: number, xx: number, c: number): number => x.data[(y * x.w + xx) * x.c + c];

export function nhwc(h: number, w: number, c: number, data?: ArrayLike<number>): Nhwc {
  return { h, w, c, data: data ? Float64Array.from(data) : new Float64Array(h * w * c) };
}

/** TF's rule: `same` gives ceil(in / stride) outputs and puts the odd padding pixel after the input. */
function axis(size: number, k: number, stride: number, dilation: number, padding: 'same' | 'valid') {
  const eff = (k - 1) * dilation + 1;
  if (padding === 'valid') {
    return { out: Math.floor((size - eff) / stride) + 1, before: 0 };
  }
  const out = Math.ceil(size / stride);
  const total = Math.max(0, (out - 1) * stride + eff - size);
  return { out, before: Math.floor(total / 2) };
}

export interface ConvSpec {
  kernel: ArrayLike<number>;
  kh: number;
  kw: number;
  stride?: number;
  dilation?: number;
  padding: 'same' | 'valid';
  bias?: ArrayLike<number>;
}

/** Conv2D with kernel [kh,kw,in,out]. */
export function conv2d(x: Nhwc, spec: ConvSpec & { filters: number }): Nhwc {
  const { kh, kw, kernel, filters } = spec;
  const s = spec.stride ?? 1;
  const d = spec.dilation ?? 1;
  const rows = axis(x.h, kh, s, d, spec.padding);
  const cols = axis(x.w, kw, s, d, spec.padding);
  const out = nhwc(rows.out, cols.out, filters);
  for (let oy = 0; oy < rows.out; oy++) {
    for (let ox = 0; ox < cols.out; ox++) {
      for (let o = 0; o < filters; o++) {
        let sum = spec.bias ? spec.bias[o] : 0;
        for (let ky = 0; ky < kh; ky++) {
          for (let kx = 0; kx < kw; kx++) {
            const iy = oy * s + ky * d - rows.before;
            const ix = ox * s + kx * d - cols.before;
            if (iy < 0 || ix < 0 || iy >= x.h || ix >= x.w) {
              continue;
            }
            for (let i = 0; i < x.c; i++) {
              sum += at(x, iy, ix, i) * kernel[((ky * kw + kx) * x.c + i) * filters + o];
            }
          }
        }
        out.data[(oy * out.w + ox) * filters + o] = sum;
      }
    }
  }
  return out;
}

/** DepthwiseConv2D with kernel [kh,kw,in,mult]; output channel i·mult + m. */
export function depthwise(x: Nhwc, spec: ConvSpec & { multiplier: number }): Nhwc {
  const { kh, kw, kernel, multiplier } = spec;
  const s = spec.stride ?? 1;
  const rows = axis(x.h, kh, s, 1, spec.padding);
  const cols = axis(x.w, kw, s, 1, spec.padding);
  const cout = x.c * multiplier;
  const out = nhwc(rows.out, cols.out, cout);
  for (let oy = 0; oy < rows.out; oy++) {
    for (let ox = 0; ox < cols.out; ox++) {
      for (let i = 0; i < x.c; i++) {
        for (let m = 0; m < multiplier; m++) {
          const o = i * multiplier + m;
          let sum = spec.bias ? spec.bias[o] : 0;
          for (let ky = 0; ky < kh; ky++) {
            for (let kx = 0; kx < kw; kx++) {
              const iy = oy * s + ky - rows.before;
              const ix = ox * s + kx - cols.before;
              if (iy >= 0 && ix >= 0 && iy < x.h && ix < x.w) {
                sum += at(x, iy, ix, i) * kernel[((ky * kw + kx) * x.c + i) * multiplier + m];
              }
            }
          }
          out.data[(oy * out.w + ox) * cout + o] = sum;
        }
      }
    }
  }
  return out;
}

export function zeroPad(x: Nhwc, top: number, bottom: number, left: number, right: number): Nhwc {
  const out = nhwc(x.h + top + bottom, x.w + left + right, x.c);
  for (let y = 0; y < x.h; y++) {
    for (let xx = 0; xx < x.w; xx++) {
      for (let c = 0; c < x.c; c++) {
        out.data[((y + top) * out.w + xx + left) * x.c + c] = at(x, y, xx, c);
      }
    }
  }
  return out;
}

export interface BatchNormSpec {
  gamma: ArrayLike<number>;
  beta: ArrayLike<number>;
  mean: ArrayLike<number>;
  variance: ArrayLike<number>;
  epsilon: number;
}

export function batchNorm<T extends Nhwc>(x: T, bn: BatchNormSpec): T {
  const data = x.data.map((v, i) => {
    const c = i % x.c;
    return ((v - bn.mean[c]) / Math.sqrt(bn.variance[c] + bn.epsilon)) * bn.gamma[c] + bn.beta[c];
  });
  return { ...x, data };
}

export const map = <T extends Nhwc>(x: T, f: (v: number) => number): T => ({ ...x, data: x.data.map(f) });
export const relu6 = (v: number): number => Math.min(6, Math.max(0, v));
export const add = (a: Nhwc, b: Nhwc): Nhwc => ({ ...a, data: a.data.map((v, i) => v + b.data[i]) });

/** Average pooling; `same` divides by the real pixels in the window (TF). */
export function avgPool(x: Nhwc, k: number, stride: number, padding: 'same' | 'valid'): Nhwc {
  const rows = axis(x.h, k, stride, 1, padding);
  const cols = axis(x.w, k, stride, 1, padding);
  const out = nhwc(rows.out, cols.out, x.c);
  for (let oy = 0; oy < rows.out; oy++) {
    for (let ox = 0; ox < cols.out; ox++) {
      for (let c = 0; c < x.c; c++) {
        let sum = 0;
        let n = 0;
        for (let ky = 0; ky < k; ky++) {
          for (let kx = 0; kx < k; kx++) {
            const iy = oy * stride + ky - rows.before;
            const ix = ox * stride + kx - cols.before;
            if (iy >= 0 && ix >= 0 && iy < x.h && ix < x.w) {
              sum += at(x, iy, ix, c);
              n++;
            }
          }
        }
        out.data[(oy * out.w + ox) * x.c + c] = sum / n;
      }
    }
  }
  return out;
}

/** Dense on a flat vector with kernel [in,out]. */
export function dense(
  x: ArrayLike<number>,
  kernel: ArrayLike<number>,
  bias: ArrayLike<number>,
  units: number,
): number[] {
  const out: number[] = [];
  for (let o = 0; o < units; o++) {
    let sum = bias[o];
    for (let i = 0; i < x.length; i++) {
      sum += x[i] * kernel[i * units + o];
    }
    out.push(sum);
  }
  return out;
}

export function softmax(x: readonly number[]): number[] {
  const max = Math.max(...x);
  const e = x.map((v) => Math.exp(v - max));
  const sum = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / sum);
}
