/**
 * Per-image pictures: the TP/FP/FN error overlay and the titled 4-panel figure (image, ground
 * truth, prediction, overlay) with the image's metrics in text. Pure functions of their inputs,
 * safe to call from worker threads. Text is SVG rendered by sharp's librsvg.
 */
import sharp from 'sharp';
import type { BinaryMask, RgbImage } from '../image.js';
import { MASK_METRICS, type MaskMetricKey } from '../metrics/definitions.js';

type Rgb = readonly [number, number, number];

/** Overlay colours: TP yellow, FP red, FN green; a prediction alone (no ground truth) magenta. */
export const OVERLAY_COLORS: {
  truePositive: Rgb;
  falsePositive: Rgb;
  falseNegative: Rgb;
  predicted: Rgb;
} = {
  truePositive: [255, 255, 0],
  falsePositive: [255, 0, 0],
  falseNegative: [0, 255, 0],
  predicted: [255, 0, 255],
};

/** Default opacity of the overlay colours. */
export const DEFAULT_OVERLAY_ALPHA = 0.5;

/**
 * The image with TP, FP and FN pixels blended towards their colours:
 * out = round(image + alpha · (colour − image)) per channel; true negatives are left unchanged.
 */
export function errorOverlay(
  image: RgbImage,
  prediction: BinaryMask,
  groundTruth: BinaryMask,
  alpha = DEFAULT_OVERLAY_ALPHA,
): RgbImage {
  return blend(image, [prediction, groundTruth], alpha, (i) => {
    const predicted = prediction.data[i] !== 0;
    const actual = groundTruth.data[i] !== 0;
    if (!predicted) return actual ? OVERLAY_COLORS.falseNegative : null;
    return actual ? OVERLAY_COLORS.truePositive : OVERLAY_COLORS.falsePositive;
  });
}

/** The image with the predicted pixels blended towards magenta, as {@link errorOverlay} blends. */
export function predictionOverlay(
  image: RgbImage,
  prediction: BinaryMask,
  alpha = DEFAULT_OVERLAY_ALPHA,
): RgbImage {
  return blend(image, [prediction], alpha, (i) =>
    prediction.data[i] !== 0 ? OVERLAY_COLORS.predicted : null,
  );
}

/** The image with each pixel that `colourOf` colours blended towards it; masks checked for size. */
function blend(
  image: RgbImage,
  masks: readonly BinaryMask[],
  alpha: number,
  colourOf: (pixel: number) => Rgb | null,
): RgbImage {
  const { width, height } = image;
  for (const mask of masks) {
    if (mask.width !== width || mask.height !== height) {
      throw new Error(`Mask is ${mask.width}×${mask.height} but the image is ${width}×${height}`);
    }
  }
  const out = Uint8Array.from(image.data);
  for (let i = 0; i < width * height; i++) {
    const colour = colourOf(i);
    if (!colour) continue;
    for (let c = 0; c < 3; c++) {
      const base = out[i * 3 + c]!;
      out[i * 3 + c] = Math.round(base + alpha * (colour[c]! - base));
    }
  }
  return { width, height, data: out };
}

/** The RGB image as a PNG. */
export async function encodeRgbPng(image: RgbImage): Promise<Buffer> {
  return sharp(image.data, { raw: { width: image.width, height: image.height, channels: 3 } })
    .png()
    .toBuffer();
}

/** The metric values in lines of at most `perLine` metrics each: "IoU 0.712 · Dice 0.832 · …". */
function metricsLines(metrics: Record<MaskMetricKey, number>, perLine: number): string[] {
  const parts = MASK_METRICS.map(({ key, label }) => `${label} ${metrics[key].toFixed(3)}`);
  const lines: string[] = [];
  for (let i = 0; i < parts.length; i += perLine)
    lines.push(parts.slice(i, i + perLine).join(' · '));
  return lines;
}

export interface FigureInput {
  image: RgbImage;
  groundTruth: BinaryMask;
  prediction: BinaryMask;
  /** First line of the header, e.g. "<image id> — <prompt config> (3 prompts)". */
  title: string;
  metrics: Record<MaskMetricKey, number>;
  /** The error overlay when the caller already has it (else it is computed). */
  overlay?: RgbImage;
  /** Panels wider than this are scaled down (default 480 px). */
  maxPanelWidth?: number;
}

/**
 * Panels narrower than this are scaled up for display (nearest neighbour, so pixels stay
 * crisp): the captions, the overlay legend and the metric lines need the room.
 */
export const MIN_PANEL_WIDTH = 240;

const MARGIN = 8;
const HEADER_HEIGHT = 68;
/** Metrics per header line: two lines fit the narrowest panels the figures use. */
const METRICS_PER_LINE = 4;
const CAPTION_HEIGHT = 22;
const FONT = "'DejaVu Sans', 'Liberation Sans', sans-serif";
/**
 * A generous width of a line of text: DejaVu Sans averages about 0.55 em per character (bold
 * about 0.63); 0.68 em leaves room for wide letters, so a title never runs off the figure.
 */
