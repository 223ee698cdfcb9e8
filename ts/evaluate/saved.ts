/**
 * Re-scoring (`skip.inference`): a config's predictions, and the probability maps behind ODS/OIS
 * when they were saved, read back from its output folder.
 */
import { access } from 'node:fs/promises';
import type { Sample } from '../data/dataset.js';
import { SavedPredictionError } from '../errors.js';
import type { ImageSize } from '../model/prompt-tensors.js';
import type { ImagePrediction } from '../predict.js';
import {
  predictionPath,
  probabilityPath,
  readMaskPng,
  readProbabilityPng,
} from '../report/predictions.js';

export { SavedPredictionError };

/**
 * The saved prediction of `sample` in `configDir`; throws a {@link SavedPredictionError}, naming
 * the file, when it is missing or unusable.
 */
export async function readSavedPrediction(
  configDir: string,
  sample: Pick<Sample, 'id'> & { image: ImageSize },
): Promise<ImagePrediction> {
  const maskFile = predictionPath(configDir, sample.id);
  let mask;
  try {
    mask = await readMaskPng(maskFile);
  } catch (err) {
    const missing = !(await exists(maskFile));
    throw new SavedPredictionError(
      maskFile,
      missing ? 'missing prediction' : 'unusable prediction',
      `cannot read saved prediction '${maskFile}': ${(err as Error).message}`,
    );
  }
  const { width, height } = sample.image;
  if (mask.width !== width || mask.height !== height) {
    throw new SavedPredictionError(
      maskFile,
      'unusable prediction',
      `saved prediction '${maskFile}' is ${mask.width}x${mask.height} but the image is ${width}x${height}`,
    );
  }
  const prediction: ImagePrediction = { mask, iouScores: [] };
  const probabilityFile = probabilityPath(configDir, sample.id);
  if (await exists(probabilityFile)) {
    try {
      prediction.probabilities = await readProbabilityPng(probabilityFile);
    } catch (err) {
      throw new SavedPredictionError(
        probabilityFile,
        'unusable prediction',
        `cannot read saved probabilities '${probabilityFile}': ${(err as Error).message}`,
      );
    }
  }
  return prediction;
}

function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}
