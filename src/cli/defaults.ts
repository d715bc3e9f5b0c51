/** Where things live by default: root gets system paths, users get per-user ones. */
import { homedir } from 'node:os';
import { join } from 'node:path';

const isRoot = (): boolean => process.getuid?.() === 0;

export function defaultEndpoint(env: NodeJS.ProcessEnv = process.env): string {
  if (env['SHOAL_ENDPOINT'] !== undefined && env['SHOAL_ENDPOINT'] !== '') return env['SHOAL_ENDPOINT'];
  if (isRoot()) return '/run/shoal/shoal.sock';
  const runtime = env['XDG_RUNTIME_DIR'] ?? join('/tmp', `shoal-${process.getuid?.() ?? 'user'}`);
  return join(runtime, 'shoal', 'shoal.sock');
}

export function defaultDataDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env['SHOAL_DATA'] !== undefined && env['SHOAL_DATA'] !== '') return env['SHOAL_DATA'];
  if (isRoot()) return '/var/lib/shoal';
  return join(env['XDG_CACHE_HOME'] ?? join(homedir(), '.cache'), 'shoal');
}

/** Where the scheduler keeps its console token: $XDG_STATE_HOME/shoal (~/.local/state/shoal), root /var/lib/shoal. */
export function defaultConsoleTokenFile(env: NodeJS.ProcessEnv = process.env): string {
  if (isRoot()) return '/var/lib/shoal/console-token';
  return join(env['XDG_STATE_HOME'] ?? join(homedir(), '.local', 'state'), 'shoal', 'console-token');
}
