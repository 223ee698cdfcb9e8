/** Matchers for t.throws / t.rejects: an error's kind and code, not its message text. */
import { ERROR_CODES, NATIVE_ERROR_CODES } from '../../ts/errors.js';

export type CodeKey = keyof typeof ERROR_CODES;

/** The JS class of each native code that is not a plain Error (native/errors.h). */
const NATIVE_KIND: Partial<Record<CodeKey, 'TypeError' | 'RangeError'>> = {
  argument: 'TypeError',
  dtype: 'TypeError',
  range: 'RangeError',
  shape: 'RangeError',
};

/**
 * `{code}` of the error with code `key`, and for the addon's codes its class name (TypeError,
 * RangeError or Error); the TypeScript layer's errors carry their own class names.
 */
export function coded(key: CodeKey): { code: string; name?: string } {
  if (!Object.hasOwn(NATIVE_ERROR_CODES, key)) return { code: ERROR_CODES[key] };
  return { name: NATIVE_KIND[key] ?? 'Error', code: ERROR_CODES[key] };
}
