/**
 * `shoal get`'s flags, once, for both of its parsers: commander (./program.ts),
 * which gives help and errors, and a quick path on node:util's parseArgs that
 * starts the usual get without loading commander at all. A get starts on every
 * host of a fleet at once; on a host that also serves the swarm, commander and
 * the building of every command cost each get about 25 ms of CPU before it
 * asks its daemon for anything (docs/benchmarks.md, "A get that starts
 * lighter").
 *
 * The quick path takes only what it parses exactly as commander would (a
 * test holds the two to the same options for the same argv, test/get-command.test.ts):
 * one URL and the flags below it knows. Anything else, including any error, is
 * left to commander, so a wrong command line gets commander's message.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ShoalError } from '../common/errors.js';
import type { StartEmbedded } from './fetcher.js';
import type { CliIo } from './io.js';
import type { GetOptions } from './get.js';
import type { Filter } from './recursive/glob.js';

export interface GetFlag {
  /** commander's spelling: "-O, --output <file>", "--no-progress". */
  flags: string;
  help: string;
  /** Given more than once, every value is kept, in order (default []). */
  repeat?: true;
  /** Not in --help (an alias). */
  hidden?: true;
  /** Only commander takes it (it needs --recursive, or keeps an order across two flags). */
  full?: true;
}

export const GET_FLAGS: readonly GetFlag[] = [
  { flags: '-O, --output <file>', help: 'output file ("-" for stdout); also -o <file> (curl style)' },
  { flags: '-o <file>', help: 'same as -O (curl style)', hidden: true },
  { flags: '-H, --header <header>', help: 'request header "Name: value" for the origin (repeatable)', repeat: true },
  { flags: '--digest <digest>', help: 'expected content digest, sha256:<hex>; also the task identity' },
  { flags: '--timeout <duration>', help: 'give up after this long (e.g. 30s, 10m, 2h)' },
  { flags: '--tag <tag>', help: 'tells apart tasks with the same URL' },
  { flags: '--application <name>', help: 'caller name, part of the task identity' },
  { flags: '--filter <params>', help: 'query parameters left out of the task identity, "&"-separated (repeatable)', repeat: true },
  { flags: '--piece-length <size>', help: 'piece size (e.g. 4MiB); part of the task identity' },
  { flags: '--limit-rate <rate>', help: "download cap for this get, bytes per second: 500k, 2M, 1G (curl/wget spelling; within the daemon's own)" },
  { flags: '-e, --endpoint <socket>', help: 'daemon API: unix socket or 127.0.0.1:PORT (default: the standard local socket)' },
  { flags: '--endpoint-url <url>', help: 's3://: the S3-compatible store, e.g. http://minio:9000 (default: AWS, or AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL)' },
  { flags: '--region <region>', help: "s3://: the bucket's region (default: the daemon's AWS_REGION, ~/.aws/config, us-east-1)" },
  { flags: '--addressing-style <style>', help: 's3://: path or virtual (default: virtual on AWS, path elsewhere)' },
  { flags: '-r, --recursive', help: 'every file under URL (an s3:// prefix, or an nginx autoindex directory) into the directory -O DIR, each its own task', full: true },
  { flags: '--include <glob>', help: '--recursive: take names matching (repeatable; with --exclude, the last match decides)', full: true },
  { flags: '--exclude <glob>', help: '--recursive: leave out names matching (repeatable), e.g. --exclude "*" --include "*.log"', full: true },
  { flags: '--parallel <n>', help: '--recursive: files fetched at once (default 4)', full: true },
  {
    flags: '--no-direct-io',
    help: 'copy the output through the page cache instead of writing it straight to disk (where no reflink is possible): returns sooner on a disk slower than the copy, at two copies of the file in memory',
  },
  { flags: '-q, --quiet', help: 'print nothing but errors' },
  { flags: '--no-progress', help: 'no progress bar' },
];

/** What commander's action receives for `get`. */
export type GetFlags = Omit<GetOptions, 'output'> & { output?: string; o?: string; recursive: boolean; parallel?: string };

interface FlagShape {
  short?: string;
  long: string;
  /** The options property commander writes: camelCase, "no-" taken off. */
  key: string;
  takesValue: boolean;
  negated: boolean;
}

