/**
 * nginx `autoindex` pages, in the two formats nginx writes
 * (ngx_http_autoindex_module.c): HTML —
 *
 *     <a href="NAME-URI-ESCAPED">NAME-HTML-ESCAPED-TRUNCATED</a>   02-Dec-2026 04:00              1234
 *     <a href="SUBDIR/">SUBDIR/</a>                                02-Dec-2026 04:00                 -
 *
 * (sizes exact by default, else `12K`/`3M`; times in UTC unless
 * autoindex_localtime) — and JSON (`autoindex_format json`):
 *
 *     [
 *     { "name":"a.log", "type":"file", "mtime":"Wed, 02 Dec 2026 04:00:00 GMT", "size":1234 },
 *     { "name":"sub", "type":"directory", "mtime":"Wed, 02 Dec 2026 04:00:00 GMT" }
 *     ]
 *
 * Pure parsers: names come out decoded and unchecked (./safe-path.ts checks them).
 */
import { ShoalError } from '../../common/errors.js';

export interface IndexEntry {
  readonly name: string;
  readonly directory: boolean;
  readonly size: number | undefined;
  readonly mtime: number | undefined;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const HTML_ROW = /<a href="([^"]*)">[^<]*<\/a>\s+(\d{2})-([A-Z][a-z]{2})-(\d{4}) (\d{2}):(\d{2})\s+(-|\d+|\d+[KMG])\s*$/;

function invalid(what: string): ShoalError {
  return new ShoalError('LISTING_INVALID', `directory index: ${what}`);
}

function decodeHref(href: string): string {
  const raw = href.replace(/&amp;/g, '&').replace(/&quot;/g, '"').replace(/&lt;/g, '<').replace(/&gt;/g, '>');
  try {
    return decodeURIComponent(raw.startsWith('./') ? raw.slice(2) : raw);
  } catch {
    throw invalid(`a link is not valid percent-encoded UTF-8: ${JSON.stringify(href.slice(0, 100))}`);
  }
}

/** The entries of an nginx HTML autoindex page (the "../" link left out). */
export function parseNginxHtml(html: string): IndexEntry[] {
  if (!/<h1>Index of [^<]*<\/h1>/.test(html) || !html.includes('<pre>')) throw invalid('not an nginx autoindex page (no "Index of" heading)');
  const entries: IndexEntry[] = [];
  for (const line of html.split(/\r?\n/)) {
    if (line.includes('<a href="../">../</a>')) continue;
    const m = HTML_ROW.exec(line);
    if (m === null) continue;
    const [, href = '', day, mon = '', year, hh, mm, sizeText = '-'] = m;
    const month = MONTHS.indexOf(mon);
    if (month < 0) throw invalid(`bad month ${JSON.stringify(mon)}`);
    const directory = href.endsWith('/');
    const name = decodeHref(directory ? href.slice(0, -1) : href);
    const mtime = Date.UTC(Number(year), month, Number(day), Number(hh), Number(mm));
    const size = directory || !/^\d+$/.test(sizeText) ? undefined : Number(sizeText);
    entries.push({ name, directory, size, mtime });
  }
  return entries;
}

/** The entries of an nginx JSON autoindex document ("other" entries, such as sockets, left out). */
export function parseNginxJson(text: string): IndexEntry[] {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    throw invalid('not JSON');
  }
  if (!Array.isArray(data)) throw invalid('the JSON index is not an array');
  const entries: IndexEntry[] = [];
  for (const item of data as unknown[]) {
    if (typeof item !== 'object' || item === null) throw invalid('an entry is not an object');
    const { name, type, mtime, size } = item as Record<string, unknown>;
    if (typeof name !== 'string' || typeof type !== 'string') throw invalid('an entry has no name or type');
    if (type === 'other') continue;
    if (type !== 'file' && type !== 'directory') throw invalid(`unknown entry type ${JSON.stringify(type.slice(0, 20))}`);
    if (size !== undefined && (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0)) throw invalid('a size is not a whole number');
    const time = typeof mtime === 'string' ? Date.parse(mtime) : NaN;
    entries.push({ name, directory: type === 'directory', size: type === 'file' ? size : undefined, mtime: Number.isNaN(time) ? undefined : time });
  }
  return entries;
}
