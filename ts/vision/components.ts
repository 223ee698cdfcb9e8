/**
 * 8-connected component labelling with per-component statistics, equal to OpenCV's
 * `connectedComponentsWithStats(mask, connectivity=8)` up to a permutation of labels. One raster
 * pass finds the rows' runs of foreground and joins each run with the runs above that touch it
 * (union-find over runs); the rest costs the runs, not the pixels: fast on thin cracks.
 */
import type { BinaryMask } from '../image.js';
import { wordsOf } from '../util/bytes.js';

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
  /**
   * Per pixel: 0 for background, else the component's label. Labels follow raster order of each
   * component's first pixel. Built on first use.
   */
  readonly labels: Int32Array;
  /** `stats[k]` describes label `k + 1`. */
  stats: ComponentStats[];
}

/** Labels the 8-connected components of the foreground (non-zero) pixels of `mask`. */
export function connectedComponents(mask: BinaryMask): Components {
  const { width, height, data } = mask;
  // Background is crossed four pixels at a time where the buffer allows (thin cracks: most of it).
  const words = wordsOf(data);
  // Runs [start, end) of each row, in raster order; run k has provisional label k + 1.
  let starts = new Int32Array(1024);
  let ends = new Int32Array(1024);
  let rows = new Int32Array(1024);
  let parent = new Int32Array(1025);
  let runs = 0;
  const find = (a: number): number => {
    while (parent[a] !== a) {
      const up = parent[a]!;
      parent[a] = parent[up]!; // path halving
      a = up;
    }
    return a;
  };
  // Union keeps the smaller root, so a set's root is its earliest run in raster order.
  const union = (a: number, b: number) => {
    const [ra, rb] = [find(a), find(b)];
    if (ra < rb) parent[rb] = ra;
    else parent[ra] = rb;
  };
  let above = 0; // the first run of the row above
  for (let y = 0; y < height; y++) {
    const rowStart = runs;
    const base = y * width;
    let next = above; // the first run above that may still touch a run of this row
    for (let x = 0; x < width;) {
      while (x < width && !data[base + x]) {
        const i = base + x;
        if (words && (i & 3) === 0) {
          // Whole zero words inside the row, in a tight loop.
          const rowEndWord = (base + width) >> 2;
          let w = i >> 2;
          while (w < rowEndWord && words[w] === 0) w++;
          if (w > i >> 2) {
            x += (w << 2) - i;
            continue;
          }
        }
        x++;
      }
      if (x === width) break;
      const start = x;
      while (x < width && data[base + x]) x++;
      if (runs === starts.length) {
        const grow = (a: Int32Array, size: number) => {
          const b = new Int32Array(size);
          b.set(a);
          return b;
        };
        starts = grow(starts, 2 * runs);
        ends = grow(ends, 2 * runs);
        rows = grow(rows, 2 * runs);
        parent = grow(parent, 2 * runs + 1);
      }
      const label = runs + 1;
      [starts[runs], ends[runs], rows[runs], parent[label]] = [start, x, y, label];
      runs++;
      // 8-connected: a run above touches [start, x) when it ends after start - 1 and starts
      // before x + 1.
      while (next < rowStart && ends[next]! < start) next++;
      for (let k = next; k < rowStart && starts[k]! <= x; k++) union(label, k + 1);
    }
    above = rowStart;
  }

  // Final labels in the order of the roots, i.e. of each component's first pixel in raster order.
  const final = new Int32Array(runs + 1);
  const stats: ComponentStats[] = [];
  const runLabels = new Int32Array(runs);
  for (let k = 0; k < runs; k++) {
    const root = find(k + 1);
    if (root === k + 1) {
      final[root] = stats.length + 1;
      stats.push({
        label: stats.length + 1,
        area: 0,
        left: width,
        top: height,
        width: 0,
        height: 0,
      });
    }
    const label = final[root]!;
    runLabels[k] = label;
    const [start, end, row] = [starts[k]!, ends[k]!, rows[k]!];
    // Boxes are gathered as right/bottom edges, then turned into extents.
    const s = stats[label - 1]!;
    s.area += end - start;
    if (start < s.left) s.left = start;
    if (row < s.top) s.top = row;
    if (end > s.width) s.width = end;
    if (row + 1 > s.height) s.height = row + 1;
  }
  for (const s of stats) {
    s.width -= s.left;
    s.height -= s.top;
  }
  // The label image (4 bytes a pixel) is drawn from the runs on first use: box prompts need only
  // the statistics.
  let labels: Int32Array | undefined;
  return {
    width,
    height,
    stats,
    get labels() {
      if (!labels) {
        labels = new Int32Array(width * height);
        for (let k = 0; k < runs; k++) {
          const row = rows[k]! * width;
          labels.fill(runLabels[k]!, row + starts[k]!, row + ends[k]!);
        }
      }
      return labels;
    },
  };
}

/** The components with at least `minArea` pixels, in label order. */
export function componentsAtLeast(
  components: Components,
  minArea: number = DEFAULT_MIN_AREA,
): ComponentStats[] {
  return components.stats.filter((s) => s.area >= minArea);
}
