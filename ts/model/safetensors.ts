/**
 * The safetensors format (https://github.com/huggingface/safetensors), our own reader and writer:
 * an 8-byte little-endian header length n, n bytes of JSON header
 * (`{"name": {"dtype", "shape", "data_offsets": [begin, end]}, …, "__metadata__": {str: str}}`,
 * offsets relative to the data section), then the tensors' raw little-endian bytes.
 * Adapters are written in it so Python users can read them with the `safetensors` package.
 */
import { endianness } from 'node:os';
import { readFile } from 'node:fs/promises';
import type { Dtype, DtypeArrays, Tensor } from '../binding.js';
import { SafetensorsError } from '../errors.js';
import { writeFileAtomic } from '../util/atomic.js';

export { SafetensorsError };

/** The safetensors dtype names we read and write, by our dtype. */
const SAFETENSORS_DTYPES: Record<Dtype, string> = {
  float32: 'F32',
  float64: 'F64',
  float16: 'F16',
  bfloat16: 'BF16',
  int64: 'I64',
  int32: 'I32',
  uint8: 'U8',
  bool: 'BOOL',
};

const DTYPES_BY_NAME = new Map(
  Object.entries(SAFETENSORS_DTYPES).map(([dtype, name]) => [name, dtype as Dtype]),
);

const ARRAY_TYPES: {
  [D in Dtype]: { BYTES_PER_ELEMENT: number; new (b: ArrayBuffer): DtypeArrays[D] };
} = {
  float32: Float32Array,
  float64: Float64Array,
  float16: Uint16Array,
  bfloat16: Uint16Array,
  int64: BigInt64Array,
  int32: Int32Array,
  uint8: Uint8Array,
  bool: Uint8Array,
};

/** The header's size limit of the reference implementation (100 MB), against hostile files. */
const MAX_HEADER_BYTES = 100_000_000;

/** Tensors by name plus the free-form string metadata (`__metadata__`). */
export interface SafetensorsContent {
  tensors: Map<string, Tensor>;
  metadata: Record<string, string>;
}

function assertLittleEndian(): void {
  // Typed arrays use the platform's byte order; safetensors is little-endian.
  if (endianness() !== 'LE') throw new Error('safetensors I/O needs a little-endian platform');
}

function elementCount(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/**
 * Serialises tensors and metadata. Tensors are laid out in name order; the header is padded
 * with spaces to a multiple of 8 bytes so every tensor starts 8-byte aligned (as the reference
 * writer does).
 */
export function encodeSafetensors(
  tensors: ReadonlyMap<string, Tensor> | Record<string, Tensor>,
  metadata: Record<string, string> = {},
): Uint8Array {
  assertLittleEndian();
  const entries: Array<[string, Tensor]> = [
    ...(tensors instanceof Map ? tensors : Object.entries(tensors)),
  ].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) {
    for (const [key, value] of Object.entries(metadata)) {
      if (typeof value !== 'string')
        throw new TypeError(`safetensors metadata '${key}' must be a string`);
    }
    header.__metadata__ = metadata;
  }
  let offset = 0;
  for (const [name, tensor] of entries) {
    if (name === '__metadata__') throw new Error("a tensor cannot be named '__metadata__'");
    const dtype = SAFETENSORS_DTYPES[tensor.dtype];
    if (!dtype) throw new TypeError(`tensor '${name}': unsupported dtype ${String(tensor.dtype)}`);
    if (tensor.data.length !== elementCount(tensor.shape))
      throw new RangeError(
        `tensor '${name}': ${tensor.data.length} elements for shape [${tensor.shape.join(', ')}]`,
      );
    const bytes = tensor.data.byteLength;
    header[name] = { dtype, shape: tensor.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const headerLength = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + headerLength + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerLength), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + headerLength);
  let position = 8 + headerLength;
  for (const [, tensor] of entries) {
    const { buffer, byteOffset, byteLength } = tensor.data;
    out.set(new Uint8Array(buffer, byteOffset, byteLength), position);
    position += byteLength;
  }
  return out;
}

/**
 * Parses safetensors bytes, validating the header (dtype, shape, offsets in bounds, sized to the
 * shape, non-overlapping and covering the data section). `source` names the input in errors.
 */
