/**
 * Re-scoring (`skip.inference`): a config's predictions, and the probability maps behind ODS/OIS
 * when they were saved, read back from its output folder.
 */
import { access } from 'node:fs/promises';
import type { Sample } from '../data/dataset.js';
import type { ImagePrediction } from '../predict.js';
import {
  predictionPath,
  probabilityPath,
  readMaskPng,
  readProbabilityPng,
} from '../report/predictions.js';

/** The saved prediction of `sample` in `configDir`; throws, naming the file, when unusable. */
export async function readSavedPrediction(
  configDir: string,
  sample: Pick<Sample, 'id' | 'image'>,
): Promise<ImagePrediction> {
  const maskFile = predictionPath(configDir, sample.id);
  let mask;
  try {
    mask = await readMaskPng(maskFile);
  } catch (err) {
    throw new Error(`cannot read saved prediction '${maskFile}': ${(err as Error).message}`);
  }
  const { width, height } = sample.image;
  if (mask.width !== width || mask.height !== height) {
    throw new Error(
      `saved prediction '${maskFile}' is ${mask.width}x${mask.height} but the image is ${width}x${height}`,
    );
  }
  const prediction: ImagePrediction = { mask, iouScores: [] };
  const probabilityFile = probabilityPath(configDir, sample.id);
  const hasProbabilities = await access(probabilityFile).then(
    () => true,
    () => false,
  );
  if (hasProbabilities) prediction.probabilities = await readProbabilityPng(probabilityFile);
  return prediction;
}
