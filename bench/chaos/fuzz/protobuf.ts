/**
 * Random protobuf messages from a schema's descriptor: every field filled or
 * not, numbers at their extremes (0, 1, 2^31−1, 2^32−1, 2^53−1, 2^64−1),
 * strings and bytes empty, long or binary, lists up to long, a random case
 * of each oneof. What a peer with a valid certificate can send.
 */
import { create, toBinary, type DescField, type DescMessage, type MessageShape } from '@bufbuild/protobuf';
import { ScalarType } from '@bufbuild/protobuf';
import type { Rng } from '../rng.js';

const BIG = [0n, 1n, 2n ** 31n - 1n, 2n ** 32n - 1n, 2n ** 53n - 1n, 2n ** 63n - 1n, 2n ** 64n - 1n];

function scalar(rng: Rng, type: ScalarType): unknown {
  switch (type) {
    case ScalarType.BOOL:
      return rng.chance(0.5);
    case ScalarType.STRING:
      return rng.pick(['', rng.text(rng.int(1, 64)), rng.text(rng.int(1000, 20_000)), '\u0000\uffff', 'https://127.0.0.1:1/x']);
    case ScalarType.BYTES:
      return rng.chance(0.2) ? new Uint8Array(rng.int(0, 70_000)) : new Uint8Array(rng.bytes(rng.pick([0, 1, 31, 32, 33, 64, rng.int(0, 4096)])));
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return rng.pick([0, -1, 1e308, Number.NaN, Infinity]);
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      return rng.chance(0.2) ? -rng.pick(BIG.slice(1, 6)) : rng.pick(BIG.slice(0, 6));
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return rng.chance(0.7) ? rng.pick(BIG) : BigInt(rng.int(0, 1 << 30));
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
      return rng.pick([0, 1, -1, 2 ** 31 - 1, -(2 ** 31), rng.int(0, 1 << 20)]);
    default:
      return rng.pick([0, 1, 2 ** 31 - 1, 2 ** 32 - 1, rng.int(0, 1 << 20), rng.int(0, 64)]);
  }
}

function value(rng: Rng, field: DescField, depth: number): unknown {
  switch (field.fieldKind) {
    case 'scalar':
      return scalar(rng, field.scalar);
    case 'enum':
      return rng.int(0, 5);
    case 'message':
      return randomInit(rng, field.message, depth + 1);
    case 'list': {
      // Long lists of numbers (counts a peer sends); lists of messages stay short, so a case stays small.
      if (field.listKind === 'message') return Array.from({ length: depth === 0 ? rng.pick([0, 1, 2, rng.int(0, 8)]) : rng.int(0, 2) }, () => randomInit(rng, field.message, depth + 1));
      if (field.listKind === 'scalar' && (field.scalar === ScalarType.STRING || field.scalar === ScalarType.BYTES)) {
        const n = rng.pick([0, 1, 2, rng.int(0, 50), depth <= 1 && rng.chance(0.1) ? 10_000 : 3]);
        const text = field.scalar === ScalarType.STRING;
        return Array.from({ length: n }, () => (text ? rng.text(rng.int(0, 80)) : new Uint8Array(rng.bytes(rng.int(0, 80)))));
      }
      const n = rng.pick([0, 1, 2, rng.int(0, 50), depth <= 1 && rng.chance(0.1) ? 100_000 : 3]);
      return Array.from({ length: n }, () => (field.listKind === 'enum' ? rng.int(0, 5) : scalar(rng, field.scalar)));
    }
    case 'map':
      return {};
  }
}

/** A plain init object for `create(schema, …)`. */
export function randomInit(rng: Rng, schema: DescMessage, depth = 0): Record<string, unknown> {
  const init: Record<string, unknown> = {};
  if (depth > 3) return init;
  for (const field of schema.fields) {
    if (field.oneof !== undefined || !rng.chance(0.7)) continue;
    init[field.localName] = value(rng, field, depth);
  }
  for (const oneof of schema.oneofs) {
    const field = rng.pick(oneof.fields);
    init[oneof.localName] = { case: field.localName, value: value(rng, field, depth) };
  }
  return init;
}

export function randomMessage<Desc extends DescMessage>(rng: Rng, schema: Desc, override: Record<string, unknown> = {}): MessageShape<Desc> {
  return create(schema, { ...randomInit(rng, schema), ...override } as never);
}

export function encode<Desc extends DescMessage>(schema: Desc, message: MessageShape<Desc>): Uint8Array {
  return toBinary(schema, message);
}
