/**
 * `shoal preheat image REF`: the reference resolved through the registry with
 * the mirror's registry client — the manifest asked for with every manifest
 * type in Accept, an index (or Docker manifest list) resolved to the
 * platform's manifest, each manifest checked against its digest — into the
 * blobs to preheat: the config and every layer, by digest.
 *
 * A registry that answers 401 with a Bearer challenge (Docker Hub, ghcr.io,
 * most token-auth registries) gets a token from its realm, anonymously or with
 * the caller's Basic credentials; the blob tasks then carry that token.
 */
import { createHash } from 'node:crypto';
import { request as undiciRequest } from 'undici';
import { ShoalError } from '../../common/errors.js';
import type { HeaderList } from '../source/request-headers.js';
import type { RegistryClient, RegistryResponse } from '../registry/client.js';
import { MANIFEST_MAX, isValidDigest } from '../registry/grammar.js';
import { upstreamName, type Upstream } from '../registry/upstream.js';
import { formatPlatform, type ImageReference, type Platform } from './reference.js';

export const PREHEAT_USER_AGENT = 'shoal-preheat/0.1.0';

const INDEX_TYPES = new Set(['application/vnd.oci.image.index.v1+json', 'application/vnd.docker.distribution.manifest.list.v2+json']);
const MANIFEST_TYPES = new Set(['application/vnd.oci.image.manifest.v1+json', 'application/vnd.docker.distribution.manifest.v2+json']);
export const MANIFEST_ACCEPT = [...MANIFEST_TYPES, ...INDEX_TYPES].join(', ');
/** Blobs one image may list (config and layers). */
export const IMAGE_BLOBS_MAX = 1000;
const TOKEN_BODY_MAX = 64 * 1024;

export interface ImageBlob {
  digest: string;
  size: number | undefined;
  mediaType: string;
}

export interface ResolvedImage {
  upstream: Upstream;
  /** The name as the registry knows it. */
  name: string;
  /** The index's digest, when the reference named one. */
  indexDigest: string | undefined;
  /** The platform's image manifest. */
  manifestDigest: string;
  platform: string | undefined;
  blobs: ImageBlob[];
  /** Headers for the blob downloads: User-Agent and the credentials that worked. */
  blobHeaders: HeaderList;
}

export interface ResolveImageInput {
  ref: ImageReference;
  upstream: Upstream;
  platform: Platform;
  /** The caller's headers for the registry (Authorization). */
  headers: HeaderList;
  client: RegistryClient;
  signal: AbortSignal;
}

interface ManifestBody {
  mediaType?: unknown;
  schemaVersion?: unknown;
  manifests?: unknown;
  config?: unknown;
  layers?: unknown;
}

