/**
 * Image references as `docker pull` takes them, parsed with the mirror's
 * grammar checks: `[registry/]name[:tag][@digest]`. The first component is
 * the registry when it has a `.` or a `:` or is `localhost`; otherwise the
 * image is on Docker Hub (`alpine` → docker.io, `library/alpine`). No tag and
 * no digest means `latest`; with a digest, the tag is ignored. Pure.
 */
import { ShoalError } from '../../common/errors.js';
import { checkDigest, checkName, parseReference, type Reference } from '../registry/grammar.js';
import { isRegistryHost } from '../registry/upstream.js';

export interface ImageReference {
  /** The registry host as written (`docker.io` when none was). */
  registry: string;
  /** The repository name as written (Docker Hub's `library/` is added by the upstream). */
  name: string;
  reference: Reference;
}

export const IMAGE_REFERENCE_MAX = 512;

export function parseImageReference(value: string): ImageReference {
  if (value.length === 0 || value.length > IMAGE_REFERENCE_MAX) {
    throw new ShoalError('NAME_INVALID', `image reference must be 1 to ${IMAGE_REFERENCE_MAX} characters`);
  }
  let rest = value;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = checkDigest(rest.slice(at + 1));
    rest = rest.slice(0, at);
  }
  let registry = 'docker.io';
  const slash = rest.indexOf('/');
  if (slash >= 0) {
    const first = rest.slice(0, slash);
    if (first.includes('.') || first.includes(':') || first === 'localhost') {
      registry = first.toLowerCase();
      rest = rest.slice(slash + 1);
      if (!isRegistryHost(registry)) throw new ShoalError('UPSTREAM_INVALID', `${JSON.stringify(first.slice(0, 100))} is not a registry HOST or HOST:PORT`);
    }
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
  }
  const name = checkName(rest);
  const reference: Reference = digest !== undefined ? { kind: 'digest', digest } : parseReference(tag ?? 'latest');
  return { registry, name, reference };
}

/** `os/arch[/variant]`, e.g. linux/amd64, linux/arm64/v8. */
export interface Platform {
  os: string;
  architecture: string;
  variant: string | undefined;
}

export function parsePlatform(value: string): Platform {
  const m = /^([a-z0-9_-]{1,32})\/([a-z0-9_-]{1,32})(?:\/([a-z0-9_-]{1,32}))?$/i.exec(value.trim());
  if (m === null) throw new ShoalError('USAGE', `--platform ${JSON.stringify(value.slice(0, 100))} is not os/arch[/variant], e.g. linux/amd64`);
  return { os: m[1]!.toLowerCase(), architecture: m[2]!.toLowerCase(), variant: m[3]?.toLowerCase() };
}

export function formatPlatform(p: Platform): string {
  return `${p.os}/${p.architecture}${p.variant === undefined ? '' : `/${p.variant}`}`;
}
