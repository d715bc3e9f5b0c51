/**
 * Field types the configuration schema is made of: sizes and durations as
 * people write them, addresses, log levels. Each carries its kind in zod's
 * metadata (`format`), so docs/configuration.md shows `10s`, not `10000`.
 */
import { z } from 'zod';
import { ShoalError } from '../errors.js';
import { MAX_TIMER_MS } from '../timers.js';
import { parseDuration, parseSize } from '../units.js';

/** A string-or-number field turned into a number by `parse`, whose error becomes the field's issue. */
function parsed(parse: (value: string | number) => number) {
  return z.union([z.string(), z.number()]).transform((v, ctx) => {
    try {
      return parse(v);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message });
      return z.NEVER;
    }
  });
}

/** Bytes: `512MiB`, `10GB` or a number of bytes. */
export const size = () => parsed(parseSize).meta({ format: 'size' });
/**
 * Milliseconds, written `1500ms`, `30s`, `10m`, `2h`, `1d` or a number of
 * seconds; at most `max`. The default bound is the longest delay a timer
 * honours (../timers.ts), since most durations arm one (a socket's idle
 * timeout, an interval); a field only compared with a clock (a TTL) passes
 * a larger bound.
 */
export const duration = (max: number = MAX_TIMER_MS) =>
  parsed((value) => {
    const ms = parseDuration(value);
    if (ms > max) throw new Error(`duration ${JSON.stringify(value)} is over the maximum of ${max} ms (${(max / 86_400_000).toFixed(1)} days)`);
    return ms;
  }).meta({ format: 'duration' });

/** The bound of a duration only compared with a clock (a TTL): about 100 years. */
export const MAX_AGE_MS = 100 * 365 * 86_400_000;

const HOST_PORT = /^(\[([0-9a-fA-F:]+)\]|[\w.-]+):(\d{1,5})$/;

export const hostPort = () => z.string().regex(HOST_PORT, 'must be HOST:PORT');
export const logLevel = () => z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);

/** "10.0.0.1:4000", "[::1]:0" → host and port. USAGE when it is not HOST:PORT. */
export function splitHostPort(value: string): { host: string; port: number } {
  const m = HOST_PORT.exec(value);
  const port = m === null ? NaN : Number(m[3]);
  if (m === null || port > 65535) throw new ShoalError('USAGE', `${JSON.stringify(value)} is not HOST:PORT`);
  return { host: m[2] ?? m[1]!, port };
}
