/**
 * Is a 200/206 the bytes we asked for, of the version we started with? A pure check:
 * throws SOURCE_PROTOCOL when not, else says where the body starts and ends.
 */
import { header, ifRangeValidator, parseContentRange, parseLength, type ResponseHeaders } from './response-meta.js';
import { changedError, protocolError } from './source-errors.js';

/** What the first response said about the content; later responses must agree. */
export interface ContentVersion {
  readonly total: number | undefined;
  readonly etag: string | undefined;
  readonly lastModified: string | undefined;
}

export interface Expectation {
  /** Absolute offset the body must deliver first. */
  readonly pos: number;
  /** One past the last byte the caller wants, when bounded. */
  readonly end: number | undefined;
  /** Undefined for the first response of a range. */
  readonly version: ContentVersion | undefined;
  readonly sentIfRange: boolean;
}

export interface AcceptedBody {
  /** Body bytes before `pos` (a 200 answered to a Range). */
  readonly skip: number;
  /** Absolute offset one past the body's last byte, when the origin said. */
  readonly end: number | undefined;
  readonly version: ContentVersion;
}

export function checkResponse(url: URL, status: number, headers: ResponseHeaders, expect: Expectation): AcceptedBody {
  const { pos, version: first } = expect;
  const length = parseLength(header(headers, 'content-length'));
  if (length === 'invalid') throw protocolError(url, `bad or too large Content-Length ${header(headers, 'content-length')}`, status);
  const etag = header(headers, 'etag');
  const version = { total: length, etag, lastModified: header(headers, 'last-modified') };
  let body: AcceptedBody;
  if (status === 206) {
    const range = parseContentRange(header(headers, 'content-range'));
    if (range === undefined) throw protocolError(url, `bad Content-Range ${header(headers, 'content-range') ?? '(none)'}`, status);
    if (range.first !== pos) throw protocolError(url, `Content-Range starts at ${range.first}, asked for ${pos}`, status);
    if (length !== undefined && length !== range.last + 1 - range.first) throw protocolError(url, 'Content-Length disagrees with Content-Range', status);
    body = { skip: 0, end: range.last + 1, version: { ...version, total: range.total } };
  } else {
    // A 200 to If-Range means a new version, unless it carries the same validator: then the origin just ignores Range.
    const sameVersion = first !== undefined && ifRangeValidator(first.etag, first.lastModified) === ifRangeValidator(etag, version.lastModified);
    if (expect.sentIfRange && !sameVersion) throw changedError(url, 'a whole new body answered If-Range', status);
    body = { skip: pos, end: length, version };
  }
  const { total } = body.version;
  if (first === undefined) {
    const wanted = expect.end ?? pos;
    // The range came from a length learned earlier: the content is now shorter than that version.
    if (total !== undefined && wanted > total) throw changedError(url, `the range ends at ${wanted}, beyond the content length ${total}`, status);
    return body;
  }
  if (total !== undefined && first.total !== undefined && total !== first.total) {
    throw changedError(url, `length ${first.total} became ${total}`, status);
  }
  if (etag !== undefined && first.etag !== undefined && etag !== first.etag) throw changedError(url, 'ETag differs', status);
  const lastModified = body.version.lastModified;
  if (first.etag === undefined && lastModified !== undefined && first.lastModified !== undefined && lastModified !== first.lastModified) {
    throw changedError(url, 'Last-Modified differs', status);
  }
  return { ...body, version: { ...first, total: first.total ?? total } };
}
