import { ShoalError } from '../../common/errors.js';

/** A response body as text, refusing one over `max` bytes (LIMIT_EXCEEDED). */
export async function readCapped(response: Response, max: number): Promise<string> {
  const declared = Number(response.headers.get('content-length') ?? '0');
  if (declared > max) {
    await response.body?.cancel();
    throw new ShoalError('LIMIT_EXCEEDED', `a listing page is over ${max} bytes`);
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  if (response.body === null) return '';
  for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
    size += chunk.length;
    if (size > max) throw new ShoalError('LIMIT_EXCEEDED', `a listing page is over ${max} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}
