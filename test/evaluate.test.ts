/**
 * evaluate() end to end on CPU: the `test` model with random weights on 6 synthetic 160x96
 * images. Masks equal the Python reference pixel for pixel and metrics a numpy computation; a
 * multi-config run equals separate runs; skip flags; bad inputs; abort.
 */
import t from 'tap';
import { mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { binding } from '../ts/binding.js';
import { readDataset, type Sample } from '../ts/data/dataset.js';
import { evaluate, type EvaluateOptions } from '../ts/evaluate/evaluate.js';
import { exportModel } from '../ts/model/export.js';
import { loadModel, type SamModel } from '../ts/model/load.js';
import { parsePromptConfigs } from '../ts/prompts/config.js';
import { buildPrompts } from '../ts/prompts/prompts.js';
import { readMaskPng } from '../ts/report/predictions.js';
import { readSummary } from '../ts/report/summary.js';
import { synthesizeDataset } from '../ts/synth/synthesize.js';
import { runPython } from './helpers/python.js';

const referenceScript = fileURLToPath(new URL('reference/predict_reference.py', import.meta.url));
const root = await mkdtemp(join(tmpdir(), 'crackseg-evaluate-'));
t.teardown(() => rm(root, { recursive: true, force: true }));
const modelPath = join(root, 'model.pt');
const dataRoot = join(root, 'data');
await exportModel({
  config: 'test',
  seed: 1,
  out: modelPath,
});
/** The six-image synthetic test set the cases here start from (a fresh copy per folder). */
function writeTestSet(out: string) {
  return synthesizeDataset({ out, train: 0, val: 0, test: 6, width: 160, height: 96, seed: 5 });
}
await writeTestSet(dataRoot);
const model: SamModel = await loadModel({ path: modelPath, device: 'cpu' });
t.teardown(() => model.module.dispose());
const samples: Sample[] = [];
for await (const sample of readDataset({ root: dataRoot, listFile: 'test.txt' }))
  samples.push(sample);

const base = {
  model,
  dataRoot,
  listFile: 'test.txt',
  batchSize: 4,
  seed: 9,
  workers: 0,
} satisfies Partial<EvaluateOptions>;

interface Row {
  [column: string]: string;
}

async function readCsv(path: string): Promise<Row[]> {
  const [header, ...lines] = (await readFile(path, 'utf8')).trim().split('\n');
  const columns = header!.split(',');
  return lines.map((line) => Object.fromEntries(line.split(',').map((v, i) => [columns[i]!, v])));
}

t.test('end to end: every output, masks and metrics equal the reference', async (t) => {
  const outputDir = join(root, 'all');
  const progress: number[] = [];
  const result = await evaluate({
    ...base,
    prompts: parsePromptConfigs('bbox,points:1,points:3'),
    outputDir,
    numVis: 2,
    workers: 2,
    saveProbabilities: 16,
    onProgress: (p) => progress.push(p.done),
  });
  t.equal(result.images, 6);
  t.equal(result.aborted, false);
  t.same(progress, [4, 6]);
  t.same(
    result.configs.map((c) => c.name),
    ['bbox_prompt', 'points_1', 'points_3'],
  );
  t.ok(existsSync(join(outputDir, 'report.html')));

  for (const config of result.configs) {
    const dir = join(outputDir, config.name);
    for (const file of ['evaluation_results.csv', 'evaluation_summary.json']) {
      t.ok(existsSync(join(dir, file)), `${config.name}/${file}`);
    }
    t.equal((await readdir(join(dir, 'predictions'))).length, 6);
    t.equal((await readdir(join(dir, 'probabilities'))).length, 6);
    const summary = await readSummary(dir);
    // numVis 2: overlay and figure of the 2 best and 2 worst images with cracks and of the 2
    // worst crack-free ones, nothing else.
    const { best, worst, crackFree } = summary.extremes;
    const shown = new Set([...best, ...worst, ...crackFree].map((x) => x.imageId));
    t.same(
      (await readdir(join(dir, 'visualizations'))).sort(),
      [...shown].flatMap((id) => [`${id}_figure.png`, `${id}_overlay.png`]).sort(),
      `${config.name}: overlays and figures of the best and worst`,
    );
    t.equal(summary.extremes.best.length, 2);
    if (config.name === 'bbox_prompt') {
      // The extremes' figures, drawn at the end from inputs read again, are those drawn at once
      // when every image gets a figure.
      const everyDir = join(root, 'all-figures');
      await evaluate({ ...base, prompts: [config.config], outputDir: everyDir, numVis: 'all' });
      for (const id of shown) {
        for (const kind of ['figure', 'overlay']) {
          const file = join('visualizations', `${id}_${kind}.png`);
          t.same(
            await readFile(join(dir, file)),
            await readFile(join(everyDir, config.name, file)),
            `${id} ${kind}`,
          );
        }
      }
    }
    t.equal(summary.complete, true);
    t.equal(summary.counts.evaluated, 6);
    t.ok(summary.sweep, 'ODS/OIS from probability maps');

    // Reference: same prompts, same batches ([0..3], [4, 5]), Python predictor + numpy metrics.
    const prompts = samples.map((s) => buildPrompts(s.mask, config.config, { seed: 9, key: s.id }));
    t.equal(
      summary.counts.noPrompt,
      prompts.filter((p) => p.boxes.length + p.points.length === 0).length,
    );
    const batches = [samples.slice(0, 4), samples.slice(4)].map((batch) =>
      batch.map((s) => ({
        width: s.image.width,
        height: s.image.height,
        image: Buffer.from(s.image.data).toString('base64'),
        mask: Buffer.from(s.mask.data).toString('base64'),
        ...prompts[s.index]!,
      })),
    );
    const requestPath = join(root, `${config.name}.json`);
    await writeFile(requestPath, JSON.stringify({ model: modelPath, batches }));
    const reference = JSON.parse(await runPython(referenceScript, [requestPath])) as Array<{
      mask: string;
      metrics: Record<string, number>;
    }>;
    const rows = await readCsv(join(dir, 'evaluation_results.csv'));
    t.same(
      rows.map((r) => r.image_id),
      samples.map((s) => s.id),
      'rows in list order',
    );
    t.ok(
      rows.some((r) => Number(r.predicted_pixels) > 0),
      'the random model predicts some crack pixels, so the comparison means something',
    );
    for (const [i, sample] of samples.entries()) {
      const saved = await readMaskPng(join(dir, 'predictions', `${sample.id}.png`));
      const expected = Buffer.from(reference[i]!.mask, 'base64');
      t.equal(saved.data.filter((v, k) => v !== expected[k]).length, 0, `${sample.id} mask`);
      for (const [key, value] of Object.entries(reference[i]!.metrics)) {
        t.ok(Math.abs(Number(rows[i]![key]) - value) <= 1e-6, `${config.name} ${sample.id} ${key}`);
      }
    }
  }
});

t.test('a multi-config run equals separate runs', async (t) => {
  // The joint run prepared its samples in a worker thread, these on the JS thread.
  const together = join(root, 'all');
  for (const spec of ['bbox', 'points:3']) {
    const outputDir = join(root, `alone-${spec.replace(':', '')}`);
    const prompts = parsePromptConfigs(spec);
    const [config] = (await evaluate({ ...base, prompts, outputDir, numVis: 0, loadWorkers: 0 }))
      .configs;
    const alone = await readCsv(join(config!.dir, 'evaluation_results.csv'));
    t.notOk(existsSync(join(config!.dir, 'probabilities')), 'probability maps only on request');
    const joint = await readCsv(join(together, config!.name, 'evaluation_results.csv'));
    const metricsOnly = (rows: Row[]) => rows.map(({ batch_ms_per_image: _ms, ...rest }) => rest);
    t.same(metricsOnly(alone), metricsOnly(joint), spec);
    for (const sample of samples) {
      const file = join('predictions', `${sample.id}.png`);
      const [a, b] = await Promise.all([
        readMaskPng(join(config!.dir, file)),
        readMaskPng(join(together, config!.name, file)),
      ]);
      t.same(a.data, b.data, `${spec} ${sample.id}`);
    }
  }
});

t.test('skip flags', async (t) => {
  const outputDir = join(root, 'skips');
  const prompts = parsePromptConfigs('bbox');
  const predicted = (
    await evaluate({ ...base, prompts, outputDir: join(root, 'skips-predicted'), numVis: 0 })
  ).configs[0]!.summary!;
  await evaluate({
    ...base,
    prompts,
    outputDir,
    skip: { evaluation: true },
    saveProbabilities: 16,
  });
  const dir = join(outputDir, 'bbox_prompt');
  t.equal((await readdir(join(dir, 'predictions'))).length, 6);
  t.notOk(existsSync(join(dir, 'evaluation_results.csv')), 'skip.evaluation: no metrics');
  t.notOk(existsSync(join(outputDir, 'report.html')));

  // Re-score what skip.evaluation saved, without a model, and without figures.
  const rescored = await evaluate({
    ...base,
    model: undefined,
    prompts,
    outputDir,
    skip: { inference: true, visualization: true },
  });
  const summary = rescored.configs[0]!.summary!;
  t.equal(summary.counts.evaluated, 6);
  t.same(summary.metrics, predicted.metrics, 'same metrics as predicting');
  t.ok(Math.abs(summary.sweep!.ods.f - predicted.sweep!.ods.f) < 1e-3, 'ODS from saved maps');
  // Predictions saved without their maps (the default) re-score without ODS/OIS.
  const withoutMaps = await evaluate({
    ...base,
    model: undefined,
    prompts,
    outputDir: join(root, 'skips-predicted'),
    skip: { inference: true, visualization: true },
  });
  t.same(withoutMaps.configs[0]!.summary!.metrics, predicted.metrics);
  t.equal(withoutMaps.configs[0]!.summary!.sweep, null, 'no maps saved: no ODS/OIS');
  t.notOk(existsSync(join(dir, 'visualizations')), 'skip.visualization: no figures');
  t.ok(existsSync(join(outputDir, 'report.html')));

  await t.rejects(evaluate({ ...base, model: undefined, prompts, outputDir }), /needs a model/);
  await t.rejects(
    evaluate({ ...base, prompts, outputDir, skip: { inference: true, evaluation: true } }),
    /nothing to do/,
  );
  await t.rejects(
    evaluate({
      ...base,
      model: undefined,
      prompts,
      outputDir: join(root, 'nothing-saved'),
      skip: { inference: true },
    }),
    /cannot read saved predictions/,
  );
  t.notOk(existsSync(join(root, 'nothing-saved')), 'nothing written when re-scoring cannot start');

  // Re-scoring with a prediction missing: with skipBad it is a skip like any other.
  await rm(join(dir, 'predictions', `${samples[3]!.id}.png`));
  const partial = await evaluate({
    ...base,
    model: undefined,
    prompts,
    outputDir,
    skip: { inference: true, visualization: true },
    skipBad: true,
  });
  t.equal(partial.images, 5, 'the image without a prediction is not counted as done');
  t.equal(partial.skipped.length, 1);
  t.match(partial.skipped[0], {
    id: samples[3]!.id,
    listFile: 'test.txt',
    line: samples[3]!.line,
    category: 'missing prediction',
    promptConfig: 'bbox_prompt',
  });
  const partialSummary = partial.configs[0]!.summary!;
  t.equal(partialSummary.counts.evaluated, 5);
  t.equal(partialSummary.counts.skipped, 1);
  t.same(partialSummary.counts.skippedByReason, { 'missing prediction': 1 });
  t.match(partialSummary.skipped[0]!.reason, /cannot read saved prediction/);
});

t.test('a run that cannot start leaves earlier results untouched', async (t) => {
  const outputDir = join(root, 'rerun');
  const prompts = parsePromptConfigs('bbox');
  await evaluate({ ...base, prompts, outputDir, numVis: 0 });
  const csv = join(outputDir, 'bbox_prompt', 'evaluation_results.csv');
  const summaryFile = join(outputDir, 'bbox_prompt', 'evaluation_summary.json');
  const before = [await readFile(csv, 'utf8'), await readFile(summaryFile, 'utf8')];
  t.equal((await readCsv(csv)).length, 6);

  await t.rejects(evaluate({ ...base, prompts, outputDir, listFile: join(root, 'missing.txt') }), {
    code: 'ENOENT',
  });
  const malformed = join(root, 'malformed.txt');
  await writeFile(
    malformed,
    `${samples[0]!.imagePath} ${samples[0]!.maskPath}
only_one_field
`,
  );
  await t.rejects(
    evaluate({ ...base, prompts, outputDir, listFile: malformed }),
    /malformed\.txt:2: expected 'image_path mask_path'/,
  );
  const empty = join(root, 'empty.txt');
  await writeFile(empty, '# nothing\n');
  await t.rejects(evaluate({ ...base, prompts, outputDir, listFile: empty }), /no entries/);
  await t.rejects(evaluate({ ...base, prompts, outputDir, numVis: -1 }), /numVis/);
  t.same(
    [await readFile(csv, 'utf8'), await readFile(summaryFile, 'utf8')],
    before,
    'CSV and summary as they were',
  );
});

t.test('bad inputs in the middle of a run', async (t) => {
  const badRoot = join(root, 'bad');
  await writeTestSet(badRoot);
  const list = (await readFile(join(badRoot, 'test.txt'), 'utf8')).trim().split('\n');
  const [image2] = list[2]!.split(/\s+/);
  const [, mask4] = list[4]!.split(/\s+/);
  await writeFile(join(badRoot, image2!), 'not a jpeg');
  await rm(join(badRoot, mask4!));
  const prompts = parsePromptConfigs('bbox,points:1');

  const skipped = await evaluate({
    ...base,
    dataRoot: badRoot,
    prompts,
    outputDir: join(root, 'bad-skip'),
    batchSize: 2,
    skipBad: true,
  });
  t.equal(skipped.images, 4);
  t.same(
    skipped.skipped.map((s) => [s.id, s.line, s.category]),
    [
      [samples[2]!.id, 3, 'cannot decode image'],
      [samples[4]!.id, 5, 'missing file'],
    ],
    'skip records carry the entry id, line and category',
  );
  for (const config of skipped.configs) {
    t.equal(config.summary!.counts.evaluated, 4);
    t.equal(config.summary!.counts.skipped, 2);
    t.same(config.summary!.counts.skippedByReason, {
      'cannot decode image': 1,
      'missing file': 1,
    });
    t.match(config.summary!.skipped[1], { path: mask4, listFile: 'test.txt', line: 5 });
    t.equal((await readCsv(join(config.dir, 'evaluation_results.csv'))).length, 4);
  }

  const outputDir = join(root, 'bad-fail');
  await t.rejects(
    evaluate({ ...base, dataRoot: badRoot, prompts, outputDir, batchSize: 2 }),
    /test\.txt:3: cannot decode image/,
  );
  // What finished before the bad image is written and finalised.
  for (const name of ['bbox_prompt', 'points_1']) {
    const summary = await readSummary(join(outputDir, name));
    t.equal(summary.counts.evaluated, 2, name);
    t.equal(summary.complete, false);
    t.match(summary.metadata.error, /cannot decode image/);
    t.equal((await readCsv(join(outputDir, name, 'evaluation_results.csv'))).length, 2);
  }
});

t.test('the good images before a bad one are written even mid-batch', async (t) => {
  // Line 4 (index 3) is the second image of the batch [2, 3]: image 2 is read, then 3 fails.
  const midRoot = join(root, 'mid');
  await writeTestSet(midRoot);
  const list = (await readFile(join(midRoot, 'test.txt'), 'utf8')).trim().split('\n');
  await rm(join(midRoot, list[3]!.split(/\s+/)[0]!));
  const outputDir = join(root, 'mid-out');
  await t.rejects(
    evaluate({
      ...base,
      dataRoot: midRoot,
      prompts: parsePromptConfigs('bbox'),
      outputDir,
      batchSize: 2,
    }),
    /test\.txt:4: cannot read image/,
  );
  const summary = await readSummary(join(outputDir, 'bbox_prompt'));
  t.equal(summary.counts.evaluated, 3, 'images 0, 1 and 2');
  t.equal(summary.complete, false);
  t.match(summary.metadata.error, /test\.txt:4: cannot read image/);
  const rows = await readCsv(join(outputDir, 'bbox_prompt', 'evaluation_results.csv'));
  t.same(
    rows.map((r) => r.image_id),
    samples.slice(0, 3).map((s) => s.id),
  );
});

t.test('image ids outside [A-Za-z0-9_.-] are written under encoded names', async (t) => {
  const oddRoot = join(root, 'odd');
  await synthesizeDataset({
    out: oddRoot,
    train: 0,
    val: 0,
    test: 2,
    width: 160,
    height: 96,
    seed: 5,
  });
  const list = (await readFile(join(oddRoot, 'test.txt'), 'utf8')).trim().split('\n');
  const [image0, mask0] = list[0]!.split(/\s+/);
  const renamed = image0!.replace(/[^/]+\.jpg$/, 'crack(1).jpg');
  await rename(join(oddRoot, image0!), join(oddRoot, renamed));
  list[0] = `${renamed} ${mask0}`;
  await writeFile(join(oddRoot, 'test.txt'), list.join('\n'));
  const outputDir = join(root, 'odd-out');
  const result = await evaluate({
    ...base,
    dataRoot: oddRoot,
    prompts: parsePromptConfigs('bbox'),
    outputDir,
    numVis: 'all',
  });
  t.equal(result.images, 2);
  const dir = result.configs[0]!.dir;
  t.ok(existsSync(join(dir, 'predictions', 'crack%281%29.png')));
  t.ok(existsSync(join(dir, 'visualizations', 'crack%281%29_overlay.png')), "numVis 'all'");
  t.equal((await readdir(join(dir, 'visualizations'))).length, 4, 'overlay + figure each');
  const rows = await readCsv(join(dir, 'evaluation_results.csv'));
  t.equal(rows[0]!.image_id, 'crack(1)');
});

t.test('abort stops after the batch in progress with valid, complete files', async (t) => {
  const outputDir = join(root, 'aborted');
  const controller = new AbortController();
  const result = await evaluate({
    ...base,
    prompts: parsePromptConfigs('bbox,points:1'),
    outputDir,
    // One image a batch: the abort (at the first progress) lands with two batches started.
    batchSize: 1,
    numVis: 1,
    signal: controller.signal,
    onProgress: () => controller.abort(),
  });
  t.equal(result.aborted, true);
  t.ok(result.images >= 2 && result.images < 6, `stopped early (${result.images} images)`);
  for (const config of result.configs) {
    const summary = await readSummary(config.dir);
    t.equal(summary.counts.evaluated, result.images);
    t.equal(summary.metadata.aborted, true);
    t.equal(summary.complete, false, 'the summary says the run is partial');
    const rows = await readCsv(join(config.dir, 'evaluation_results.csv'));
    t.equal(rows.length, result.images);
    for (const row of rows) t.ok(existsSync(join(config.dir, row.prediction_path!)));
  }
  t.ok(existsSync(join(outputDir, 'report.html')));
});

t.test('config-folder layout writes into the given folder, and nothing outside', async (t) => {
  const parent = join(root, 'results');
  const outputDir = join(parent, 'my_bbox');
  // A sibling folder with another tool's summary must not disturb the run.
  await mkdir(join(parent, 'foreign'), { recursive: true });
  await writeFile(join(parent, 'foreign', 'evaluation_summary.json'), '{"not": "ours"}');
  const result = await evaluate({
    ...base,
    prompts: parsePromptConfigs('bbox'),
    outputDir,
    layout: 'config-folder',
    numVis: 0,
  });
  t.equal(result.configs[0]!.dir, outputDir);
  t.equal((await readSummary(outputDir)).promptConfig, 'bbox_prompt', 'the config keeps its name');
  t.ok(existsSync(join(outputDir, 'report.html')), 'report.html inside --output-dir');
  t.notOk(existsSync(join(parent, 'report.html')), 'nothing written beside it');
  const html = await readFile(join(outputDir, 'report.html'), 'utf8');
  t.match(html, /Prompt config: bbox_prompt/);
  await t.rejects(
    evaluate({
      ...base,
      prompts: parsePromptConfigs('bbox,points:1'),
      outputDir,
      layout: 'config-folder',
    }),
    /exactly one prompt config/,
  );
});

// Last: every run above — finished, aborted, failed on a bad file, skipping evaluation — took or
// released each prediction it held natively.
t.test('no prediction is left held in native memory, whatever ended a run', async (t) => {
  t.equal(binding().heldTensorCount(), 0);
});
