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

/**
 * Binds `server` (node:net, node:http, node:http2 and node:tls servers are
 * all net.Servers) to `address`; `what` names it in the error. Resolves with
 * the bound port (0 for a unix socket).
 */
export async function listen(server: Server, address: ListenAddress, what: string): Promise<number> {
  if ('port' in address && (!Number.isInteger(address.port) || address.port < 0 || address.port > 65535)) {
    throw new ShoalError('LISTEN_FAILED', `${what}: port must be an integer 0..65535, got ${String(address.port)}`);
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
