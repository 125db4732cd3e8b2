import { loopTurnsDuring } from '../../../test/setup/event-loop';
import { pickFrames, type RawImage } from '../media/decode';
import {
  frameToModelInputs,
  MODEL_INPUT_VALUES,
  modelInputSlots,
  resizeToModelInput,
  writeModelInputsAsync,
} from './image-preprocess';

function raw(
  width: number,
  height: number,
  channels: number,
  pixel: (x: number, y: number) => number[],
): RawImage {
  const data = new Uint8Array(width * height * channels);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      data.set(pixel(x, y), (y * width + x) * channels);
    }
  }
  return { data, width, height, channels };
}

const px = (out: ArrayLike<number>, x: number, y: number, size = 224) =>
  [0, 1, 2].map((c) => out[(y * size + x) * 3 + c]);

/** Float32 keeps ~7 significant digits: 0…255 values agree to ~1e-5. */
const expectPixel = (actual: number[], expected: number[]) =>
  actual.forEach((v, c) => expect(v).toBeCloseTo(expected[c], 4));

describe('image preprocessing', () => {
  describe(pickFrames.name, () => {
    it('should take the only frame of a still image', () => {
      expect(pickFrames(1, 3)).toEqual([0]);
    });

    it('should take first, middle and last frames', () => {
      expect(pickFrames(10, 3)).toEqual([0, 5, 9]);
      expect(pickFrames(3, 3)).toEqual([0, 1, 2]);
    });

    it('should take every frame of a short animation', () => {
      expect(pickFrames(2, 3)).toEqual([0, 1]);
    });

    it('should take only the first frame when configured for one', () => {
      expect(pickFrames(50, 1)).toEqual([0]);
    });
  });

  describe(resizeToModelInput.name, () => {
    it('should copy a 224×224 RGB image unchanged', () => {
      const image = raw(224, 224, 3, (x, y) => [x, y, (x * y) % 256]);
      const out = new Float32Array(MODEL_INPUT_VALUES);
      resizeToModelInput(image, 255, out);
      expect(out.every((v, i) => v === image.data[i])).toBe(true);
    });

    it('should align corners: output corners are the source corners', () => {
      const image = raw(37, 19, 3, (x, y) => [x * 6, y * 13, 200]);
      const out = new Float32Array(MODEL_INPUT_VALUES);
      resizeToModelInput(image, 255, out);
      expectPixel(px(out, 0, 0), [0, 0, 200]);
      expectPixel(px(out, 223, 0), [216, 0, 200]);
      expectPixel(px(out, 0, 223), [0, 234, 200]);
      expectPixel(px(out, 223, 223), [216, 234, 200]);
    });

    it('should interpolate linearly between the two source columns of a 2-pixel image', () => {
      const image = raw(2, 1, 3, (x) => (x === 0 ? [0, 0, 0] : [223, 223, 223]));
      const out = new Float32Array(MODEL_INPUT_VALUES);
      resizeToModelInput(image, 0, out);
      expectPixel(px(out, 100, 50), [100, 100, 100]);
    });

    it('should keep fractional values (the model gets the resize unrounded, as nsfwjs feeds it)', () => {
      const image = raw(2, 1, 3, (x) => (x === 0 ? [0, 10, 255] : [1, 20, 0]));
      const out = new Float32Array(MODEL_INPUT_VALUES);
      resizeToModelInput(image, 0, out);
      // Column 1 of 223 intervals: 1/223 of the way from the left pixel to the right one.
      expectPixel(px(out, 1, 0), [1 / 223, 10 + 10 / 223, 255 - 255 / 223]);
      expect(px(out, 1, 0)[0]).toBeGreaterThan(0);
    });

    it('should composite transparent pixels over the given background', () => {
      const image = raw(4, 4, 4, () => [255, 0, 0, 0]);
      const white = new Float32Array(MODEL_INPUT_VALUES);
      const black = new Float32Array(MODEL_INPUT_VALUES);
      resizeToModelInput(image, 255, white);
      resizeToModelInput(image, 0, black);
      expectPixel(px(white, 10, 10), [255, 255, 255]);
      expectPixel(px(black, 10, 10), [0, 0, 0]);
    });

    it('should blend half-transparent pixels with the background', () => {
      const image = raw(2, 2, 4, () => [200, 100, 0, 51]);
      const out = new Float32Array(MODEL_INPUT_VALUES);
      resizeToModelInput(image, 255, out);
      expectPixel(px(out, 5, 5), [244, 224, 204]);
    });

    it('should expand grey (with or without alpha) to RGB', () => {
      const out = new Float32Array(MODEL_INPUT_VALUES);
      resizeToModelInput(
        raw(3, 3, 1, () => [77]),
        255,
        out,
      );
      expectPixel(px(out, 100, 100), [77, 77, 77]);
      resizeToModelInput(
        raw(3, 3, 2, () => [0, 0]),
        255,
        out,
      );
      expectPixel(px(out, 100, 100), [255, 255, 255]);
    });
  });

  describe(frameToModelInputs.name, () => {
    it('should make one input for an opaque image', () => {
      expect(frameToModelInputs(raw(8, 8, 3, () => [1, 2, 3]))).toHaveLength(1);
    });

    it('should make one input when the alpha channel is fully opaque', () => {
      expect(frameToModelInputs(raw(8, 8, 4, () => [1, 2, 3, 255]))).toHaveLength(1);
    });

    it('should make a white and a black variant when transparency shows', () => {
      const inputs = frameToModelInputs(raw(8, 8, 4, (x) => [1, 2, 3, x < 4 ? 255 : 0]));
      expect(inputs).toHaveLength(2);
      expect(inputs.every((input) => input instanceof Float32Array)).toBe(true);
      expectPixel(px(inputs[0], 223, 0), [255, 255, 255]);
      expectPixel(px(inputs[1], 223, 0), [0, 0, 0]);
    });

    it('should equal compositing every pixel over each background first and resizing that (one resize serves both)', () => {
      // Irregular alpha and colour, a size whose taps fall between pixels in both directions.
      const frame = raw(37, 23, 4, (x, y) => [
        (x * 7) % 256,
        (y * 11) % 256,
        (x * y) % 256,
        (x * 29 + y * 13) % 256,
      ]);
      const inputs = frameToModelInputs(frame);
      expect(inputs).toHaveLength(2);
      for (const [i, background] of [255, 0].entries()) {
        // The reference: a plain RGB image of the frame over the background, then the same align-corners resize.
        const flat = new Float64Array(37 * 23 * 3);
        for (let p = 0; p < 37 * 23; p++) {
          const a = frame.data[p * 4 + 3] / 255;
          for (let c = 0; c < 3; c++) {
            flat[p * 3 + c] = frame.data[p * 4 + c] * a + background * (1 - a);
          }
        }
        let worst = 0;
        for (let r = 0; r < 224; r++) {
          const fy = (r * 22) / 223;
          const [y0, y1, dy] = [Math.floor(fy), Math.ceil(fy), fy - Math.floor(fy)];
          for (let col = 0; col < 224; col++) {
            const fx = (col * 36) / 223;
            const [x0, x1, dx] = [Math.floor(fx), Math.ceil(fx), fx - Math.floor(fx)];
            for (let c = 0; c < 3; c++) {
              const at = (x: number, y: number) => flat[(y * 37 + x) * 3 + c];
              const upper = at(x0, y0) + (at(x1, y0) - at(x0, y0)) * dx;
              const lower = at(x0, y1) + (at(x1, y1) - at(x0, y1)) * dx;
              const expected = upper + (lower - upper) * dy;
              worst = Math.max(worst, Math.abs(inputs[i][(r * 224 + col) * 3 + c] - expected));
            }
          }
        }
        // float32 rounding of values up to 255: at most half an ulp (~7.6e-6).
        expect(worst).toBeLessThan(1e-5);
      }
    });
  });

  describe(writeModelInputsAsync.name, () => {
    const big = (): RawImage => {
      // 2100×2000 RGBA (4.2 MP, over the size that yields), with transparency that shows.
      const [w, h] = [2100, 2000];
      const data = new Uint8Array(w * h * 4);
      for (let i = 0; i < w * h; i++) {
        data[i * 4] = i % 251;
        data[i * 4 + 1] = (i >> 3) % 256;
        data[i * 4 + 2] = (i * 7) % 253;
        data[i * 4 + 3] = i % w < 700 ? 0 : 255;
      }
      return { data, width: w, height: h, channels: 4 };
    };
    const bits = (a: Float32Array): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
    /** The frame's inputs written into a batch after `before` inputs already there, and what else the batch holds. */
    const written = async (frame: RawImage, before = 1) => {
      const batch = new Float32Array((before + modelInputSlots(frame)) * MODEL_INPUT_VALUES).fill(-1);
      const count = await writeModelInputsAsync(frame, batch, before * MODEL_INPUT_VALUES);
      const inputs = Array.from({ length: count }, (_, i) =>
        batch.subarray((before + i) * MODEL_INPUT_VALUES, (before + i + 1) * MODEL_INPUT_VALUES),
      );
      return { count, inputs, head: batch.subarray(0, before * MODEL_INPUT_VALUES) };
    };

    it('should write exactly the values of frameToModelInputs at the offset, small frames and large', async () => {
      for (const frame of [raw(37, 23, 3, (x, y) => [x * 5, y * 9, (x + y) % 256]), big()]) {
        const expected = frameToModelInputs(frame);
        const { count, inputs, head } = await written(frame);
        expect(count).toBe(expected.length);
        inputs.forEach((input, i) => expect(bits(input).equals(bits(expected[i]))).toBe(true));
        // What was before the offset is untouched.
        expect(head.every((v) => v === -1)).toBe(true);
      }
      expect((await written(big())).count).toBe(2);
    });

    it('should write one input for a frame with alpha whose transparency does not show', async () => {
      const frame = raw(8, 8, 4, () => [1, 2, 3, 255]);
      expect(modelInputSlots(frame)).toBe(2);
      const { count, inputs } = await written(frame, 0);
      expect(count).toBe(1);
      expectPixel(px(inputs[0], 100, 100), [1, 2, 3]);
    });

    it('should let the event loop turn while it resizes a large frame', async () => {
      const frame = big();
      const turns = await loopTurnsDuring(() => written(frame));
      // 224 rows, 28 a turn: 7 turns of the loop in between.
      expect(turns).toBeGreaterThanOrEqual(7);
    });
  });
});
