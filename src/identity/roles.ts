/**
 * Who a certificate says its holder is: a name (the subject's CN) and the
 * roles the cluster CA gave it, as URI subject alternative names
 * `urn:shoal:role:<role>`. Roles come from certificates only, never from what
 * a host announces (docs/security.md).
 *
 *   scheduler  serves the scheduler RPC
 *   seed       may announce itself as a seed peer, vouch for piece digests, receive SeedTask
 *   peer       a daemon: downloads, serves pieces to other members
 *   admin      may call Preheat and Stat (anything that makes a seed fetch or lists the cluster)
 */
import type { PeerCertificate } from 'node:tls';

export const ROLES = ['scheduler', 'seed', 'peer', 'admin'] as const;
export type Role = (typeof ROLES)[number];

export const ROLE_URI_PREFIX = 'urn:shoal:role:';

export function isRole(value: string): value is Role {
  return (ROLES as readonly string[]).includes(value);
}

/** The roles named in a subjectAltName string as Node prints it ("URI:urn:shoal:role:seed, DNS:x"). */
export function rolesIn(subjectAltName: string | undefined): Role[] {
  const roles: Role[] = [];
  for (const entry of (subjectAltName ?? '').split(/,\s*/)) {
    if (!entry.startsWith(`URI:${ROLE_URI_PREFIX}`)) continue;
    const role = entry.slice(`URI:${ROLE_URI_PREFIX}`.length);
    if (isRole(role) && !roles.includes(role)) roles.push(role);
  }
  return roles;
}

/** A cluster member as its certificate shows it. */
export interface Identity {
  /** The subject's common name. */
  readonly name: string;
  readonly roles: readonly Role[];
  /** SHA-256 fingerprint of the certificate (for logs and revocation lists). */
  readonly fingerprint: string;
}

/** The identity in a verified peer certificate (tls getPeerCertificate()); undefined when there is none. */
export function identityOf(cert: PeerCertificate | undefined): Identity | undefined {
  if (cert === undefined || cert.raw === undefined || Object.keys(cert).length === 0) return undefined;
  const cn = cert.subject?.CN;
  return { name: Array.isArray(cn) ? String(cn[0]) : String(cn ?? ''), roles: rolesIn(cert.subjectaltname), fingerprint: cert.fingerprint256 };
}

export function hasRole(identity: Identity | undefined, role: Role): boolean {
  return identity?.roles.includes(role) === true;
}
