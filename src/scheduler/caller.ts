/**
 * Who is calling the scheduler, as its TLS session shows it: the identity in
 * the client's certificate (roles from the cluster CA, never from what the
 * host announces). Without TLS (loopback, or --insecure) there is no
 * identity and every role is granted: the trust of the network is the
 * operator's choice (docs/security.md).
 */
import { createContextKey, createContextValues, type ContextValues, type HandlerContext } from '@connectrpc/connect';
import type { TLSSocket } from 'node:tls';
import { ShoalError } from '../common/errors.js';
import { hasRole, identityOf, type Identity, type Role } from '../identity/roles.js';

export interface Caller {
  /** The scheduler runs with TLS: roles are checked. */
  readonly secure: boolean;
  readonly identity: Identity | undefined;
}

const CALLER = createContextKey<Caller>({ secure: false, identity: undefined });

/** The context values of a request arriving on `socket`. */
export function callerValues(secure: boolean, socket: unknown): ContextValues {
  const tls = socket as Partial<TLSSocket> | undefined;
  const identity = secure && typeof tls?.getPeerCertificate === 'function' ? identityOf(tls.getPeerCertificate()) : undefined;
  return createContextValues().set(CALLER, { secure, identity });
}

export function callerOf(context: HandlerContext): Caller {
  return context.values.get(CALLER);
}

/** Whether the caller may act as `role`: it holds it, or the scheduler checks no roles. */
export function mayAct(caller: Caller, role: Role): boolean {
  return !caller.secure || hasRole(caller.identity, role);
}

/** ROLE_REQUIRED, naming the caller and the roles `what` needs, unless it holds one of them. */
export function requireRole(caller: Caller, roles: readonly Role[], what: string): void {
  if (roles.some((role) => mayAct(caller, role))) return;
  const who = caller.identity === undefined ? 'a caller without a certificate' : `${caller.identity.name} (roles: ${caller.identity.roles.join(', ') || 'none'})`;
  throw new ShoalError('ROLE_REQUIRED', `${what} needs a certificate with role ${roles.join(' or ')}; ${who} has none of them`);
}
