/**
 * `CONNECT host:port`: a raw TCP tunnel, bytes untouched (HTTPS stays
 * end-to-end encrypted; nothing inside it goes through P2P). `200 Connection
 * Established` once the origin accepted the connection, then both directions
 * piped with backpressure; no byte in either direction for the idle timeout,
 * an error, or either side closing ends both. 502 when the origin refuses,
 * 504 when it does not answer in time.
 */
import { Socket, connect } from 'node:net';
import type { Duplex } from 'node:stream';
import { rawError } from './reply.js';

export interface TunnelOptions {
  host: string;
  port: number;
  client: Duplex;
  /** Bytes the client sent after the CONNECT head. */
  head: Buffer;
  connectTimeoutMs: number;
  idleTimeoutMs: number;
  via: string;
  /** Called once with the bytes relayed each way when the tunnel ends (or fails). */
  onClose(result: { established: boolean; up: number; down: number; error?: string }): void;
  /** Tracks the upstream socket so the proxy can destroy it when it stops. */
  track(socket: Socket): void;
}

const AUTHORITY = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?)):(\d{1,5})$/;

/** `host:port` of a CONNECT request line; undefined when malformed. */
export function parseAuthority(value: string): { host: string; port: number } | undefined {
  const m = AUTHORITY.exec(value);
  if (m === null) return undefined;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return undefined;
  return { host: m[1] ?? m[2]!, port };
}

export function openTunnel(o: TunnelOptions): void {
  const { client } = o;
  let established = false;
  let closed = false;
  let up = 0;
  let down = 0;
  const upstream = connect({ host: o.host, port: o.port });
  o.track(upstream);
  const connectTimer = setTimeout(() => fail(504, 'TIMEOUT', `${o.host}:${o.port} did not accept the connection within ${o.connectTimeoutMs} ms`), o.connectTimeoutMs);

  const close = (error?: string): void => {
    if (closed) return;
    closed = true;
    clearTimeout(connectTimer);
    upstream.destroy();
    client.destroy();
    o.onClose({ established, up, down, ...(error === undefined ? {} : { error }) });
  };
  function fail(status: number, code: string, message: string): void {
    if (closed) return;
    if (!established) {
      rawError(client, status, code, message, o.via);
      closed = true;
      clearTimeout(connectTimer);
      upstream.destroy();
      o.onClose({ established, up, down, error: message });
      return;
    }
    close(message);
  }

  client.on('error', () => close('client connection error'));
  client.on('close', () => {
    if (!established) close('client went away');
  });
  upstream.on('error', (err: Error & { code?: string }) => {
    const code = err.code ?? '';
    fail(code === 'ETIMEDOUT' ? 504 : 502, code === 'ETIMEDOUT' ? 'TIMEOUT' : 'SOURCE_NETWORK', `${o.host}:${o.port}: ${err.message}`);
  });
  upstream.once('connect', () => {
    if (closed) return;
    clearTimeout(connectTimer);
    established = true;
    client.write(`HTTP/1.1 200 Connection Established\r\nVia: 1.1 ${o.via}\r\n\r\n`);
    if (o.head.length > 0) {
      up += o.head.length;
      upstream.write(o.head);
    }
    client.on('data', (chunk: Buffer) => {
      up += chunk.length;
    });
    upstream.on('data', (chunk: Buffer) => {
      down += chunk.length;
    });
    client.pipe(upstream);
    upstream.pipe(client);
    const idle = (): void => close(`no byte either way for ${o.idleTimeoutMs} ms`);
    upstream.setTimeout(o.idleTimeoutMs, idle);
    if (client instanceof Socket) client.setTimeout(o.idleTimeoutMs, idle);
    // Either side closing ends the other once what it was handed is written
    // (pipe() passed its last bytes and its end on); the tunnel ends with both.
    let open = 2;
    const sideClosed = (other: Duplex): void => {
      endSoon(other);
      if (--open === 0) close();
    };
    client.once('close', () => sideClosed(upstream));
    upstream.once('close', () => sideClosed(client));
  });
}

/** Ends a stream and destroys it once its buffered bytes are written. */
function endSoon(stream: Duplex): void {
  if (stream.destroyed) return;
  if (stream.writableFinished) {
    stream.destroy();
    return;
  }
  stream.once('finish', () => stream.destroy());
  stream.end();
}
