/**
 * 8-connected component labelling with per-component statistics, equal to OpenCV's
 * `connectedComponentsWithStats(mask, connectivity=8)` up to a permutation of labels. Two raster
 * passes with union-find over typed arrays: linear in the number of pixels.
 */
import type { BinaryMask } from '../image.js';

/** Components smaller than this many pixels are noise for prompting purposes (the seed's default). */
export const DEFAULT_MIN_AREA = 10;

/** One component's statistics, like a row of OpenCV's `stats`. */
export interface ComponentStats {
  /** The component's value in {@link Components.labels} (1-based; 0 is background). */
  label: number;
  /** Pixel count. */
  area: number;
  /** Bounding box: first column, first row, and extents in pixels (OpenCV's x, y, w, h). */
  left: number;
  top: number;
  width: number;
  height: number;
}

/** The labelling of a mask. */
export interface Components {
  width: number;
  height: number;
  /** Per pixel: 0 for background, else the component's label. Labels follow raster order of each component's first pixel. */
  labels: Int32Array;
  /** `stats[k]` describes label `k + 1`. */
  stats: ComponentStats[];
}

/** Labels the 8-connected components of the foreground (non-zero) pixels of `mask`. */
export function connectedComponents(mask: BinaryMask): Components {
  const { width, height, data } = mask;
  const labels = new Int32Array(width * height);
  // At most one provisional label per 2x2 block can start without a labelled neighbour.
  const parent = new Int32Array(Math.ceil(width / 2) * Math.ceil(height / 2) + 1);
  let provisional = 0;
  const find = (a: number): number => {
    while (parent[a] !== a) {
      const up = parent[a] as number;
      parent[a] = parent[up] as number; // path halving
      a = up;
    }
    return a;
  };
  // Union keeps the smaller root, so a set's root is its earliest label in raster order.
  const union = (a: number, b: number): number => {
    const ra = find(a);
    const rb = find(b);
    if (ra < rb) parent[rb] = ra;
    else parent[ra] = rb;
    return Math.min(ra, rb);
  };

  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = y * width + x;
      if (!data[i]) continue;
      let label = 0;
      const join = (j: number) => {
        const other = labels[j] as number;
        if (other) label = label ? union(label, other) : other;
      };
      if (x > 0) join(i - 1);
      if (y > 0) {
        if (x > 0) join(i - width - 1);
        join(i - width);
        if (x + 1 < width) join(i - width + 1);
      }
      if (!label) {
        label = ++provisional;
        parent[label] = label;
      }
      labels[i] = label;
    }
  }

  const final = new Int32Array(provisional + 1);
  const stats: ComponentStats[] = [];
  for (let p = 1; p <= provisional; p++) {
    const root = find(p);
    if (root === p) {
      final[p] = stats.length + 1;
      stats.push({
        label: stats.length + 1,
        area: 0,
        left: width,
        top: height,
        width: 0,
        height: 0,
      });
    } else {
      final[p] = final[root] as number;
    }
  }
  // Boxes are gathered as right/bottom edges, then turned into extents.
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = y * width + x;
      const p = labels[i] as number;
      if (!p) continue;
      const label = final[p] as number;
      labels[i] = label;
      const s = stats[label - 1] as ComponentStats;
      s.area++;
      if (x < s.left) s.left = x;
      if (y < s.top) s.top = y;
      if (x + 1 > s.width) s.width = x + 1;
      if (y + 1 > s.height) s.height = y + 1;
    }
  }
  for (const s of stats) {
    s.width -= s.left;
    s.height -= s.top;
  }
  return { width, height, labels, stats };
}

/** The components with at least `minArea` pixels, in label order. */
export function componentsAtLeast(
  components: Components,
  minArea: number = DEFAULT_MIN_AREA,
): ComponentStats[] {
  return components.stats.filter((s) => s.area >= minArea);
}