export function decodeSafetensors(bytes: Uint8Array, source = 'buffer'): SafetensorsContent {
  assertLittleEndian();
  const fail = (reason: string) => new SafetensorsError(source, reason);
  if (bytes.length < 8) throw fail(`${bytes.length} bytes, shorter than the 8-byte header length`);
  const headerLength = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  if (headerLength > BigInt(Math.min(MAX_HEADER_BYTES, bytes.length - 8)))
    throw fail(`header length ${headerLength} exceeds the file (${bytes.length} bytes)`);
  const dataStart = 8 + Number(headerLength);
  let header: unknown;
  try {
    header = JSON.parse(
      new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, dataStart)),
    );
  } catch (err) {
    throw fail(`header is not UTF-8 JSON (${(err as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header))
    throw fail('header is not a JSON object');

  const metadata: Record<string, string> = {};
  const spans: Array<{ name: string; begin: number; end: number }> = [];
  const tensors = new Map<string, Tensor>();
  const dataLength = bytes.length - dataStart;
  for (const [name, entry] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof entry !== 'object' || entry === null || Array.isArray(entry))
        throw fail('__metadata__ is not an object');
      for (const [key, value] of Object.entries(entry as Record<string, unknown>)) {
        if (typeof value !== 'string') throw fail(`__metadata__.${key} is not a string`);
        metadata[key] = value;
      }
      continue;
    }
    const {
      dtype: dtypeName,
      shape,
      data_offsets: offsets,
    } = (entry ?? {}) as {
      dtype?: unknown;
      shape?: unknown;
      data_offsets?: unknown;
    };
    const dtype = DTYPES_BY_NAME.get(String(dtypeName));
    if (!dtype) throw fail(`tensor '${name}': unsupported dtype ${JSON.stringify(dtypeName)}`);
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0))
      throw fail(`tensor '${name}': bad shape ${JSON.stringify(shape)}`);
    if (
      !Array.isArray(offsets) ||
      offsets.length !== 2 ||
      !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)
    )
      throw fail(`tensor '${name}': bad data_offsets ${JSON.stringify(offsets)}`);
    const [begin, end] = offsets as [number, number];
    const arrayType = ARRAY_TYPES[dtype];
    const expected = elementCount(shape as number[]) * arrayType.BYTES_PER_ELEMENT;
    if (end < begin || end - begin !== expected)
      throw fail(
        `tensor '${name}': data_offsets [${begin}, ${end}] hold ${end - begin} bytes, ` +
          `shape [${(shape as number[]).join(', ')}] of ${dtypeName} needs ${expected}`,
      );
    if (end > dataLength)
      throw fail(
        `tensor '${name}' ends at byte ${end} of a ${dataLength}-byte data section (truncated?)`,
      );
    spans.push({ name, begin, end });
    // A copy (Buffer#slice would be a view): aligned for the typed array, independent of the file.
    const copy = new Uint8Array(bytes.subarray(dataStart + begin, dataStart + end));
    tensors.set(name, { dtype, shape: shape as number[], data: new arrayType(copy.buffer) });
  }
  spans.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let covered = 0;
  for (const span of spans) {
    if (span.begin !== covered)
      throw fail(
        span.begin < covered
          ? `tensor '${span.name}' overlaps another`
          : `bytes ${covered}..${span.begin} of the data section belong to no tensor`,
      );
    covered = span.end;
  }
  if (covered !== dataLength)
    throw fail(`data section has ${dataLength} bytes, the tensors cover ${covered}`);
  return { tensors, metadata };
}

/** Writes a safetensors file atomically. */
export async function writeSafetensors(
  path: string,
  tensors: ReadonlyMap<string, Tensor> | Record<string, Tensor>,
  metadata: Record<string, string> = {},
): Promise<void> {
  await writeFileAtomic(path, encodeSafetensors(tensors, metadata));
}

/** Reads a safetensors file; errors name the file. */
export async function readSafetensors(path: string): Promise<SafetensorsContent> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (err) {
    throw new Error(`cannot read safetensors file '${path}': ${(err as Error).message}`);
  }
  return decodeSafetensors(bytes, path);
}
