// CMake finds the libtorch it is pointed at: LIBTORCH, CMAKE_PREFIX_PATH, or the torch of the
// Python named by CRACKSEG_PYTHON. Configure-only, against a stand-in TorchConfig.cmake.
import t from 'tap';
import { execFile } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const exec = promisify(execFile);
const root = new URL('..', import.meta.url).pathname;
const scratch = mkdtempSync(join(tmpdir(), 'crackseg-cmake-'));
t.teardown(() => rmSync(scratch, { recursive: true, force: true }));

/** A directory that looks like a libtorch install of `version` to find_package(Torch). */
function fakeLibtorch(version: string): string {
  const prefix = mkdtempSync(join(scratch, 'torch-'));
  const configDir = join(prefix, 'share', 'cmake', 'Torch');
  mkdirSync(configDir, { recursive: true });
  writeFileSync(
    join(configDir, 'TorchConfig.cmake'),
    [
      `set(Torch_VERSION ${version})`,
      `set(TORCH_INSTALL_PREFIX ${prefix})`,
      'add_library(torch INTERFACE IMPORTED)',
      'set(TORCH_LIBRARIES torch)',
      'set(TORCH_CXX_FLAGS "")',
      'set(TORCH_FOUND TRUE)',
    ].join('\n'),
  );
  return prefix;
}

async function configure(env: NodeJS.ProcessEnv): Promise<string> {
  const build = mkdtempSync(join(scratch, 'build-'));
  // Ninja, as cmake-js picks it (scripts/setup.sh installs it; make may be missing).
  const { stdout } = await exec('cmake', ['-G', 'Ninja', '-S', root, '-B', build], {
    env: { ...process.env, ...env },
  });
  return stdout;
}

t.test('LIBTORCH points CMake at a libtorch', async (t) => {
  const prefix = fakeLibtorch('7.1.0');
  t.match(await configure({ LIBTORCH: prefix }), `crackseg: libtorch 7.1.0 (cpu) from ${prefix}`);
});

t.test('CMAKE_PREFIX_PATH points CMake at a libtorch', async (t) => {
  const prefix = fakeLibtorch('7.2.0');
  t.match(
    await configure({ CMAKE_PREFIX_PATH: prefix }),
    `crackseg: libtorch 7.2.0 (cpu) from ${prefix}`,
  );
});

t.test("CRACKSEG_PYTHON: that Python's torch.utils.cmake_prefix_path", async (t) => {
  const prefix = fakeLibtorch('7.3.0');
  const python = join(prefix, 'python');
  writeFileSync(python, `#!/bin/sh\necho ${join(prefix, 'share', 'cmake')}\n`);
  chmodSync(python, 0o755);
  t.match(
    await configure({ CRACKSEG_PYTHON: python }),
    `crackseg: libtorch 7.3.0 (cpu) from ${prefix}`,
  );
});

t.test('a CRACKSEG_PYTHON without torch is a configure error that says so', async (t) => {
  await t.rejects(
    configure({ CRACKSEG_PYTHON: '/bin/false' }),
    /CRACKSEG_PYTHON=\/bin\/false cannot import torch/,
  );
});

t.test('with no configuration, the system libtorch is found', async (t) => {
  t.match(await configure({}), /crackseg: libtorch \d+\.\d+\.\d+ \((cpu|cuda)\) from /);
});
