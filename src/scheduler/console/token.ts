/**
 * The console's login token: made at first start from crypto.randomBytes,
 * written to `console.tokenFile` with mode 0600 (its folder 0700), and read
 * back on every later start, so a bookmark or a script keeps working across
 * restarts. Nobody is given a default; whoever can read the file can log in.
 * Rotating it: delete the file and restart the scheduler.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { ShoalError } from '../../common/errors.js';
import type { Logger } from '../../common/log.js';

/** 256 bits: no guessing it over the network. */
const TOKEN_BYTES = 32;
/** A token read back shorter than this was not made here: refused rather than trusted. */
const MIN_TOKEN_LENGTH = 32;

function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException).code;
}

/** The token in `path`, made there first when the file does not exist. */
export function loadToken(path: string, log: Logger): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if (errno(err) !== 'ENOENT') throw new ShoalError('CONFIG_INVALID', `console.tokenFile ${path} cannot be read: ${(err as Error).message}`);
    return create(path, log);
  }
  const token = text.trim();
  if (token.length < MIN_TOKEN_LENGTH || /\s/.test(token)) {
    throw new ShoalError('CONFIG_INVALID', `console.tokenFile ${path} does not hold a token of ${MIN_TOKEN_LENGTH} characters or more: delete it and a new one is made at start`);
  }
  const mode = statSync(path).mode & 0o777;
  if ((mode & 0o077) !== 0) log.warn({ file: path, mode: mode.toString(8) }, 'the console token file can be read by others than its owner: chmod 600 it');
  return token;
}

function create(path: string, log: Logger): string {
  const token = randomBytes(TOKEN_BYTES).toString('base64url');
  try {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    // 'wx': a second scheduler starting at the same moment does not overwrite the first one's token.
    writeFileSync(path, token + '\n', { mode: 0o600, flag: 'wx' });
    chmodSync(path, 0o600);
  } catch (err) {
    if (errno(err) === 'EEXIST') return loadToken(path, log);
    throw new ShoalError('CONFIG_INVALID', `console.tokenFile ${path} cannot be written: ${(err as Error).message}`);
  }
  log.info({ file: path }, 'console: a login token was made');
  return token;
}

/** Whether `given` is `token`, in time that does not depend on where they differ (or on their lengths). */
export function tokensEqual(given: string, token: string): boolean {
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(token).digest();
  return timingSafeEqual(a, b);
}

/**
 * The session cookie's value: derived from the token, not the token itself,
 * so a cookie read out of a browser profile is not a token to log in with
 * elsewhere; a new token (the file deleted) ends every session.
 */
export function sessionValue(token: string): string {
  return createHmac('sha256', token).update('shoal console session').digest('base64url');
}
