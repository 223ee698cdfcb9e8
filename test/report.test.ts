// Report output: files, CSV quoting, summary fields, overlay colours, PNGs, HTML, atomicity.
import t from 'tap';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import sharp from 'sharp';
import type { BinaryMask, ProbabilityMap, RgbImage } from '../ts/image.js';
import { findPython } from '../ts/python.js';
import {
  evaluateImage,
  MASK_METRICS,
  OVERLAY_COLORS,
  RESULT_COLUMNS,
  ReportWriter,
  csvField,
  csvLine,
  errorOverlay,
  predictionPath,
  readMaskPng,
  readProbabilityPng,
  readSummary,
  renderHtmlReport,
  writeHtmlReport,
  writeMaskPng,
  writeProbabilityPng,
  encodeProbabilityPng,
  imageFileStem,
  renderFigure,
  MIN_PANEL_WIDTH,
  type ImageResult,
  type SkipCategory,
} from '../ts/index.js';

const run = promisify(execFile);

async function tempDir(t: { teardown(fn: () => unknown): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'crackseg-report-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A minimal RFC 4180 parser, independent of the writer's code. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      row.push(field);
      field = '';
    } else if (c === '\n') {
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
    } else field += c;
  }
  if (field !== '' || row.length > 0) throw new Error('CSV does not end with a newline');
  return rows;
}

function stripes(width: number, height: number, rows: number[]): BinaryMask {
  const data = new Uint8Array(width * height);
  for (const y of rows) data.fill(1, y * width, (y + 1) * width);
  return { width, height, data };
}

function grey(width: number, height: number, value: number): RgbImage {
  return { width, height, data: new Uint8Array(width * height * 3).fill(value) };
}

function ramp(mask: BinaryMask): ProbabilityMap {
  return {
    width: mask.width,
    height: mask.height,
    data: Float32Array.from(mask.data, (v, i) => (v ? 0.6 + (i % 7) / 20 : (i % 5) / 20)),
  };
}

/** Three images of 40×24: perfect, half found, false alarm on empty ground truth. */
function results(): ImageResult[] {
  const w = 40;
  const h = 24;
  const gt = stripes(w, h, [10, 11, 12]);
  const base = { image: grey(w, h, 100), batchMsPerImage: 12.5, promptCount: 2 };
  const images = [
    {
      ...base,
      imageId: 'img_a',
      imagePath: 'data/a, "quoted".jpg',
      groundTruthPath: 'data/a.png',
      prediction: gt,
      groundTruth: gt,
      probabilities: ramp(gt),
    },
    {
      ...base,
      imageId: 'img_b',
      imagePath: 'data/b.jpg',
      groundTruthPath: 'data/b.png',
      prediction: stripes(w, h, [12, 13, 14]),
      groundTruth: gt,
      probabilities: ramp(stripes(w, h, [12, 13, 14])),
    },
    {
      ...base,
      promptCount: 0,
      imageId: 'img_c',
      imagePath: 'data/c\nnewline.jpg',
      groundTruthPath: 'data/c.png',
      prediction: stripes(w, h, [3]),
      groundTruth: stripes(w, h, []),
      probabilities: ramp(stripes(w, h, [3])),
    },
  ];
  // Scored as the evaluator scores them (its scoring threads run evaluateImage).
  return images.map((image) => ({
    ...image,
    evaluation: evaluateImage(image.prediction, image.groundTruth, {
      probabilities: image.probabilities,
    }),
  }));
}

t.test('CSV fields: quoting only where needed, quotes doubled', async (t) => {
  t.equal(csvField('plain'), 'plain');
  t.equal(csvField('a,b'), '"a,b"');
  t.equal(csvField('say "hi"'), '"say ""hi"""');
  t.equal(csvField('two\nlines'), '"two\nlines"');
  t.equal(csvField(' padded'), '" padded"');
  t.equal(csvField(0.25), '0.25');
  t.equal(csvField(null), '');
  t.equal(csvField(Number.NaN), '');
  t.same(parseCsv(csvLine(['a,b', 'c"d', 'e\nf', 1])), [['a,b', 'c"d', 'e\nf', '1']]);
});

