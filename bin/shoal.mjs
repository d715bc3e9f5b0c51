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

let runCli;
if (bundleIsFresh()) {
  ({ runCli } = await import('../dist/shoal.mjs'));
} else {
  const { register } = await import('tsx/esm/api');
  register();
  ({ runCli } = await import('../src/cli/main.ts'));
}
process.exitCode = await runCli(process.argv.slice(2));

// A service (`shoal daemon`, `shoal scheduler`) returns once it has stopped and
// released everything it started. Something still holding the event loop then
// is a leak: it must not keep the process running for ever, as a stopped daemon
// once did (issue 15). Name what it was, and exit. The timer itself holds
// nothing. (Other commands may still be flushing their output: not them.)
const LEAK_GRACE_MS = 3000;
const SERVICES = new Set(['daemon', 'scheduler']);
if (SERVICES.has(process.argv[2] ?? '')) {
  setTimeout(() => {
    const held = process.getActiveResourcesInfo().join(', ');
    process.stderr.write(`shoal: still running ${LEAK_GRACE_MS / 1000} s after the command finished (held by: ${held}); exiting\n`);
    process.exit();
  }, LEAK_GRACE_MS).unref();
}
