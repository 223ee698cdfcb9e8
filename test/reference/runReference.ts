/** Runs a reference script of this folder under the interpreter that has cv2 and skimage. */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { findPython } from '../../ts/python.js';
import type { BinaryMask } from '../../ts/image.js';

/** Sends `masks` to `script` (a file in test/reference/) as JSON and parses its JSON answer. */
export async function runReference<T>(script: string, masks: BinaryMask[]): Promise<T> {
  const { executable } = await findPython();
  const input = JSON.stringify(
    masks.map((m) => ({
      width: m.width,
      height: m.height,
      data: Buffer.from(m.data).toString('base64'),
    })),
  );
  const path = fileURLToPath(new URL(script, import.meta.url));
  return new Promise((resolve, reject) => {
    const child = execFile(executable, [path], { maxBuffer: 1 << 28 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${script}: ${stderr || err.message}`));
      else resolve(JSON.parse(stdout) as T);
    });
    child.stdin?.end(input);
  });
}

/** A deterministic random mask: blobs of given density, or speckle. */
export function randomMask(
  width: number,
  height: number,
  density: number,
  next: () => number,
): BinaryMask {
  const data = new Uint8Array(width * height);
  for (let i = 0; i < data.length; i++) data[i] = next() < density ? 1 : 0;
  return { width, height, data };
}
