/** Training micro-batches made in memory from synthetic cracks, for benchmarks and tests. */
import type { TrainBatch } from '../binding.js';
import { promptTensors } from '../model/prompt-tensors.js';
import { synthesizeSample } from '../synth/synthesize.js';
import { imagesTensor } from '../train/batches.js';
import { groundTruthBoxes } from '../train/box-prompt.js';
import { deriveSeed } from '../util/random.js';

/**
 * A micro-batch of `count` synthetic crack images (`size`×`size`, each with cracks) with their
 * ground-truth boxes, made in memory: for benchmarks and tests that step the trainer directly.
 */
export function syntheticBatch(
  count: number,
  size: number,
  imageSize: number,
  seed = 0,
  cacheKeys = false,
): TrainBatch {
  const samples = Array.from({ length: count }, (_, i) =>
    synthesizeSample(size, size, deriveSeed(seed, 'synthetic-batch', i), false),
  );
  const images = samples.map((s) => s.image);
  const masks = new Uint8Array(count * size * size);
  samples.forEach((s, b) => masks.set(s.mask.data, b * size * size));
  return {
    images: imagesTensor(images),
    masks: { data: masks, shape: [count, size, size], dtype: 'uint8' },
    prompts: promptTensors(
      samples.map((s) => groundTruthBoxes(s.mask)),
      images,
      imageSize,
    ),
    ...(cacheKeys ? { cacheKeys: samples.map((_, i) => `synthetic-${seed}-${i}`) } : {}),
  };
}
