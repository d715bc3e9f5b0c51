/**
 * Every download a scenario runs, and what became of it. A download is one
 * `shoal get` process (or, for the API flood and the soak, one POST
 * /v1/download on the local API, its result placed at the final path as
 * `shoal get` does). Its outcome:
 *   completed  exit 0 and the output is byte for byte a version the origin
 *              served while the download ran
 *   failed     a clear error: a non-zero exit with `shoal: error CODE:` on
 *              stderr, CODE a Shoal error code whose exit code it is (the API:
 *              an error event or a client error with a code)
 *   corrupt    an output at its final path that is no such version (exit 0 or not)
 *   partial    a file at a final path that is a strict prefix of a version
 *   lost       neither: no answer within the bound (killed then), a crash, an
 *              exit without a code, a stream that ended without a result
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { Writable } from 'node:stream';
import { ERRORS, isErrorCode } from '../../src/common/errors.js';
import { placeOutput } from '../../src/cli/output.js';
import { fetchStats, requestDownload } from '../../src/cli/daemon-client.js';
import { run } from '../../test/fixtures/cluster.js';
import type { ChaosOrigin, Node } from './swarm.js';

export type Outcome = 'completed' | 'failed' | 'corrupt' | 'partial' | 'lost';

export interface DownloadRecord {
  readonly n: number;
  readonly via: 'get' | 'api';
  readonly node: string;
  readonly path: string;
  readonly output: string;
  readonly startedAt: number;
  /** Versions the origin had from this time on are accepted. */
  readonly since: number;
  endedAt: number;
  outcome: Outcome;
  /** The error code of a clear failure; what went wrong otherwise. */
  detail: string;
}

export interface GetOptions {
  /** Extra `shoal get` arguments. */
  args?: string[];
  /** Bound on this download (default: the suite's). */
  within?: number;
  /** Called with the process once it runs (a scenario may watch it). */
  onStart?: (exited: () => boolean) => void;
  /** The URL, when not the origin's own for `path` (a relay in front of it). */
  url?: string;
  /**
   * Versions the origin had since this time count too (default: the
   * download's start): a cache hit is the version the task was fetched as,
   * since a complete task is not revalidated with its origin.
   */
  since?: number;
}

const CLEAR = /shoal: error ([A-Z_]+): /;
const TEMP = /^\..+\.shoal-[0-9a-f]+$/;

export class Ledger {
  readonly records: DownloadRecord[] = [];
  readonly #dirs = new Set<string>();
  readonly #outDir: string;
  #n = 0;
  /** The scheduler's view of a task (its peers, their states, pieces and parents), for post-mortems. */
  schedulerView: ((taskId: string) => Promise<string>) | undefined;

  constructor(
    readonly origin: ChaosOrigin,
    outDir: string,
    readonly downloadMs: number,
    /** Aborted when the scenario runs out of time: every download still running is lost. */
    readonly signal: AbortSignal,
  ) {
    this.#outDir = outDir;
    mkdirSync(outDir, { recursive: true });
    this.#dirs.add(outDir);
  }

  /** A fresh output path (in `dir`, default the scenario's output directory). */
  output(dir = this.#outDir): string {
    mkdirSync(dir, { recursive: true });
    this.#dirs.add(dir);
    return join(dir, `out-${this.#n}-${randomBytes(3).toString('hex')}`);
  }

