// The SAM 2.1 exporter: TypeScript wrapper, CLI and the Python-side checks of the exported
// TorchScript (test/python/checks.py), all on the small `test` configuration.
import t from 'tap';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Command } from 'commander';
import { register } from '../ts/cli/export.js';
import { exporterArgs, exportModel, pythonError } from '../ts/model/export.js';
import { findPython } from '../ts/python.js';

const run = promisify(execFile);
const checks = fileURLToPath(new URL('./python/checks.py', import.meta.url));
const fixture = fileURLToPath(new URL('./fixtures/sam2.1-image-keys.json', import.meta.url));

/** Runs one Python check; resolves with its JSON result, rejects with its assertion. */
async function check(name: string, ...args: string[]): Promise<Record<string, unknown>> {
  const py = await findPython();
  try {
    const { stdout } = await run(py.executable, [checks, name, ...args], {
      timeout: 300_000,
      maxBuffer: 1 << 24,
    });
    return JSON.parse(stdout.trim().split('\n').pop() ?? '{}') as Record<string, unknown>;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(
      `check ${name} failed: ${e.stderr?.trim().split('\n').slice(-3).join('\n') ?? e.message}`,
    );
  }
}

const dir = await mkdtemp(join(tmpdir(), 'crackseg-export-'));
t.teardown(() => rm(dir, { recursive: true, force: true }));

t.test('exporterArgs: random init or checkpoint, and validation', async (t) => {
  const base = { config: 'test', lora: 'B', rank: 8, alpha: 16, dropout: 0, out: 'm.pt' } as const;
  const args = exporterArgs({ ...base, seed: 3 });
  t.same(args.slice(0, 5), ['--random-init', '--config', 'test', '--seed', '3']);
  t.ok(args.includes('--json'));
  t.same(exporterArgs({ ...base, checkpoint: 'c.pt' }).slice(0, 2), ['--checkpoint', 'c.pt']);
  t.throws(() => exporterArgs({ ...base, rank: 0 }), /rank/);
  t.throws(() => exporterArgs({ ...base, dropout: 1 }), /dropout/);
  t.throws(() => exporterArgs({ ...base, lora: 'D' as 'A' }), /strategy "D"/);
  t.throws(() => exporterArgs({ ...base, config: 'huge' as 'test' }), /config "huge"/);
  const defaults = exporterArgs({ config: 'test', out: 'm.pt' });
  const value = (flag: string) => defaults[defaults.indexOf(flag) + 1];
  t.same(
    ['--seed', '--lora', '--rank', '--alpha', '--dropout'].map(value),
    ['0', 'none', '8', '16', '0'],
    'defaults: seed 0, no LoRA, rank 8, alpha 16, dropout 0',
  );
});

t.test('pythonError picks our error line, else the last traceback line', async (t) => {
  t.equal(
    pythonError('Traceback\n  x\nerror: missing image-path keys: a.b\n'),
    'missing image-path keys: a.b',
  );
  t.equal(
    pythonError('Traceback (most recent call last):\n  File "x"\nKeyError: \'k\'\n'),
    "KeyError: 'k'",
  );
});

t.test('export (test config, LoRA B, random init) and check the file in Python', async (t) => {
  const out = join(dir, 'b.pt');
  const result = await exportModel({
    config: 'test',
    seed: 2,
    lora: 'B',
    rank: 4,
    alpha: 8,
    dropout: 0,
    out,
  });
  t.equal(result.out, out);
  t.ok((await stat(out)).size > 100_000);
  t.equal(result.metadata.config_name, 'test');
  t.equal(result.metadata.image_size, 256);
  t.equal(result.metadata.checkpoint_sha256, null);
  t.same(result.skippedKeys, []);
  t.ok(result.trainable > 0 && result.trainable < result.total);
  t.ok(
    result.metadata.lora_targets.every((n) =>
      /\.(q_proj|k_proj|v_proj|out_proj|qkv|proj)$/.test(n),
    ),
  );

  // independent expectations (counts from the config by formula, shapes, gradient flow)
  const py = await check('model', out, 'test', 'B', '4', '8', '0.0', '2');
  t.equal(py.total, result.total, 'total parameters match the formula');
  t.equal(py.lora, result.trainable, 'trainable = LoRA parameters by formula');
  t.equal(py.targets, 38, '28 decoder projections + 2 per trunk block (5 blocks)');
  t.equal(py.lora_params_with_grad, 76, 'every lora_A and lora_B receives a gradient');
});

t.test('export with `none` has no trainable parameters and checks out', async (t) => {
  const out = join(dir, 'none.pt');
  const result = await exportModel({
    config: 'test',
    lora: 'none',
    rank: 8,
    alpha: 16,
    dropout: 0,
    out,
  });
  t.equal(result.trainable, 0);
  t.same(result.metadata.lora_targets, []);
  const py = await check('model', out, 'test', 'none', '8', '16', '0.0', '0');
  t.equal(py.total, result.total);
});

t.test("a failing export surfaces Python's message", async (t) => {
  await t.rejects(
    exportModel({
      config: 'test',
      checkpoint: join(dir, 'missing.pt'),
      lora: 'A',
      rank: 4,
      alpha: 4,
      dropout: 0,
      out: join(dir, 'x.pt'),
    }),
    /model export failed: .*No such file or directory.*missing\.pt/,
  );
});

