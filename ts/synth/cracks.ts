/**
 * Thin branching cracks: random-walk polylines whose width (1–8 px) and darkness vary along their
 * length, rasterised with anti-aliased edges. The mask is exactly the pixels whose centre lies
 * nearer than the half-width to its centre line — the pixels drawn more than half dark — so the
 * target is what the image shows.
 */
import type { Random } from '../util/random.js';

/** Crack width limits, as half-widths in pixels (widths 1..8). */
const MIN_HALF_WIDTH = 0.5;
const MAX_HALF_WIDTH = 4;
/** Random-walk step in pixels. */
const STEP = 3;

/** A crack's centre line: vertices with their half-width and darkness (0..1, multiplicative). */
interface Polyline {
  xs: number[];
  ys: number[];
  halfWidths: number[];
  depths: number[];
}

/** Per-pixel darkening (0..1) and the crack mask (0/1) of an image. */
export interface CrackLayer {
  darkness: Float32Array;
  mask: Uint8Array;
}

/** A smooth random profile along a line: 1 ± `amount`, as a sum of two random sinusoids. */
function wobble(rng: Random, amount: number): (step: number) => number {
  const [f1, f2] = [rng.uniform(0.02, 0.08), rng.uniform(0.1, 0.3)];
  const [p1, p2] = [rng.uniform(0, 2 * Math.PI), rng.uniform(0, 2 * Math.PI)];
  return (s) => 1 + amount * (0.7 * Math.sin(p1 + f1 * s) + 0.3 * Math.sin(p2 + f2 * s));
}

/** How a crack's width and darkness vary along it; shared by the two halves of a crack so they join smoothly. */
interface Profile {
  widthAlong: (step: number) => number;
  depthAlong: (step: number) => number;
  /** +1 or -1: which way along the profile this half runs. */
  sense: number;
}

const newProfile = (rng: Random): Profile => ({
  widthAlong: wobble(rng, 0.5),
  depthAlong: wobble(rng, 0.25),
  sense: 1,
});

/** Walks one crack (and, recursively, its branches) into `out`. */
function walk(
  x: number,
  y: number,
  angle: number,
  steps: number,
  halfWidth: number,
  depth: number,
  level: number,
  profile: Profile,
  size: { width: number; height: number },
  rng: Random,
  out: Polyline[],
): void {
  const line: Polyline = { xs: [], ys: [], halfWidths: [], depths: [] };
  const { widthAlong, depthAlong, sense } = profile;
  const { width, height } = size;
  const margin = 2 * MAX_HALF_WIDTH;
  for (let s = 0; s <= steps; s++) {
    // Cracks taper to a hairline over their last fifth.
    const taper = Math.min(1, (steps - s) / (0.2 * steps));
    const hw = MIN_HALF_WIDTH + (halfWidth * widthAlong(sense * s) - MIN_HALF_WIDTH) * taper;
    line.xs.push(x);
    line.ys.push(y);
    line.halfWidths.push(Math.min(MAX_HALF_WIDTH, Math.max(MIN_HALF_WIDTH, hw)));
    line.depths.push(Math.min(0.9, depth * depthAlong(sense * s)));
    if (x < -margin || y < -margin || x > width + margin || y > height + margin) break;
    if (level < 2 && s > 2 && rng.chance(0.015)) {
      const turn = (rng.chance(0.5) ? 1 : -1) * rng.uniform(0.4, 1.3);
      const remaining = Math.round((steps - s) * rng.uniform(0.3, 0.7)) + 4;
      const branch = newProfile(rng);
      walk(
        x,
        y,
        angle + turn,
        remaining,
        halfWidth * 0.6,
        depth * 0.9,
        level + 1,
        branch,
        size,
        rng,
        out,
      );
    }
    // Mostly straight with meander, and now and then a kink.
    angle += rng.normal() * 0.15 + (rng.chance(0.04) ? rng.normal() * 0.7 : 0);
    x += Math.cos(angle) * STEP;
    y += Math.sin(angle) * STEP;
  }
  out.push(line);
}

/** Rasterises one polyline into the layer: anti-aliased darkness, and the mask where d < half-width. */
function rasterise(line: Polyline, width: number, height: number, layer: CrackLayer): void {
  const { darkness, mask } = layer;
  for (let k = 0; k + 1 < line.xs.length; k++) {
    const [ax, ay, bx, by] = [line.xs[k]!, line.ys[k]!, line.xs[k + 1]!, line.ys[k + 1]!];
    const [r0, r1] = [line.halfWidths[k]!, line.halfWidths[k + 1]!];
    const [d0, d1] = [line.depths[k]!, line.depths[k + 1]!];
    const reach = Math.max(r0, r1) + 1;
    const [ex, ey] = [bx - ax, by - ay];
    const length2 = ex * ex + ey * ey || 1;
    const x0 = Math.max(0, Math.floor(Math.min(ax, bx) - reach));
    const x1 = Math.min(width - 1, Math.ceil(Math.max(ax, bx) + reach));
    const y0 = Math.max(0, Math.floor(Math.min(ay, by) - reach));
    const y1 = Math.min(height - 1, Math.ceil(Math.max(ay, by) + reach));
    for (let y = y0; y <= y1; y++) {
      for (let x = x0; x <= x1; x++) {
        const t = Math.min(1, Math.max(0, ((x - ax) * ex + (y - ay) * ey) / length2));
        const d = Math.hypot(x - ax - t * ex, y - ay - t * ey);
        const r = r0 + (r1 - r0) * t;
        const coverage = Math.min(1, r + 0.5 - d);
        if (coverage <= 0) continue;
        // Darkest along the centre line of wide cracks, like a V-shaped gap in shade.
        const dark = (d0 + (d1 - d0) * t) * coverage * (0.75 + 0.25 * Math.max(0, 1 - d / r));
        const i = y * width + x;
        if (dark > darkness[i]!) darkness[i] = dark;
        if (d < r) mask[i] = 1;
      }
    }
  }
}

/** Draws 1–3 cracks, each grown both ways from a random point, some faint. */
export function drawCracks(width: number, height: number, rng: Random): CrackLayer {
  const layer: CrackLayer = {
    darkness: new Float32Array(width * height),
    mask: new Uint8Array(width * height),
  };
  const diagonal = Math.hypot(width, height);
  const count = 1 + (rng.chance(0.5) ? 0 : rng.chance(0.6) ? 1 : 2);
  for (let c = 0; c < count; c++) {
    const lines: Polyline[] = [];
    const [x, y] = [rng.uniform(0.1, 0.9) * width, rng.uniform(0.1, 0.9) * height];
    const angle = rng.uniform(0, 2 * Math.PI);
    const halfWidth = rng.uniform(MIN_HALF_WIDTH, MAX_HALF_WIDTH * 0.8);
    const depth = rng.chance(0.2) ? rng.uniform(0.12, 0.25) : rng.uniform(0.35, 0.7);
    const profile = newProfile(rng);
    for (const sense of [1, -1]) {
      const steps = Math.round((rng.uniform(0.15, 0.5) * diagonal) / STEP);
      const half = { ...profile, sense };
      walk(
        x,
        y,
        angle + (sense < 0 ? Math.PI : 0),
        steps,
        halfWidth,
        depth,
        0,
        half,
        { width, height },
        rng,
        lines,
      );
    }
    for (const line of lines) rasterise(line, width, height, layer);
  }
  return layer;
}