t.test('overlay: TP yellow, FP red, FN green blended at alpha 0.5, TN untouched', async (t) => {
  const image: RgbImage = {
    width: 4,
    height: 1,
    data: Uint8Array.from([100, 50, 0, 100, 50, 0, 100, 50, 0, 100, 50, 0]),
  };
  const prediction: BinaryMask = { width: 4, height: 1, data: Uint8Array.from([1, 1, 0, 0]) };
  const groundTruth: BinaryMask = { width: 4, height: 1, data: Uint8Array.from([1, 0, 1, 0]) };
  const out = errorOverlay(image, prediction, groundTruth);
  // round(v + 0.5·(c − v)): 100→178 (c 255), 50→153 (c 255) / 25 (c 0), 0→128 (c 255) / 0.
  t.same([...out.data.subarray(0, 3)], [178, 153, 0], 'TP → yellow');
  t.same([...out.data.subarray(3, 6)], [178, 25, 0], 'FP → red');
  t.same([...out.data.subarray(6, 9)], [50, 153, 0], 'FN → green');
  t.same([...out.data.subarray(9, 12)], [100, 50, 0], 'TN unchanged');
  t.same(OVERLAY_COLORS.truePositive, [255, 255, 0]);
  t.same([...image.data.subarray(0, 3)], [100, 50, 0], 'the input is not modified');
  t.same(
    [...errorOverlay(image, prediction, groundTruth, 1).data.subarray(0, 6)],
    [255, 255, 0, 255, 0, 0],
  );
});

t.test('masks and probability maps round-trip through PNG', async (t) => {
  const dir = await tempDir(t);
  const mask = stripes(9, 5, [1, 3]);
  const path = predictionPath(dir, 'x');
  await writeMaskPng(path, mask);
  const meta = await sharp(path).metadata();
  t.same([meta.width, meta.height, meta.channels, meta.depth], [9, 5, 1, 'uchar']);
  const raw = await sharp(path).raw().toBuffer();
  t.same(
    [...new Set(raw)].sort((a, b) => a - b),
    [0, 255],
    'stored as 0/255',
  );
  t.same(await readMaskPng(path), mask);

  const map: ProbabilityMap = {
    width: 3,
    height: 2,
    data: Float32Array.from([0, 0.25, 0.5, 1, -1, 2]),
  };
  for (const bits of [8, 16] as const) {
    const file = join(dir, `p${bits}.png`);
    await writeProbabilityPng(file, map, bits);
    const meta = await sharp(file).metadata();
    t.same([meta.channels, meta.depth], [1, bits === 16 ? 'ushort' : 'uchar']);
    const back = await readProbabilityPng(file);
    const scale = bits === 16 ? 65535 : 255;
    const expected = [0, 0.25, 0.5, 1, 0, 1].map((p) => Math.round(p * scale) / scale);
    t.same([...back.data], [...Float32Array.from(expected)], `${bits}-bit`);
  }
});

t.test('probability quantisation rounds half up as Math.round does, NaN to 0', async (t) => {
  // Random float32 values, the exact half steps of both depths and their float32 neighbours.
  const values: number[] = [Number.NaN, -0, Infinity, -Infinity, 1, 0, 1 - 2 ** -24];
  for (let i = 0; i < 20000; i++) values.push(Math.fround(Math.random()));
  for (const scale of [255, 65535])
    for (let k = 0; k < 50; k++) {
      const half = Math.fround((Math.floor(Math.random() * scale) + 0.5) / scale);
      values.push(half, Math.fround(half * (1 + 2 ** -23)), Math.fround(half * (1 - 2 ** -23)));
    }
  const map: ProbabilityMap = { width: values.length, height: 1, data: Float32Array.from(values) };
  for (const bits of [8, 16] as const) {
    const scale = bits === 16 ? 65535 : 255;
    const expected = [...map.data].map((p) =>
      Number.isNaN(p) ? 0 : Math.round(Math.min(1, Math.max(0, p)) * scale),
    );
    const png = sharp(await encodeProbabilityPng(map, bits));
    const raw = await (
      bits === 16
        ? png.toColourspace('grey16').raw({ depth: 'ushort' })
        : png.extractChannel(0).raw()
    ).toBuffer();
    const stored = bits === 16 ? new Uint16Array(raw.buffer, raw.byteOffset, raw.length / 2) : raw;
    t.equal(stored.length, expected.length);
    const wrong = expected.flatMap((v, i) =>
      stored[i] === v ? [] : [[map.data[i], stored[i], v]],
    );
    t.same(wrong.slice(0, 5), [], `${bits}-bit: [p, stored, expected] that differ`);
  }
});

