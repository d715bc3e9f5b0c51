/**
 * Malformed input for the binary piece protocol (src/common/wire.ts): valid
 * frames mutated field by field (operation, flags, reserved bytes, piece
 * numbers at and past the limits, task IDs real and not), prefaces that are
 * almost right, frames cut short, and pipelines far past MAX_PIPELINE in one
 * segment.
 */
import { MAX_PIECES } from '../../../src/common/pieces.js';
import { MAX_PIPELINE, PREFACE, REQUEST_SIZE, RESPONSE_HEADER_SIZE, encodeRequest } from '../../../src/common/wire.js';
import type { Rng } from '../rng.js';
import { split, type Case } from './send.js';

function frame(rng: Rng, known: readonly string[]): Buffer {
  const id = known.length > 0 && rng.chance(0.5) ? Buffer.from(rng.pick(known), 'hex') : rng.bytes(32);
  const piece = rng.pick([0, 1, rng.int(0, 1000), MAX_PIECES - 1, MAX_PIECES, 0xffffffff, rng.int(0, 0xffffffff)]);
  const f = encodeRequest(id, piece, rng.chance(0.3));
  if (rng.chance(0.4)) f[0] = rng.pick([0, 2, 255, rng.int(0, 255)]);
  if (rng.chance(0.2)) f[1] = rng.int(0, 255);
  if (rng.chance(0.2)) f[rng.int(2, 3)] = rng.int(1, 255);
  return f;
}

export function binaryCase(rng: Rng, known: readonly string[]): Case {
  const kind = rng.int(0, 5);
  if (kind === 0) {
    const preface = Buffer.from(PREFACE);
    preface[rng.int(1, PREFACE.length - 1)] = rng.int(0, 255);
    const data = Buffer.concat([preface, rng.bytes(rng.int(0, 200))]);
    return { what: `a wrong preface ${data.subarray(0, 8).toString('hex')}`, chunks: [data], then: { readMs: 200 } };
  }
  if (kind === 1) {
    const data = Buffer.concat([PREFACE, rng.bytes(rng.int(1, 2000))]);
    return { what: `the preface, then ${data.length - PREFACE.length} random bytes`, chunks: split(data, [rng.int(0, data.length)]), then: rng.pick<Case['then']>(['end', 'reset', { readMs: 300 }]) };
  }
  const n = rng.int(1, 24);
  const frames = Array.from({ length: n }, () => frame(rng, known));
  let data = Buffer.concat([PREFACE, ...frames]);
  if (kind === 2) data = data.subarray(0, rng.int(PREFACE.length, data.length)); // cut mid-frame
  const cuts = Array.from({ length: rng.int(0, 3) }, () => rng.int(0, data.length));
  return { what: `the preface and ${n} mutated frames (${data.length} B): ${data.subarray(PREFACE.length, PREFACE.length + REQUEST_SIZE).toString('hex')}…`, chunks: split(data, cuts), then: rng.pick<Case['then']>(['end', 'reset', { readMs: rng.int(20, 250) }]) };
}

/** `count` well-formed requests (for pieces nobody holds) in one segment: more than MAX_PIPELINE of them is malformed. */
export function pipelineFlood(rng: Rng, count: number): Case {
  const frames = Array.from({ length: count }, () => encodeRequest(rng.bytes(32), rng.int(0, 1000)));
  return { what: `${count} requests in one segment`, chunks: [Buffer.concat([PREFACE, ...frames])], then: { readMs: 1000 } };
}

/** How many responses (header and body) an answer holds. */
export function countResponses(answer: Buffer): number {
  let n = 0;
  let at = 0;
  while (at + RESPONSE_HEADER_SIZE <= answer.length) {
    at += RESPONSE_HEADER_SIZE + answer.readUInt32BE(at + 4);
    n++;
  }
  return n;
}

export { MAX_PIPELINE };
