/** How the CLI reports a command's failure (docs/errors.md). */
import { ShoalError, toShoalError } from '../common/errors.js';
import type { CliIo } from './io.js';

/** "shoal: error CODE: message" on stderr; the exit code of the error's code. */
export function reportFailure(err: unknown, io: CliIo): number {
  const e = toShoalError(err);
  io.stderr.write(`shoal: error ${e.code}: ${e.message}\n`);
  return e instanceof ShoalError ? e.exitCode : 1;
}