t.test('image ids map to safe, distinct file names (percent-encoding)', async (t) => {
  t.equal(imageFileStem('crack_0001.v2-a'), 'crack_0001.v2-a', 'safe ids are kept');
  t.equal(imageFileStem('crack(1)'), 'crack%281%29');
  t.equal(imageFileStem('../escape'), '%2E.%2Fescape');
  t.equal(imageFileStem('.hidden'), '%2Ehidden');
  t.equal(imageFileStem('a b'), 'a%20b');
  t.equal(imageFileStem('50%'), '50%25', 'a literal % is encoded, so encoding is injective');
  t.equal(imageFileStem('é'), '%C3%A9', 'UTF-8 bytes');
  t.not(imageFileStem('a(1)'), imageFileStem('a%281%29'));
  t.throws(() => imageFileStem(''), /empty/);
  const dir = await tempDir(t);
  t.equal(predictionPath(dir, '../x'), join(dir, 'predictions', '%2E.%2Fx.png'));

  const writer = await ReportWriter.open(dir, 'bbox', { extremes: 1, saveProbabilities: 8 });
  const [first] = results();
  await writer.add({ ...first!, imageId: 'crack(1) ü' });
  const summary = await writer.finish();
  const configDir = join(dir, 'bbox');
  const stem = 'crack%281%29%20%C3%BC';
  t.same(await readdir(join(configDir, 'predictions')), [`${stem}.png`]);
  t.same(await readdir(join(configDir, 'probabilities')), [`${stem}.png`]);
  t.same((await readdir(join(configDir, 'visualizations'))).sort(), [
    `${stem}_figure.png`,
    `${stem}_overlay.png`,
  ]);
  const [header, row] = parseCsv(await readFile(join(configDir, 'evaluation_results.csv'), 'utf8'));
  t.equal(row![header!.indexOf('image_id')], 'crack(1) ü', 'the CSV keeps the real id');
  t.equal(row![header!.indexOf('prediction_path')], join('predictions', `${stem}.png`));
  t.equal(summary.extremes.best[0]!.figure, join('visualizations', `${stem}_figure.png`));
});

t.test('a failed write leaves the existing file as it was, and no temp files', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'keep.png');
  await writeFile(path, 'previous');
  const broken: BinaryMask = { width: 4, height: 4, data: new Uint8Array(3) };
  await t.rejects(writeMaskPng(path, broken));
  t.equal(await readFile(path, 'utf8'), 'previous');
  // A rename onto a non-empty folder fails after the temp file was written.
  await writeMaskPng(join(dir, 'folder', 'inside.png'), stripes(2, 2, [0]));
  await t.rejects(writeMaskPng(join(dir, 'folder'), stripes(2, 2, [0])));
  t.same((await readdir(dir)).sort(), ['folder', 'keep.png']);
});

