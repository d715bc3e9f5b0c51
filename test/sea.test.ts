/**
 * The single `shoal` binary (`npm run build:sea`, dist-sea/shoal, or the file
 * SHOAL_BIN names): it runs with nothing beside it, and it takes over a data
 * directory from the bundle run by Node 20 (better-sqlite3) and hands it back
 * (node:sqlite in the binary: one SQLite file format). The swarm and fault
 * tests run against it with SHOAL_BIN set (.ci/run).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, describe, test } from 'node:test';
import { VERSION } from '../src/cli/version.js';
import { Cluster, SHOAL, runCommand, type Proc } from './fixtures/cluster.js';
import { startOrigin, type Origin } from './fixtures/origin.js';
import { until } from './fixtures/wait.js';

const MiB = 1024 * 1024;
const binary = resolve(process.env.SHOAL_BIN !== undefined && process.env.SHOAL_BIN !== '' ? process.env.SHOAL_BIN : join(import.meta.dirname, '../dist-sea/shoal'));
const skip = existsSync(binary) ? false : `no single binary at ${binary} (npm run build:sea)`;

describe('the single binary', { skip, timeout: 120_000 }, () => {
  const cluster = new Cluster();
  let origin: Origin | undefined;
  after(async () => {
    await cluster.close();
    await origin?.close();
  });

  test('runs from an empty directory with no node_modules, NODE_PATH or NODE_OPTIONS', () => {
    const empty = mkdtempSync(join(tmpdir(), 'shoal-sea-'));
    try {
      const env = { PATH: '/usr/bin:/bin', HOME: empty };
      assert.equal(execFileSync(binary, ['--version'], { cwd: empty, env, encoding: 'utf8', timeout: 20_000 }).trim(), VERSION);
      const help = execFileSync(binary, ['runtime-config', 'containerd', '--mirror', '127.0.0.1:4001'], { cwd: empty, env, encoding: 'utf8', timeout: 20_000 });
      assert.match(help, /server = "https:\/\/registry-1\.docker\.io"|\[host\./);
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });

  test('takes over a data directory from the Node bundle and gives it back, without fetching again', async () => {
    const content = randomBytes(6 * MiB);
    origin = await startOrigin({ files: new Map([['/f.bin', content]]) });
    const bundle = [process.execPath, SHOAL];
    const data = cluster.path('data');
    const api = cluster.path('api.sock');

    const daemon = async (command: readonly string[]): Promise<Proc> => {
      const proc = runCommand(command, ['daemon', '--listen', '127.0.0.1:0', '--data', data, '--api', api, '--log-level', 'warn']);
      cluster.procs.push(proc);
      await until(() => proc.stderr().includes('upload port') || proc.child.exitCode !== null, 'the daemon to start', { within: 20_000 });
      assert.equal(proc.child.exitCode, null, `the daemon exited: ${proc.stderr()}`);
      return proc;
    };
    const fetchThrough = async (command: readonly string[], name: string): Promise<void> => {
      const out = cluster.path(name);
      const get = runCommand(command, ['get', `${origin!.url}/f.bin`, '-O', out, '-q', '-e', api]);
      cluster.procs.push(get);
      assert.equal(await get.exited, 0, get.stderr());
      assert.deepEqual(readFileSync(out), content);
    };

    for (const [i, command] of [bundle, [binary], bundle].entries()) {
      const proc = await daemon(command);
      await fetchThrough(command, `out${i}`);
      assert.equal(await proc.kill('SIGTERM'), 0, proc.stderr());
    }
    assert.equal(origin.requests('/f.bin'), 1, 'a daemon after the first fetched the file again: it did not read the store the other wrote');
  });
});