export async function resolveImage(input: ResolveImageInput): Promise<ResolvedImage> {
  const { upstream, client, signal } = input;
  const name = upstreamName(upstream, input.ref.name);
  let authorization = input.headers.find(([n]) => n.toLowerCase() === 'authorization')?.[1];
  const other = input.headers.filter(([n]) => n.toLowerCase() !== 'authorization' && n.toLowerCase() !== 'accept' && n.toLowerCase() !== 'user-agent');
  let tokenTried = false;

  const fetchManifest = async (reference: string): Promise<{ body: Buffer; parsed: ManifestBody; type: string; digest: string }> => {
    for (;;) {
      const headers: Array<readonly [string, string]> = [['User-Agent', PREHEAT_USER_AGENT], ['Accept', MANIFEST_ACCEPT], ...other];
      if (authorization !== undefined) headers.push(['Authorization', authorization]);
      const response = await client.request({ upstream, method: 'GET', path: `/v2/${name}/manifests/${reference}`, headers, maxBody: MANIFEST_MAX, signal });
      if (response.status === 401 && !tokenTried) {
        tokenTried = true;
        const token = await bearerToken(response, authorization, signal);
        if (token !== undefined) {
          authorization = `Bearer ${token}`;
          continue;
        }
      }
      if (response.status < 200 || response.status > 299) throw registryError(response, `manifest ${upstream.host}/${name}:${reference}`);
      const digest = 'sha256:' + createHash('sha256').update(response.body).digest('hex');
      if (reference.startsWith('sha256:') && digest !== reference) {
        throw new ShoalError('DIGEST_MISMATCH', `manifest ${reference} from ${upstream.host}/${name} hashes to ${digest}`);
      }
      let parsed: ManifestBody;
      try {
        parsed = JSON.parse(response.body.toString('utf8')) as ManifestBody;
        if (typeof parsed !== 'object' || parsed === null) throw new Error('not an object');
      } catch (err) {
        throw new ShoalError('SOURCE_PROTOCOL', `manifest ${upstream.host}/${name}:${reference} is not JSON: ${(err as Error).message}`);
      }
      const header = response.headers['content-type'];
      const type = typeof parsed.mediaType === 'string' ? parsed.mediaType : typeof header === 'string' ? header.split(';')[0]!.trim() : '';
      return { body: response.body, parsed, type, digest };
    }
  };

  const ref = input.ref.reference.kind === 'digest' ? input.ref.reference.digest : input.ref.reference.tag;
  let manifest = await fetchManifest(ref);
  let indexDigest: string | undefined;
  let platform: string | undefined;
  if (INDEX_TYPES.has(manifest.type) || (manifest.type === '' && Array.isArray(manifest.parsed.manifests))) {
    indexDigest = manifest.digest;
    const chosen = pickPlatform(manifest.parsed, input.platform);
    if (chosen === undefined) {
      throw new ShoalError('PLATFORM_UNKNOWN', `${upstream.host}/${name}:${ref} has no manifest for ${formatPlatform(input.platform)}`);
    }
    platform = formatPlatform(input.platform);
    manifest = await fetchManifest(chosen);
    if (INDEX_TYPES.has(manifest.type)) throw new ShoalError('SOURCE_PROTOCOL', `${upstream.host}/${name}@${chosen}: an index inside an index is not supported`);
  }
  if (!MANIFEST_TYPES.has(manifest.type) && !(manifest.type === '' && Array.isArray(manifest.parsed.layers))) {
    throw new ShoalError('SOURCE_PROTOCOL', `${upstream.host}/${name}:${ref}: unsupported manifest type ${JSON.stringify(manifest.type.slice(0, 100))} (OCI or Docker schema 2 only)`);
  }
  const blobs = blobsOf(manifest.parsed, `${upstream.host}/${name}@${manifest.digest}`);
  const blobHeaders: Array<readonly [string, string]> = [['User-Agent', PREHEAT_USER_AGENT], ...other];
  if (authorization !== undefined) blobHeaders.push(['Authorization', authorization]);
  return { upstream, name, indexDigest, manifestDigest: manifest.digest, platform, blobs, blobHeaders };
}

function pickPlatform(index: ManifestBody, want: Platform): string | undefined {
  if (!Array.isArray(index.manifests)) return undefined;
  let fallback: string | undefined;
  for (const entry of index.manifests as unknown[]) {
    if (typeof entry !== 'object' || entry === null) continue;
    const e = entry as { digest?: unknown; platform?: { os?: unknown; architecture?: unknown; variant?: unknown } };
    if (typeof e.digest !== 'string' || !isValidDigest(e.digest)) continue;
    const p = e.platform;
    if (p?.os !== want.os || p.architecture !== want.architecture) continue;
    if (want.variant === undefined || p.variant === want.variant) {
      // Without a variant asked for, one without a variant is the exact match.
      if (want.variant !== undefined || p.variant === undefined) return e.digest;
      fallback ??= e.digest;
    }
  }
  return fallback;
}

function blobsOf(manifest: ManifestBody, what: string): ImageBlob[] {
  const list = [manifest.config, ...(Array.isArray(manifest.layers) ? (manifest.layers as unknown[]) : [])];
  if (list.length > IMAGE_BLOBS_MAX) throw new ShoalError('LIMIT_EXCEEDED', `${what} lists ${list.length} blobs (at most ${IMAGE_BLOBS_MAX})`);
  const seen = new Set<string>();
  const blobs: ImageBlob[] = [];
  for (const item of list) {
    if (typeof item !== 'object' || item === null) throw new ShoalError('SOURCE_PROTOCOL', `${what}: a config or layer descriptor is missing`);
    const d = item as { digest?: unknown; size?: unknown; mediaType?: unknown };
    if (typeof d.digest !== 'string' || !isValidDigest(d.digest)) throw new ShoalError('SOURCE_PROTOCOL', `${what}: descriptor with a digest Shoal cannot verify (sha256 only)`);
    if (seen.has(d.digest)) continue;
    seen.add(d.digest);
    blobs.push({
      digest: d.digest,
      size: typeof d.size === 'number' && Number.isSafeInteger(d.size) && d.size >= 0 ? d.size : undefined,
      mediaType: typeof d.mediaType === 'string' ? d.mediaType.slice(0, 256) : '',
    });
  }
  return blobs;
}