function textWidth(text: string, fontSize: number): number {
  return Math.ceil([...text].length * fontSize * 0.68);
}

/** A 2×2 figure — image, ground truth, prediction, overlay — under a title and metrics line; PNG. */
export async function renderFigure(input: FigureInput): Promise<Buffer> {
  const { image } = input;
  const overlay = input.overlay ?? errorOverlay(image, input.prediction, input.groundTruth);
  const maxPanelWidth = Math.max(MIN_PANEL_WIDTH, input.maxPanelWidth ?? 480);
  const scale = Math.max(MIN_PANEL_WIDTH / image.width, Math.min(1, maxPanelWidth / image.width));
  const panelWidth = Math.max(1, Math.round(image.width * scale));
  const panelHeight = Math.max(1, Math.round(image.height * scale));
  const metricLines = metricsLines(input.metrics, METRICS_PER_LINE);
  // The figure is wide enough for its header even when the title is long.
  const width = Math.max(
    2 * panelWidth + 3 * MARGIN,
    textWidth(input.title, 16) + 2 * MARGIN,
    ...metricLines.map((line) => textWidth(line, 12) + 2 * MARGIN),
  );
  const height = HEADER_HEIGHT + 2 * (CAPTION_HEIGHT + panelHeight) + 2 * MARGIN;

  const panels: Array<{ caption: string; png: Promise<Buffer> }> = [
    { caption: 'Image', png: resizedPanel(image, panelWidth, panelHeight) },
    {
      caption: 'Ground truth',
      png: resizedPanel(maskAsRgb(input.groundTruth), panelWidth, panelHeight),
    },
    {
      caption: 'Prediction',
      png: resizedPanel(maskAsRgb(input.prediction), panelWidth, panelHeight),
    },
    { caption: 'Overlay', png: resizedPanel(overlay, panelWidth, panelHeight) },
  ];
  const placed = panels.map((panel, index) => ({
    ...panel,
    left: MARGIN + (index % 2) * (panelWidth + MARGIN),
    top: HEADER_HEIGHT + Math.floor(index / 2) * (CAPTION_HEIGHT + panelHeight + MARGIN),
  }));

  const text = [
    `<text x="${MARGIN}" y="22" font-size="16" font-weight="bold">${escapeXml(input.title)}</text>`,
    ...metricLines.map(
      (line, i) =>
        `<text x="${MARGIN}" y="${42 + 16 * i}" font-size="12">${escapeXml(line)}</text>`,
    ),
    ...placed.map(
      (p) => `<text x="${p.left}" y="${p.top + 16}" font-size="13">${escapeXml(p.caption)}</text>`,
    ),
    overlayLegend(placed[3]!.left + 70, placed[3]!.top + 16),
  ];
  const svg =
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">` +
    `<g font-family="${FONT}" fill="#111">${text.join('')}</g></svg>`;

  return sharp({ create: { width, height, channels: 3, background: '#ffffff' } })
    .composite([
      { input: Buffer.from(svg), left: 0, top: 0 },
      ...(await Promise.all(
        placed.map(async (p) => ({
          input: await p.png,
          left: p.left,
          top: p.top + CAPTION_HEIGHT,
        })),
      )),
    ])
    .png()
    .toBuffer();
}

/** Colour swatches naming the overlay colours, drawn after the overlay panel's caption. */
function overlayLegend(x: number, baseline: number): string {
  const entries: Array<[string, Rgb]> = [
    ['TP', OVERLAY_COLORS.truePositive],
    ['FP', OVERLAY_COLORS.falsePositive],
    ['FN', OVERLAY_COLORS.falseNegative],
  ];
  return entries
    .map(([name, [r, g, b]], i) => {
      const left = x + i * 48;
      return (
        `<rect x="${left}" y="${baseline - 11}" width="12" height="12" ` +
        `fill="rgb(${r},${g},${b})" stroke="#444" stroke-width="0.5"/>` +
        `<text x="${left + 16}" y="${baseline}" font-size="12">${name}</text>`
      );
    })
    .join('');
}

function maskAsRgb(mask: BinaryMask): RgbImage {
  const data = new Uint8Array(mask.data.length * 3);
  for (let i = 0; i < mask.data.length; i++) {
    if (mask.data[i]) data.fill(255, i * 3, i * 3 + 3);
  }
  return { width: mask.width, height: mask.height, data };
}

/**
 * The panel as PNG: shrunk with Lanczos so thin cracks stay visible (as grey), enlarged with
 * nearest neighbour so pixels stay sharp.
 */
async function resizedPanel(image: RgbImage, width: number, height: number): Promise<Buffer> {
  const panel = sharp(image.data, {
    raw: { width: image.width, height: image.height, channels: 3 },
  });
  if (width !== image.width || height !== image.height) {
    const kernel = width > image.width ? 'nearest' : 'lanczos3';
    panel.resize(width, height, { fit: 'fill', kernel });
  }
  return panel.png().toBuffer();
}

/** Escapes text for SVG/HTML content and attribute values. */
export function escapeXml(text: string): string {
  return text.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!,
  );
}
