/** An exported model's embedded `metadata.json` (docs/model-interface.md), read and checked. */
import type { TorchModule } from '../torch-module.js';
import type { ExportMetadata } from './export.js';

/** The `format` an exported model's metadata declares. */
export const MODEL_FORMAT: ExportMetadata['format'] = 'crackseg-sam2-image';

/** The methods prediction needs (docs/model-interface.md). */
const REQUIRED_METHODS = ['encode_image', 'decode'];

/** An exported model's `metadata.json` (docs/model-interface.md). */
export type ModelMetadata = ExportMetadata;

/** The module's checked `metadata.json`; the error names the file and what is wrong. */
export function readModelMetadata(module: TorchModule): ModelMetadata {
  const metadata = module.extraJson<ModelMetadata>('metadata.json');
  const problem = !metadata
    ? 'has no metadata.json'
    : // Unchecked JSON: any value may stand in `format`.
      (metadata.format as unknown) !== MODEL_FORMAT
      ? `has format '${String(metadata.format)}', expected '${MODEL_FORMAT}'`
      : !Number.isInteger(metadata.image_size) || metadata.image_size <= 0
        ? 'has no valid image_size'
        : undefined;
  const missing = REQUIRED_METHODS.filter((m) => !module.methodNames.includes(m));
  if (problem || missing.length > 0) {
    throw new Error(
      `${module.path} is not an exported crackseg model: it ` +
        (problem ?? `lacks the method(s) ${missing.join(', ')}`) +
        ' (export one with `crackseg export`, see docs/model-interface.md)',
    );
  }
  return metadata!;
}
