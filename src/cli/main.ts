/**
 * The `shoal` command line. `runCli(argv, io)` returns the exit code, so
 * tests run it like any function; bin/shoal.mjs is a thin wrapper. A plain
 * `shoal get` through a running daemon starts without the rest
 * (./quick-get.ts); everything else goes through the whole command line
 * (./program.ts), loaded when needed. This module itself imports nothing that
 * another module shares, so that in dist/ it loads as one file.
 */
import { processIo, type CliIo } from './io.js';
import { heapFor } from './short-lived.js';

export { exitIfStillHeld } from './leak-guard.js';

export async function runCli(argv: string[], io: CliIo = processIo()): Promise<number> {
  heapFor(argv[0]); // before the command's modules load (./short-lived.ts)
  try {
    if (argv[0] === 'get') {
      // In dist/, a bundle of its own (scripts/build.mjs).
      const { quickGet } = await import('./quick-get.js');
      const code = await quickGet(argv, io);
      if (code !== undefined) return code;
    }
    const { runProgram } = await import('./program.js');
    return await runProgram(argv, io);
  } catch (err) {
    // Both report their own failures: this is one of loading them.
    const { reportFailure } = await import('./report.js');
    return reportFailure(err, io);
  }
}
