/**
 * The `last` checkpoint of a training run, a set of three files that must agree: the trained
 * weights, the trainer's optimizer state, and `last.json` (where the run stands). The weights and
 * the optimizer state go to a new generation folder beside the current one; rewriting `last.json`
 * (atomically) to name the new folder is the switch; then older generations are removed. A kill
 * at any instant leaves `last.json` naming one complete set, the previous or the new one.
 *
 *   checkpoints/last.json
 *   checkpoints/last-<generation>/last.safetensors
 *   checkpoints/last-<generation>/last.optimizer.pt
 */
import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { pathError, writeFileAtomic } from '../util/atomic.js';
import { faultPoint } from '../util/fault.js';

/** What this module reads of `last.json`; the rest of it is the caller's. */
export interface LastStateHeader {
  /** 2: the set in a generation folder; 1 (read only): `last.*` beside `last.json`. */
  version: 2;
  /** The set's folder is `last-<generation>`, beside `last.json`. */
  generation: number;
}

/** The three files of the set `last.json` names, under `checkpoints`. */
export interface LastCheckpointFiles {
  state: string;
  weights: string;
  optimizer: string;
}

const GENERATION = /^last-(\d+)$/;

function filesOf(checkpoints: string, state: { version: number; generation?: number }) {
  const folder =
    state.version === 1 ? checkpoints : join(checkpoints, `last-${state.generation ?? 0}`);
  return {
    state: join(checkpoints, 'last.json'),
    weights: join(folder, 'last.safetensors'),
    optimizer: join(folder, 'last.optimizer.pt'),
  };
}

/**
 * Reads `<checkpoints>/last.json` and the paths of the set it names; null where there is none.
 * An unreadable or malformed `last.json` is an error naming it.
 */
export async function readLastState<State extends LastStateHeader>(
  checkpoints: string,
): Promise<{ state: State; files: LastCheckpointFiles } | null> {
  const path = join(checkpoints, 'last.json');
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new Error(`${path}: ${(err as Error).message}`);
  }
  let state: State;
  try {
    state = JSON.parse(text) as State;
  } catch (err) {
    throw new Error(`${path}: ${(err as Error).message}`);
  }
  const generationOk = Number.isSafeInteger(state?.generation) && state.generation >= 0;
  if (!((state?.version as number) === 1 || (state?.version === 2 && generationOk)))
    throw new Error(`${path}: not a crackseg last.json (version 1 or 2 with a generation)`);
  const files = filesOf(checkpoints, state);
  return { state: { ...state, version: 2, generation: state.generation ?? 0 }, files };
}

/**
 * Saves a new set: `writeWeights(path)` and the optimizer bytes into the next generation folder,
 * then `state` into `last.json` (naming that folder; `state.generation` is set once it is), then
 * removes the older generations. A failure removes the unfinished folder and leaves the previous
 * set as it was; its error names the file.
 */
export async function saveLastCheckpoint(
  checkpoints: string,
  state: LastStateHeader,
  writeWeights: (path: string) => Promise<void>,
  optimizerState: Uint8Array,
): Promise<void> {
  const generation = state.generation + 1;
  const files = filesOf(checkpoints, { version: 2, generation });
  const folder = join(checkpoints, `last-${generation}`);
  try {
    // A save killed before its switch may have left this folder: it is no set of any last.json.
    await rm(folder, { recursive: true, force: true });
    await writeWeights(files.weights);
    await writeFileAtomic(files.optimizer, optimizerState);
    await writeFileAtomic(files.state, JSON.stringify({ ...state, generation }, null, 1));
  } catch (err) {
    await rm(folder, { recursive: true, force: true });
    throw err;
  }
  state.generation = generation;
  // The switch is made: other generations and version 1's files are not needed.
  const stale = (await readdir(checkpoints)).filter(
    (name) =>
      (GENERATION.test(name) && name !== `last-${generation}`) ||
      name === 'last.safetensors' ||
      name === 'last.optimizer.pt',
  );
  for (const name of stale) {
    const path = join(checkpoints, name);
    await rm(path, { recursive: true, force: true }).catch((err: unknown) => {
      throw pathError(err, 'remove', path);
    });
    faultPoint();
  }
}
