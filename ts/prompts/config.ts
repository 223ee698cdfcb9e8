/**
 * Prompt configurations: what prompt SAM gets per image, the stable folder name of each (results
 * go to `results/<name>/`, as in the Python seed project's `results/bbox_prompt/`), and the CLI
 * spelling. Grammar (docs/data.md):
 *
 *     configs := config ("," config)*
 *     config  := "bbox" [":expand=" RATIO]
 *              | "points:" COUNT (":" option)*
 *              | "auto" [":box" | (":" auto_option)*]
 *     option  := "per_component" | "skeleton" | "neg=" COUNT
 *     auto_option := "side=" COUNT | "iou=" RATIO | "stability=" RATIO | "nms=" RATIO
 *
 * e.g. `bbox,points:1,points:3:per_component,points:5:per_component:skeleton:neg=2,auto`.
 * `auto` needs no ground truth (ts/prompts/auto.ts).
 */
import { DEFAULT_AUTO_FILTER, DEFAULT_POINTS_PER_SIDE } from './auto.js';

/** Boxes grow by this fraction of their width/height on each side unless told otherwise. */
export const DEFAULT_EXPAND_RATIO = 0.05;

/** One box per component, expanded by `expandRatio` of its width and height on each side. */
export interface BoxPromptConfig {
  kind: 'bbox';
  expandRatio: number;
}

/** Positive points (and optional negatives) per component, or over the whole mask. */
export interface PointPromptConfig {
  kind: 'points';
  /** Positive points per prompt. */
  count: number;
  /** One point group per component; otherwise one group drawn from all components' pixels. */
  perComponent: boolean;
  /** `random`: uniformly from the pixels (seeded); `skeleton`: evenly spaced along the skeleton. */
  placement: 'random' | 'skeleton';
  /** Negative (background) points added to each group. */
  negatives: number;
}

/** Prompts without ground truth: a point grid whose selected masks are united, or one box. */
export interface AutoPromptConfig {
  kind: 'auto';
  mode: 'grid' | 'box';
  /** Grid points per side (grid mode). */
  pointsPerSide: number;
  /** The grid's mask selection thresholds (grid mode). */
  filter: { iouThreshold: number; stabilityThreshold: number; boxNmsThreshold: number };
}

export type PromptConfig = BoxPromptConfig | PointPromptConfig | AutoPromptConfig;

/** The grid config with the official generator's defaults (`auto`). */
export function defaultAutoConfig(): AutoPromptConfig {
  const { iouThreshold, stabilityThreshold, boxNmsThreshold } = DEFAULT_AUTO_FILTER;
  return {
    kind: 'auto',
    mode: 'grid',
    pointsPerSide: DEFAULT_POINTS_PER_SIDE,
    filter: { iouThreshold, stabilityThreshold, boxNmsThreshold },
  };
}

/** Grammar keys of the grid's settings, with their config fields. */
const AUTO_OPTIONS = {
  iou: 'iouThreshold',
  stability: 'stabilityThreshold',
  nms: 'boxNmsThreshold',
} as const;

/**
 * The folder name: `bbox_prompt`, `points_3`, `points_3_per_component_skeleton_neg2`, `auto`,
 * `auto_box`, `auto_side16_iou0.5`, ...
 */
export function promptConfigName(config: PromptConfig): string {
  if (config.kind === 'auto') {
    if (config.mode === 'box') return 'auto_box';
    const defaults = defaultAutoConfig();
    return [
      'auto',
      ...(config.pointsPerSide !== defaults.pointsPerSide ? [`side${config.pointsPerSide}`] : []),
      ...Object.entries(AUTO_OPTIONS)
        .filter(([, field]) => config.filter[field] !== defaults.filter[field])
        .map(([key, field]) => `${key}${config.filter[field]}`),
    ].join('_');
  }
  if (config.kind === 'bbox') {
    return config.expandRatio === DEFAULT_EXPAND_RATIO
      ? 'bbox_prompt'
      : `bbox_prompt_expand${config.expandRatio}`;
  }
  return [
    `points_${config.count}`,
    ...(config.perComponent ? ['per_component'] : []),
    ...(config.placement === 'skeleton' ? ['skeleton'] : []),
    ...(config.negatives > 0 ? [`neg${config.negatives}`] : []),
  ].join('_');
}

