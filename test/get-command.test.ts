/**
 * `shoal get`'s quick parser (src/cli/get-command.ts) against commander's
 * (src/cli/program.ts): for every command line it takes, the same URL and the
 * same options; every other command line it leaves to commander. And the
 * quick path really does start without commander, from one file of its own
 * in dist/.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { GET_FLAGS, flagShape, quickGetArgs } from '../src/cli/get-command.js';
import { program } from '../src/cli/program.js';
import { quietIo } from './fixtures/cli-flags.js';

/** The URL and options commander hands `get`'s action, or undefined when commander refuses the line. */
async function viaCommander(argv: readonly string[]): Promise<{ url: string; options: Record<string, unknown> } | undefined> {
  const root = program(quietIo(), { code: 0 });
  const get = root.commands.find((cmd) => cmd.name() === 'get');
  assert.ok(get !== undefined);
  let seen: { url: string; options: Record<string, unknown> } | undefined;
  get.action((url: string, options: Record<string, unknown>) => {
    seen = { url, options: { ...options } };
  });
  try {
    await root.parseAsync([...argv], { from: 'user' });
  } catch {
    return undefined;
  }
  return seen;
}

const URL_ = 'http://127.0.0.1:9/f.bin';
const TAKEN: readonly (readonly string[])[] = [
  ['get', URL_, '-O', 'out'],
  ['get', URL_, '-o', 'out', '-q'],
  ['get', '-O', 'out', URL_, '-e', '/run/shoal.sock', '-q'],
  ['get', URL_, '--output=out', '--endpoint=127.0.0.1:65001', '--no-progress'],
  ['get', URL_, '-Oout', '-qe', 'sock'],
  ['get', URL_, '-O', '-', '-H', 'A: 1', '-H', 'B: 2', '--header', 'C: 3'],
  ['get', URL_, '-O', 'out', '--filter', 'sig&exp', '--filter', 'token', '--tag', 't', '--application', 'app'],
  ['get', URL_, '-O', 'out', '--digest', `sha256:${'a'.repeat(64)}`, '--timeout', '30s', '--piece-length', '4MiB', '--limit-rate', '2M'],
  ['get', 's3://bucket/key', '-O', 'out', '--endpoint-url', 'http://127.0.0.1:9000', '--region', 'eu-west-1', '--addressing-style', 'path'],
  ['get', URL_, '-O', 'a', '-O', 'b', '--no-direct-io', '--quiet'],
  ['get', URL_, '-O', 'out', '-o', 'other'],
  ['get', URL_],
  ['get', URL_, '-O', 'out', '--'],
];
const LEFT: readonly (readonly string[])[] = [
  ['daemon', '--seed'],
  ['get'],
  ['get', URL_, 'extra', '-O', 'out'],
  ['get', URL_, '-O', 'out', '--help'],
  ['get', URL_, '-O', 'out', '-h'],
  ['get', URL_, '-O', 'dir', '-r'],
  ['get', URL_, '-O', 'dir', '--recursive', '--include', '*.log'],
  ['get', URL_, '-O', 'out', '--exclude', '*'],
  ['get', URL_, '-O', 'out', '--parallel', '2'],
  ['get', URL_, '-O', 'out', '--no-such-flag'],
  ['get', URL_, '-O'],
  ['get', URL_, '-O', '-x'],
  ['get', URL_, '--output=-x'],
  ['get', URL_, '--quiet=yes', '-O', 'out'],
  ['get', URL_, '--o', 'out'],
  ['get', URL_, '--progress', '-O', 'out'],
  ['--version'],
  ['get', '--', URL_, '-O', 'out'],
];

test('every command line the quick parser takes, commander reads the same', async () => {
  for (const argv of TAKEN) {
    const quick = quickGetArgs(argv);
    assert.ok(quick !== undefined, `quick path takes ${argv.join(' ')}`);
    assert.deepEqual({ url: quick.url, options: { ...quick.options } }, await viaCommander(argv), argv.join(' '));
  }
});

test('every flag of get is in one of the lines above, and every value-less flag is read the same alone', async () => {
  const lines = TAKEN.concat(LEFT).map((argv) => argv.join(' '));
  for (const flag of GET_FLAGS) {
    const { long, short } = flagShape(flag);
    const spelt = long.length === 1 ? [`-${long}`] : [`--${long}`, ...(short === undefined ? [] : [`-${short}`])];
    assert.ok(lines.some((line) => spelt.some((s) => line.includes(s))), `${flag.flags} is exercised`);
    if (flag.full === true || flagShape(flag).takesValue) continue;
    const argv = ['get', URL_, '-O', 'out', spelt[0]!];
    assert.deepEqual({ ...quickGetArgs(argv)?.options }, (await viaCommander(argv))?.options, argv.join(' '));
  }
});

test('anything else is left to commander', () => {
  for (const argv of LEFT) assert.equal(quickGetArgs(argv), undefined, argv.join(' '));
});

test('a plain get starts without loading commander; another command loads it', () => {
  // The bundle, as the lab and an installed shoal run it, under a loader hook that names every module Node loads.
  const hook = `import { writeSync } from 'node:fs'; export async function load(url, context, next) { writeSync(2, 'LOADED ' + url + '\\n'); return next(url, context); }`;
  const loaded = (args: string[]): { code: number; program: boolean; files: number } => {
    const run = spawnSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `import { register } from 'node:module';
         register('data:text/javascript,' + encodeURIComponent(${JSON.stringify(hook)}));
         const { runCli } = await import('./dist/shoal.mjs');
         process.exitCode = await runCli(${JSON.stringify(args)});`,
      ],
      { encoding: 'utf8', timeout: 20_000 },
    );
    assert.match(run.stderr, /LOADED file:.*\/dist\/shoal\.mjs/, 'the hook saw the bundle load');
    return {
      code: run.status ?? -1,
      program: /LOADED file:.*\/dist\/chunks\/program-/.test(run.stderr),
      files: run.stderr.split('\n').filter((line) => /^LOADED file:.*\/dist\//.test(line)).length,
    };
  };
  // A URL the get refuses before it connects anywhere: the get itself ran (URL_INVALID, exit 2).
  // -e: the quick path does not look for the standard socket (no daemon there would send it to the whole command line).
  const quick = loaded(['get', 'ftp://127.0.0.1/f', '-O', '/nonexistent/out', '-q', '-e', '/nonexistent/sock']);
  // dist/shoal.mjs, esbuild's runtime chunk and dist/quick-get.mjs: three files, where the split bundle's path was a dozen.
  assert.deepEqual(quick, { code: 2, program: false, files: 3 });
  const full = loaded(['get', 'ftp://127.0.0.1/f', '-O', '/nonexistent/out', '-q', '-e', '/nonexistent/sock', '--no-such-flag']);
  assert.equal(full.code, 2);
  assert.equal(full.program, true);
});
