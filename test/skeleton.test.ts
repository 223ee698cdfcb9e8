import t from 'tap';
import type { BinaryMask } from '../ts/image.js';
import { createRandom } from '../ts/util/random.js';
import { zhangSuenSkeleton } from '../ts/vision/skeleton.js';
import { randomMask, runReference } from './reference/runReference.js';

/** Thick random-walk strokes, the shapes skeletons are taken of in crack metrics. */
function strokeMask(width: number, height: number, seed: number): BinaryMask {
  const rng = createRandom(seed);
  const data = new Uint8Array(width * height);
  for (let s = 0; s < 3; s++) {
    let x = rng.uniform(0, width);
    let y = rng.uniform(0, height);
    let angle = rng.uniform(0, 2 * Math.PI);
    const radius = rng.uniform(0.5, 5);
    for (let step = 0; step < 80; step++) {
      angle += rng.normal() * 0.3;
      x += Math.cos(angle) * 2;
      y += Math.sin(angle) * 2;
      for (let yy = Math.floor(y - radius); yy <= y + radius; yy++) {
        for (let xx = Math.floor(x - radius); xx <= x + radius; xx++) {
          if (xx < 0 || yy < 0 || xx >= width || yy >= height) continue;
          if ((xx - x) ** 2 + (yy - y) ** 2 <= radius * radius) data[yy * width + xx] = 1;
        }
      }
    }
  }
  return { width, height, data };
}

/**
 * Solid blobs (an ellipse and a rectangle, clipped by the image's edges), the shapes a model with
 * random weights predicts: many layers peeled off before the skeleton remains.
 */
function blobMask(width: number, height: number, seed: number): BinaryMask {
  const rng = createRandom(seed);
  const data = new Uint8Array(width * height);
  const [cx, cy] = [rng.uniform(0, width), rng.uniform(0, height)];
  const [rx, ry] = [rng.uniform(8, width / 2), rng.uniform(8, height / 2)];
  const [x0, y0] = [Math.floor(rng.uniform(-10, width)), Math.floor(rng.uniform(-10, height))];
  const [x1, y1] = [x0 + Math.floor(rng.uniform(5, 40)), y0 + Math.floor(rng.uniform(5, 40))];
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const inEllipse = ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1;
      const inRectangle = x >= x0 && x < x1 && y >= y0 && y < y1;
      if (inEllipse || inRectangle) data[y * width + x] = 1;
    }
  }
  return { width, height, data };
}

// The first sub-iteration peels south-east first, so the line ends one row up on the right.
t.test('a 3-pixel-thick bar thins to a one-pixel line', async (t) => {
  const width = 9;
  const data = new Uint8Array(5 * width);
  data.fill(1, 1 * width + 1, 1 * width + 8);
  data.fill(1, 2 * width + 1, 2 * width + 8);
  data.fill(1, 3 * width + 1, 3 * width + 8);
  const skeleton = zhangSuenSkeleton({ width, height: 5, data });
  const rows = [];
  for (let y = 0; y < 5; y++)
    rows.push([...skeleton.data.subarray(y * width, (y + 1) * width)].join(''));
  t.same(rows, ['000000000', '000000100', '011111000', '000000000', '000000000']);
});

t.test('empty stays empty; a one-pixel line is its own skeleton', async (t) => {
  t.same(
    [...zhangSuenSkeleton({ width: 3, height: 2, data: new Uint8Array(6) }).data],
    [0, 0, 0, 0, 0, 0],
  );
  const line = { width: 6, height: 1, data: Uint8Array.of(0, 1, 1, 1, 1, 0) };
  t.same([...zhangSuenSkeleton(line).data], [0, 1, 1, 1, 1, 0]);
});

t.test('equals skimage.morphology.skeletonize on generated masks', async (t) => {
  const rng = createRandom(3);
  const masks: BinaryMask[] = [];
  for (let k = 0; k < 25; k++) masks.push(strokeMask(96, 72, 10 + k));
  for (let k = 0; k < 10; k++) masks.push(randomMask(40 + k, 30, rng.uniform(0.3, 0.8), rng.next));
  for (let k = 0; k < 10; k++) masks.push(blobMask(120, 90, 100 + k));
  // All foreground, as random weights often predict: every layer peels off an image edge.
  masks.push({ width: 97, height: 64, data: new Uint8Array(97 * 64).fill(1) });
  const reference = await runReference<string[]>('skimage_skeleton.py', masks);
  masks.forEach((mask, m) => {
    const expected = Buffer.from(reference[m]!, 'base64');
    const ours = zhangSuenSkeleton(mask).data;
    let differing = 0;
    for (let i = 0; i < ours.length; i++) if (ours[i] !== expected[i]) differing++;
    t.equal(differing, 0, `mask ${m}: pixels differing from skimage`);
  });
  // Foreground is any non-zero value: a 0/255 mask thins as its 0/1 form.
  const wide = { ...masks[0]!, data: masks[0]!.data.map((v) => v * 255) };
  t.same(zhangSuenSkeleton(wide).data, zhangSuenSkeleton(masks[0]!).data, '0/255 as 0/1');
});
