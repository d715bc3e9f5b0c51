/**
 * Malformed input for the scheduler's RPC (gRPC over HTTP/2 with mutual
 * TLS, a peer's certificate): raw noise after the HTTP/2 preface, gRPC
 * frames with lying lengths and compression flags, and, inside well-formed
 * frames, random messages from the schema (./protobuf.ts) in the order a
 * daemon sends them: a host announced on SyncHost, then on AnnouncePeer a
 * task registered for that host (its ID derived as the scheduler derives
 * it) with extreme sizes and counts, and more random messages after it.
 */
import http2 from 'node:http2';
import { connect as tlsConnect } from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import { create } from '@bufbuild/protobuf';
import { taskId } from '../../../src/common/ids.js';
import { HostAnnounceSchema, HostRequestSchema, PeerRequestSchema, RegisterPeerSchema, TaskMetadataSchema } from '../../../src/gen/shoal/v1/scheduler_pb.js';
import type { Rng } from '../rng.js';
import { encode, randomInit, randomMessage } from './protobuf.js';

export interface RpcTls {
  ca: string;
  cert: string;
  key: string;
}

export interface RpcCase {
  readonly what: string;
  /** Streams opened in order on one HTTP/2 session: a method and its frames. */
  readonly streams: ReadonlyArray<{ method: string; frames: Buffer[] }>;
  readonly then: 'end' | 'cancel' | 'session-destroy';
}

function grpcFrame(message: Uint8Array, rng?: Rng): Buffer {
  const header = Buffer.alloc(5);
  let length = message.length;
  if (rng?.chance(0.1) === true) length = rng.pick([0, message.length + 1, 0xffffffff, 0x7fffffff, rng.int(0, 1 << 24)]);
  if (rng?.chance(0.05) === true) header[0] = rng.int(1, 255);
  header.writeUInt32BE(length >>> 0, 1);
  return Buffer.concat([header, message]);
}

const U64 = [0n, 1n, 2n ** 32n - 1n, 2n ** 53n - 1n, 2n ** 64n - 1n];

export function rpcCase(rng: Rng, originUrl: string): RpcCase {
  const hostId = `fuzz-${rng.text(8, 'abcdef0123456789')}`;
  const announce = randomMessage(rng, HostRequestSchema, {
    request: { case: 'announce', value: { ...randomInit(rng, HostAnnounceSchema), host: { id: hostId, hostname: 'fuzz', ip: '127.0.0.1', uploadPort: rng.int(1, 65535), seed: rng.chance(0.3), uploadSlots: rng.pick([0, 1, 64, 2 ** 32 - 1]) } } },
  });
  const host = [grpcFrame(encode(HostRequestSchema, announce)), ...Array.from({ length: rng.int(0, 4) }, () => grpcFrame(encode(HostRequestSchema, randomMessage(rng, HostRequestSchema)), rng))];
  const url = `${originUrl}/fuzz/${rng.text(6, 'abcdefghij')}`;
  const pieceSize = rng.chance(0.8) ? rng.pick([0, 16 * 1024, 1 << 20]) : rng.pick([1, 2 ** 32 - 1]);
  const spec = { url, pieceSize, tag: '', application: '', filteredQueryParams: [] as string[], digest: '' };
  const register = create(PeerRequestSchema, {
    request: {
      case: 'register',
      value: create(RegisterPeerSchema, {
        ...randomInit(rng, RegisterPeerSchema),
        peerId: `${hostId}/${rng.text(8, 'abcdef0123456789')}`,
        hostId,
        task: { ...spec, taskId: taskId(spec), headers: [] },
        metadata: create(TaskMetadataSchema, { contentLength: rng.pick(U64), pieceSize: rng.pick([0, 1, 16 * 1024, 2 ** 32 - 1]) }),
      }),
    },
  });
  const after = Array.from({ length: rng.int(0, 6) }, () => {
    const m = randomMessage(rng, PeerRequestSchema);
    if (m.request.case === 'finished' && rng.chance(0.5)) m.request.value.contentLength = rng.pick(U64);
    return grpcFrame(encode(PeerRequestSchema, m), rng);
  });
  // What a daemon sends last: finished, with the registered length or another.
  if (rng.chance(0.5)) after.push(grpcFrame(encode(PeerRequestSchema, create(PeerRequestSchema, { request: { case: 'finished', value: { contentLength: rng.pick(U64) } } }))));
  const kind = rng.int(0, 9);
  if (kind === 0) {
    const noise = Buffer.from(rng.bytes(rng.int(1, 3000)));
    return { what: `SyncHost: ${noise.length} random bytes as a frame`, streams: [{ method: 'SyncHost', frames: [noise] }], then: rng.pick(['end', 'cancel', 'session-destroy'] as const) };
  }
  if (kind === 1) {
    const frames = [grpcFrame(rng.bytes(rng.int(0, 3000)), rng)];
    return { what: `${rng.pick(['AnnouncePeer', 'SyncHost', 'Stat', 'Preheat'])}: a random message`, streams: [{ method: rng.pick(['AnnouncePeer', 'SyncHost', 'Stat', 'Preheat']), frames }], then: rng.pick(['end', 'cancel'] as const) };
  }
  const what = `host ${hostId} announced, task ${url} registered (piece ${pieceSize}, metadata ${JSON.stringify(register.request.case === 'register' ? { l: String(register.request.value.metadata?.contentLength), p: register.request.value.metadata?.pieceSize } : {})}), then ${after.length} random messages`;
  return { what, streams: [{ method: 'SyncHost', frames: host }, { method: 'AnnouncePeer', frames: [grpcFrame(encode(PeerRequestSchema, register)), ...after] }], then: rng.pick(['end', 'cancel', 'session-destroy'] as const) };
}

