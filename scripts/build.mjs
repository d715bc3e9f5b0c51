// Bundles the CLI (and with it every component) into dist/shoal.mjs with
// esbuild, so `shoal` starts without compiling TypeScript. better-sqlite3 stays
// external (a native addon).
import { build } from 'esbuild';

await build({
  entryPoints: ['src/cli/main.ts'],
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  outfile: 'dist/shoal.mjs',
  external: ['better-sqlite3'],
  banner: { js: "import { createRequire as __shoalRequire } from 'node:module'; const require = __shoalRequire(import.meta.url);" },
  sourcemap: 'linked',
  logLevel: 'warning',
});
