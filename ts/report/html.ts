/**
 * The self-contained `report.html`: one or more labelled evaluations (e.g. untrained vs trained
 * LoRA) side by side — summary table across prompt configs, a comparison chart (inline SVG),
 * each config's histograms and the best and worst examples by IoU (images as data URIs).
 */
import { access, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { BEST_F_METRIC, MASK_METRICS } from '../metrics/definitions.js';
import { writeFileAtomic } from '../util/atomic.js';
import { escapeXml } from './figures.js';
import { comparisonChartSvg, type ComparisonBar } from './plots.js';
import {
  SUMMARY_JSON,
  readSummary,
  type EvaluationSummary,
  type ExtremeExample,
} from './summary.js';

/** Best and worst examples shown per evaluation and config at most (the summaries may hold more). */
export const MAX_HTML_EXAMPLES = 10;

/**
 * An evaluation in the report and its label. `outputDir` is either one prompt config's folder
 * (it holds `evaluation_summary.json` itself) or a folder of config folders.
 */
export interface LabelledEvaluation {
  label: string;
  outputDir: string;
  /** Only these config folders of `outputDir` (by folder name); default every one. */
  only?: readonly string[];
}

export interface HtmlReportOptions {
  title?: string;
  /**
   * Best and worst examples shown per evaluation and config: as many as the summary lists, at
   * most this many (default {@link MAX_HTML_EXAMPLES}).
   */
  examples?: number;
  /** Told about a folder left out (e.g. a summary this version cannot read); default console.warn. */
  onWarning?: (message: string) => void;
}

interface LoadedConfig {
  dir: string;
  summary: EvaluationSummary;
}

/**
 * The prompt configs of an evaluation: `outputDir` itself when it holds a summary, else its
 * sub-folders holding one (all, or those named in `only`), by name. A folder whose summary cannot
 * be read (another tool's, another schema version, half-written) is left out with a warning, never
 * an error.
 */
export async function loadEvaluation(
  outputDir: string,
  options: { only?: readonly string[]; onWarning?: (message: string) => void } = {},
): Promise<LoadedConfig[]> {
  const warn = options.onWarning ?? ((message: string) => console.warn(message));
  const load = async (dir: string): Promise<LoadedConfig[]> => {
    try {
      return [{ dir, summary: await readSummary(dir) }];
    } catch (err) {
      warn(`report.html leaves out ${dir}: ${(err as Error).message}`);
      return [];
    }
  };
  if (await exists(join(outputDir, SUMMARY_JSON))) return load(outputDir);
  const entries = await readdir(outputDir, { withFileTypes: true });
  const configs: LoadedConfig[] = [];
  for (const entry of entries
    .filter((e) => e.isDirectory() && (!options.only || options.only.includes(e.name)))
    .sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const dir = join(outputDir, entry.name);
    if (await exists(join(dir, SUMMARY_JSON))) configs.push(...(await load(dir)));
  }
  return configs;
}

function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

/** Writes the HTML report comparing `evaluations` to `path` (atomically). */
export async function writeHtmlReport(
  path: string,
  evaluations: readonly LabelledEvaluation[],
  options: HtmlReportOptions = {},
): Promise<void> {
  await writeFileAtomic(path, await renderHtmlReport(evaluations, options));
}

/** The HTML report as a string. */
export async function renderHtmlReport(
  evaluations: readonly LabelledEvaluation[],
  options: HtmlReportOptions = {},
): Promise<string> {
  if (evaluations.length === 0) throw new Error('The report needs at least one evaluation');
  const loaded = await Promise.all(
    evaluations.map(async (e) => ({
      ...e,
      configs: await loadEvaluation(e.outputDir, {
        ...(e.only ? { only: e.only } : {}),
        ...(options.onWarning ? { onWarning: options.onWarning } : {}),
      }),
    })),
  );
  const configNames = [
    ...new Set(loaded.flatMap((e) => e.configs.map((c) => c.summary.promptConfig))),
  ];
  const title = options.title ?? 'Crack segmentation evaluation';
  const examples = options.examples ?? MAX_HTML_EXAMPLES;

  const sections: string[] = [
    `<h1>${escapeXml(title)}</h1>`,
    `<p>Evaluations: ${loaded.map((e) => `<b>${escapeXml(e.label)}</b>`).join(' vs ')}. ` +
      `Generated ${escapeXml(new Date().toISOString())}. Metric definitions: docs/metrics.md.</p>`,
    '<h2>Summary</h2>',
    summaryTable(loaded, configNames),
  ];
  const bars: ComparisonBar[] = loaded.flatMap((e) =>
    e.configs.flatMap((c) =>
      MASK_METRICS.flatMap((m) => {
        const mean = c.summary.metrics[m.key].mean;
        return mean === null
          ? []
          : [
              {
                evaluation: e.label,
                promptConfig: c.summary.promptConfig,
                metric: m.label,
                value: mean,
              },
            ];
      }),
    ),
  );
  if (bars.length > 0) {
    sections.push(
      '<h2>Mean metrics</h2>',
      `<div class="chart">${await comparisonChartSvg(bars, {
        title: 'Mean per image',
        metricOrder: MASK_METRICS.map((m) => m.label),
        evaluationOrder: loaded.map((e) => e.label),
      })}</div>`,
    );
  }
  for (const name of configNames) {
    sections.push(`<h2>Prompt config: ${escapeXml(name)}</h2>`);
    const columns = await Promise.all(
      loaded.map(async (e) => {
        const config = e.configs.find((c) => c.summary.promptConfig === name);
        return `<div class="column"><h3>${escapeXml(e.label)}</h3>${
          config ? await configSection(config, examples) : '<p>Not evaluated.</p>'
        }</div>`;
      }),
    );
    sections.push(`<div class="columns">${columns.join('')}</div>`);
  }
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeXml(title)}</title>
<style>
body { font-family: 'DejaVu Sans', Arial, sans-serif; margin: 24px; color: #111; }
table { border-collapse: collapse; margin: 8px 0 24px; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: right; }
th:first-child, td:first-child, td.label { text-align: left; }
td.best { font-weight: bold; background: #e8f4e8; }
.columns { display: flex; gap: 24px; align-items: flex-start; }
.column { flex: 1; min-width: 0; }
.column img { max-width: 100%; }
.plots img { width: 48%; }
</style></head><body>
${sections.join('\n')}
</body></html>
`;
}

type LoadedEvaluation = LabelledEvaluation & { configs: LoadedConfig[] };

/** Rows: prompt config × evaluation; columns: counts, each metric's mean ± std (pooled), ODS/OIS. */
function summaryTable(loaded: LoadedEvaluation[], configNames: string[]): string {
  const header =
    '<tr><th>Prompt config</th><th>Evaluation</th><th>Images</th>' +
    MASK_METRICS.map(
      (m) =>
        `<th title="${escapeXml(m.description)}">${escapeXml(m.label)}<br><small>mean ± std (pooled)</small></th>`,
    ).join('') +
    '<th>ODS F</th><th>OIS F</th></tr>';
  const rows: string[] = [];
  for (const name of configNames) {
    const entries = loaded.map((e) => ({
      label: e.label,
      summary: e.configs.find((c) => c.summary.promptConfig === name)?.summary,
    }));
    // Bold the best mean per metric when comparing evaluations (all metrics: higher is better).
    const bestMean = (key: (typeof MASK_METRICS)[number]['key']) =>
      Math.max(...entries.map((e) => e.summary?.metrics[key].mean ?? -Infinity));
    for (const { label, summary } of entries) {
      if (!summary) continue;
      const cells = MASK_METRICS.map((m) => {
        const a = summary.metrics[m.key];
        const best = entries.length > 1 && a.mean !== null && a.mean === bestMean(m.key);
        return `<td${best ? ' class="best"' : ''}>${fixed(a.mean)} ± ${fixed(a.std)} (${fixed(a.pooled)})</td>`;
      });
      rows.push(
        `<tr><td>${escapeXml(name)}</td><td class="label">${escapeXml(label)}${summary.complete ? '' : ' (incomplete)'}</td>` +
          `<td>${summary.counts.evaluated}</td>${cells.join('')}` +
          `<td>${fixed(summary.sweep?.ods.f ?? null)}</td><td>${fixed(summary.sweep?.ois ?? null)}</td></tr>`,
      );
    }
  }
  return `<table>${header}${rows.join('')}</table>`;
}

/** One evaluation's part of a config section: counts, histograms, best and worst examples. */
async function configSection(config: LoadedConfig, examples: number): Promise<string> {
  const { summary, dir } = config;
  const c = summary.counts;
  const parts = [
    `<p>${c.evaluated} evaluated of ${c.images}; empty ground truth ${c.emptyGroundTruth}, ` +
      `no prompt ${c.noPrompt}, skipped ${c.skipped}` +
      (summary.sweep
        ? `; ODS ${fixed(summary.sweep.ods.f)} @ ${summary.sweep.ods.threshold}, OIS ${fixed(summary.sweep.ois)}`
        : '') +
      `.</p>`,
  ];
  const plots: string[] = [];
  for (const metric of [...MASK_METRICS, BEST_F_METRIC]) {
    const file = summary.files.histograms[metric.key];
    if (file) plots.push(await imageTag(join(dir, file), `${metric.label} histogram`, 'png'));
  }
  if (plots.length > 0) parts.push(`<div class="plots">${plots.join('')}</div>`);
  const sections: Array<[string, readonly ExtremeExample[]]> = [
    ['Best by IoU (images with cracks)', summary.extremes.best],
    ['Worst by IoU (images with cracks)', summary.extremes.worst],
  ];
  // Summaries written before crack-free images were kept apart have no `crackFree`.
  const crackFree = summary.extremes.crackFree ?? [];
  if (crackFree.length > 0) {
    const heading = `Crack-free images: ${c.emptyGroundTruth} (IoU 1 when nothing is predicted), worst first`;
    sections.push([heading, crackFree]);
  }
  for (const [heading, list] of sections) {
    parts.push(
      `<h4>${heading}</h4>`,
      ...(await Promise.all(list.slice(0, examples).map((x) => example(dir, x)))),
    );
  }
  return parts.join('\n');
}

async function example(dir: string, x: ExtremeExample): Promise<string> {
  const caption = `<p>${escapeXml(x.imageId)} — IoU ${fixed(x.iou)}</p>`;
  // Figures are re-encoded as JPEG: a fraction of the PNG size in a self-contained page.
  return x.figure ? caption + (await imageTag(join(dir, x.figure), x.imageId, 'jpeg')) : caption;
}

async function imageTag(path: string, alt: string, as: 'png' | 'jpeg'): Promise<string> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch {
    return `<p>(missing: ${escapeXml(path)})</p>`;
  }
  if (as === 'jpeg') bytes = await sharp(bytes).jpeg({ quality: 85 }).toBuffer();
  return `<img alt="${escapeXml(alt)}" src="data:image/${as};base64,${bytes.toString('base64')}">`;
}

function fixed(value: number | null): string {
  return value === null ? '—' : value.toFixed(3);
}
