/**
 * `GET/HEAD /v2/<name>/manifests/<tag|digest>`. Forwarded with the client's
 * Accept and Authorization verbatim; the body goes back byte for byte with its
 * Content-Type and a Docker-Content-Digest computed here (a body that does not
 * match the digest asked for is refused). Manifests are cached by digest; a
 * cached one is served only after the registry accepts the client's
 * credentials for it (access check). Tags are resolved upstream every time
 * unless `tagTtl` > 0. HEAD stays a HEAD upstream (Docker Hub counts GETs).
 */
import { createHash } from 'node:crypto';
import { ShoalError } from '../../common/errors.js';
import { USER_AGENT } from './access.js';
import type { CachedManifest } from './caches.js';
import { forwardedHeaders, type MirrorRequest, type MirrorShared } from './context.js';
import { relayError, setSafe } from './reply.js';
import { MANIFEST_MAX, isValidDigest, type Reference } from '../registry/grammar.js';
import { prefetchBlobs } from './prefetch.js';

/** The distribution spec's manifest size cap. */
const FALLBACK_TYPE = 'application/vnd.oci.image.manifest.v1+json';

export async function serveManifest(shared: MirrorShared, r: MirrorRequest, reference: Reference): Promise<void> {
  const digest = reference.kind === 'digest' ? reference.digest : cachedTag(shared, r, reference.tag);
  const cached = digest === undefined ? undefined : shared.manifests.get(digest);
  if (cached !== undefined) {
    const access = await shared.access.check({ upstream: r.upstream, name: r.name, kind: 'manifests', digest: cached.digest, authorization: r.authorization, accept: r.accept ?? cached.contentType });
    if (!access.ok) {
      shared.stats.denied++;
      relayError(r.res, access.response, 'manifest');
      return;
    }
    shared.stats.manifestsFromCache++;
    send(r, cached);
    prefetchBlobs(shared, r, cached.body);
    return;
  }
  if (r.method === 'HEAD') {
    const answered = await forwardHead(shared, r, reference);
    if (answered) return;
  }
  await forwardGet(shared, r, reference);
}

function tagKey(r: MirrorRequest, tag: string): string {
  return `${r.upstream.origin}\0${r.name}\0${tag}\0${r.accept ?? ''}`;
}

function cachedTag(shared: MirrorShared, r: MirrorRequest, tag: string): string | undefined {
  return shared.tagTtlMs > 0 ? shared.tags.get(tagKey(r, tag)) : undefined;
}

function refPath(r: MirrorRequest, reference: Reference): string {
  return `/v2/${r.name}/manifests/${reference.kind === 'digest' ? reference.digest : reference.tag}`;
}

/** A HEAD upstream; false when its answer lacks a usable Docker-Content-Digest (then a GET decides). */
async function forwardHead(shared: MirrorShared, r: MirrorRequest, reference: Reference): Promise<boolean> {
  const response = await shared.client.request({
    upstream: r.upstream,
    method: 'HEAD',
    path: refPath(r, reference),
    headers: forwardedHeaders(r, USER_AGENT, true),
    maxBody: 0,
    signal: r.signal,
  });
  if (response.status < 200 || response.status > 299) {
    relayError(r.res, response, 'manifest');
    return true;
  }
  const header = response.headers['docker-content-digest'];
  const said = typeof header === 'string' ? header.trim() : undefined;
  const digest = reference.kind === 'digest' ? reference.digest : said;
  if (digest === undefined || !isValidDigest(digest) || (said !== undefined && said !== digest)) return false;
  const length = Number(response.headers['content-length']);
  if (!Number.isSafeInteger(length) || length < 0 || length > MANIFEST_MAX) return false;
  shared.access.grant({ upstream: r.upstream, name: r.name, kind: 'manifests', digest, authorization: r.authorization }, { size: length, contentType: undefined });
  shared.stats.manifestsFromUpstream++;
  const res = r.res;
  res.statusCode = 200;
  const type = response.headers['content-type'];
  setSafe(res, 'Content-Type', typeof type === 'string' ? type : FALLBACK_TYPE);
  res.setHeader('Content-Length', length);
  res.setHeader('Docker-Content-Digest', digest);
  res.end();
  return true;
}

async function forwardGet(shared: MirrorShared, r: MirrorRequest, reference: Reference): Promise<void> {
  const response = await shared.client.request({
    upstream: r.upstream,
    method: 'GET',
    path: refPath(r, reference),
    headers: forwardedHeaders(r, USER_AGENT, true),
    maxBody: MANIFEST_MAX,
    signal: r.signal,
  });
  if (response.status < 200 || response.status > 299) {
    relayError(r.res, response, 'manifest');
    return;
  }
  const body = response.body;
  const digest = 'sha256:' + createHash('sha256').update(body).digest('hex');
  if (reference.kind === 'digest' && digest !== reference.digest) {
    throw new ShoalError('DIGEST_MISMATCH', `manifest ${reference.digest} from ${r.upstream.host}/${r.name} hashes to ${digest}`);
  }
  const type = response.headers['content-type'];
  const entry: CachedManifest = { digest, body, contentType: typeof type === 'string' && type !== '' ? type : mediaTypeOf(body) };
  shared.manifests.set(entry);
  shared.access.grant({ upstream: r.upstream, name: r.name, kind: 'manifests', digest, authorization: r.authorization }, { size: body.length, contentType: entry.contentType });
  if (reference.kind === 'tag' && shared.tagTtlMs > 0) shared.tags.set(tagKey(r, reference.tag), digest);
  shared.stats.manifestsFromUpstream++;
  send(r, entry);
  prefetchBlobs(shared, r, entry.body);
}

function mediaTypeOf(body: Buffer): string {
  try {
    const parsed = JSON.parse(body.toString('utf8')) as { mediaType?: unknown };
    return typeof parsed.mediaType === 'string' && parsed.mediaType.length < 256 ? parsed.mediaType : FALLBACK_TYPE;
  } catch {
    return FALLBACK_TYPE;
  }
}

function send(r: MirrorRequest, m: CachedManifest): void {
  const res = r.res;
  res.statusCode = 200;
  setSafe(res, 'Content-Type', m.contentType);
  res.setHeader('Content-Length', m.body.length);
  res.setHeader('Docker-Content-Digest', m.digest);
  res.end(r.method === 'HEAD' ? undefined : m.body);
}
