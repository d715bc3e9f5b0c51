#!/usr/bin/env node
// The `shoal` executable. Runs the esbuild bundle (dist/shoal.mjs, built by
// `npm run build`, which `npm ci` runs) when it is newer than every source
// file (src/, and console/: the web console's page it embeds); otherwise
// loads the TypeScript sources through tsx.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

const root = fileURLToPath(new URL('..', import.meta.url));

function newestSource(dir) {
  if (!existsSync(dir)) return 0;
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestSource(path) : statSync(path).mtimeMs);
  }
  return newest;
}

function bundleIsFresh() {
  try {
    // console/ too: the web console's page is embedded in the bundle.
    return statSync(join(root, 'dist/shoal.mjs')).mtimeMs >= Math.max(newestSource(join(root, 'src')), newestSource(join(root, 'console')));
  } catch {
    return false;
  }
}

let runCli, exitIfStillHeld;
if (bundleIsFresh()) {
  ({ runCli, exitIfStillHeld } = await import('../dist/shoal.mjs'));
} else {
  const { register } = await import('tsx/esm/api');
  register();
  ({ runCli, exitIfStillHeld } = await import('../src/cli/main.ts'));
}
const argv = process.argv.slice(2);
process.exitCode = await runCli(argv);
// A service that has stopped but is still held by something exits anyway (src/cli/leak-guard.ts).
exitIfStillHeld(argv);
