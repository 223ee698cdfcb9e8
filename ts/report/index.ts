/** Evaluation reports: saved predictions, per-image figures, CSV/JSON, plots and the HTML report. */
export * from './predictions.js';
export * from './csv.js';
export * from './figures.js';
export * from './plots.js';
export * from './summary.js';
export * from './writer.js';
export * from './html.js';
