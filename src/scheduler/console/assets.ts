/**
 * The console page's script and style sheet. In dist/ (and so in a single
 * binary made from it) they are strings embedded at build time
 * (scripts/build.mjs defines __SHOAL_CONSOLE_ASSETS__), so nothing is looked
 * up on disk next to the bundle; run from the TypeScript sources they are
 * bundled once, at start, from console/ (scripts/console-assets.mjs).
 */
import { ShoalError } from '../../common/errors.js';

declare const __SHOAL_CONSOLE_ASSETS__: string | undefined;

export interface ConsoleAssets {
  readonly js: string;
  readonly css: string;
}

interface AssetBuilder {
  buildConsoleAssets(): Promise<ConsoleAssets>;
}

export async function consoleAssets(): Promise<ConsoleAssets> {
  if (typeof __SHOAL_CONSOLE_ASSETS__ === 'string') return JSON.parse(__SHOAL_CONSOLE_ASSETS__) as ConsoleAssets;
  // A computed specifier: the bundler leaves it alone (dist/ never reaches here).
  const builder = new URL('../../../scripts/console-assets.mjs', import.meta.url).href;
  try {
    return await ((await import(builder)) as AssetBuilder).buildConsoleAssets();
  } catch (err) {
    throw new ShoalError('INTERNAL', `the console's page could not be bundled from console/: ${(err as Error).message}`, { cause: err });
  }
}