  /** `shoal get URL -O OUT -e API`, bounded in time. */
  async get(node: Node, path: string, options: GetOptions = {}): Promise<DownloadRecord> {
    const output = this.output();
    const record = this.#open('get', node.name, path, output, options.since);
    const proc = run(['get', options.url ?? this.origin.url(path), '-O', output, '-q', '-e', node.api, ...(options.args ?? [])]);
    options.onStart?.(() => proc.child.exitCode !== null || proc.child.signalCode !== null);
    const bound = this.#bound(options.within);
    const ended = await Promise.race([proc.exited.then((code) => ({ code })), bound.expired.then(() => undefined)]);
    bound.clear();
    if (ended === undefined) {
      const dump = await this.#postMortem(record, node, options.url ?? this.origin.url(path), proc.stderr());
      await proc.kill('SIGKILL');
      return this.#close(record, 'lost', `no exit within ${options.within ?? this.downloadMs} ms (killed; the daemon's view in ${dump})`);
    }
    const { code } = ended;
    if (code === 0) return this.#close(record, ...this.#judgeOutput(record, true));
    const clear = CLEAR.exec(proc.stderr())?.[1];
    const [outcome, detail] = this.#judgeOutput(record, false);
    if (outcome !== 'completed') return this.#close(record, outcome, `${detail} (exit ${code})`);
    if (clear !== undefined && isErrorCode(clear) && ERRORS[clear].exit === code) return this.#close(record, 'failed', clear);
    return this.#close(record, 'lost', `exit ${code} without a Shoal error code: ${proc.stderr().slice(-300).trim()}`);
  }

  /** POST /v1/download on the node's API; the result placed at a final path as `shoal get` does. */
  async api(node: Node, path: string, options: { within?: number; placeIn?: string; request?: Record<string, unknown> } = {}): Promise<DownloadRecord> {
    const output = this.output(options.placeIn);
    const record = this.#open('api', node.name, path, output);
    const bound = this.#bound(options.within);
    const abort = new AbortController();
    void bound.expired.then(() => abort.abort());
    try {
      let cachePath: string | undefined;
      for await (const event of requestDownload(node.api, { url: this.origin.url(path), headers: [], progress: false, ...options.request }, abort.signal)) {
        if (event.event === 'error') {
          const code = typeof event.error?.code === 'string' ? event.error.code : '';
          return this.#close(record, isErrorCode(code) ? 'failed' : 'lost', isErrorCode(code) ? code : `error event without a code: ${JSON.stringify(event.error)}`);
        }
        if (event.event === 'done') cachePath = event.path;
      }
      if (cachePath === undefined) return this.#close(record, 'lost', abort.signal.aborted ? `no result within ${options.within ?? this.downloadMs} ms` : 'the stream ended without done or error');
      await placeOutput(cachePath, output, new Writable({ write: (_c, _e, cb) => cb() }), abort.signal);
      return this.#close(record, ...this.#judgeOutput(record, true));
    } catch (err) {
      if (abort.signal.aborted) return this.#close(record, 'lost', `no result within ${options.within ?? this.downloadMs} ms`);
      const code = (err as { code?: unknown }).code;
      if (typeof code === 'string' && isErrorCode(code)) {
        const [outcome, detail] = this.#judgeOutput(record, false);
        return outcome === 'completed' ? this.#close(record, 'failed', code) : this.#close(record, outcome, detail);
      }
      return this.#close(record, 'lost', `client error without a code: ${(err as Error).message}`);
    } finally {
      bound.clear();
    }
  }

