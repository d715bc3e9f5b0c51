/**
 * The one way a Shoal listener binds: every server (upload, local API,
 * mirror, proxy, scheduler) listens through `listen`, so an address that
 * cannot be bound fails the same way everywhere (LISTEN_FAILED, naming the
 * listener and the address), and transport security is added here once for
 * all of them.
 */
import type { Server } from 'node:net';
import { ShoalError } from './errors.js';

/** A TCP address, or a unix socket path. */
export type ListenAddress = { host: string; port: number } | { path: string };

export function formatAddress(address: ListenAddress): string {
  if ('path' in address) return address.path;
  return `${address.host.includes(':') ? `[${address.host}]` : address.host}:${address.port}`;
}

/** How a listener is protected: TLS (mutual, ../identity/tls.ts) or not, and whether the operator allowed plain TCP off loopback. */
export interface ListenSecurity {
  tls: boolean;
  insecure: boolean;
}

/** 127.0.0.0/8, ::1, localhost: only this host can connect. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h) || h.startsWith('::ffff:127.');
}

/**
 * Binds `server` (node:net, node:http, node:http2 and node:tls servers are
 * all net.Servers) to `address`; `what` names it in the error. Resolves with
 * the bound port (0 for a unix socket). Secure by default: a TCP listener
 * other hosts can reach must be TLS, unless `security.insecure`
 * (INSECURE_LISTEN otherwise, before anything is bound).
 */
export async function listen(server: Server, address: ListenAddress, what: string, security: ListenSecurity): Promise<number> {
  if ('port' in address && (!Number.isInteger(address.port) || address.port < 0 || address.port > 65535)) {
    throw new ShoalError('LISTEN_FAILED', `${what}: port must be an integer 0..65535, got ${String(address.port)}`);
  }
  if ('host' in address && !security.tls && !security.insecure && !isLoopbackHost(address.host)) {
    throw new ShoalError(
      'INSECURE_LISTEN',
      `${what} would listen on ${formatAddress(address)} without TLS, open to every host that reaches it: give the cluster's certificates (tls: ca, cert, key; shoal cluster init), listen on loopback (127.0.0.1), or pass --insecure`,
    );
  }
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen('path' in address ? { path: address.path } : { host: address.host, port: address.port }, () => {
        server.removeListener('error', reject);
        resolve();
      });
    });
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    throw new ShoalError('LISTEN_FAILED', `${what} cannot listen on ${formatAddress(address)}: ${message}`, { cause: err });
  }
  return boundPort(server);
}

/** The port a listening server is bound to; 0 when it is not listening or on a unix socket. */
export function boundPort(server: Server): number {
  const address = server.address();
  return typeof address === 'object' && address !== null ? address.port : 0;
}

/** Stops accepting and resolves once every connection is gone (the caller ends them). */
export function closeServer(server: Server): Promise<void> {
  if (!server.listening) return Promise.resolve();
  return new Promise((resolve) => server.close(() => resolve()));
}
