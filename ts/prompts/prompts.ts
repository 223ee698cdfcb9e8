/**
 * Prompts for SAM from a mask (the ground truth, as in the seed project): one box or one point
 * group per connected component, or one point group for the whole mask. The decoder is run once per
 * prompt and the predicted masks are ORed.
 *
 * Coordinates are in pixels of the original image, as the SAM 2 predictor takes them:
 * - a box is `[x0, y0, x1, y1]` in continuous coordinates, pixel (x, y) covering [x, x+1) × [y, y+1):
 *   a component with OpenCV stats (left, top, width, height) gives `[left, top, left+width, top+height]`,
 *   then each side moves out by `expandRatio × width` (or height) and the box is clipped to
 *   [0, W] × [0, H]. Values are not rounded. This is the seed project's convention.
 * - a point is `[x, y]`, the column and row index of a pixel of the component (for negatives, of
 *   the background); label 1 is positive, 0 negative.
 */
import type { AutoMaskFilter } from '../binding.js';
import type { BinaryMask } from '../image.js';
import { createRandom, deriveSeed, type Random } from '../util/random.js';
import {
  componentsAtLeast,
  connectedComponents,
  DEFAULT_MIN_AREA,
  type ComponentStats,
} from '../vision/components.js';
import { zhangSuenSkeleton } from '../vision/skeleton.js';
import { autoPrompts } from './auto.js';
import type { PromptConfig } from './config.js';

export type Box = [x0: number, y0: number, x1: number, y1: number];
export type Point = [x: number, y: number];

/** One point prompt: coordinates and labels (1 positive, 0 negative), positives first. */
export interface PointGroup {
  coords: Point[];
  labels: number[];
}

/** The prompts of one image; one entry per prompt, only one of the two lists is used. */
export interface PromptSet {
  boxes: Box[];
  points: PointGroup[];
  /**
   * Set for a prompt-free point grid (ts/prompts/auto.ts): only the masks this selection keeps
   * make the image's mask, not every prompt's. Every image of a prompt set passed to one
   * prediction call has the same (or none).
   */
  automatic?: AutoMaskFilter;
}

export interface PromptOptions {
  /** Base seed of the point sampling. */
  seed: number;
  /** Mixed into the seed (use the sample id), so each image has its own stream. */
  key?: string;
  /** Components smaller than this get no prompt; default {@link DEFAULT_MIN_AREA}. */
  minArea?: number;
}

/** Whether the set holds any prompt; an image without one gets an empty prediction. */
export function hasPrompts(prompts: PromptSet): boolean {
  return prompts.boxes.length > 0 || prompts.points.length > 0;
}

/** A component's box, expanded by `expandRatio` of its size on each side and clipped to the image. */
export function expandedBox(
  stats: ComponentStats,
  width: number,
  height: number,
  expandRatio: number,
): Box {
  const dx = expandRatio * stats.width;
  const dy = expandRatio * stats.height;
  return [
    Math.max(0, stats.left - dx),
    Math.max(0, stats.top - dy),
    Math.min(width, stats.left + stats.width + dx),
    Math.min(height, stats.top + stats.height + dy),
  ];
}

/** `count` pixels drawn without replacement (with replacement once all are used). */
function samplePixels(pixels: Int32Array, count: number, rng: Random): number[] {
  const pool = pixels.slice();
  const picked: number[] = [];
  for (let k = 0; k < count; k++) {
    if (k < pool.length) {
      const j = k + rng.int(pool.length - k);
      [pool[k], pool[j]] = [pool[j]!, pool[k]!];
      picked.push(pool[k]!);
    } else {
      picked.push(pool[rng.int(pool.length)]!);
    }
  }
  return picked;
}

/**
 * `pixels` (raster order) in walking order along the curve they form: depth-first from an end
 * point (a pixel with one neighbour in the set), so consecutive pixels are mostly adjacent.
 */
function alongCurve(
  pixels: Int32Array,
  width: number,
  height: number,
  inSet: (i: number) => boolean,
): number[] {
  const neighbours = (i: number): number[] => {
    const [x, y] = [i % width, Math.floor(i / width)];
    const out: number[] = [];
    for (const [dx, dy] of [
      [1, 0],
      [1, 1],
      [0, 1],
      [-1, 1],
      [-1, 0],
      [-1, -1],
      [0, -1],
      [1, -1],
    ] as const) {
      const [nx, ny] = [x + dx, y + dy];
      if (nx >= 0 && ny >= 0 && nx < width && ny < height && inSet(ny * width + nx))
        out.push(ny * width + nx);
    }
    return out;
  };
  const visited = new Set<number>();
  const order: number[] = [];
  const ends = [...pixels].filter((i) => neighbours(i).length === 1);
  for (const start of [...ends, ...pixels]) {
    if (visited.has(start)) continue;
    const stack = [start];
    while (stack.length > 0) {
      const i = stack.pop()!;
      if (visited.has(i)) continue;
      visited.add(i);
      order.push(i);
      stack.push(...neighbours(i).reverse());
    }
  }
  return order;
}

