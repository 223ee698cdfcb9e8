/** Crack-segmentation metrics: per-image evaluation, streaming aggregation, the metric table. */
export * from './definitions.js';
export * from './formulas.js';
export * from './thresholds.js';
export * from './image.js';
export * from './accumulator.js';
