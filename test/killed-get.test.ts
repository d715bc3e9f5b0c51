/**
 * Issue 15, item 10: a `shoal get` killed or cancelled leaves nothing behind.
 * Real processes: the output directory is a tmpfs (another file system than
 * the data directory, so the output is a copy that takes a while), and the
 * get is signalled the moment its temporary file appears. A get SIGKILLed
 * while it holds the data directory's lock, and not yet reaped (a zombie),
 * does not lock the next one out.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, rmSync, statSync, watch } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Cluster, SHOAL_COMMAND, run, type Proc } from './fixtures/cluster.js';
import { startOrigin, type Origin } from './fixtures/origin.js';
import { canMount, mountTmpfs, type Tmpfs } from './fixtures/tmpfs.js';
import { until } from './fixtures/wait.js';

const MiB = 1024 * 1024;
const isTemp = (name: string): boolean => name.includes('.shoal-');

/** A get stopped (SIGSTOP) in the middle of its copy: its temporary file holds part of the content. */
interface StoppedGet {
  proc: Proc;
  file: string;
  temp: string;
}

/** A process's state letter (R, S, T: stopped, Z: zombie …), from /proc. */
function stateOf(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'latin1').split(') ')[1]?.[0];
  } catch {
    return undefined;
  }
}

/** The get runs at idle priority where it can: on a busy machine the test, watching its copy, comes first. */
const IDLE = spawnSync('chrt', ['--idle', '0', 'true']).status === 0 ? ['chrt', '--idle', '0'] : [];

/**
 * Starts a get of `url` into `dir` and freezes it with SIGSTOP as soon as
 * its temporary file is seen there (the copy is one long sendfile, whose
 * bytes inotify reports only at its end), so that the signal under test
 * lands mid-copy. A get caught too late (its copy done) is let go and another one
 * tried; none caught in five tries fails the test: it would prove nothing.
 */
async function stopMidCopy(dir: string, url: string, env: NodeJS.ProcessEnv, length: number, name: string): Promise<StoppedGet> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const file = join(dir, `${name}${attempt}.out`);
    const proc = run(['get', url, '-O', file, '-q'], env, IDLE);
    let temp: string | undefined;
    const watcher = watch(dir, (_event, changed) => {
      if (temp !== undefined || changed === null || !changed.startsWith(`.${name}${attempt}.out.shoal-`)) return;
      if (!existsSync(join(dir, changed))) return; // a reflink tried and failed, or the file renamed
      temp = changed;
      proc.child.kill('SIGSTOP');
    });
    await until(() => temp !== undefined || proc.child.exitCode !== null, 'the get to copy its output', { within: 60_000, every: 5 }).finally(() => watcher.close());
    if (temp !== undefined) await until(() => proc.child.exitCode !== null || stateOf(proc.child.pid!) === 'T', 'the get to stop');
    const size = temp === undefined ? undefined : statSync(join(dir, temp), { throwIfNoEntry: false })?.size;
    if (temp !== undefined && size !== undefined && size < length) return { proc, file, temp };
    proc.child.kill('SIGKILL');
    await proc.exited;
    rmSync(file, { force: true });
    if (temp !== undefined) rmSync(join(dir, temp), { force: true });
  }
  assert.fail('the test proves nothing: no get was caught in the middle of its copy in five tries');
}

describe('a killed or cancelled get', { timeout: 240_000, skip: canMount ? false : 'needs root to mount a tmpfs' }, () => {
  const big = randomBytes(160 * MiB);
  const small = randomBytes(64 * 1024);
  let origin: Origin;
  let cluster: Cluster;
  let out: Tmpfs;
  let env: NodeJS.ProcessEnv;
  before(async () => {
    origin = await startOrigin({ files: new Map([['/big', big], ['/small', small]]) });
    cluster = new Cluster();
    out = mountTmpfs(cluster.path('out'), '1g');
    env = { SHOAL_DATA: cluster.path('data'), SHOAL_ENDPOINT: cluster.path('none.sock') };
  });
  after(async () => {
    await Promise.all(cluster.procs.map((p) => p.kill('SIGKILL')));
    out.unmount();
    await cluster.close();
    await origin.close();
  });

  test('SIGTERM during the copy: exit 130, no temporary file, no output', async () => {
    const { proc, file } = await stopMidCopy(out.dir, `${origin.url}/big`, env, big.length, 'term');
    proc.child.kill('SIGTERM');
    proc.child.kill('SIGCONT');
    assert.equal(await proc.exited, 130, proc.stderr());
    assert.deepEqual(readdirSync(out.dir).filter(isTemp), [], 'temporary file left behind');
    assert.equal(existsSync(file), false, 'a cancelled get still placed its output');
  });

  test('SIGKILL during the copy: the next get into that directory removes what it left', async () => {
    const { proc, file, temp } = await stopMidCopy(out.dir, `${origin.url}/big`, env, big.length, 'kill');
    proc.child.kill('SIGKILL');
    assert.equal(await proc.exited, 'SIGKILL');
    assert.ok(existsSync(join(out.dir, temp)), 'the killed get left nothing: nothing to clean');
    assert.equal(existsSync(file), false);
    const next = run(['get', `${origin.url}/small`, '-O', `${out.dir}/small.out`, '-q'], env);
    assert.equal(await next.exited, 0, next.stderr());
    assert.deepEqual(readFileSync(`${out.dir}/small.out`), small);
    assert.deepEqual(readdirSync(out.dir).filter(isTemp), [], "the dead get's temporary file is still there");
  });

  test('a get killed while it holds the data directory, and not yet reaped, does not lock the next one out', async () => {
    const slow = await startOrigin({ files: new Map([['/slow', randomBytes(8 * MiB)]]), rateLimit: 512 * 1024 });
    const data = cluster.path('zdata');
    const zenv = { ...process.env, SHOAL_DATA: data, SHOAL_ENDPOINT: cluster.path('none.sock') };
    // The get runs under a parent that never reaps it: `sleep`, exec'd by the shell that started it.
    const parent = spawn('bash', ['-c', '"$@" & echo $! ; exec sleep 120', 'bash', ...SHOAL_COMMAND, 'get', `${slow.url}/slow`, '-O', cluster.path('z.out'), '-q'], {
      env: zenv,
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    try {
      let pidText = '';
      parent.stdout.on('data', (d: Buffer) => (pidText += d.toString()));
      await until(() => /^\d+\n/.test(pidText), 'the get to start');
      const pid = Number.parseInt(pidText, 10);
      const lockedBy = (): string => (existsSync(`${data}/lock`) ? readFileSync(`${data}/lock`, 'utf8') : '');
      await until(() => new RegExp(`^${pid}\\b`).test(lockedBy()) && slow.bytesServed('/slow') > 0, 'the get to lock its data directory and download', { within: 30_000 });
      process.kill(pid, 'SIGKILL');
      await until(() => stateOf(pid) === 'Z', 'the killed get to be a zombie');
      const next = run(['get', `${origin.url}/small`, '-O', cluster.path('z2.out'), '-q'], { SHOAL_DATA: data, SHOAL_ENDPOINT: cluster.path('none.sock') });
      assert.equal(await next.exited, 0, next.stderr());
      assert.deepEqual(readFileSync(cluster.path('z2.out')), small);
    } finally {
      parent.kill('SIGKILL');
      await slow.close();
    }
  });
});