/** `count` pixels evenly spaced along `ordered`: at its (k + 0.5) / count quantiles. */
function spread(ordered: number[], count: number): number[] {
  return Array.from(
    { length: count },
    (_, k) => ordered[Math.floor(((k + 0.5) * ordered.length) / count)]!,
  );
}

/** `count` background pixels, uniformly (none if the mask has no background). */
function sampleBackground(mask: BinaryMask, count: number, rng: Random): number[] {
  if (count === 0 || mask.data.every((v) => v !== 0)) return [];
  const picked: number[] = [];
  while (picked.length < count) {
    const i = rng.int(mask.data.length);
    if (!mask.data[i]) picked.push(i);
  }
  return picked;
}

/** Each mask's components, while the mask lives: the prompt configs of a run share them. */
const componentsCache = new WeakMap<BinaryMask, ReturnType<typeof connectedComponents>>();

function componentsOf(mask: BinaryMask) {
  let components = componentsCache.get(mask);
  if (!components) componentsCache.set(mask, (components = connectedComponents(mask)));
  return components;
}

/** The prompts for `mask` under `config`; deterministic for (seed, key). */
export function buildPrompts(
  mask: BinaryMask,
  config: PromptConfig,
  options: PromptOptions,
): PromptSet {
  const { width, height } = mask;
  // Prompt-free configs look at the image's size alone, never at the mask.
  if (config.kind === 'auto') return autoPrompts(mask, config);
  const components = componentsOf(mask);
  const kept = componentsAtLeast(components, options.minArea ?? DEFAULT_MIN_AREA);
  if (config.kind === 'bbox') {
    return {
      boxes: kept.map((s) => expandedBox(s, width, height, config.expandRatio)),
      points: [],
    };
  }
  if (kept.length === 0) return { boxes: [], points: [] };

  // Group g (0-based) of each label: its kept component's rank, or 0 for all when global; -1 if dropped.
  const groupOf = new Int32Array(components.stats.length + 1).fill(-1);
  kept.forEach((s, rank) => (groupOf[s.label] = config.perComponent ? rank : 0));
  const groupCount = config.perComponent ? kept.length : 1;
  const labels = components.labels;
  const group = (i: number) => groupOf[labels[i]!]!;
  // Each group's pixels in raster order, or, for skeleton placement, its skeleton pixels.
  const skeleton = config.placement === 'skeleton' ? zhangSuenSkeleton(mask).data : undefined;
  const collect = (within?: Uint8Array): Int32Array[] => {
    const lists: number[][] = Array.from({ length: groupCount }, () => []);
    for (let i = 0; i < labels.length; i++) {
      const g = groupOf[labels[i]!]!; // labels are 0 (group -1) off the foreground
      if (g >= 0 && (!within || within[i])) lists[g]!.push(i);
    }
    return lists.map((l) => Int32Array.from(l));
  };
  const pixels = collect();
  const skeletonPixels = skeleton ? collect(skeleton) : undefined;

  const rng = createRandom(deriveSeed(options.seed, options.key ?? ''));
  const toPoint = (i: number): Point => [i % width, Math.floor(i / width)];
  const points = pixels.map((own, g): PointGroup => {
    let positives: number[];
    const onSkeleton = skeletonPixels?.[g];
    if (onSkeleton && onSkeleton.length > 0) {
      const inSet = (i: number) => skeleton![i] !== 0 && group(i) === g;
      positives = spread(alongCurve(onSkeleton, width, height, inSet), config.count);
    } else if (onSkeleton) {
      // Thinning can erase a tiny blob entirely; fall back to its pixels in raster order.
      positives = spread([...own], config.count);
    } else {
      positives = samplePixels(own, config.count, rng);
    }
    const negatives = sampleBackground(mask, config.negatives, rng);
    return {
      coords: [...positives, ...negatives].map(toPoint),
      labels: [...positives.map(() => 1), ...negatives.map(() => 0)],
    };
  });
  return { boxes: [], points };
}
