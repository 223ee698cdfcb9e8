/** Evaluation reports: saved predictions, per-image figures, CSV/JSON, plots and the HTML report. */
export {
  assertSafeName,
  imageFileStem,
  relativePredictionPath,
  predictionPath,
  probabilityPath,
  encodeMaskPng,
  writeMaskPng,
  readMaskPng,
  writeProbabilityPng,
  encodeProbabilityPng,
  readProbabilityPng,
  PREDICTIONS_DIR,
  PROBABILITIES_DIR,
  type ProbabilityBitDepth,
} from './predictions.js';
export {
  csvField,
  csvLine,
  resultRow,
  RESULTS_CSV,
  RESULT_COLUMNS,
  type ResultRowInfo,
} from './csv.js';
export {
  errorOverlay,
  encodeRgbPng,
  renderFigure,
  escapeXml,
  OVERLAY_COLORS,
  DEFAULT_OVERLAY_ALPHA,
  MIN_PANEL_WIDTH,
  type FigureInput,
} from './figures.js';
export {
  renderVegaLite,
  svgToPng,
  histogramSvg,
  comparisonChartSvg,
  type ComparisonBar,
} from './plots.js';
export {
  readSummary,
  SUMMARY_JSON,
  type SkipRecord,
  type ExtremeExample,
  type EvaluationSummary,
  type SkipCategory,
} from './summary.js';
export {
  VISUALIZATIONS_DIR,
  PLOTS_DIR,
  DEFAULT_EXTREMES,
  ReportWriter,
  type ImageResult,
  type ReportWriterOptions,
  type FinishExtras,
} from './writer.js';
export {
  loadEvaluation,
  writeHtmlReport,
  renderHtmlReport,
  MAX_HTML_EXAMPLES,
  type LabelledEvaluation,
  type HtmlReportOptions,
} from './html.js';
