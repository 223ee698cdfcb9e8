/**
 * `crackseg predict`: prompt flags, the image sources (a folder, a list file), and a run end to end
 * on synthetic images with the `test` model: the files written, their sizes, and a mask with a
 * user box equal to the predict() API's.
 */
import t from 'tap';
import { Command } from 'commander';
import { copyFile, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import {
  autoConfig,
  listImages,
  parseBox,
  parsePointGroup,
  register,
  PREDICT_OUTPUTS,
  type PredictedImage,
} from '../ts/cli/predict.js';
import { decodeImage } from '../ts/data/decode.js';
import { exportModel } from '../ts/model/export.js';
import { loadModel } from '../ts/model/load.js';
import { predict } from '../ts/predict.js';
import { readMaskPng } from '../ts/report/predictions.js';
import { synthesizeDataset } from '../ts/synth/synthesize.js';

// Set up before any test runs: the root test ends once its tests are done.
const dir = await mkdtemp(join(tmpdir(), 'crackseg-predict-cli-'));
t.teardown(() => rm(dir, { recursive: true, force: true }));
const data = join(dir, 'data');
await synthesizeDataset({ out: data, train: 0, val: 0, test: 3, width: 96, height: 64, seed: 4 });
const modelPath = join(dir, 'model.pt');
await exportModel({ config: 'test', seed: 3, out: modelPath });

t.test('prompt flags', async (t) => {
  t.same(parseBox('10,20.5,30,40'), [10, 20.5, 30, 40]);
  for (const bad of ['10,20,30', '30,20,10,40', '1,2,3,x', '10,40,30,20'])
    t.throws(() => parseBox(bad), /expected x0,y0,x1,y1/, bad);
  t.same(parsePointGroup('5,6'), { coords: [[5, 6]], labels: [1] });
  t.same(parsePointGroup('5,6;7,8,0'), {
    coords: [
      [5, 6],
      [7, 8],
    ],
    labels: [1, 0],
  });
  for (const bad of ['5', '5,6,2', '5,6;', 'a,b'])
    t.throws(() => parsePointGroup(bad), /expected x,y\[,label\]/, bad);
  t.match(autoConfig(true), { kind: 'auto', mode: 'grid', pointsPerSide: 32 });
  t.match(autoConfig('box'), { kind: 'auto', mode: 'box' });
  t.match(autoConfig('side=4:iou=0.5'), { pointsPerSide: 4, filter: { iouThreshold: 0.5 } });
  t.throws(() => autoConfig('sides=4'), /unknown option/);
});

t.test('images from a folder or a list file', async (t) => {
  const folder = join(dir, 'photos');
  await mkdir(folder);
  for (const name of ['b.JPG', 'a.png', 'notes.txt']) await writeFile(join(folder, name), 'x');
  t.same(await listImages(folder), [join(folder, 'a.png'), join(folder, 'b.JPG')]);
  // A Crack500 list works: the first field, relative to the list file's folder.
  const listed = await listImages(join(data, 'test.txt'));
  t.equal(listed.length, 3);
  t.match(listed[0], new RegExp(`^${data}/testcrop/test_0000\\.jpg$`));
  const empty = join(dir, 'empty');
  await mkdir(empty);
  await t.rejects(listImages(empty), /no image files/);
});

async function run(...args: string[]): Promise<string[]> {
  const program = new Command().exitOverride();
  register(program);
  const lines: string[] = [];
  const [log, error] = [console.log, console.error];
  console.log = (...m: unknown[]) => void lines.push(m.join(' '));
  console.error = () => {};
  try {
    await program.parseAsync(['node', 'crackseg', 'predict', '--model', modelPath, ...args]);
  } finally {
    [console.log, console.error] = [log, error];
  }
  return lines;
}

t.test('prompts: --box/--points or --auto, one of them', async (t) => {
  const images = join(data, 'test.txt');
  await t.rejects(run('--images', images, '--out', join(dir, 'x')), /--box, --points or --auto/);
  await t.rejects(
    run('--images', images, '--box', '1,1,9,9', '--auto', '--out', join(dir, 'x')),
    /not both/,
  );
});

t.test('a user box: masks, probabilities, overlays, equal to predict()', async (t) => {
  const out = join(dir, 'boxed');
  await run(
    '--images',
    join(data, 'test.txt'),
    '--out',
    out,
    '--box',
    '10,8,70,50',
    '--points',
    '30,30',
  );
  const stems = ['test_0000', 'test_0001', 'test_0002'];
  for (const folder of [
    PREDICT_OUTPUTS.masks,
    PREDICT_OUTPUTS.probabilities,
    PREDICT_OUTPUTS.overlays,
  ])
    t.same(
      (await readdir(join(out, folder))).sort(),
      stems.map((s) => `${s}.png`),
      folder,
    );
  const summary = JSON.parse(await readFile(join(out, PREDICT_OUTPUTS.summary), 'utf8')) as {
    images: PredictedImage[];
  };
  t.equal(summary.images.length, 3);
  t.match(summary.images[0], { width: 96, height: 64, prompts: 2, selectedMasks: null });

  const model = await loadModel({ path: modelPath, device: 'cpu' });
  t.teardown(() => model.module.dispose());
  const image = await decodeImage(await readFile(join(data, 'testcrop', 'test_0001.jpg')));
  const [expected] = await predict(
    model,
    [image],
    [{ boxes: [[10, 8, 70, 50]], points: [{ coords: [[30, 30]], labels: [1] }] }],
  );
  const mask = await readMaskPng(join(out, PREDICT_OUTPUTS.masks, 'test_0001.png'));
  t.same([mask.width, mask.height], [96, 64]);
  t.same(mask.data, expected!.mask.data, 'the CLI mask is the API mask');
  t.equal(
    summary.images[1]!.maskPixels,
    expected!.mask.data.reduce((a, b) => a + b, 0),
  );
  for (const folder of [PREDICT_OUTPUTS.probabilities, PREDICT_OUTPUTS.overlays]) {
    const meta = await sharp(join(out, folder, 'test_0001.png')).metadata();
    t.same([meta.width, meta.height], [96, 64], folder);
  }
  // The overlay: predicted pixels blended half-way to magenta, the others as in the image.
  const { data: overlay } = await sharp(join(out, PREDICT_OUTPUTS.overlays, 'test_0001.png'))
    .raw()
    .toBuffer({ resolveWithObject: true });
  const k = expected!.mask.data.indexOf(1);
  if (k >= 0) t.equal(overlay[3 * k + 1], Math.round(image.data[3 * k + 1]! * 0.5));
  const off = expected!.mask.data.indexOf(0);
  t.equal(overlay[3 * off], image.data[3 * off]);
});

t.test('--auto: a folder of images, no prompts given', async (t) => {
  const folder = join(dir, 'new-photos');
  await mkdir(folder);
  await copyFile(join(data, 'testcrop', 'test_0002.jpg'), join(folder, 'photo.jpg'));
  const out = join(dir, 'auto');
  const lines = await run('--images', folder, '--out', out, '--auto', 'side=3:iou=0:stability=0');
  const summary = JSON.parse(await readFile(join(out, PREDICT_OUTPUTS.summary), 'utf8')) as {
    images: PredictedImage[];
    prompts: { kind: string };
  };
  t.match(summary.prompts, { kind: 'auto', pointsPerSide: 3 });
  t.match(summary.images[0], { prompts: 9, mask: join('masks', 'photo.png') });
  t.ok(summary.images[0]!.selectedMasks! >= 1, 'masks selected with permissive thresholds');
  t.match(lines.join('\n'), /masks selected/);
  const box = join(dir, 'auto-box');
  await run('--images', folder, '--out', box, '--auto', 'box');
  const boxSummary = JSON.parse(await readFile(join(box, PREDICT_OUTPUTS.summary), 'utf8')) as {
    images: unknown[];
  };
  t.match(boxSummary.images[0], {
    prompts: 1,
    selectedMasks: null,
  });
});
