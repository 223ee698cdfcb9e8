import t from 'tap';
import type { BinaryMask, RgbImage } from '../ts/image.js';
import { createRandom } from '../ts/util/random.js';
import {
  augmentSample,
  DEFAULT_AUGMENT,
  drawAugmentation,
  IDENTITY_AUGMENTATION,
  type Augmentation,
} from '../ts/data/augment.js';

// A 3-wide, 2-high image whose red channel numbers the pixels, green = 10 × red, blue = 0:
//   1 2 3
//   4 5 6
const image: RgbImage = {
  width: 3,
  height: 2,
  data: Uint8Array.from([1, 2, 3, 4, 5, 6].flatMap((v) => [v, 10 * v, 0])),
};
// The mask marks pixels 2 and 4 (top middle, bottom left).
const mask: BinaryMask = { width: 3, height: 2, data: Uint8Array.from([0, 1, 0, 1, 0, 0]) };

const red = (img: RgbImage) => [...img.data].filter((_, i) => i % 3 === 0);
const geometry = (aug: Partial<Augmentation>) =>
  augmentSample(image, mask, { ...IDENTITY_AUGMENTATION, ...aug });

t.test('flips and quarter turns move image and mask together (worked by hand)', async (t) => {
  const cases: Array<[string, Partial<Augmentation>, [number, number], number[], number[]]> = [
    ['identity', {}, [3, 2], [1, 2, 3, 4, 5, 6], [0, 1, 0, 1, 0, 0]],
    ['horizontal flip', { flipHorizontal: true }, [3, 2], [3, 2, 1, 6, 5, 4], [0, 1, 0, 0, 0, 1]],
    ['vertical flip', { flipVertical: true }, [3, 2], [4, 5, 6, 1, 2, 3], [1, 0, 0, 0, 1, 0]],
    // Clockwise: the left column (4 over 1, read bottom-up) becomes the top row.
    ['90° clockwise', { quarterTurns: 1 }, [2, 3], [4, 1, 5, 2, 6, 3], [1, 0, 0, 1, 0, 0]],
    ['180°', { quarterTurns: 2 }, [3, 2], [6, 5, 4, 3, 2, 1], [0, 0, 1, 0, 1, 0]],
    ['270° clockwise', { quarterTurns: 3 }, [2, 3], [3, 6, 2, 5, 1, 4], [0, 0, 1, 0, 0, 1]],
    // Flip first, then turn: [3 2 1 / 6 5 4] turned clockwise.
    [
      'horizontal flip then 90°',
      { flipHorizontal: true, quarterTurns: 1 },
      [2, 3],
      [6, 3, 5, 2, 4, 1],
      [0, 0, 0, 1, 1, 0],
    ],
  ];
  for (const [name, aug, [width, height], pixels, labels] of cases) {
    const out = geometry(aug);
    t.same([out.image.width, out.image.height], [width, height], `${name}: image size`);
    t.same([out.mask.width, out.mask.height], [width, height], `${name}: mask size`);
    t.same(red(out.image), pixels, `${name}: pixels`);
    t.same([...out.mask.data], labels, `${name}: mask`);
    // The channels of a pixel stay together.
    t.same(
      [...out.image.data].filter((_, i) => i % 3 === 1),
      pixels.map((v) => 10 * v),
      `${name}: green follows red`,
    );
  }
  // Four quarter turns, or two flips of each kind, give the input back.
  let turned = { image, mask };
  for (let k = 0; k < 4; k++)
    turned = augmentSample(turned.image, turned.mask, {
      ...IDENTITY_AUGMENTATION,
      quarterTurns: 1,
    });
  t.same(turned.image, image);
  t.same(turned.mask, mask);
});

t.test('brightness and contrast touch the image only, around its mean', async (t) => {
  const flat: RgbImage = {
    width: 2,
    height: 1,
    data: Uint8Array.from([100, 100, 100, 200, 200, 200]),
  };
  const flatMask: BinaryMask = { width: 2, height: 1, data: Uint8Array.from([1, 0]) };
  // mean 150; (v − 150)·2 + 150 + 10 → 60, 260 (clamped to 255)
  const out = augmentSample(flat, flatMask, {
    ...IDENTITY_AUGMENTATION,
    brightnessShift: 10,
    contrastFactor: 2,
  });
  t.same([...out.image.data], [60, 60, 60, 255, 255, 255]);
  t.same([...out.mask.data], [1, 0]);
  t.not(out.image.data, flat.data, 'the input is not modified');
  t.same([...flat.data], [100, 100, 100, 200, 200, 200]);
});

t.test('draws are deterministic per seed and respect the options', async (t) => {
  const draw = (seed: number, n: number) => {
    const rng = createRandom(seed);
    return Array.from({ length: n }, () => drawAugmentation(rng, DEFAULT_AUGMENT));
  };
  t.same(draw(7, 20), draw(7, 20));
  t.notSame(draw(7, 20), draw(8, 20));
  const many = draw(1, 400);
  t.same(new Set(many.map((a) => a.quarterTurns)), new Set([0, 1, 2, 3]));
  t.ok(many.some((a) => a.flipHorizontal) && many.some((a) => !a.flipHorizontal));
  t.ok(many.every((a) => Math.abs(a.brightnessShift) <= 0.1 * 255 + 1e-9));
  t.ok(many.every((a) => Math.abs(a.contrastFactor - 1) <= 0.2 + 1e-9));

  const rng = createRandom(1);
  const off = { flips: false, quarterTurns: false, brightness: 0, contrast: 0 };
  for (let i = 0; i < 50; i++) t.same(drawAugmentation(rng, off), IDENTITY_AUGMENTATION);
  // Disabled options consume the same draws, so enabling one does not reshuffle the others.
  const a = drawAugmentation(createRandom(3), { ...off, flips: true });
  const b = drawAugmentation(createRandom(3), DEFAULT_AUGMENT);
  t.equal(a.flipHorizontal, b.flipHorizontal);
  t.equal(a.flipVertical, b.flipVertical);
});