t.test('the report writer', async (t) => {
  const dir = await tempDir(t);
  const writer = await ReportWriter.open(dir, 'bbox_2pts', {
    flushEvery: 2,
    extremes: 2,
    saveProbabilities: 16,
    metadata: { model: { name: 'sam2.1_hiera_tiny' }, promptConfig: { points: 2 } },
  });
  const configDir = join(dir, 'bbox_2pts');
  const inputs = results();

  t.test('files exist and are valid from the start', async (t) => {
    t.same(parseCsv(await readFile(join(configDir, 'evaluation_results.csv'), 'utf8')), [
      [...RESULT_COLUMNS],
    ]);
    t.equal((await readSummary(configDir)).complete, false);
  });

  // Overlapping adds are fine.
  await Promise.all([writer.add(inputs[0]!), writer.add(inputs[1]!)]);
  t.test('after a flush, the CSV on disk holds the rows so far', async (t) => {
    const rows = parseCsv(await readFile(join(configDir, 'evaluation_results.csv'), 'utf8'));
    t.equal(rows.length, 3);
    const summary = await readSummary(configDir);
    t.equal(summary.complete, false);
    t.equal(summary.counts.evaluated, 2);
  });
  await writer.add(inputs[2]!);
  const skip = (id: string, line: number, category: SkipCategory, reason: string) =>
    writer.skip({ id, listFile: 'test.txt', line, path: `data/${id}.jpg`, category, reason });
  skip('img_d', 4, 'missing file', "cannot read image 'data/img_d.jpg': ENOENT");
  skip('img_e', 5, 'missing file', "cannot read image 'data/img_e.jpg': ENOENT");
  skip('img_f', 6, 'cannot decode image', "cannot decode image 'data/img_f.jpg': bad");
  const summary = await writer.finish({ timings: { totalSeconds: 1.5 } });

  t.test('CSV: header, one row per image, quoting survives', async (t) => {
    const text = await readFile(join(configDir, 'evaluation_results.csv'), 'utf8');
    const [header, ...rows] = parseCsv(text);
    t.same(header, RESULT_COLUMNS);
    t.equal(rows.length, 3);
    const column = (name: string) => header!.indexOf(name);
    t.same(rows.map((r) => r[column('image_id')]).sort(), ['img_a', 'img_b', 'img_c']);
    rows.sort((a, b) => (a[column('image_id')]! < b[column('image_id')]! ? -1 : 1));
    t.equal(rows[0]![column('image_path')], 'data/a, "quoted".jpg');
    t.equal(rows[2]![column('image_path')], 'data/c\nnewline.jpg');
    t.equal(rows[0]![column('prompt_config')], 'bbox_2pts');
    t.equal(Number(rows[0]![column('iou')]), 1);
    t.equal(Number(rows[1]![column('iou')]), 0.2, '1 row of 5 overlaps');
    t.equal(Number(rows[2]![column('num_prompts')]), 0);
    t.equal(rows[1]![column('prediction_path')], join('predictions', 'img_b.png'));
    for (const m of MASK_METRICS) t.ok(column(m.column) >= 0, `column ${m.column}`);

    // Python's csv module reads the same fields back.
    const { executable } = await findPython();
    const script =
      'import csv,sys,json; print(json.dumps(list(csv.reader(open(sys.argv[1], newline="")))))';
    const { stdout } = await run(executable, [
      '-c',
      script,
      join(configDir, 'evaluation_results.csv'),
    ]);
    t.same(JSON.parse(stdout), parseCsv(text));
  });

  t.test('summary JSON', async (t) => {
    const onDisk = await readSummary(configDir);
    t.same(JSON.parse(JSON.stringify(summary)), onDisk, 'returned summary is what was written');
    t.equal(onDisk.complete, true);
    t.equal(onDisk.promptConfig, 'bbox_2pts');
    t.same(onDisk.metadata, { model: { name: 'sam2.1_hiera_tiny' }, promptConfig: { points: 2 } });
    t.same(onDisk.timings, { totalSeconds: 1.5 });
    t.same(onDisk.counts, {
      images: 6,
      evaluated: 3,
      emptyGroundTruth: 1,
      emptyPrediction: 0,
      noPrompt: 1,
      skipped: 3,
      skippedByReason: { 'missing file': 2, 'cannot decode image': 1 },
    });
    t.same(onDisk.skipped[2], {
      id: 'img_f',
      listFile: 'test.txt',
      line: 6,
      path: 'data/img_f.jpg',
      category: 'cannot decode image',
      reason: "cannot decode image 'data/img_f.jpg': bad",
    });
    t.equal(onDisk.metrics.iou.mean, (1 + 0.2 + 0) / 3);
    t.equal(onDisk.metrics.iou.median, 0.2);
    // Pooled: TP 120 + 40, FP 0 + 80 + 40, FN 0 + 80.
    t.equal(onDisk.metrics.iou.pooled, 160 / (160 + 120 + 80));
    t.ok(onDisk.sweep && onDisk.sweep.ods.f > 0 && onDisk.sweep.ois > 0, 'ODS/OIS present');
    t.same(onDisk.sweep!.thresholds, { first: 0.01, last: 0.99, step: 0.01 });
    t.same(
      onDisk.extremes.best.map((x) => x.imageId),
      ['img_a', 'img_b'],
    );
    // img_c has no crack: kept apart, not among the worst.
    t.same(
      onDisk.extremes.worst.map((x) => x.imageId),
      ['img_b', 'img_a'],
    );
    t.same(
      onDisk.extremes.crackFree.map((x) => x.imageId),
      ['img_c'],
    );
    t.equal(onDisk.extremes.best[0]!.figure, join('visualizations', 'img_a_figure.png'));
    t.equal(onDisk.batchMsPerImage.total, 37.5);
    t.ok(onDisk.definitions.some((d) => d.key === 'clDice' && d.label === 'clDice'));
  });

  t.test('PNGs decode with the expected sizes', async (t) => {
    for (const id of ['img_a', 'img_b', 'img_c']) {
      const prediction = await sharp(join(configDir, 'predictions', `${id}.png`)).metadata();
      t.same([prediction.width, prediction.height], [40, 24], `${id} prediction`);
      const overlay = await sharp(
        join(configDir, 'visualizations', `${id}_overlay.png`),
      ).metadata();
      t.same([overlay.width, overlay.height, overlay.channels], [40, 24, 3], `${id} overlay`);
      const figure = await sharp(join(configDir, 'visualizations', `${id}_figure.png`)).metadata();
      // 40 px images are enlarged to MIN_PANEL_WIDTH (240) panels: 6×, so 144 px high.
      t.same(
        [figure.width, figure.height],
        [2 * 240 + 24, 68 + 2 * (22 + 144) + 16],
        `${id} figure`,
      );
      t.equal(
        (await sharp(join(configDir, 'probabilities', `${id}.png`)).metadata()).depth,
        'ushort',
      );
    }
    const overlay = await sharp(join(configDir, 'visualizations', 'img_b_overlay.png'))
      .raw()
      .toBuffer();
    const at = (x: number, y: number) => [
      ...overlay.subarray((y * 40 + x) * 3, (y * 40 + x) * 3 + 3),
    ];
    t.same(at(5, 12), [178, 178, 50], 'TP pixel');
    t.same(at(5, 13), [178, 50, 50], 'FP pixel');
    t.same(at(5, 10), [50, 178, 50], 'FN pixel');
    t.same(at(5, 0), [100, 100, 100], 'TN pixel');
    const plots = (await readdir(join(configDir, 'plots'))).sort();
    t.same(
      plots,
      [...MASK_METRICS.map((m) => `${m.column}_histogram.png`), 'best_f_histogram.png'].sort(),
    );
    const histogram = await sharp(join(configDir, 'plots', 'iou_histogram.png')).metadata();
    t.ok(histogram.width > 400 && histogram.height > 200, 'histogram PNG has a chart-sized canvas');
  });

  t.test('no stray temp files', async (t) => {
    for (const sub of ['', 'predictions', 'visualizations', 'plots', 'probabilities']) {
      const names = await readdir(join(configDir, sub));
      t.notOk(
        names.some((n) => n.endsWith('.tmp')),
        `${sub || '.'} has no temp files`,
      );
    }
  });

  await t.rejects(writer.add(inputs[0]!), /already finished/, 'no adds after finish');
});

