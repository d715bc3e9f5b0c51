/**
 * Delivering one malformed input to a listener: connect (plain TCP, TLS
 * with a member's certificate, or a unix socket), write the chunks (split
 * where the case says, a little apart), then either close, reset (RST), or
 * wait a moment for an answer. Reports whether the bytes reached the
 * listener, which is what makes the case a fault that landed.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';

export type Endpoint =
  | { kind: 'tcp'; port: number }
  | { kind: 'tls'; port: number; tls: { ca: string; cert: string; key: string }; alpn?: string[] }
  | { kind: 'unix'; path: string };

export interface Case {
  /** Reproducer: what was sent, in a few words. */
  readonly what: string;
  readonly chunks: readonly Buffer[];
  /** After the last chunk: end (FIN), reset (RST), or keep reading this long, then close (or reset). */
  readonly then: 'end' | 'reset' | { readMs: number; reset?: boolean };
  /** Wait this long between chunks (default 2 ms), e.g. for a CONNECT's answer before the tunnel's bytes. */
  readonly gapMs?: number;
}

export interface Delivery {
  readonly delivered: boolean;
  /** Bytes the listener answered. */
  readonly answered: number;
  readonly answer: Buffer;
  readonly error: string | undefined;
}

function open(endpoint: Endpoint): Socket {
  if (endpoint.kind === 'unix') return netConnect({ path: endpoint.path });
  if (endpoint.kind === 'tcp') return netConnect({ host: '127.0.0.1', port: endpoint.port });
  return tlsConnect({ host: '127.0.0.1', port: endpoint.port, ...endpoint.tls, rejectUnauthorized: false, ...(endpoint.alpn === undefined ? {} : { ALPNProtocols: endpoint.alpn }) });
}

export async function deliver(endpoint: Endpoint, c: Case, answerCap = 64 * 1024): Promise<Delivery> {
  const socket = open(endpoint);
  const got: Buffer[] = [];
  let answered = 0;
  let error: string | undefined;
  let closed = false;
  socket.on('data', (d: Buffer) => {
    answered += d.length;
    if (answered <= answerCap) got.push(d);
  });
  socket.on('error', (err) => (error = err.message));
  socket.on('close', () => (closed = true));
  const ready = await new Promise<boolean>((resolve) => {
    socket.once(endpoint.kind === 'tls' ? 'secureConnect' : 'connect', () => resolve(true));
    socket.once('error', () => resolve(false));
    socket.once('close', () => resolve(false));
  });
  let delivered = false;
  try {
    if (!ready) return { delivered, answered, answer: Buffer.concat(got), error };
    for (const chunk of c.chunks) {
      if (closed) break;
      await new Promise<void>((resolve) => socket.write(chunk, (err) => ((delivered ||= err === undefined || err === null), resolve())));
      if (c.chunks.length > 1) await sleep(c.gapMs ?? 2);
    }
    if (c.then === 'reset') socket.resetAndDestroy();
    else if (c.then === 'end') {
      socket.end();
      await Promise.race([new Promise((r) => socket.once('close', r)), sleep(500)]);
    } else {
      await Promise.race([new Promise((r) => socket.once('close', r)), sleep(c.then.readMs)]);
      if (c.then.reset === true && !socket.destroyed) socket.resetAndDestroy();
    }
  } finally {
    if (!socket.destroyed) socket.destroy();
  }
  return { delivered, answered, answer: Buffer.concat(got), error };
}

/** Splits `data` at a few random points (the listener must not care where reads end). */
export function split(data: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => Math.max(0, Math.min(data.length, c))))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let at = 0;
  for (const p of points) {
    if (p > at) out.push(data.subarray(at, p));
    at = Math.max(at, p);
  }
  if (at < data.length) out.push(data.subarray(at));
  return out.length === 0 ? [data] : out;
}
