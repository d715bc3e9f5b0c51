// Bundles the web console's page (console/main.tsx: preact, and its CSS)
// with esbuild into two strings. scripts/build.mjs embeds them in dist/ at
// build time, so the scheduler serves them from the bundle itself (and a
// future single binary carries them); run from the TypeScript sources, the
// scheduler calls this at start instead (src/scheduler/console/assets.ts).
import { build } from 'esbuild';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** `{ js, css }`: the console's script and style sheet, minified. */
export async function buildConsoleAssets(root = ROOT) {
  const result = await build({
    absWorkingDir: root,
    entryPoints: { console: join(root, 'console/main.tsx') },
    bundle: true,
    write: false,
    outdir: join(root, 'dist/console'),
    format: 'iife',
    platform: 'browser',
    target: ['chrome111', 'firefox111', 'safari16'],
    jsx: 'automatic',
    jsxImportSource: 'preact',
    minify: true,
    legalComments: 'none',
    logLevel: 'warning',
  });
  const text = (ext) => result.outputFiles.find((f) => f.path.endsWith(ext))?.text ?? '';
  return { js: text('.js'), css: text('.css') };
}