function parseCount(text: string, what: string, least: number, item: string): number {
  if (!/^\d+$/.test(text) || Number(text) < least) {
    throw new Error(
      `prompt config '${item}': ${what} must be an integer ≥ ${least}, got '${text}'`,
    );
  }
  return Number(text);
}

/** Parses one config of the grammar above. */
export function parsePromptConfig(item: string): PromptConfig {
  const [kind, ...options] = item.trim().split(':');
  if (kind === 'bbox') {
    if (options.length === 0) return { kind: 'bbox', expandRatio: DEFAULT_EXPAND_RATIO };
    const match = options.length === 1 ? /^expand=(.+)$/.exec(options[0]!) : null;
    const ratio = Number(match?.[1]);
    if (!match || !/^\d*\.?\d+$/.test(match[1]!) || !Number.isFinite(ratio)) {
      throw new Error(
        `prompt config '${item}': expected 'bbox' or 'bbox:expand=RATIO' (RATIO ≥ 0)`,
      );
    }
    return { kind: 'bbox', expandRatio: ratio };
  }
  if (kind === 'points') {
    const [count, ...rest] = options;
    if (count === undefined)
      throw new Error(`prompt config '${item}': expected 'points:COUNT[:option...]'`);
    const config: PointPromptConfig = {
      kind: 'points',
      count: parseCount(count, 'COUNT', 1, item),
      perComponent: false,
      placement: 'random',
      negatives: 0,
    };
    const seen = new Set<string>();
    for (const option of rest) {
      const key = option.split('=')[0]!;
      if (seen.has(key)) throw new Error(`prompt config '${item}': option '${key}' given twice`);
      seen.add(key);
      if (option === 'per_component') config.perComponent = true;
      else if (option === 'skeleton') config.placement = 'skeleton';
      else if (key === 'neg') config.negatives = parseCount(option.slice(4), 'neg', 0, item);
      else
        throw new Error(
          `prompt config '${item}': unknown option '${option}' (per_component, skeleton, neg=N)`,
        );
    }
    return config;
  }
  if (kind === 'auto') return parseAutoConfig(item, options);
  throw new Error(
    `prompt config '${item}': expected 'bbox[:expand=R]', 'points:N[:per_component][:skeleton][:neg=K]' or 'auto[:box|:side=N][:iou=T][:stability=T][:nms=T]'`,
  );
}

function parseAutoConfig(item: string, options: string[]): AutoPromptConfig {
  const config = defaultAutoConfig();
  if (options.length === 1 && options[0] === 'box') return { ...config, mode: 'box' };
  const seen = new Set<string>();
  for (const option of options) {
    const [key, value] = option.split('=') as [string, string | undefined];
    if (seen.has(key)) throw new Error(`prompt config '${item}': option '${key}' given twice`);
    seen.add(key);
    if (key === 'side' && value !== undefined) {
      config.pointsPerSide = parseCount(value, 'side', 1, item);
    } else if (key in AUTO_OPTIONS && value !== undefined) {
      const ratio = Number(value);
      if (!/^\d*\.?\d+$/.test(value) || !(ratio <= 1)) {
        throw new Error(
          `prompt config '${item}': ${key} must be a number in [0, 1], got '${value}'`,
        );
      }
      config.filter[AUTO_OPTIONS[key as keyof typeof AUTO_OPTIONS]] = ratio;
    } else {
      throw new Error(
        `prompt config '${item}': unknown option '${option}' (box alone, or side=N, iou=T, stability=T, nms=T)`,
      );
    }
  }
  return config;
}

/** Parses a comma-separated list, e.g. `bbox,points:1,points:3,points:5`; names must be distinct. */
export function parsePromptConfigs(spec: string): PromptConfig[] {
  const configs = spec.split(',').map(parsePromptConfig);
  const names = configs.map(promptConfigName);
  const repeated = names.find((name, i) => names.indexOf(name) !== i);
  if (repeated) throw new Error(`prompt configs '${spec}': '${repeated}' appears twice`);
  return configs;
}
