/**
 * The OCI distribution spec's pull-side routes, as pure functions: a request
 * line in, a Route (or the spec's error) out. No sockets. Names, tags and
 * digests are checked by ../registry/grammar.ts.
 */
import { checkDigest, checkName, parseReference, type Reference } from '../registry/grammar.js';

export type Route =
  | { kind: 'base' }
  | { kind: 'manifest'; name: string; reference: Reference }
  | { kind: 'blob'; name: string; digest: string }
  | { kind: 'tags'; name: string }
  | { kind: 'referrers'; name: string; digest: string };

/** The spec's answer for a request Shoal does not route: push (405) or unknown (404). */
export type Refusal = { status: 404 | 405; code: 'UNSUPPORTED'; message: string };

const PULL_METHODS = new Set(['GET', 'HEAD']);
const MANIFEST = /^\/v2\/(.+)\/manifests\/([^/]+)$/;
const BLOB = /^\/v2\/(.+)\/blobs\/([^/]+)$/;
const TAGS = /^\/v2\/(.+)\/tags\/list$/;
const REFERRERS = /^\/v2\/(.+)\/referrers\/([^/]+)$/;
const UPLOADS = /^\/v2\/.+\/blobs\/uploads(?:\/.*)?$/;

/**
 * Routes a request. `path` is the raw path without the query. Throws a
 * ShoalError (NAME_INVALID, TAG_INVALID, DIGEST_INVALID) for a routed request
 * with a malformed name or reference; returns a Refusal for what a pull-through
 * mirror does not serve.
 */
export function route(method: string, path: string): Route | Refusal {
  const pull = PULL_METHODS.has(method);
  if (!pull && (path === '/v2' || path.startsWith('/v2/'))) {
    return { status: 405, code: 'UNSUPPORTED', message: `${method} is not supported: this is a pull-through mirror (push to the registry itself)` };
  }
  if (!pull) return { status: 405, code: 'UNSUPPORTED', message: `${method} is not supported` };
  if (path === '/v2/' || path === '/v2') return { kind: 'base' };
  if (UPLOADS.test(path)) return { status: 405, code: 'UNSUPPORTED', message: 'blob uploads are not supported: this is a pull-through mirror' };
  // Percent-encoding, dot segments and empty components never form a valid name;
  // checking the raw path keeps a decoded '..' from ever reaching the upstream URL.
  let m = MANIFEST.exec(path);
  if (m !== null) return { kind: 'manifest', name: checkName(m[1]!), reference: parseReference(m[2]!) };
  m = BLOB.exec(path);
  if (m !== null) return { kind: 'blob', name: checkName(m[1]!), digest: checkDigest(m[2]!) };
  m = TAGS.exec(path);
  if (m !== null) return { kind: 'tags', name: checkName(m[1]!) };
  m = REFERRERS.exec(path);
  if (m !== null) return { kind: 'referrers', name: checkName(m[1]!), digest: checkDigest(m[2]!) };
  return { status: 404, code: 'UNSUPPORTED', message: 'unknown endpoint: this mirror serves /v2/, manifests, blobs, tags/list and referrers' };
}

export function isRefusal(value: Route | Refusal): value is Refusal {
  return 'status' in value;
}

/**
 * The first name components a client without `ns` (podman, CRI-O, skopeo:
 * registries.conf mirror `location = "127.0.0.1:4001/shoal-ns/<registry>"`)
 * puts before the repository to say which registry it means.
 */
export const NS_PREFIX = 'shoal-ns';

/**
 * `shoal-ns/<registry>/<name>` → the registry host and the repository name;
 * undefined for any other name. A port is written `_PORT` (a name component
 * cannot hold `:`): `127.0.0.1_5000` is `127.0.0.1:5000`.
 */
export function splitNamespace(name: string): { registry: string; name: string } | undefined {
  const parts = name.split('/');
  if (parts.length < 3 || parts[0] !== NS_PREFIX) return undefined;
  return { registry: decodeRegistryComponent(parts[1]!), name: parts.slice(2).join('/') };
}

/** A registry host as one name component: `127.0.0.1:5000` → `127.0.0.1_5000`. */
export function encodeRegistryComponent(host: string): string {
  return host.toLowerCase().replace(/:(\d+)$/, '_$1');
}

function decodeRegistryComponent(component: string): string {
  return component.replace(/_(\d+)$/, ':$1');
}
