/**
 * The `pieces` events of a download asked for with `"pieces": true`: the
 * content file and the pieces stored and verified in it since the last
 * event, for a client that copies them while the rest downloads
 * (src/cli/progressive-copy.ts). At most one event per EVERY_MS and
 * MAX_NUMBERS numbers each; the numbers of one event are all of one
 * generation of the task's pieces (download-service.ts, PartialContent), so a
 * client that sees the generation change knows which copies to redo.
 */
import type { DownloadHandle, PartialContent } from '../download-service.js';

const EVERY_MS = 100;
const MAX_NUMBERS = 4096;

export interface PiecesEvent extends PartialContent {
  event: 'pieces';
  numbers: number[];
}

/** Starts the events; the returned function sends what is pending and stops them (idempotent). */
export function pieceEvents(handle: Pick<DownloadHandle, 'onPiece' | 'partial'>, write: (event: PiecesEvent) => void): () => void {
  let batch: { content: PartialContent; numbers: number[] } | undefined;
  let timer: NodeJS.Timeout | undefined;
  const flush = (): void => {
    clearTimeout(timer);
    timer = undefined;
    if (batch === undefined) return;
    const { content, numbers } = batch;
    batch = undefined;
    write({ event: 'pieces', ...content, numbers });
  };
  const off = handle.onPiece((n) => {
    // Unknown length, or an access check still to pass: the client copies this piece at the end, if at all.
    const content = handle.partial();
    if (content === undefined) return;
    if (batch !== undefined && (batch.content.generation !== content.generation || batch.content.path !== content.path)) flush();
    batch ??= { content, numbers: [] };
    batch.numbers.push(n);
    if (batch.numbers.length >= MAX_NUMBERS) flush();
    else timer ??= setTimeout(flush, EVERY_MS);
  });
  let stopped = false;
  return () => {
    if (stopped) return;
    stopped = true;
    off();
    flush();
  };
}
