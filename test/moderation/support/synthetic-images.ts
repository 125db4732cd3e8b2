/** Deterministic RGB test images (uint8, interleaved, i = (y·w + x)·3), as described in the model notes. */
export interface RgbImage {
  name: string;
  width: number;
  height: number;
  data: Uint8Array;
}

function image(
  name: string,
  width: number,
  height: number,
  pixel: (x: number, y: number) => number[],
): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      data.set(pixel(x, y), (y * width + x) * 3);
    }
  }
  return { name, width, height, data };
}

/** The LCG of the notes: s = s·1664525 + 1013904223 (mod 2³²); each value is s >>> 24. */
export function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s >>> 24;
  };
}

export function gradient(w = 224, h = 224): RgbImage {
  return image('gradient', w, h, (x, y) => [
    Math.round((255 * x) / (w - 1)),
    Math.round((255 * y) / (h - 1)),
    Math.round(255 * (1 - (x + y) / (w + h - 2))),
  ]);
}

export function noise(seed: number, w = 224, h = 224): RgbImage {
  const next = lcg(seed);
  return image(`noise(${seed})`, w, h, () => [next(), next(), next()]);
}

export function skin(w = 224, h = 224): RgbImage {
  return image('skin', w, h, (x, y) => {
    const k = Math.max(0, 1 - Math.hypot(x - w / 2, y - h / 2) / (w / 2));
    return [Math.round(120 + 110 * k), Math.round(80 + 90 * k), Math.round(60 + 70 * k)];
  });
}

export function checkerboard(cell = 16, w = 224, h = 224): RgbImage {
  return image('checkerboard', w, h, (x, y) =>
    (Math.floor(x / cell) + Math.floor(y / cell)) % 2 === 0 ? [240, 235, 225] : [30, 20, 60],
  );
}

export function stripes(w = 224, h = 224): RgbImage {
  const palette = [
    [200, 40, 40],
    [240, 200, 160],
    [40, 90, 200],
    [250, 250, 250],
  ];
  return image('stripes', w, h, (x, y) => palette[Math.floor((x + 2 * y) / 12) % palette.length]);
}

export function blobs(seed: number, w = 224, h = 224): RgbImage {
  const next = lcg(seed);
  const circles = Array.from({ length: 12 }, () => ({
    x: (next() / 255) * w,
    y: (next() / 255) * h,
    r: 10 + (next() / 255) * 50,
    colour: [next(), next(), next()],
  }));
  return image(`blobs(${seed})`, w, h, (x, y) => {
    const hit = circles.filter((c) => Math.hypot(x - c.x, y - c.y) < c.r).pop();
    return hit ? hit.colour : [128, 128, 128];
  });
}

export function solid(rgb: [number, number, number], w = 224, h = 224): RgbImage {
  return image(`solid(${rgb.join(',')})`, w, h, () => rgb);
}

/** A smooth, non-square scene (skin-like ellipse on a gradient) to exercise the resize. */
export function scene(w: number, h: number): RgbImage {
  return image(`scene ${w}x${h}`, w, h, (x, y) => {
    const k = Math.max(0, 1 - Math.hypot((x - w / 2) / (w / 3), (y - h / 2) / (h / 2.5)));
    const bg = [Math.round((60 * x) / w) + 20, Math.round((90 * y) / h) + 40, 110];
    return bg.map((v, c) => Math.round(v * (1 - k) + [225, 170, 140][c] * k));
  });
}
