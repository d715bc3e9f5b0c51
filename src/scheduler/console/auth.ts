/**
 * Who may use the console, per request. Admin access, and nothing less:
 *
 * - a client certificate with role admin, when the scheduler runs with the
 *   cluster's TLS (the console's listener is then TLS; a browser without a
 *   certificate may still connect and log in with the token);
 * - the token (./token.ts) as `Authorization: Bearer …` (scripts);
 * - the session cookie set when a browser logged in with the token (the
 *   login form, or `/?token=…`): HttpOnly, SameSite=Strict.
 *
 * A change (the preheat POST) also needs the request to come from the
 * console's own page (its Origin), unless the token is in a header: a
 * browser sends cookies and certificates by itself, headers it does not.
 */
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { hasRole, identityOf } from '../../identity/roles.js';
import { sessionValue, tokensEqual } from './token.js';

export type Access = 'certificate' | 'token' | 'cookie';

export const SESSION_COOKIE = 'shoal_console';

/** The value of cookie `name` in the request, if it sent one. */
export function cookieOf(req: IncomingMessage, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

function adminCertificate(req: IncomingMessage): boolean {
  const socket = req.socket as Partial<TLSSocket>;
  if (socket.authorized !== true || typeof socket.getPeerCertificate !== 'function') return false;
  return hasRole(identityOf(socket.getPeerCertificate()), 'admin');
}

/** How the request proves admin access; undefined: it does not. */
export function accessOf(req: IncomingMessage, token: string): Access | undefined {
  if (adminCertificate(req)) return 'certificate';
  const bearer = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '')?.[1];
  if (bearer !== undefined && tokensEqual(bearer, token)) return 'token';
  const cookie = cookieOf(req, SESSION_COOKIE);
  if (cookie !== undefined && tokensEqual(cookie, sessionValue(token))) return 'cookie';
  return undefined;
}

/** The request comes from a page of this console: its Origin is this host, by the scheme the listener speaks. */
export function sameOrigin(req: IncomingMessage, secure: boolean): boolean {
  const origin = req.headers.origin;
  const host = req.headers.host;
  if (origin === undefined || host === undefined) return false;
  return origin === `${secure ? 'https' : 'http'}://${host}`;
}

/** Whether an authenticated request may change something (CSRF). */
export function mayChange(req: IncomingMessage, access: Access, secure: boolean): boolean {
  return access === 'token' || sameOrigin(req, secure);
}

/** The Set-Cookie of a session (`Secure` on a TLS listener). */
export function sessionCookie(token: string, secure: boolean): string {
  return `${SESSION_COOKIE}=${sessionValue(token)}; Path=/; HttpOnly; SameSite=Strict${secure ? '; Secure' : ''}`;
}

export function clearedCookie(secure: boolean): string {
  return `${SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0${secure ? '; Secure' : ''}`;
}
