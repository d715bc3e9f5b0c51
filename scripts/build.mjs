// Bundles the CLI (and with it every component) into dist/ with esbuild, so
// `shoal` starts without compiling TypeScript: dist/shoal.mjs is the entry and
// dist/chunks/ holds what each command loads when it runs (code splitting), so
// `shoal get` parses a fraction of the code the daemon needs. better-sqlite3
// stays external (a native addon, loaded only on a Node without node:sqlite:
// src/daemon/storage/sqlite.ts). The old dist/ is removed first: chunk names
// carry content hashes and would pile up. (The single binary is made by
// scripts/build-sea.mjs.) The web console's page (console/)
// is bundled first and embedded as a string (__SHOAL_CONSOLE_ASSETS__), so
// the scheduler serves it from the bundle, with no file to find beside it.
// The plain `shoal get` through a running daemon is a bundle of its own,
// dist/quick-get.mjs (src/cli/quick-get.ts): one file, not the dozen shared
// chunks its modules fall into in the split build. The split build imports it
// as it stands beside dist/shoal.mjs. (It holds copies of the modules it
// shares with the rest; nothing made by one copy reaches the other.)
import { build } from 'esbuild';
import { rmSync } from 'node:fs';
import { buildConsoleAssets } from './console-assets.mjs';

rmSync('dist', { recursive: true, force: true });
const consoleAssets = await buildConsoleAssets();
const banner = { js: "import { createRequire as __shoalRequire } from 'node:module'; const require = __shoalRequire(import.meta.url);" };
/** main.ts's import of ./quick-get.js: the separate bundle, at run time. */
const quickGetApart = {
  name: 'quick-get-apart',
  setup(b) {
    b.onResolve({ filter: /^\.\/quick-get\.js$/ }, (args) => (args.importer.endsWith('/src/cli/main.ts') ? { path: './quick-get.mjs', external: true } : undefined));
  },
};
await build({
  entryPoints: { shoal: 'src/cli/main.ts' },
  bundle: true,
  splitting: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  outdir: 'dist',
  chunkNames: 'chunks/[name]-[hash]',
  outExtension: { '.js': '.mjs' },
  external: ['better-sqlite3'],
  define: { __SHOAL_CONSOLE_ASSETS__: JSON.stringify(JSON.stringify(consoleAssets)) },
  banner,
  plugins: [quickGetApart],
  sourcemap: 'linked',
  logLevel: 'warning',
});
await build({
  entryPoints: { 'quick-get': 'src/cli/quick-get.ts' },
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  outdir: 'dist',
  outExtension: { '.js': '.mjs' },
  banner,
  sourcemap: 'linked',
  logLevel: 'warning',
});
