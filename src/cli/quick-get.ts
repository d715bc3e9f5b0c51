/**
 * The plain `shoal get URL -O FILE` through a running daemon, started light:
 * its flags read without commander (./get-command.ts), and in dist/ its whole
 * path is one file of its own, dist/quick-get.mjs (scripts/build.mjs), where
 * the split bundle would load a dozen shared chunks. Both are CPU each get
 * pays before it asks its daemon for anything, on every host of a fleet at
 * once (docs/benchmarks.md, "A get that starts lighter").
 *
 * undefined when this is not such a get: another command, a flag only
 * commander takes, or no daemon running (the whole command line then starts
 * one in this process). In dist/ this file's modules are copies of the split
 * bundle's, so nothing of it crosses back: it reports its own errors and
 * answers with an exit code.
 */
import { endpointAlive } from './daemon-client.js';
import { defaultEndpoint } from './defaults.js';
import { quickGetArgs, runGetCommand } from './get-command.js';
import type { CliIo } from './io.js';
import { reportFailure } from './report.js';

export async function quickGet(argv: readonly string[], io: CliIo): Promise<number | undefined> {
  const quick = quickGetArgs(argv);
  if (quick === undefined) return undefined;
  try {
    // A named endpoint that does not answer is DAEMON_UNREACHABLE either way (./fetcher.ts).
    if (quick.options.endpoint === undefined && !(await endpointAlive(defaultEndpoint(io.env)))) return undefined;
    return await runGetCommand(quick.url, quick.options, [], io, undefined);
  } catch (err) {
    return reportFailure(err, io);
  }
}