function registryError(response: RegistryResponse, what: string): ShoalError {
  const status = response.status;
  const detail = registryMessage(response.body);
  const message = `${what}: registry answered HTTP ${status}${detail === '' ? '' : ` (${detail})`}`;
  if (status === 401 || status === 403) return new ShoalError('SOURCE_AUTH', message, { sourceStatus: status });
  if (status === 404 || status === 410) return new ShoalError('SOURCE_NOT_FOUND', message, { sourceStatus: status });
  return new ShoalError('SOURCE_STATUS', message, { sourceStatus: status });
}

/** A registry's error field as text: strings as they are, anything else as JSON. */
function text(value: unknown): string {
  return typeof value === 'string' ? value : value === undefined ? '' : JSON.stringify(value);
}

function registryMessage(body: Buffer): string {
  try {
    const parsed = JSON.parse(body.toString('utf8')) as { errors?: Array<{ code?: unknown; message?: unknown }> };
    const first = parsed.errors?.[0];
    return first === undefined ? '' : `${text(first.code)}: ${text(first.message)}`.slice(0, 300);
  } catch {
    return '';
  }
}

/** `Bearer realm="…",service="…",scope="…"` → its parameters; undefined for other schemes. */
export function parseBearerChallenge(header: string): Record<string, string> | undefined {
  const m = /^\s*Bearer\s+(.*)$/i.exec(header);
  if (m === null) return undefined;
  const params: Record<string, string> = {};
  const re = /([a-zA-Z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/g;
  for (let p = re.exec(m[1]!); p !== null; p = re.exec(m[1]!)) params[p[1]!.toLowerCase()] = (p[2] ?? p[3] ?? '').replace(/\\(.)/g, '$1');
  return params;
}

/** A registry token for a 401's Bearer challenge; undefined when the challenge is not Bearer. */
async function bearerToken(response: RegistryResponse, authorization: string | undefined, signal: AbortSignal): Promise<string | undefined> {
  const header = response.headers['www-authenticate'];
  const challenge = parseBearerChallenge(Array.isArray(header) ? (header[0] ?? '') : (header ?? ''));
  if (challenge?.['realm'] === undefined) return undefined;
  let realm: URL;
  try {
    realm = new URL(challenge['realm']);
  } catch {
    throw new ShoalError('SOURCE_PROTOCOL', 'registry token realm is not a URL');
  }
  if (realm.protocol !== 'https:' && !(realm.protocol === 'http:' && response.url.protocol === 'http:')) {
    throw new ShoalError('SOURCE_PROTOCOL', `registry token realm ${realm.origin} is not HTTPS`);
  }
  if (challenge['service'] !== undefined) realm.searchParams.set('service', challenge['service']);
  if (challenge['scope'] !== undefined) realm.searchParams.set('scope', challenge['scope']);
  const headers: Record<string, string> = { 'user-agent': PREHEAT_USER_AGENT };
  // Only Basic credentials are meant for the token server.
  if (authorization !== undefined && /^basic\s/i.test(authorization)) headers['authorization'] = authorization;
  let res;
  try {
    res = await undiciRequest(realm, { method: 'GET', headers, signal, headersTimeout: 30_000, bodyTimeout: 30_000 });
  } catch (err) {
    if (signal.aborted) throw new ShoalError('ABORTED', 'preheat cancelled');
    throw new ShoalError('SOURCE_NETWORK', `registry token server ${realm.origin}: ${(err as Error).message}`);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res.body as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > TOKEN_BODY_MAX) {
      res.body.destroy();
      throw new ShoalError('UPSTREAM_TOO_LARGE', `registry token answer over ${TOKEN_BODY_MAX} bytes`);
    }
    chunks.push(chunk);
  }
  if (res.statusCode === 401 || res.statusCode === 403) throw new ShoalError('SOURCE_AUTH', `registry token server ${realm.origin} refused the credentials (HTTP ${res.statusCode})`, { sourceStatus: res.statusCode });
  if (res.statusCode < 200 || res.statusCode > 299) throw new ShoalError('SOURCE_STATUS', `registry token server ${realm.origin} answered HTTP ${res.statusCode}`, { sourceStatus: res.statusCode });
  try {
    const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { token?: unknown; access_token?: unknown };
    const token = typeof body.token === 'string' ? body.token : body.access_token;
    if (typeof token !== 'string' || token === '' || /[\r\n]/.test(token)) throw new Error('no token');
    return token;
  } catch {
    throw new ShoalError('SOURCE_PROTOCOL', `registry token server ${realm.origin} sent no token`);
  }
}
