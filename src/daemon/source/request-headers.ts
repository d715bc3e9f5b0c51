/**
 * The request headers sent to an origin: the user's, verbatim and in order, minus
 * the ones the client controls, minus credentials once a redirect leaves the
 * user's origin, plus the client's own (Range, If-Range).
 */

/** Hop-by-hop headers (RFC 9110 §7.6.1) and the ones whose value the client decides. */
const CLIENT_CONTROLLED = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'host',
  'range',
  'if-range',
  'content-length',
  'expect',
]);

/** Never sent to an origin other than the one the user named. */
const CREDENTIALS = new Set(['authorization', 'cookie']);

export type HeaderList = ReadonlyArray<readonly [string, string]>;

/** Same scheme, host and port. */
export function sameOrigin(a: URL, b: URL): boolean {
  return a.protocol === b.protocol && a.host === b.host;
}

/** Builds undici's flat [name, value, name, value, …] form. */
export function buildHeaders(user: HeaderList, own: HeaderList, withCredentials: boolean): string[] {
  const named = new Set(
    user
      .filter(([name]) => name.toLowerCase() === 'connection')
      .flatMap(([, value]) => value.split(',').map((token) => token.trim().toLowerCase())),
  );
  const out: string[] = [];
  for (const [name, value] of user) {
    const lower = name.toLowerCase();
    if (CLIENT_CONTROLLED.has(lower) || named.has(lower)) continue;
    if (!withCredentials && CREDENTIALS.has(lower)) continue;
    out.push(name, value);
  }
  for (const [name, value] of own) out.push(name, value);
  return out;
}