  /**
   * What the daemon of a lost get saw, for whoever replays it: the task's
   * entry in its stats and the tail of its log, in a file that outlives the run.
   */
  async #postMortem(record: DownloadRecord, node: Node, url: string, getStderr: string): Promise<string> {
    // Kept after the run (the swarm's directories are removed at its end): .bench/chaos/ under the working directory.
    const dir = join(process.cwd(), '.bench', 'chaos');
    mkdirSync(dir, { recursive: true });
    const file = join(dir, `lost-${basename(this.#outDir)}-${record.n}-${Date.now()}.txt`);
    let task: string;
    let scheduler = '(no scheduler view)';
    try {
      const held = (await fetchStats(node.api)).tasks.filter((t) => t.url === url);
      task = JSON.stringify(held, null, 1);
      const id = held.at(-1)?.taskId;
      if (id !== undefined && this.schedulerView !== undefined) scheduler = await this.schedulerView(id).catch((err: unknown) => `Stat failed: ${(err as Error).message}`);
    } catch (err) {
      task = `stats unavailable: ${(err as Error).message}`;
    }
    const log = node.pid === undefined ? '(daemon not running)' : node.proc.stderr().split('\n').slice(-200).join('\n');
    writeFileSync(file, `get ${url} on ${node.name}\n\n== the get's stderr\n${getStderr}\n== the task in the daemon's stats\n${task}\n== the task on the scheduler\n${scheduler}\n== the daemon's log (last 200 lines)\n${log}\n`);
    return file;
  }

  /** Temporary files (`.NAME.shoal-<hex>`) left in the output directories. */
  leftovers(): string[] {
    const found: string[] = [];
    for (const dir of this.#dirs) {
      for (const name of readdirSync(dir)) if (TEMP.test(name)) found.push(join(dir, name));
    }
    return found;
  }

  count(outcome: Outcome): number {
    return this.records.filter((r) => r.outcome === outcome).length;
  }

  #open(via: 'get' | 'api', node: string, path: string, output: string, since?: number): DownloadRecord {
    const startedAt = performance.now();
    const record: DownloadRecord = { n: this.#n++, via, node, path, output, startedAt, since: Math.min(since ?? startedAt, startedAt), endedAt: 0, outcome: 'lost', detail: 'running' };
    this.records.push(record);
    return record;
  }

  #close(record: DownloadRecord, outcome: Outcome, detail: string): DownloadRecord {
    record.endedAt = performance.now();
    record.outcome = outcome;
    record.detail = detail;
    return record;
  }

  /**
   * What is at the final path: with `presentedDone` (exit 0) it must be a
   * version the origin had during the download; otherwise nothing, or such a
   * version, may be there.
   */
  #judgeOutput(record: DownloadRecord, presentedDone: boolean): [Outcome, string] {
    const versions = this.origin.versionsBetween(record.path, record.since, performance.now());
    let data: Buffer;
    try {
      if (!statSync(record.output).isFile()) return ['corrupt', 'the final path is not a file'];
      data = readFileSync(record.output);
    } catch {
      return presentedDone ? ['corrupt', 'exit 0 but nothing at the final path'] : ['completed', 'no file'];
    }
    if (versions.some((v) => v.equals(data))) return ['completed', 'ok'];
    if (versions.some((v) => data.length < v.length && v.subarray(0, data.length).equals(data))) return ['partial', `${data.length} B, a prefix of a version`];
    const lengths = versions.map((v) => v.length).join('/');
    return ['corrupt', `${data.length} B matching no version the origin had (${versions.length} versions, ${lengths} B)${mixedNote(data, versions)}`];
  }

  #bound(within = this.downloadMs): { expired: Promise<void>; clear: () => void } {
    let timer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    const expired = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, within);
      onAbort = () => resolve();
      this.signal.addEventListener('abort', onAbort, { once: true });
    });
    return {
      expired,
      clear: () => {
        clearTimeout(timer);
        if (onAbort !== undefined) this.signal.removeEventListener('abort', onAbort);
      },
    };
  }
}

/** For two versions of one length: where the output follows which (the mixed-versions signature). */
function mixedNote(data: Buffer, versions: Buffer[]): string {
  const [a, b] = versions;
  if (versions.length !== 2 || a === undefined || b === undefined || a.length !== data.length || b.length !== data.length) return '';
  let fromA = 0;
  let fromB = 0;
  const block = 64 * 1024;
  for (let i = 0; i < data.length; i += block) {
    const piece = data.subarray(i, i + block);
    if (piece.equals(a.subarray(i, i + block))) fromA += piece.length;
    else if (piece.equals(b.subarray(i, i + block))) fromB += piece.length;
  }
  return `; ${fromA} B of the first version and ${fromB} B of the second: mixed`;
}
