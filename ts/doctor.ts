/**
 * `crackseg doctor`: checks each layer this package needs (Node, the addon, libtorch, CUDA,
 * Python with torch) and gives a verdict per line.
 */
import { bindingPath, type RuntimeInfo } from './binding.js';
import { findPython } from './python.js';
import { runtimeInfo } from './runtime.js';

export type Verdict = 'ok' | 'warn' | 'fail';

export interface Check {
  name: string;
  verdict: Verdict;
  detail: string;
}

const minimumNodeMajor = 20;

function nodeCheck(): Check {
  const major = Number(process.versions.node.split('.')[0]);
  return {
    name: 'node',
    verdict: major >= minimumNodeMajor ? 'ok' : 'fail',
    detail: `v${process.versions.node}${major >= minimumNodeMajor ? '' : ` (needs >= ${minimumNodeMajor})`}`,
  };
}

function majorMinor(version: string): [number, number] {
  const [major = 0, minor = 0] = version.split(/[.+]/).map(Number);
  return [major, minor];
}

function isNewer(a: string, b: string): boolean {
  const [am, an] = majorMinor(a);
  const [bm, bn] = majorMinor(b);
  return am > bm || (am === bm && an > bn);
}

/** Runs every check; never throws (a failing layer is a `fail` line). */
export async function doctor(): Promise<Check[]> {
  const checks: Check[] = [nodeCheck()];
  let info: RuntimeInfo | undefined;
  try {
    info = runtimeInfo();
    checks.push({ name: 'addon', verdict: 'ok', detail: bindingPath() });
    checks.push({
      name: 'libtorch',
      verdict: 'ok',
      detail: `${info.torchVersion} (${info.flavour} build), ${info.threads} threads`,
    });
    checks.push(
      info.cudaAvailable
        ? {
            name: 'cuda',
            verdict: 'ok',
            detail: `${info.cudaDeviceCount} device(s): ${info.cudaDevices.join(', ')}; cuDNN ${info.cudnnVersion ?? 'none'}`,
          }
        : {
            name: 'cuda',
            verdict: info.flavour === 'cuda' ? 'warn' : 'ok',
            detail:
              info.flavour === 'cuda'
                ? 'CUDA build of libtorch, but no usable CUDA device'
                : 'not used (CPU build of libtorch); training and evaluation run on the CPU',
          },
    );
  } catch (err) {
    checks.push({ name: 'addon', verdict: 'fail', detail: (err as Error).message });
  }
  try {
    const python = await findPython();
    const tooNew = info !== undefined && isNewer(python.torchVersion, info.torchVersion);
    checks.push({
      name: 'python',
      verdict: tooNew ? 'warn' : 'ok',
      detail:
        `${python.executable} with torch ${python.torchVersion}` +
        (tooNew
          ? ` (newer than the addon's libtorch ${info!.torchVersion}: export models with a torch <= it)`
          : ''),
    });
  } catch (err) {
    checks.push({ name: 'python', verdict: 'fail', detail: (err as Error).message });
  }
  return checks;
}
