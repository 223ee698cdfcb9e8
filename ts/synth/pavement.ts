/**
 * Pavement-like grey-level textures: smooth noise at several scales, speckle, aggregate stones and
 * stains, on a random base level. Lighting (shadow, gradient) is applied separately, after cracks
 * are drawn, because it falls on the cracks too.
 */
import type { Random } from '../util/random.js';

/** A grey-level field, row-major, values nominally 0..255 (clamped only when converted to bytes). */
export interface Field {
  width: number;
  height: number;
  data: Float32Array;
}

/** Adds bilinearly interpolated noise from a random grid with `cell`-pixel spacing, in ±amplitude. */
function addValueNoise(field: Field, cell: number, amplitude: number, rng: Random): void {
  const { width, height, data } = field;
  const gw = Math.ceil(width / cell) + 2;
  const gh = Math.ceil(height / cell) + 2;
  const grid = Float32Array.from({ length: gw * gh }, () => rng.uniform(-amplitude, amplitude));
  // A random phase, so grid lines of different scales do not coincide.
  const ox = rng.uniform(0, cell);
  const oy = rng.uniform(0, cell);
  for (let y = 0; y < height; y++) {
    const gy = (y + oy) / cell;
    const y0 = Math.floor(gy);
    const fy = gy - y0;
    const sy = fy * fy * (3 - 2 * fy);
    for (let x = 0; x < width; x++) {
      const gx = (x + ox) / cell;
      const x0 = Math.floor(gx);
      const fx = gx - x0;
      const sx = fx * fx * (3 - 2 * fx);
      const i = y0 * gw + x0;
      const top = (grid[i] as number) + ((grid[i + 1] as number) - (grid[i] as number)) * sx;
      const bottom =
        (grid[i + gw] as number) + ((grid[i + gw + 1] as number) - (grid[i + gw] as number)) * sx;
      data[y * width + x]! += top + (bottom - top) * sy;
    }
  }
}

/** Calls `visit` with the index and normalised squared radius (≤ 1) of each pixel in an ellipse. */
export function forEachInEllipse(
  width: number,
  height: number,
  ellipse: { cx: number; cy: number; rx: number; ry: number },
  visit: (index: number, r2: number) => void,
): void {
  const { cx, cy, rx, ry } = ellipse;
  for (let y = Math.max(0, Math.ceil(cy - ry)); y <= Math.min(height - 1, cy + ry); y++) {
    for (let x = Math.max(0, Math.ceil(cx - rx)); x <= Math.min(width - 1, cx + rx); x++) {
      const r2 = ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2;
      if (r2 <= 1) visit(y * width + x, r2);
    }
  }
}

/** Adds `delta` inside an ellipse, fading to zero at the rim when `soft`. */
function addEllipse(
  field: Field,
  ellipse: { cx: number; cy: number; rx: number; ry: number },
  delta: number,
  soft: boolean,
): void {
  const { data } = field;
  forEachInEllipse(field.width, field.height, ellipse, (i, r2) => {
    data[i]! += soft ? delta * (1 - r2) ** 2 : delta;
  });
}

/** A fresh pavement texture. */
export function pavementTexture(width: number, height: number, rng: Random): Field {
  const field: Field = { width, height, data: new Float32Array(width * height) };
  field.data.fill(rng.uniform(95, 175));
  const scale = Math.max(width, height);
  addValueNoise(field, scale / 4, rng.uniform(6, 16), rng);
  addValueNoise(field, scale / 16, rng.uniform(4, 10), rng);
  addValueNoise(field, 6, rng.uniform(3, 7), rng);
  addValueNoise(field, 2, rng.uniform(2, 6), rng);

  // Aggregate: small light and dark stones.
  const stones = Math.round((width * height) / rng.uniform(90, 200));
  for (let k = 0; k < stones; k++) {
    const r = rng.uniform(0.6, 2.4);
    const delta = rng.chance(0.45) ? rng.uniform(5, 28) : -rng.uniform(6, 30);
    const ellipse = {
      cx: rng.uniform(0, width),
      cy: rng.uniform(0, height),
      rx: r,
      ry: r * rng.uniform(0.6, 1.4),
    };
    addEllipse(field, ellipse, delta, false);
  }

  // Stains (oil, water): large, soft, mostly darker.
  for (let k = rng.int(4); k > 0; k--) {
    const r = rng.uniform(0.05, 0.25) * scale;
    const delta = rng.chance(0.8) ? -rng.uniform(8, 30) : rng.uniform(5, 15);
    const ellipse = {
      cx: rng.uniform(0, width),
      cy: rng.uniform(0, height),
      rx: r,
      ry: r * rng.uniform(0.4, 1),
    };
    addEllipse(field, ellipse, delta, true);
  }

  // Fine speckle, the sensor and surface grain.
  const { data } = field;
  const grain = rng.uniform(2, 6);
  for (let i = 0; i < data.length; i++) data[i]! += (rng.next() + rng.next() - 1) * grain;
  return field;
}

/** Multiplies by a lighting gradient across the image and, sometimes, a soft-edged shadow. */
export function applyLighting(field: Field, rng: Random): void {
  const { width, height, data } = field;
  const angle = rng.uniform(0, 2 * Math.PI);
  const gradient = rng.uniform(0, 0.3) / Math.hypot(width, height);
  const [dx, dy] = [Math.cos(angle), Math.sin(angle)];
  const shadow = rng.chance(0.35);
  // The shadow edge is a line through a random point; the shadow side is darkened, blurred over `soft` px.
  const [px, py] = [rng.uniform(0, width), rng.uniform(0, height)];
  const shadowAngle = rng.uniform(0, 2 * Math.PI);
  const [nx, ny] = [Math.cos(shadowAngle), Math.sin(shadowAngle)];
  const soft = rng.uniform(4, 40);
  const depth = rng.uniform(0.2, 0.45);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      let gain = 1 + ((x - width / 2) * dx + (y - height / 2) * dy) * gradient;
      if (shadow) {
        const t = Math.min(1, Math.max(0, ((x - px) * nx + (y - py) * ny) / soft + 0.5));
        gain *= 1 - depth * t;
      }
      data[y * width + x]! *= gain;
    }
  }
}