t.test(
  'LoRA A/B/C: zero B equals none, random B differs, merge equals unmerged (1e-5)',
  async (t) => {
    const r = (await check('lora')) as Record<
      string,
      { lora_b_zero_diff: number; random_b_diff: number; merge_diff: number } & {
        merged_backward_error: string;
      }
    >;
    for (const s of ['A', 'B', 'C']) {
      const x = r[s];
      if (!x) throw new Error(`no result for ${s}`);
      t.equal(x.lora_b_zero_diff, 0, `${s}: identical to none`);
      t.ok(x.random_b_diff > 1e-3, `${s}: random lora_B changes outputs`);
      t.ok(x.merge_diff <= 1e-5, `${s}: merged within 1e-5 relative (${x.merge_diff})`);
      t.equal(
        x.merged_backward_error,
        'element 0 of tensors does not require grad and does not have a grad_fn',
        `${s}: a merged model skips the adapters, so backward fails`,
      );
    }
  },
);

t.test('LoRA C adapts every MLP linear of trunk and decoder, heads included', async (t) => {
  const out = join(dir, 'c.pt');
  const result = await exportModel({
    config: 'test',
    seed: 1,
    lora: 'C',
    rank: 4,
    alpha: 8,
    dropout: 0,
    out,
  });
  const targets = result.metadata.lora_targets;
  const count = (re: RegExp) => targets.filter((n) => re.test(n)).length;
  t.equal(count(/^image_encoder\.trunk\.blocks\.\d+\.mlp\.layers\.[01]$/), 10, 'trunk MLPs');
  t.equal(count(/^sam_mask_decoder\.transformer\.layers\.\d+\.mlp\.layers\.[01]$/), 4);
  t.equal(count(/^sam_mask_decoder\.output_hypernetworks_mlps\.[0-3]\.layers\.[012]$/), 12);
  t.equal(count(/^sam_mask_decoder\.iou_prediction_head\.layers\.[012]$/), 3);
  t.equal(count(/^sam_mask_decoder\.pred_obj_score_head\.layers\.[012]$/), 3);
  const py = await check('model', out, 'test', 'C', '4', '8', '0.0', '1');
  t.equal(py.targets, 70, 'B (38) + 10 trunk + 4 transformer + 18 head linears');
  t.equal(py.total, result.total, 'total parameters match the formula');
  t.equal(py.lora, result.trainable, 'trainable = LoRA parameters by formula');
  t.equal(py.lora_params_with_grad, 122, 'forward reaches all but the multimask hypernetworks');
  t.equal(py.lora_params_multimask_only, 18, 'those train through decode(multimask = true)');
});

t.test('official keys and shapes; checkpoint loading errors name the key', async (t) => {
  const keys = JSON.parse(await readFile(fixture, 'utf8')) as {
    image_keys: Record<string, Record<string, number[]>>;
    memory_path_prefixes: string[];
  };
  t.same(Object.keys(keys.image_keys), ['tiny', 'small', 'base_plus', 'large']);
  t.same(keys.image_keys.small?.['image_encoder.trunk.pos_embed'], [1, 96, 7, 7]);
  t.same(
    keys.image_keys.large?.['image_encoder.trunk.blocks.47.mlp.layers.1.weight'],
    [1152, 4608],
  );
  const r = (await check('checkpoint')) as { skipped: number; errors: string[] };
  t.equal(r.skipped, 160);
  t.match(r.errors[0], /missing image-path keys: sam_mask_decoder\.transformer\.layers\.1/);
  t.match(r.errors[1], /unexpected keys: sam_mask_decoder\.extra_head\.weight/);
  t.match(r.errors[2], /k_proj\.weight: checkpoint \[3, 3\], model \[32, 64\]/);
  t.match(r.errors[3], /not a plain tensor checkpoint, refused by weights_only loading/);
});

t.test('preprocessing equals an independent antialiased resize + normalisation', async (t) => {
  const r = (await check('preprocess')) as Record<string, number>;
  t.same(Object.keys(r).sort(), ['200x130', '256x256', '300x700']);
  for (const [size, diff] of Object.entries(r)) t.ok(diff < 1e-4, `${size}: ${diff}`);
});

t.test('the exported model cast to bf16 runs forward and backward, bf16 throughout', async (t) => {
  // LoRA C adapts every kind of layer; the check asserts dtypes and gradients itself.
  const r = (await check('bf16', 'test', 'C')) as Record<string, number>;
  t.equal(r.outputs, 12, 'every output of encode_image, decode and forward');
  t.ok(r.relative_difference! < 0.1, `bf16 vs fp32 outputs: ${r.relative_difference}`);
  t.ok(r.trained_tensors! > 0, `${r.trained_tensors} LoRA tensors got bf16 gradients`);
});

t.test('crackseg export (CLI)', async (t) => {
  const program = new Command().exitOverride();
  register(program);
  const out = join(dir, 'cli.pt');
  const logs: string[] = [];
  const log = console.log;
  console.log = (...a: unknown[]) => logs.push(a.join(' '));
  try {
    await program.parseAsync(
      [
        'export',
        '--random-init',
        '--seed',
        '1',
        '--config',
        'test',
        '--lora',
        'A',
        '--rank',
        '2',
        '--alpha',
        '4',
        '--out',
        out,
      ],
      { from: 'user' },
    );
  } finally {
    console.log = log;
  }
  t.ok((await stat(out)).isFile());
  t.match(
    logs.join('\n'),
    /LoRA A: 28 adapted modules[^]*trainable parameters: \d+[^]*total parameters: \d+/,
  );

  const bad = new Command().exitOverride().configureOutput({ writeErr: () => {} });
  register(bad);
  await t.rejects(
    bad.parseAsync(['export', '--config', 'test', '--out', out], { from: 'user' }),
    /--checkpoint <file> or --random-init/,
  );
});
