/**
 * The files under an HTTP directory index (nginx autoindex, HTML or JSON:
 * ./nginx-index.ts), walked breadth-first into subdirectories, within
 * LISTING_LIMITS (depth, documents, files, bytes per document). Each file's
 * URL is the directory's URL plus the entry's name, percent-encoded: a link
 * elsewhere cannot be made (names are names, never URLs).
 */
import { ShoalError } from '../../common/errors.js';
import { redactUrl } from '../../common/ids.js';
import { judgeStatus } from '../../daemon/source/source-errors.js';
import { LISTING_LIMITS, type ListedFile } from './listing.js';
import { parseNginxHtml, parseNginxJson, type IndexEntry } from './nginx-index.js';
import { readCapped } from './read-capped.js';
import { safeSegments } from './safe-path.js';

export async function listHttpIndex(root: URL, headers: ReadonlyArray<readonly [string, string]>, signal: AbortSignal): Promise<ListedFile[]> {
  const base = new URL(root.href);
  if (!base.pathname.endsWith('/')) base.pathname += '/';
  const files: ListedFile[] = [];
  const queue: Array<{ url: URL; prefix: string; depth: number }> = [{ url: base, prefix: '', depth: 0 }];
  let documents = 0;
  for (let item = queue.shift(); item !== undefined; item = queue.shift()) {
    if (++documents > LISTING_LIMITS.pages) throw new ShoalError('LIMIT_EXCEEDED', `more than ${LISTING_LIMITS.pages} directory indexes`);
    for (const entry of await fetchIndex(item.url, headers, signal)) {
      safeSegments(entry.name); // one segment, checked before it goes into a URL or a path
      if (entry.name.includes('/')) throw new ShoalError('PATH_UNSAFE', `refusing the listed name ${JSON.stringify(entry.name.slice(0, 200))}: a directory entry has a "/"`);
      const name = `${item.prefix}${entry.name}`;
      const url = new URL(encodeURIComponent(entry.name) + (entry.directory ? '/' : ''), item.url);
      if (entry.directory) {
        if (item.depth + 1 > LISTING_LIMITS.depth) throw new ShoalError('LIMIT_EXCEEDED', `directories deeper than ${LISTING_LIMITS.depth} levels under ${redactUrl(root)}`);
        queue.push({ url, prefix: `${name}/`, depth: item.depth + 1 });
      } else {
        if (files.length >= LISTING_LIMITS.files) throw new ShoalError('LIMIT_EXCEEDED', `more than ${LISTING_LIMITS.files} files under ${redactUrl(root)}`);
        files.push({ name, url: url.href, size: entry.size, mtime: entry.mtime });
      }
    }
  }
  return files;
}

async function fetchIndex(url: URL, headers: ReadonlyArray<readonly [string, string]>, signal: AbortSignal): Promise<IndexEntry[]> {
  let response: Response;
  try {
    response = await fetch(url, { headers: headers.map(([n, v]) => [n, v]), signal, redirect: 'manual' });
  } catch (err) {
    if (signal.aborted) throw new ShoalError('ABORTED', 'cancelled');
    throw new ShoalError('SOURCE_NETWORK', `GET ${redactUrl(url)}: ${(err as Error).message}`, { cause: err });
  }
  if (response.status >= 300 && response.status < 400) {
    await response.body?.cancel();
    throw new ShoalError('LISTING_INVALID', `GET ${redactUrl(url)}: the index answered a redirect (HTTP ${response.status}); give the URL it names`);
  }
  const text = await readCapped(response, LISTING_LIMITS.pageBytes);
  if (response.status !== 200) {
    const verdict = judgeStatus(response.status);
    throw new ShoalError(verdict === 'ok' || verdict === 'retry' ? 'SOURCE_STATUS' : verdict, `GET ${redactUrl(url)}: HTTP ${response.status}`, { sourceStatus: response.status });
  }
  const type = response.headers.get('content-type') ?? '';
  return type.includes('json') || /^\s*\[/.test(text) ? parseNginxJson(text) : parseNginxHtml(text);
}