t.test('HTML report compares labelled evaluations side by side', async (t) => {
  const before = await tempDir(t);
  const after = await tempDir(t);
  for (const [dir, visualizations] of [
    [before, 'all'],
    [after, 'extremes'],
  ] as const) {
    for (const config of ['bbox_0pts', 'bbox_2pts']) {
      const writer = await ReportWriter.open(dir, config, { visualizations, extremes: 1 });
      for (const result of results()) await writer.add(result);
      await writer.finish();
    }
  }
  t.equal(
    (await readdir(join(after, 'bbox_2pts', 'visualizations'))).sort().join(),
    [
      'img_a_figure.png,img_a_overlay.png', // best with cracks
      'img_b_figure.png,img_b_overlay.png', // worst with cracks
      'img_c_figure.png,img_c_overlay.png', // the worst crack-free image
    ].join(),
    "'extremes' draws overlays and figures of only the best, the worst and the crack-free shown",
  );
  const out = join(before, 'report.html');
  await writeHtmlReport(out, [
    { label: 'untrained', outputDir: before },
    { label: 'trained <LoRA>', outputDir: after },
  ]);
  const html = await readFile(out, 'utf8');
  t.match(html, /^<!DOCTYPE html>/);
  t.match(html, /untrained/);
  t.match(html, /trained &lt;LoRA&gt;/, 'labels are escaped');
  t.match(html, /<table>/);
  t.match(html, /Prompt config: bbox_0pts/);
  t.match(html, /Prompt config: bbox_2pts/);
  for (const m of MASK_METRICS) t.ok(html.includes(`>${m.label}<br>`), `summary column ${m.label}`);
  t.match(html, /<svg[^>]*class="marks"/, 'comparison chart inline');
  t.ok((html.match(/src="data:image\/png;base64,/g) ?? []).length >= 16, 'histograms embedded');
  t.ok(
    (html.match(/src="data:image\/jpeg;base64,/g) ?? []).length >= 4,
    'example figures embedded',
  );
  t.notMatch(html, /missing:/);
  t.notMatch(html, /src="(?!data:)/, 'self-contained: no external sources');
  await t.rejects(renderHtmlReport([]), /at least one evaluation/);
});

t.test('HTML report: one config folder, chosen folders, foreign summaries left out', async (t) => {
  const dir = await tempDir(t);
  for (const config of ['bbox_prompt', 'points_1']) {
    const writer = await ReportWriter.open(dir, config, { visualizations: 'none' });
    for (const result of results()) await writer.add(result);
    await writer.finish();
  }
  await mkdir(join(dir, 'foreign'));
  await writeFile(join(dir, 'foreign', 'evaluation_summary.json'), '{"from": "another tool"}');
  await mkdir(join(dir, 'broken'));
  await writeFile(join(dir, 'broken', 'evaluation_summary.json'), '{ half');
  const warnings: string[] = [];
  const onWarning = (m: string) => void warnings.push(m);

  const all = await renderHtmlReport([{ label: 'run', outputDir: dir }], { onWarning });
  t.match(all, /Prompt config: bbox_prompt/);
  t.match(all, /Prompt config: points_1/);
  t.equal(warnings.length, 2, 'one warning per unreadable summary');
  t.match(warnings.join('\n'), /foreign/);

  warnings.length = 0;
  const chosen = await renderHtmlReport([{ label: 'run', outputDir: dir, only: ['points_1'] }], {
    onWarning,
  });
  t.notMatch(chosen, /Prompt config: bbox_prompt/);
  t.match(chosen, /Prompt config: points_1/);
  t.same(warnings, [], 'folders not asked for are not even read');

  const single = await renderHtmlReport([{ label: 'x', outputDir: join(dir, 'bbox_prompt') }]);
  t.match(single, /Prompt config: bbox_prompt/);
  t.notMatch(single, /Prompt config: points_1/, 'a config folder stands for itself only');
});

t.test('HTML report shows as many examples as the summary keeps, at most 10', async (t) => {
  const dir = await tempDir(t);
  const writer = await ReportWriter.open(dir, 'bbox', { visualizations: 'extremes', extremes: 2 });
  for (const result of results()) await writer.add(result);
  await writer.finish();
  const html = await renderHtmlReport([{ label: 'run', outputDir: dir }]);
  const figures = (page: string) => (page.match(/src="data:image\/jpeg;base64,/g) ?? []).length;
  t.equal(figures(html), 5, '2 best + 2 worst + the crack-free one');
  const one = await renderHtmlReport([{ label: 'run', outputDir: dir }], { examples: 1 });
  t.equal(figures(one), 3);
});

t.test('crack-free images are shown apart from the best and worst, with their count', async (t) => {
  const dir = await tempDir(t);
  const writer = await ReportWriter.open(dir, 'bbox', { visualizations: 'extremes', extremes: 3 });
  const [withCrack, partly, falseAlarm] = results();
  const w = 40;
  const h = 24;
  // Crack-free and nothing predicted: IoU 1 by convention, which used to top the best rows.
  const clean = (imageId: string) => {
    const nothing = stripes(w, h, []);
    const probabilities = ramp(nothing);
    const evaluation = evaluateImage(nothing, falseAlarm!.groundTruth!, { probabilities });
    return { ...falseAlarm!, imageId, prediction: nothing, probabilities, evaluation };
  };
  for (const result of [clean('clean_1'), withCrack!, clean('clean_2'), partly!, falseAlarm!])
    await writer.add(result);
  const summary = await writer.finish();
  t.same(
    summary.extremes.best.map((x) => [x.imageId, x.iou]),
    [
      ['img_a', 1],
      ['img_b', 0.2],
    ],
    'only images with cracks are ranked',
  );
  t.same(
    summary.extremes.worst.map((x) => x.imageId),
    ['img_b', 'img_a'],
  );
  t.same(
    summary.extremes.crackFree.map((x) => [x.imageId, x.iou]),
    [
      ['img_c', 0],
      ['clean_1', 1],
      ['clean_2', 1],
    ],
    'crack-free images, worst first',
  );
  t.equal(summary.counts.emptyGroundTruth, 3);
  const html = await renderHtmlReport([{ label: 'run', outputDir: dir }]);
  t.match(html, /Crack-free images: 3 \(IoU 1 when nothing is predicted\)/);
  const bestSection = html.slice(html.indexOf('Best by IoU'), html.indexOf('Worst by IoU'));
  t.notMatch(bestSection, /clean_/, 'no crack-free image among the best');
  t.ok(existsSync(join(dir, 'bbox', 'visualizations', 'clean_1_figure.png')));
});

t.test('figures: text renders and is not clipped, even for narrow images', async (t) => {
  const gt = stripes(160, 96, [40, 41, 42]);
  const input = {
    image: grey(160, 96, 200),
    groundTruth: gt,
    prediction: stripes(160, 96, [41, 42, 43]),
    title: 'CFD_0042_crop — points_5_per_component_skeleton (12 prompts)',
    metrics: Object.fromEntries(MASK_METRICS.map((m) => [m.key, 0.123456])) as Record<
      (typeof MASK_METRICS)[number]['key'],
      number
    >,
  };
  const png = await renderFigure(input);
  const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
  t.ok(info.width >= 2 * MIN_PANEL_WIDTH, `panels enlarged to ${MIN_PANEL_WIDTH} px at least`);
  const dark = (x: number, y: number) => {
    const k = (y * info.width + x) * info.channels;
    return data[k]! < 128 && data[k + 1]! < 128 && data[k + 2]! < 128;
  };
  // The header band (title and metric lines) holds only text on white.
  let darkInHeader = 0;
  let rightmost = -1;
  for (let y = 0; y < 68; y++) {
    for (let x = 0; x < info.width; x++) {
      if (dark(x, y)) {
        darkInHeader++;
        rightmost = Math.max(rightmost, x);
      }
    }
  }
  t.ok(darkInHeader > 500, `text renders (${darkInHeader} dark pixels in the header)`);
  t.ok(rightmost < info.width - 8, `title ends before the right margin (x ${rightmost})`);
  // Overlay caption row (bottom-right): "Overlay" and the TP/FP/FN legend stay inside the figure.
  let legendRight = -1;
  const panelHeight = (info.height - 68 - 2 * 22 - 16) / 2;
  const top = 68 + 22 + panelHeight + 8;
  for (let y = top; y < top + 22; y++) {
    for (let x = 0; x < info.width; x++) if (dark(x, y)) legendRight = Math.max(legendRight, x);
  }
  t.ok(legendRight > info.width / 2, 'the legend is drawn');
  t.ok(legendRight < info.width - 8, `the FN legend is not cut (x ${legendRight})`);
});
