/**
 * Endpoints relayed to the registry as they are: the `/v2/` ping (whose 401
 * and WWW-Authenticate challenge start every client's auth flow), the tags
 * list (`n`, `last`, and the `Link` header for the next page) and referrers
 * (`artifactType`). Bodies are capped; containerd's `ns` is never forwarded,
 * and is put back into a relative `Link` so the next page reaches the same
 * registry.
 */
import { USER_AGENT } from './access.js';
import { forwardedHeaders, type MirrorRequest, type MirrorShared } from './context.js';
import { relayError, setSafe } from './reply.js';

/** Tags lists and referrers indexes relayed, at most. */
export const LIST_MAX = 8 * 1024 * 1024;
const RELAYED = ['content-type', 'link', 'oci-filters-applied', 'docker-distribution-api-version'] as const;

export async function servePing(shared: MirrorShared, r: MirrorRequest): Promise<void> {
  const response = await shared.client.request({
    upstream: r.upstream,
    method: r.method,
    path: '/v2/',
    headers: forwardedHeaders(r, USER_AGENT, false),
    maxBody: 64 * 1024,
    signal: r.signal,
  });
  if (response.status < 200 || response.status > 299) {
    relayError(r.res, response, 'name');
    return;
  }
  const body = Buffer.from('{}');
  r.res.statusCode = 200;
  r.res.setHeader('Content-Type', 'application/json');
  r.res.setHeader('Content-Length', body.length);
  r.res.end(r.method === 'HEAD' ? undefined : body);
}

export async function serveList(shared: MirrorShared, r: MirrorRequest, path: string, params: readonly string[]): Promise<void> {
  const query = new URLSearchParams();
  for (const name of params) for (const value of r.query.getAll(name)) query.append(name, value);
  const response = await shared.client.request({
    upstream: r.upstream,
    method: r.method,
    path,
    query,
    headers: forwardedHeaders(r, USER_AGENT, true),
    maxBody: LIST_MAX,
    signal: r.signal,
  });
  if (response.status < 200 || response.status > 299) {
    relayError(r.res, response, 'name');
    return;
  }
  const res = r.res;
  res.statusCode = response.status;
  for (const name of RELAYED) {
    const value = response.headers[name];
    if (value === undefined) continue;
    setSafe(res, name, name === 'link' && r.ns !== undefined ? withNs(value, r.ns) : value);
  }
  if (r.method === 'HEAD') {
    const length = response.headers['content-length'];
    if (typeof length === 'string') res.setHeader('Content-Length', length);
    res.end();
    return;
  }
  res.setHeader('Content-Length', response.body.length);
  res.end(response.body);
}

/** `</v2/…?last=x>; rel="next"` → the same with `ns=` added, so the next page goes to the same registry. */
export function withNs(link: string | string[], ns: string): string | string[] {
  const one = (value: string): string =>
    value.replace(/<(\/v2\/[^>]*)>/g, (_all, target: string) => {
      const url = new URL(target, 'http://mirror.invalid');
      url.searchParams.set('ns', ns);
      return `<${url.pathname}${url.search}>`;
    });
  return Array.isArray(link) ? link.map(one) : one(link);
}
