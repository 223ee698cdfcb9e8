import t from 'tap';
import { cpuMilliseconds } from './helpers/cpu-time.js';
import type { BinaryMask } from '../ts/image.js';
import { createRandom } from '../ts/util/random.js';
import {
  componentsAtLeast,
  connectedComponents,
  DEFAULT_MIN_AREA,
} from '../ts/vision/components.js';
import { randomMask, runReference } from './reference/runReference.js';

function fromRows(rows: string[]): BinaryMask {
  const height = rows.length;
  const width = rows[0]?.length ?? 0;
  const data = Uint8Array.from(rows.join(''), (c) => (c === '#' ? 1 : 0));
  return { width, height, data };
}

/** Random discs, so components of many sizes and shapes touch and merge. */
function discMask(width: number, height: number, count: number, seed: number): BinaryMask {
  const rng = createRandom(seed);
  const data = new Uint8Array(width * height);
  for (let k = 0; k < count; k++) {
    const cx = rng.uniform(0, width);
    const cy = rng.uniform(0, height);
    const r = rng.uniform(0.5, 6);
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++)
        if ((x - cx) ** 2 + (y - cy) ** 2 <= r * r) data[y * width + x] = 1;
    }
  }
  return { width, height, data };
}

t.test('hand-worked: diagonal contact joins, stats are x, y, w, h, area', async (t) => {
  const cc = connectedComponents(
    fromRows([
      '#....##', //
      '.#...#.',
      '..#....',
      '.....##',
      '#....##',
    ]),
  );
  t.same(
    cc.stats.map((s) => [s.label, s.left, s.top, s.width, s.height, s.area]),
    [
      [1, 0, 0, 3, 3, 3],
      [2, 5, 0, 2, 2, 3],
      [3, 5, 3, 2, 2, 4],
      [4, 0, 4, 1, 1, 1],
    ],
  );
  t.equal(cc.labels[2 * 7 + 2], 1);
  t.equal(cc.labels[4 * 7 + 0], 4);
  t.equal(cc.labels[1 * 7 + 0], 0);
});

t.test('a U shape whose arms meet late gets one label', async (t) => {
  const cc = connectedComponents(fromRows(['#.#.#', '#.#.#', '#####']));
  t.equal(cc.stats.length, 1);
  t.same(cc.stats[0], { label: 1, area: 11, left: 0, top: 0, width: 5, height: 3 });
});

t.test('min-area filter keeps components of at least minArea pixels', async (t) => {
  const cc = connectedComponents(fromRows(['##########.#', '............', '#########...']));
  t.equal(DEFAULT_MIN_AREA, 10);
  t.same(
    componentsAtLeast(cc).map((s) => s.area),
    [10],
  );
  t.same(
    componentsAtLeast(cc, 1).map((s) => s.area),
    [10, 1, 9],
  );
});

t.test(
  'equals cv2.connectedComponentsWithStats(connectivity=8) up to label permutation',
  async (t) => {
    const rng = createRandom(7);
    const masks: BinaryMask[] = [
      { width: 5, height: 4, data: new Uint8Array(20) },
      { width: 5, height: 4, data: new Uint8Array(20).fill(1) },
      randomMask(1, 37, 0.5, rng.next),
      randomMask(41, 1, 0.5, rng.next),
    ];
    for (let k = 0; k < 40; k++) {
      const width = 1 + rng.int(90);
      const height = 1 + rng.int(70);
      masks.push(randomMask(width, height, rng.uniform(0.05, 0.7), rng.next));
    }
    for (let k = 0; k < 20; k++) masks.push(discMask(120, 80, 5 + rng.int(60), 100 + k));

    const reference = await runReference<Array<{ labels: string; stats: number[][] }>>(
      'opencv_components.py',
      masks,
    );
    masks.forEach((mask, m) => {
      const ours = connectedComponents(mask);
      const ref = reference[m]!;
      const refLabels = new Int32Array(Uint8Array.from(Buffer.from(ref.labels, 'base64')).buffer);
      t.equal(ours.stats.length, ref.stats.length, `mask ${m}: component count`);
      // A bijection between our labels and OpenCV's, consistent on every pixel.
      const toRef = new Map<number, number>();
      const fromRef = new Map<number, number>();
      let consistent = true;
      for (let i = 0; i < refLabels.length; i++) {
        const a = ours.labels[i]!;
        const b = refLabels[i]!;
        if ((a === 0) !== (b === 0)) consistent = false;
        if (a === 0) continue;
        if ((toRef.get(a) ?? b) !== b || (fromRef.get(b) ?? a) !== a) consistent = false;
        toRef.set(a, b);
        fromRef.set(b, a);
      }
      t.ok(consistent, `mask ${m}: labels equal up to permutation`);
      const mapped = ours.stats.map((s) => {
        const row = ref.stats[toRef.get(s.label)! - 1]!;
        return [s.left, s.top, s.width, s.height, s.area, ...row];
      });
      t.ok(
        mapped.every(([a, b, c, d, e, ...r]) => [a, b, c, d, e].every((v, j) => v === r[j])),
        `mask ${m}: stats equal`,
      );
    });
  },
);

t.test('linear time: a 2000x2000 random mask labels quickly', async (t) => {
  const rng = createRandom(1);
  const mask = randomMask(2000, 2000, 0.45, rng.next);
  let components = 0;
  const ms = cpuMilliseconds(() => void (components = connectedComponents(mask).stats.length));
  t.ok(components > 1000);
  t.ok(ms < 2000, `${Math.round(ms)} CPU ms`);
});
