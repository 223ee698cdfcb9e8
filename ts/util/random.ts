/**
 * A small seeded pseudo-random generator of our own (sfc32), so synthetic data and prompt points
 * are identical across runs, platforms and Node versions — `Math.random` cannot be seeded.
 */

/** A stream of pseudo-random numbers. */
export interface Random {
  // Plain functions, not methods: they may be passed around unbound (e.g. `rng.next`).
  /** Uniform in [0, 1). */
  next: () => number;
  /** Uniform integer in [0, n). */
  int: (n: number) => number;
  /** Uniform in [low, high). */
  uniform: (low: number, high: number) => number;
  /** True with probability `p`. */
  chance: (p: number) => boolean;
  /** Standard normal (Box–Muller). */
  normal: () => number;
}

/** Mixes 32 bits well (the murmur3 finaliser), so nearby seeds give unrelated streams. */
function mix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * A 32-bit seed derived from a base seed and keys (e.g. split name and image index), so each image
 * or prompt set has its own stream that does not depend on how many others were drawn before it.
 */
export function deriveSeed(seed: number, ...keys: Array<string | number>): number {
  let h = mix32((seed >>> 0) ^ mix32(Math.floor(seed / 2 ** 32) >>> 0));
  for (const char of keys.join('\u0000'))
    h = mix32(h ^ Math.imul(char.codePointAt(0) ?? 0, 0x9e3779b1));
  return h;
}

/** A generator seeded with `seed` (any integer; only its low 53 bits matter). */
export function createRandom(seed: number): Random {
  let a = deriveSeed(seed, 'a');
  let b = deriveSeed(seed, 'b');
  let c = deriveSeed(seed, 'c');
  let d = 1;
  const nextUint32 = (): number => {
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return t >>> 0;
  };
  // Warm-up: the first outputs of sfc32 are correlated with the seed words.
  for (let i = 0; i < 12; i++) nextUint32();
  const next = (): number => nextUint32() / 2 ** 32;
  return {
    next,
    int: (n) => Math.floor(next() * n),
    uniform: (low, high) => low + (high - low) * next(),
    chance: (p) => next() < p,
    normal: () => Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next()),
  };
}
