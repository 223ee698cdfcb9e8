import t from 'tap';
import type { BinaryMask } from '../ts/image.js';
import {
  DEFAULT_EXPAND_RATIO,
  parsePromptConfig,
  parsePromptConfigs,
  promptConfigName,
} from '../ts/prompts/config.js';
import { buildPrompts, expandedBox, hasPrompts } from '../ts/prompts/prompts.js';
import { synthesizeSample } from '../ts/synth/synthesize.js';
import { connectedComponents } from '../ts/vision/components.js';
import { zhangSuenSkeleton } from '../ts/vision/skeleton.js';

t.test('config grammar and folder names', async (t) => {
  const configs = parsePromptConfigs(
    'bbox, points:1,points:3:per_component,points:5:per_component:skeleton:neg=2,bbox:expand=0.1',
  );
  t.same(configs, [
    { kind: 'bbox', expandRatio: DEFAULT_EXPAND_RATIO },
    { kind: 'points', count: 1, perComponent: false, placement: 'random', negatives: 0 },
    { kind: 'points', count: 3, perComponent: true, placement: 'random', negatives: 0 },
    { kind: 'points', count: 5, perComponent: true, placement: 'skeleton', negatives: 2 },
    { kind: 'bbox', expandRatio: 0.1 },
  ]);
  t.same(configs.map(promptConfigName), [
    'bbox_prompt',
    'points_1',
    'points_3_per_component',
    'points_5_per_component_skeleton_neg2',
    'bbox_prompt_expand0.1',
  ]);
  t.equal(DEFAULT_EXPAND_RATIO, 0.05);
  for (const bad of [
    'box',
    'points',
    'points:0',
    'points:2:up',
    'points:2:neg=x',
    'bbox:expand=-1',
    'points:1:skeleton:skeleton',
  ]) {
    t.throws(() => parsePromptConfig(bad), new RegExp(`prompt config '${bad}'`), bad);
  }
  t.throws(() => parsePromptConfigs('points:1,bbox,points:1'), /'points_1' appears twice/);
});

t.test(
  'boxes: [x, y, x+w, y+h] grown by ratio*w, ratio*h per side, clipped (hand-worked)',
  async (t) => {
    const stats = { label: 1, area: 50, left: 10, top: 20, width: 40, height: 10 };
    t.same(expandedBox(stats, 100, 50, 0.05), [8, 19.5, 52, 30.5]);
    t.same(expandedBox(stats, 100, 50, 0), [10, 20, 50, 30]);
    t.same(
      expandedBox({ ...stats, left: 0, top: 45, width: 20, height: 5 }, 100, 50, 0.05),
      [0, 44.75, 21, 50],
    );
    t.same(
      expandedBox({ ...stats, left: 90, top: 0, width: 10, height: 50 }, 100, 50, 0.5),
      [85, 0, 100, 50],
    );
  },
);

/** 20x10: a 12x2 bar, a 3x4 block and a 2-pixel speck (below the default minimum area). */
function sampleMask(): BinaryMask {
  const mask: BinaryMask = { width: 20, height: 10, data: new Uint8Array(200) };
  for (let x = 2; x < 14; x++) for (const y of [1, 2]) mask.data[y * 20 + x] = 1;
  for (let x = 15; x < 18; x++) for (let y = 5; y < 9; y++) mask.data[y * 20 + x] = 1;
  mask.data[9 * 20 + 0] = mask.data[9 * 20 + 1] = 1;
  return mask;
}

t.test('bbox prompts: one per component of at least minArea', async (t) => {
  const prompts = buildPrompts(sampleMask(), parsePromptConfig('bbox'), { seed: 0 });
  t.same(prompts, {
    boxes: [
      [1.4, 0.9, 14.6, 3.1],
      [14.85, 4.8, 18.15, 9.2],
    ],
    points: [],
  });
  const all = buildPrompts(sampleMask(), parsePromptConfig('bbox:expand=0'), {
    seed: 0,
    minArea: 1,
  });
  t.same(all.boxes, [
    [2, 1, 14, 3],
    [15, 5, 18, 9],
    [0, 9, 2, 10],
  ]);
});

