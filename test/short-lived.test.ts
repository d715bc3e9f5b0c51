/**
 * A `shoal` process does not run V8's idle-time memory reducer before its heap
 * needs a full collection (src/cli/short-lived.ts): a `shoal get` waiting on
 * its daemon for more than 8 s paid two full collections for nothing.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { test } from 'node:test';

/** What a plain `shoal get` loads in dist/ (src/cli/quick-get.ts; the rest of the command line calls the same at its load, src/cli/program.ts). */
const BUNDLE = pathToFileURL(join(process.cwd(), 'dist/shoal.mjs')).href;

/**
 * A process that grows a small heap the way a waiting get does (a few MB kept,
 * no full collection needed), then waits 9 s: the memory reducer's 8 s timer
 * runs out in that time. With `command`, it first runs that shoal command line
 * through the bundle's runCli (one that fails at once, before any connection).
 * Returns the full collections V8 logged as memory-reducing ("(reduce)").
 */
async function reducingCollections(command?: string[]): Promise<number> {
  const run = `
    const { runCli } = await import(${JSON.stringify(BUNDLE)});
    const { PassThrough } = await import('node:stream');
    const code = await runCli(${JSON.stringify(command)}, { stdout: process.stdout, stderr: new PassThrough().resume(), env: {}, signal: new AbortController().signal });
    if (code !== 2) throw new Error('shoal exited ' + code);`;
  const script = `
    ${command === undefined ? '' : run}
    const keep = [];
    for (let i = 0; i < 40; i++) { keep.push(Array.from({ length: 5000 }, (_, j) => ({ j }))); await new Promise((r) => setTimeout(r, 5)); }
    setTimeout(() => console.log('kept', keep.length), 9000);`;
  const child = spawn(process.execPath, ['--trace-gc', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const code = await new Promise<number | null>((res) => child.on('exit', res));
  assert.equal(code, 0);
  assert.match(out, /kept 40/);
  return out.split('\n').filter((l) => l.includes('Mark-Compact (reduce)')).length;
}

test('the memory reducer runs in a plain Node process that waits, and not in one that ran shoal get; a service keeps it', { timeout: 60_000 }, async () => {
  const [plain, get, daemon] = await Promise.all([
    reducingCollections(),
    reducingCollections(['get', 'ftp://127.0.0.1/f', '-O', '/nonexistent/out', '-q', '-e', '/nonexistent/sock']),
    reducingCollections(['daemon', '--no-such-flag']),
  ]);
  // The fault first: without the setting, V8 does collect while the process waits.
  assert.ok(plain >= 1, `a plain process logged ${plain} memory-reducing collections`);
  assert.equal(get, 0);
  assert.ok(daemon >= 1, `a daemon's process logged ${daemon} memory-reducing collections`);
});