export function flagShape(flag: GetFlag): FlagShape {
  const m = /^(?:-([A-Za-z]), )?(?:--([a-z][a-z-]*)|-([A-Za-z]))( <[a-z]+>)?$/.exec(flag.flags);
  if (m === null) throw new Error(`get flag ${flag.flags} is not spelt as this parser reads`);
  const long = m[2] ?? m[3]!;
  const negated = long.startsWith('no-');
  const key = (negated ? long.slice(3) : long).replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
  return { ...(m[1] === undefined ? {} : { short: m[1] }), long, key, takesValue: m[4] !== undefined, negated };
}

/** The value an option has when not given, as commander has it. */
export function flagDefault(flag: GetFlag, shape: FlagShape): unknown {
  if (flag.repeat === true) return [];
  if (shape.negated) return true;
  return shape.takesValue ? undefined : false;
}

/**
 * `shoal get URL …` parsed without commander, or undefined when this is not
 * a plain get (another command, --help, --recursive, an unknown flag, a
 * parse error): the caller then runs the whole command line (./program.ts).
 */
export function quickGetArgs(argv: readonly string[]): { url: string; options: GetFlags } | undefined {
  if (argv[0] !== 'get') return undefined;
  const shapes = GET_FLAGS.map((flag) => ({ flag, shape: flagShape(flag) }));
  const options: NonNullable<ParseArgsConfig['options']> = {};
  for (const { flag, shape } of shapes) {
    if (flag.full === true) continue;
    const short = shape.long.length === 1 ? shape.long : shape.short;
    options[shape.long] = { type: shape.takesValue ? 'string' : 'boolean', multiple: flag.repeat === true, ...(short === undefined ? {} : { short }) };
  }
  let parsed: ReturnType<typeof parseArgs<{ options: typeof options; allowPositionals: true; strict: true; tokens: true }>>;
  try {
    parsed = parseArgs({ args: argv.slice(1), options, allowPositionals: true, strict: true, tokens: true });
  } catch {
    return undefined;
  }
  // A one-letter flag (-o) has no long form in commander: "--o" is not a plain get.
  if (parsed.tokens.some((t) => t.kind === 'option' && t.name.length === 1 && t.rawName !== `-${t.name}`)) return undefined;
  const url = parsed.positionals[0];
  if (parsed.positionals.length !== 1 || url === undefined || url.startsWith('-')) return undefined;
  const out: Record<string, unknown> = {};
  for (const { flag, shape } of shapes) {
    const given = parsed.values[shape.long];
    if (given === undefined) {
      const value = flagDefault(flag, shape);
      if (value !== undefined) out[shape.key] = value;
    } else {
      if (Array.isArray(given) ? given.some(isOptionLike) : isOptionLike(given)) return undefined;
      out[shape.key] = shape.negated ? false : given;
    }
  }
  return { url, options: out as unknown as GetFlags };
}

/** commander reads "-O -x" as -O with the value "-x"; parseArgs as an error or two flags. Left to commander. */
function isOptionLike(value: string | boolean): boolean {
  return typeof value === 'string' && value.length > 1 && value.startsWith('-');
}

/** The output file of a get: -O or -o (curl style), not two different ones. */
export function outputOf(opts: GetFlags): string {
  if (opts.output !== undefined && opts.o !== undefined && opts.output !== opts.o) throw new ShoalError('USAGE', '-O and -o name different files; give one');
  const output = opts.output ?? opts.o;
  if (output === undefined) throw new ShoalError('USAGE', 'an output file is required: -O FILE (or -o FILE; "-" for stdout)');
  return output;
}

/**
 * `shoal get` of one URL (not --recursive: ./program.ts), whichever parser
 * read its flags. `embedded` starts a daemon in this process when none runs;
 * the quick path passes none (it runs only where a daemon answers:
 * ./quick-get.ts).
 */
export async function runGetCommand(url: string, opts: GetFlags, filters: Filter[], io: CliIo, embedded: StartEmbedded | undefined): Promise<number> {
  const output = outputOf(opts);
  if (filters.length > 0 || opts.parallel !== undefined) throw new ShoalError('USAGE', '--include, --exclude and --parallel go with --recursive');
  const { runGet } = await import('./get.js');
  return runGet(url, { ...opts, output }, io, embedded);
}
