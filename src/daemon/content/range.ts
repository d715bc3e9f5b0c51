/**
 * The Range header of a blob GET (RFC 9110 §14), answered against a file of
 * known size: one range is served as 206, several as the whole body (200, as
 * the containers/image partial-pull code accepts), an unsatisfiable one as 416.
 * A malformed header is ignored, as the RFC says.
 */

export type RangeAnswer =
  | { readonly kind: 'full' }
  | { readonly kind: 'partial'; readonly start: number; /** inclusive */ readonly end: number }
  | { readonly kind: 'unsatisfiable' };

const SPEC = /^(\d*)-(\d*)$/;

export function answerRange(header: string | undefined, size: number): RangeAnswer {
  if (header === undefined) return { kind: 'full' };
  const m = /^\s*bytes\s*=\s*(.+)$/i.exec(header);
  if (m === null) return { kind: 'full' };
  const specs = m[1]!.split(',').map((s) => s.trim());
  if (specs.length !== 1) return { kind: 'full' };
  const r = SPEC.exec(specs[0]!);
  if (r === null || (r[1] === '' && r[2] === '')) return { kind: 'full' };
  if (r[1] === '') {
    // Suffix: the last N bytes.
    const n = Number(r[2]);
    if (!Number.isSafeInteger(n)) return { kind: 'full' };
    if (n === 0 || size === 0) return { kind: 'unsatisfiable' };
    return { kind: 'partial', start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(r[1]);
  const last = r[2] === '' ? Number.MAX_SAFE_INTEGER : Number(r[2]);
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(last) || last < start) return { kind: 'full' };
  if (start >= size) return { kind: 'unsatisfiable' };
  return { kind: 'partial', start, end: Math.min(last, size - 1) };
}
