/**
 * The OCI distribution spec's reference grammar, as pure functions (the
 * registry mirror's routes and `shoal preheat image` both check with them):
 *
 *   name   [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)* components joined by '/', ≤ 255 characters
 *   tag    [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}
 *   digest sha256:[a-f0-9]{64} (the only algorithm Shoal verifies)
 */
import { ShoalError } from '../../common/errors.js';

/** A manifest (or index) over this many bytes is refused (docs/LIMITS.md). */
export const MANIFEST_MAX = 4 * 1024 * 1024;

export const NAME_MAX = 255;
const COMPONENT = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$/;
const TAG = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
const DIGEST = /^sha256:[a-f0-9]{64}$/;

export type Reference = { kind: 'tag'; tag: string } | { kind: 'digest'; digest: string };

export function isValidName(name: string): boolean {
  if (name.length === 0 || name.length > NAME_MAX) return false;
  return name.split('/').every((component) => COMPONENT.test(component));
}

export function isValidTag(tag: string): boolean {
  return TAG.test(tag);
}

export function isValidDigest(digest: string): boolean {
  return DIGEST.test(digest);
}

export function checkName(name: string): string {
  if (!isValidName(name)) {
    throw new ShoalError('NAME_INVALID', `invalid repository name ${JSON.stringify(name.slice(0, 300))}: components [a-z0-9]+((.|_|__|-+)[a-z0-9]+)* joined by '/', at most ${NAME_MAX} characters`);
  }
  return name;
}

export function checkDigest(digest: string): string {
  if (!isValidDigest(digest)) throw new ShoalError('DIGEST_INVALID', `invalid digest ${JSON.stringify(digest.slice(0, 100))}: expected sha256:<64 lowercase hex>`);
  return digest;
}

export function parseReference(value: string): Reference {
  if (value.includes(':')) return { kind: 'digest', digest: checkDigest(value) };
  if (!isValidTag(value)) throw new ShoalError('TAG_INVALID', `invalid tag ${JSON.stringify(value.slice(0, 200))}: expected [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`);
  return { kind: 'tag', tag: value };
}
