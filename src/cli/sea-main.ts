/**
 * The entry of the single `shoal` binary (scripts/build-sea.mjs bundles it,
 * with everything it loads, into one script that Node runs from inside its
 * own executable). What bin/shoal.mjs does, without the choice between the
 * bundle and the sources.
 */
import { exitIfStillHeld, runCli } from './main.js';

const argv = process.argv.slice(2);
void runCli(argv).then((code) => {
  process.exitCode = code;
  exitIfStillHeld(argv);
});
