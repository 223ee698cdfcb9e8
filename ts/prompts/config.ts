/**
 * Prompt configurations: what prompt SAM gets per image, the stable folder name of each (results
 * go to `results/<name>/`, as in the Python seed project's `results/bbox_prompt/`), and the CLI
 * spelling. Grammar (docs/data.md):
 *
 *     configs := config ("," config)*
 *     config  := "bbox" [":expand=" RATIO]
 *              | "points:" COUNT (":" option)*
 *     option  := "per_component" | "skeleton" | "neg=" COUNT
 *
 * e.g. `bbox,points:1,points:3:per_component,points:5:per_component:skeleton:neg=2`.
 */

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

export type PromptConfig = BoxPromptConfig | PointPromptConfig;

/** The folder name: `bbox_prompt`, `points_3`, `points_3_per_component_skeleton_neg2`, ... */
export function promptConfigName(config: PromptConfig): string {
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
  throw new Error(
    `prompt config '${item}': expected 'bbox[:expand=R]' or 'points:N[:per_component][:skeleton][:neg=K]'`,
  );
}

/** Parses a comma-separated list, e.g. `bbox,points:1,points:3,points:5`; names must be distinct. */
export function parsePromptConfigs(spec: string): PromptConfig[] {
  const configs = spec.split(',').map(parsePromptConfig);
  const names = configs.map(promptConfigName);
  const repeated = names.find((name, i) => names.indexOf(name) !== i);
  if (repeated) throw new Error(`prompt configs '${spec}': '${repeated}' appears twice`);
  return configs;
}
