/**
 * Request-target parsing for the upload server. Pure: the target is matched
 * against a strict grammar and never used as a file path.
 *
 *   /healthy
 *   /pieces/<taskId>/<n>   taskId: 64 lowercase hex; n: 0..MAX_PIECES-1 in
 *                          decimal, no sign, no leading zeros, nothing after
 *
 * Anything else under /pieces (traversal, percent-encoding, empty segments, a
 * query string) is `invalid` (400); any other target is `unknown` (404).
 */
import { isTaskId } from '../../common/ids.js';
import { MAX_PIECES } from '../../common/pieces.js';

export type Route =
  | { readonly kind: 'healthy' }
  | { readonly kind: 'piece'; readonly taskId: string; readonly piece: number }
  | { readonly kind: 'invalid'; readonly message: string }
  | { readonly kind: 'unknown' };

const PIECES = '/pieces';
const PIECE_NUMBER_RE = /^(?:0|[1-9][0-9]{0,6})$/;

export function parseTarget(target: string): Route {
  if (target === '/healthy') return { kind: 'healthy' };
  if (target !== PIECES && !target.startsWith(PIECES + '/')) return { kind: 'unknown' };
  const parts = target.slice(PIECES.length + 1).split('/');
  if (parts.length !== 2) return invalid('expected /pieces/<taskId>/<pieceNumber>');
  const [task = '', number = ''] = parts;
  if (!isTaskId(task)) return invalid('task ID must be 64 lowercase hex digits');
  if (!PIECE_NUMBER_RE.test(number)) return invalid('piece number must be a decimal integer without sign or leading zeros');
  const piece = Number(number);
  if (piece >= MAX_PIECES) return invalid(`piece number must be below ${MAX_PIECES}`);
  return { kind: 'piece', taskId: task, piece };
}

function invalid(message: string): Route {
  return { kind: 'invalid', message };
}
