/**
 * The prompt that training, validation and the demo's evaluations share: one box per ground-truth
 * crack component, drawn as `crackseg evaluate bbox` draws it (default expansion), so a
 * validation IoU equals what the evaluation reports.
 */
import type { BinaryMask } from '../image.js';
import { DEFAULT_EXPAND_RATIO, type BoxPromptConfig } from '../prompts/config.js';
import { buildPrompts, type PromptSet } from '../prompts/prompts.js';

/** The box prompt config of training and validation. */
export const TRAINING_BOX_PROMPT: BoxPromptConfig = {
  kind: 'bbox',
  expandRatio: DEFAULT_EXPAND_RATIO,
};

/** The boxes of a mask's crack components (no points; boxes are deterministic). */
export function groundTruthBoxes(mask: BinaryMask): PromptSet {
  return buildPrompts(mask, TRAINING_BOX_PROMPT, { seed: 0 });
}
