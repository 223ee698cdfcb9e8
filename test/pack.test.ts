// npm pack → add the prebuilt addon → install the tarball offline into a fresh project → the addon
// loads there from prebuilds/ and nothing is compiled. The tarball bundles the package's runtime
// dependencies (copied from this checkout's node_modules), so that the install needs neither the
// registry nor whatever the machine's npm cache happens to hold.
import t from 'tap';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';

const exec = promisify(execFile);
const root = new URL('..', import.meta.url).pathname;

async function npm(args: string[], cwd: string): Promise<string> {
  const { stdout, stderr } = await exec('npm', args, { cwd, maxBuffer: 1 << 26 });
  return stdout + stderr;
}

async function packTo(dir: string, cwd: string): Promise<string> {
  const out = await npm(['pack', '--json', '--pack-destination', dir], cwd);
  const [{ filename }] = JSON.parse(out.slice(out.indexOf('[')).replace(/\][^\]]*$/, ']')) as [
    { filename: string },
  ];
  return join(dir, filename);
}

/**
 * Copies the runtime dependency tree (`npm ls --omit=dev`) into `<unpacked>/node_modules` and
 * names the direct dependencies as bundled: npm installs a bundle from the tarball itself.
 */
async function bundleRuntimeDependencies(unpacked: string): Promise<void> {
  const { stdout } = await exec('npm', ['ls', '--omit=dev', '--all', '--parseable'], {
    cwd: root,
    maxBuffer: 1 << 26,
  });
  const topLevel = stdout
    .split('\n')
    .map((path) => relative(root, path))
    .filter((path) => /^node_modules\/(@[^/]+\/)?[^/]+$/.test(path));
  for (const path of topLevel)
    await cp(join(root, path), join(unpacked, path), { recursive: true, verbatimSymlinks: true });
  const manifestPath = join(unpacked, 'package.json');
  const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as {
    dependencies: Record<string, string>;
  };
  writeFileSync(
    manifestPath,
    JSON.stringify({ ...manifest, bundleDependencies: Object.keys(manifest.dependencies) }),
  );
}

t.test(
  'the packed package installs offline and loads its prebuild without compiling',
  async (t) => {
    const work = mkdtempSync(join(tmpdir(), 'crackseg-pack-'));
    t.teardown(() => rmSync(work, { recursive: true, force: true }));
    const first = await packTo(work, root);
    await exec('tar', ['-xzf', first, '-C', work]);
    const unpacked = join(work, 'package');
    t.notOk(existsSync(join(unpacked, 'build')), 'no build folder is shipped');
    // npm publish --provenance requires repository.url to name the GitHub repository
    // (.github/workflows/ci.yml checks that it is the one publishing)
    const packed = JSON.parse(readFileSync(join(unpacked, 'package.json'), 'utf8')) as {
      repository?: { url?: string };
    };
    t.match(packed.repository?.url, /^git\+https:\/\/github\.com\/[\w.-]+\/[\w.-]+\.git$/);
    await exec(process.execPath, [
      join(root, 'scripts', 'prebuild.mjs'),
      '--from-build',
      '--root',
      unpacked,
    ]);
    await bundleRuntimeDependencies(unpacked);
    // Packed again as npm lays a tarball out (package/…); by tar, as `npm pack` may run the
    // package's `prepare` script (npm 9 does, even with --ignore-scripts), which needs sources.
    const tarball = join(work, 'with-prebuild.tar');
    await exec('tar', ['-cf', tarball, '-C', work, 'package']);

    const app = join(work, 'app');
    await exec('mkdir', ['-p', app]);
    writeFileSync(
      join(app, 'package.json'),
      JSON.stringify({ name: 'app', private: true, type: 'module' }),
    );
    const log = await npm(
      [
        'install',
        '--offline',
        '--cache',
        join(work, 'empty-npm-cache'),
        '--no-audit',
        '--no-fund',
        '--foreground-scripts',
        tarball,
      ],
      app,
    );
    t.match(log, /using the addon for libtorch/, 'the install hook found a loadable addon');
    t.notMatch(log, /building from source/);
    const installed = join(app, 'node_modules', 'crackseg');
    t.notOk(existsSync(join(installed, 'build')), 'nothing was compiled');

    const { stdout } = await exec(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        "import { runtimeInfo } from 'crackseg'; console.log(JSON.stringify(runtimeInfo()))",
      ],
      { cwd: app },
    );
    const info = JSON.parse(stdout) as { torchVersion: string; flavour: string };
    t.match(info.torchVersion, /^\d+\.\d+/);
    t.match(info.flavour, /^(cpu|cuda)$/);
  },
);
