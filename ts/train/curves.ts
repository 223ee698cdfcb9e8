/** `training_curves.png`: training loss and validation IoU/Dice/F1 per epoch (vega-lite). */
import { renderVegaLite, svgToPng } from '../report/plots.js';
import { writeFileAtomic } from '../util/atomic.js';

/** What the chart needs of an epoch. */
export interface CurvePoint {
  epoch: number;
  trainLoss: number;
  val: { iou: number; dice: number; f1: number };
}

/**
 * Renders the two panels (loss; validation metrics, `bestEpoch` marked, as the run chose it) and
 * writes the PNG.
 */
export async function writeTrainingCurves(
  path: string,
  points: readonly CurvePoint[],
  bestEpoch: number | null,
): Promise<void> {
  const loss = points.map((p) => ({ epoch: p.epoch, value: p.trainLoss, series: 'train loss' }));
  const val = points.flatMap((p) => [
    { epoch: p.epoch, value: p.val.iou, series: 'val IoU' },
    { epoch: p.epoch, value: p.val.dice, series: 'val Dice' },
    { epoch: p.epoch, value: p.val.f1, series: 'val F1' },
  ]);
  const best = points.find((p) => p.epoch === bestEpoch);
  const line = (title: string, domain?: [number, number]) => ({
    mark: { type: 'line' as const, point: true },
    encoding: {
      x: {
        field: 'epoch',
        type: 'quantitative' as const,
        title: 'Epoch',
        axis: { tickMinStep: 1 },
      },
      y: {
        field: 'value',
        type: 'quantitative' as const,
        title,
        ...(domain ? { scale: { domain } } : {}),
      },
      color: { field: 'series', type: 'nominal' as const, title: null },
    },
  });
  const svg = await renderVegaLite({
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    background: 'white',
    title: best
      ? `Training (best val IoU ${best.val.iou.toFixed(3)} at epoch ${best.epoch})`
      : 'Training',
    hconcat: [
      { width: 320, height: 200, data: { values: loss }, ...line('Loss') },
      {
        width: 320,
        height: 200,
        layer: [
          { data: { values: val }, ...line('Validation (mean per image)', [0, 1]) },
          ...(best
            ? [
                {
                  data: { values: [{ epoch: best.epoch }] },
                  mark: { type: 'rule' as const, strokeDash: [4, 4], color: '#888' },
                  encoding: { x: { field: 'epoch', type: 'quantitative' as const } },
                },
              ]
            : []),
        ],
      },
    ],
    resolve: { scale: { color: 'independent' } },
    config: { font: 'DejaVu Sans' },
  });
  await writeFileAtomic(path, await svgToPng(svg));
}
