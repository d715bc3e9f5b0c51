/**
 * Where the daemon's local API listens: a unix socket path (mode 0600), or a
 * loopback HOST:PORT, never another address. Shared by the daemon and the
 * CLI's client (which must not load the server to find it).
 */
import { connect } from 'node:net';
import { ShoalError } from '../../common/errors.js';
import type { ListenAddress } from '../../common/listen.js';

export function parseApiAddress(address: string): ListenAddress {
  const m = /^(127\.\d+\.\d+\.\d+|localhost|\[::1\]):(\d{1,5})$/.exec(address);
  if (m !== null) return { host: m[1] === '[::1]' ? '::1' : m[1]!, port: Number(m[2]) };
  if (/^[\w.[\]-]+:\d+$/.test(address)) {
    throw new ShoalError('USAGE', `the local API listens on a unix socket or a loopback address only, not ${address}`);
  }
  return { path: address };
}

export function socketAlive(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(path);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