t.test('no component, no prompt', async (t) => {
  const empty = { width: 8, height: 8, data: new Uint8Array(64) };
  for (const spec of ['bbox', 'points:3', 'points:3:per_component:skeleton:neg=1']) {
    t.notOk(hasPrompts(buildPrompts(empty, parsePromptConfig(spec), { seed: 1 })), spec);
  }
  const speck = { width: 8, height: 8, data: new Uint8Array(64).fill(1, 0, 3) };
  t.notOk(hasPrompts(buildPrompts(speck, parsePromptConfig('bbox'), { seed: 1 })));
  t.ok(hasPrompts(buildPrompts(speck, parsePromptConfig('bbox'), { seed: 1, minArea: 3 })));
});

t.test(
  'points: deterministic per seed and key, on their component, negatives on background',
  async (t) => {
    for (let seed = 0; seed < 6; seed++) {
      const { mask } = synthesizeSample(160, 96, seed, false);
      const { labels, stats } = connectedComponents(mask);
      const kept = stats.filter((s) => s.area >= 10).map((s) => s.label);
      for (const spec of [
        'points:3:per_component:neg=2',
        'points:5:per_component:skeleton',
        'points:4:neg=1',
      ]) {
        const config = parsePromptConfig(spec);
        const a = buildPrompts(mask, config, { seed: 7, key: `img${seed}` });
        t.same(
          buildPrompts(mask, config, { seed: 7, key: `img${seed}` }),
          a,
          `${spec}: same seed, same points`,
        );
        const perComponent = spec.includes('per_component');
        t.equal(a.points.length, perComponent ? kept.length : 1);
        a.points.forEach((group, g) => {
          const positives = group.coords.filter((_, k) => group.labels[k] === 1);
          t.equal(positives.length, config.kind === 'points' ? config.count : 0);
          t.equal(
            group.coords.length - positives.length,
            config.kind === 'points' ? config.negatives : 0,
          );
          group.coords.forEach(([x, y], k) => {
            const label = labels[y * mask.width + x]!;
            if (group.labels[k] === 0) t.equal(label, 0, 'negative on background');
            else if (perComponent) t.equal(label, kept[g], 'positive on its own component');
            else t.ok(kept.includes(label), 'positive on a kept component');
          });
        });
      }
      const random = parsePromptConfig('points:3:per_component');
      const other = buildPrompts(mask, random, { seed: 8, key: `img${seed}` });
      t.notSame(
        other,
        buildPrompts(mask, random, { seed: 7, key: `img${seed}` }),
        'another seed, other points',
      );
    }
  },
);

t.test('skeleton placement: points lie on the skeleton, spread along it', async (t) => {
  // A 3-pixel-thick horizontal bar, 41 long: its skeleton runs along the bar.
  const mask: BinaryMask = { width: 45, height: 7, data: new Uint8Array(45 * 7) };
  for (let y = 2; y < 5; y++) mask.data.fill(1, y * 45 + 2, y * 45 + 43);
  const skeleton = zhangSuenSkeleton(mask);
  const [group] = buildPrompts(mask, parsePromptConfig('points:3:skeleton'), { seed: 0 }).points;
  const xs = group!.coords.map(([x, y]) => {
    t.equal(skeleton.data[y * 45 + x], 1, `(${x}, ${y}) is a skeleton pixel`);
    return x;
  });
  xs.sort((a, b) => a - b);
  // Evenly spaced: near 1/6, 3/6 and 5/6 of the way along.
  t.ok(
    xs[0]! > 6 && xs[0]! < 12 && Math.abs(xs[1]! - 22) <= 2 && xs[2]! > 32 && xs[2]! < 38,
    `x = ${xs.join(', ')}`,
  );
  t.same(group!.labels, [1, 1, 1]);
});
