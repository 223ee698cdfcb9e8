/**
 * Charts through vega-lite: spec → vega View (headless) → SVG, and SVG → PNG through sharp
 * (librsvg renders the text with the system fonts).
 */
import sharp from 'sharp';
import type { TopLevelSpec } from 'vega-lite';

const FONT = 'DejaVu Sans';

/**
 * Renders a vega-lite spec to an SVG string. vega is loaded on first use, at the end of a run: its
 * 16 MB of heap would make every garbage collection of the JS thread feeding the device slower.
 */
export async function renderVegaLite(spec: TopLevelSpec): Promise<string> {
  const [vega, { compile }] = await Promise.all([import('vega'), import('vega-lite')]);
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** Rasterises an SVG to PNG at `scale` × its size (2 keeps text crisp). */
export async function svgToPng(svg: string, scale = 2): Promise<Buffer> {
  return sharp(Buffer.from(svg), { density: 72 * scale })
    .flatten({ background: '#ffffff' })
    .png()
    .toBuffer();
}

/** A histogram of per-image values in [0, 1], 20 bins of 0.05; SVG. */
export async function histogramSvg(
  values: readonly number[],
  options: { title: string; subtitle?: string; axisLabel: string },
): Promise<string> {
  return renderVegaLite({
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: { text: options.title, ...(options.subtitle ? { subtitle: options.subtitle } : {}) },
    width: 360,
    height: 180,
    background: 'white',
    data: { values: values.map((value) => ({ value })) },
    mark: { type: 'bar', color: '#4c78a8' },
    encoding: {
      x: { field: 'value', bin: { extent: [0, 1], step: 0.05 }, title: options.axisLabel },
      y: { aggregate: 'count', title: 'Images' },
    },
    config: { font: FONT },
  });
}

/** One bar of the comparison chart. */
export interface ComparisonBar {
  evaluation: string;
  promptConfig: string;
  metric: string;
  value: number;
}

/**
 * Grouped bars: one group per metric, one bar per evaluation (before vs after), one row of
 * panels per prompt config; SVG.
 */
export async function comparisonChartSvg(
  bars: readonly ComparisonBar[],
  options: { title: string; metricOrder: readonly string[]; evaluationOrder: readonly string[] },
): Promise<string> {
  return renderVegaLite({
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: options.title,
    background: 'white',
    data: { values: bars.map((bar) => ({ ...bar })) },
    facet: { row: { field: 'promptConfig', title: 'Prompt config' } },
    spec: {
      width: { step: 16 },
      height: 160,
      mark: { type: 'bar' },
      encoding: {
        x: { field: 'metric', type: 'nominal', sort: [...options.metricOrder], title: null },
        xOffset: { field: 'evaluation', sort: [...options.evaluationOrder] },
        y: { field: 'value', type: 'quantitative', scale: { domain: [0, 1] }, title: 'Mean' },
        color: {
          field: 'evaluation',
          sort: [...options.evaluationOrder],
          title: 'Evaluation',
        },
        tooltip: [{ field: 'value', format: '.3f' }],
      },
    },
    config: { font: FONT },
  });
}