/** Sends a case on a new HTTP/2 session; resolves with whether its frames were written. */
export async function deliverRpc(port: number, tls: RpcTls, c: RpcCase, readMs = 150): Promise<{ delivered: boolean; error: string | undefined }> {
  let error: string | undefined;
  let delivered = false;
  const session = http2.connect(`https://127.0.0.1:${port}`, { ...tls, rejectUnauthorized: false });
  session.on('error', (err: Error) => (error = err.message));
  try {
    await new Promise<void>((resolve) => {
      session.once('connect', () => resolve());
      session.once('error', () => resolve());
      session.once('close', () => resolve());
    });
    if (session.destroyed) return { delivered, error };
    const streams = c.streams.map(({ method, frames }) => {
      const stream = session.request({ ':method': 'POST', ':path': `/shoal.v1.Scheduler/${method}`, 'content-type': 'application/grpc+proto', te: 'trailers' });
      stream.on('error', (err: Error) => (error = err.message));
      stream.resume();
      for (const f of frames) stream.write(f, (err) => (delivered ||= err === undefined || err === null));
      return stream;
    });
    await sleep(readMs);
    for (const s of streams) {
      if (c.then === 'end') s.end();
      else if (c.then === 'cancel') s.close(http2.constants.NGHTTP2_CANCEL);
    }
    if (c.then === 'end') await sleep(100);
  } finally {
    session.destroy();
  }
  return { delivered, error };
}

export interface RawTlsCase {
  readonly what: string;
  readonly data: Buffer;
  readonly waitMs: number;
  readonly reset: boolean;
}

/** Noise straight after the TLS handshake (no HTTP/2 preface, or a preface and garbage). */
export function rawTlsCase(rng: Rng): RawTlsCase {
  const data = rng.chance(0.5) ? Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), rng.bytes(rng.int(1, 2000))]) : rng.bytes(rng.int(1, 2000));
  return { what: `${data.length} B after the TLS handshake: ${data.subarray(0, 40).toString('hex')}`, data, waitMs: rng.int(10, 200), reset: rng.chance(0.5) };
}

export async function deliverRawTls(port: number, tls: RpcTls, c: RawTlsCase): Promise<boolean> {
  const { data } = c;
  const socket = tlsConnect({ host: '127.0.0.1', port, ...tls, rejectUnauthorized: false, ALPNProtocols: ['h2'] });
  socket.on('error', () => undefined);
  const ready = await new Promise<boolean>((resolve) => {
    socket.once('secureConnect', () => resolve(true));
    socket.once('error', () => resolve(false));
  });
  let delivered = false;
  if (ready) {
    await new Promise<void>((resolve) => socket.write(data, (err) => ((delivered = err === undefined || err === null), resolve())));
    await sleep(c.waitMs);
  }
  if (c.reset) socket.resetAndDestroy();
  else socket.destroy();
  return delivered;
}
