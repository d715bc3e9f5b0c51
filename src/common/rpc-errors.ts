/**
 * Shoal errors across Connect-RPC (the scheduler's handlers and the daemons
 * and CLI that call them).
 *
 * On the wire: a handler fails with a ConnectError whose Connect code fits
 * the Shoal code's HTTP status (the table below: LIMIT_EXCEEDED, 413, is
 * resource_exhausted; USAGE, 400, invalid_argument; …) and whose metadata
 * carries the Shoal code itself under `shoal-error-code` (gRPC sends it as a
 * trailer, Connect as a header). The message is the ShoalError's. A client
 * reads the code back with `fromConnectError`; one that does not still sees
 * a sensible Connect code.
 *
 * Handlers throw ShoalErrors and turn whatever they caught into a
 * ConnectError with `toConnectError` at the boundary, so nothing uncoded
 * crosses it: an error that is neither becomes INTERNAL.
 */
import { Code, ConnectError } from '@connectrpc/connect';
import { ERRORS, ShoalError, isErrorCode, toShoalError, type ErrorCode } from './errors.js';

/** The metadata entry (header or trailer) that carries the Shoal code. */
export const SHOAL_CODE_KEY = 'shoal-error-code';

/** The Connect code for a Shoal code's HTTP status; Unknown for one not listed. */
const CONNECT_CODE_BY_STATUS: ReadonlyMap<number, Code> = new Map([
  [400, Code.InvalidArgument],
  [401, Code.Unauthenticated],
  [403, Code.PermissionDenied],
  [404, Code.NotFound],
  [413, Code.ResourceExhausted],
  [499, Code.Canceled],
  [500, Code.Internal],
  [503, Code.Unavailable],
  [504, Code.DeadlineExceeded],
]);

/** The Connect code a Shoal code crosses RPC with. */
export function connectCodeOf(code: ErrorCode): Code {
  return CONNECT_CODE_BY_STATUS.get(ERRORS[code].status) ?? Code.Unknown;
}

/**
 * What a handler sends for `err`: a ConnectError as it is (the call was
 * cancelled, or it is already coded); anything else as a ShoalError (INTERNAL
 * unless it is one) with its Connect code, or `connectCode` when the caller
 * knows better (a retryable precondition, say).
 */
export function toConnectError(err: unknown, connectCode?: Code): ConnectError {
  if (err instanceof ConnectError) return err;
  const shoal = toShoalError(err);
  return new ConnectError(shoal.message, connectCode ?? connectCodeOf(shoal.code), { [SHOAL_CODE_KEY]: shoal.code }, undefined, shoal);
}

/**
 * The ShoalError a failed call stands for: the code the handler sent, or
 * `fallback` when it sent none (an older scheduler, the transport failing).
 */
export function fromConnectError(err: unknown, fallback: ErrorCode = 'INTERNAL'): ShoalError {
  if (err instanceof ShoalError) return err;
  if (!(err instanceof ConnectError)) return toShoalError(err, fallback);
  const sent = err.metadata.get(SHOAL_CODE_KEY);
  return new ShoalError(sent !== null && isErrorCode(sent) ? sent : fallback, err.rawMessage, { cause: err });
}
