/**
 * `shoal get --recursive`: the pure parts (nginx autoindex pages, ListObjectsV2
 * pages, globs, name checks), then the command itself (runCli, with the
 * in-process daemon) against an nginx-format index server and s3rver: every
 * file, filters, resume, and each way a hostile listing tries to write
 * outside DIR (.., absolute, NUL, backslash, a symlink in DIR), refused.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import type { ShoalError } from '../src/common/errors.js';
import { parseS3Url } from '../src/common/s3-url.js';
import { runCli } from '../src/cli/main.js';
import { compileFilters, type Filter } from '../src/cli/recursive/glob.js';
import { parseNginxHtml, parseNginxJson } from '../src/cli/recursive/nginx-index.js';
import { listS3Prefix, parseListPage } from '../src/cli/recursive/s3-list.js';
import { safeSegments } from '../src/cli/recursive/safe-path.js';
import { nginxHtml, nginxJson, startAutoindex, type AutoindexServer } from './fixtures/autoindex.js';
import { s3Env, startS3, type S3Server } from './fixtures/s3.js';

const T = { timeout: 60_000 };
const LONG = 'a-very-long-log-file-name-that-nginx-cuts-at-fifty-columns.log';

describe('listing parsers', () => {
  const entries = [
    { name: 'sub dir', dir: true, size: 0 },
    { name: 'a&b <1>.log', dir: false, size: 1234 },
    { name: LONG, dir: false, size: 7 },
    { name: 'é.txt', dir: false, size: 3 },
  ];

  test('nginx HTML: hrefs decoded (not the cut or escaped text), directories, exact sizes, UTC minutes', () => {
    const parsed = parseNginxHtml(nginxHtml('/logs/', entries));
    const mtime = Date.UTC(2026, 11, 2, 4, 0);
    assert.deepEqual(parsed, [
      { name: 'sub dir', directory: true, size: undefined, mtime },
      { name: 'a&b <1>.log', directory: false, size: 1234, mtime },
      { name: LONG, directory: false, size: 7, mtime },
      { name: 'é.txt', directory: false, size: 3, mtime },
    ]);
    assert.throws(() => parseNginxHtml('<html>hello</html>'), (e: ShoalError) => e.code === 'LISTING_INVALID');
  });

  test('nginx HTML with autoindex_exact_size off: sizes like 12K are not exact (unknown)', () => {
    const line = '<a href="big.log">big.log</a>                                            02-Dec-2026 04:00    12K\r\n';
    const html = `<html>\r\n<head><title>Index of /</title></head>\r\n<body>\r\n<h1>Index of /</h1><hr><pre><a href="../">../</a>\r\n${line}</pre><hr></body>\r\n</html>\r\n`;
    assert.deepEqual(parseNginxHtml(html).map((e) => [e.name, e.size]), [['big.log', undefined]]);
  });

  test('nginx JSON: names, types, sizes, RFC 1123 times; "other" left out; garbage is LISTING_INVALID', () => {
    const parsed = parseNginxJson(nginxJson(entries));
    assert.deepEqual(parsed.map((e) => [e.name, e.directory, e.size]), [['sub dir', true, undefined], ['a&b <1>.log', false, 1234], [LONG, false, 7], ['é.txt', false, 3]]);
    assert.equal(parsed[0]!.mtime, Date.UTC(2026, 11, 2, 4, 0, 0));
    assert.deepEqual(parseNginxJson('[\r\n{ "name":"sock", "type":"other", "mtime":"Wed, 02 Dec 2026 04:00:00 GMT" }\r\n]'), []);
    for (const bad of ['{}', 'nope', '[{"name":1,"type":"file"}]', '[{"name":"x","type":"file","size":-1}]']) {
      assert.throws(() => parseNginxJson(bad), (e: ShoalError) => e.code === 'LISTING_INVALID', bad);
    }
  });

  test('ListObjectsV2 pages: keys unescaped, the continuation token, truncation without a token refused', () => {
    const page = parseListPage(
      '<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><Prefix>logs/</Prefix><KeyCount>1</KeyCount><IsTruncated>true</IsTruncated><NextContinuationToken>tok&amp;1</NextContinuationToken><Contents><Key>logs/a&amp;b.log</Key><LastModified>2026-12-02T04:00:00.000Z</LastModified><ETag>&quot;x&quot;</ETag><Size>42</Size></Contents></ListBucketResult>',
    );
    assert.deepEqual(page, { objects: [{ key: 'logs/a&b.log', size: 42, mtime: Date.UTC(2026, 11, 2, 4) }], next: 'tok&1' });
    assert.throws(() => parseListPage('<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>'), (e: ShoalError) => e.code === 'LISTING_INVALID');
    assert.throws(() => parseListPage('<Error><Code>AccessDenied</Code></Error>'), (e: ShoalError) => e.code === 'LISTING_INVALID');
  });

  test('globs: in order, the last match decides; without "/" the last segment', () => {
    const f = (...filters: Filter[]) => compileFilters(filters);
    const names = ['a.log', 'x/b.log', 'x/c.txt', 'y/z/d.log', 'e.gz'];
    const pick = (p: (n: string) => boolean) => names.filter(p);
    assert.deepEqual(pick(f()), names);
    assert.deepEqual(pick(f({ kind: 'exclude', glob: '*' }, { kind: 'include', glob: '*.log' })), ['a.log', 'x/b.log', 'y/z/d.log']);
    assert.deepEqual(pick(f({ kind: 'exclude', glob: 'x/*' })), ['a.log', 'y/z/d.log', 'e.gz']);
    assert.deepEqual(pick(f({ kind: 'exclude', glob: '**' }, { kind: 'include', glob: 'y/**/*.log' })), ['y/z/d.log']);
    assert.deepEqual(pick(f({ kind: 'include', glob: '[!a]*.log' }, { kind: 'exclude', glob: '?.gz' })), names.filter((n) => n !== 'e.gz'));
  });

  test('names: only plain relative paths', () => {
    assert.deepEqual(safeSegments('logs/2026/app.log'), ['logs', '2026', 'app.log']);
    for (const bad of ['..', '../x', 'a/../../x', 'a/..', '/etc/passwd', 'a\0b', 'a\\..\\b', 'a//b', './a', 'a/./b', '', 'C:x', `${'d/'.repeat(70)}f`]) {
      assert.throws(() => safeSegments(bad), (e: ShoalError) => e.code === 'PATH_UNSAFE', JSON.stringify(bad));
    }
  });
});

/** runCli in this process, with no daemon running: the in-process one, its data in `home`. */
async function shoal(home: string, args: string[], extraEnv: Record<string, string> = {}): Promise<{ code: number; stderr: string }> {
  let stderr = '';
  const sink = (append: (s: string) => void) => new Writable({ write: (chunk: Buffer, _e, done) => (append(chunk.toString()), done()) });
  const env = { SHOAL_DATA: join(home, 'data'), SHOAL_ENDPOINT: join(home, 'no-daemon.sock'), ...s3Env(home, null), ...extraEnv };
  const code = await runCli(args, { stdout: sink(() => undefined), stderr: sink((s) => (stderr += s)), env, signal: new AbortController().signal });
  return { code, stderr };
}

function tree(dir: string, prefix = ''): string[] {
  return readdirSync(join(dir, prefix), { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? tree(dir, `${prefix}${e.name}/`) : [`${prefix}${e.name}`])).sort();
}

describe('get --recursive of an nginx autoindex', T, () => {
  const home = mkdtempSync(join(tmpdir(), 'shoal-rec-'));
  const files = new Map<string, Buffer>([
    ['/logs/app.log', randomBytes(200_000)],
    ['/logs/a b&c.log', randomBytes(10)],
    ['/logs/2026/12/web.log', randomBytes(70_000)],
    ['/logs/2026/12/web.log.gz', randomBytes(5_000)],
    ['/logs/empty.txt', Buffer.alloc(0)],
  ]);
  const servers: AutoindexServer[] = [];
  const start = async (format: 'html' | 'json', raw?: Map<string, { type: string; body: string }>) => {
    const s = await startAutoindex({ files, format, ...(raw === undefined ? {} : { raw }) });
    servers.push(s);
    return s;
  };
  after(async () => {
    await Promise.all(servers.map((s) => s.close()));
    rmSync(home, { recursive: true, force: true });
  });

  test('HTML index: every file under its name, one summary; a re-run fetches nothing', async () => {
    const server = await start('html');
    const out = join(home, 'html-out');
    const first = await shoal(home, ['get', '-r', `${server.url}/logs/`, '-O', out]);
    assert.equal(first.code, 0, first.stderr);
    assert.deepEqual(tree(out), ['2026/12/web.log', '2026/12/web.log.gz', 'a b&c.log', 'app.log', 'empty.txt']);
    for (const [path, body] of files) assert.ok(readFileSync(join(out, path.slice('/logs/'.length))).equals(body), path);
    assert.match(first.stderr, /5 fetched, 0 already complete, 0 failed, of 5 files/);
    const gets = [...server.fileGets.values()].reduce((a, b) => a + b, 0);

    const again = await shoal(home, ['get', '-r', `${server.url}/logs`, '-O', out]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, /0 fetched, 5 already complete/);
    assert.equal([...server.fileGets.values()].reduce((a, b) => a + b, 0), gets, 'the re-run asked the origin for no file');

    writeFileSync(join(out, 'app.log'), 'truncated'); // not the listed size: fetched again
    const repaired = await shoal(home, ['get', '-r', `${server.url}/logs/`, '-O', out]);
    assert.match(repaired.stderr, /1 fetched, 4 already complete/);
    assert.ok(readFileSync(join(out, 'app.log')).equals(files.get('/logs/app.log')!));
  });

  test('JSON index with --exclude "*" --include "*.log"', async () => {
    const server = await start('json');
    const out = join(home, 'json-out');
    const run = await shoal(home, ['get', '--recursive', `${server.url}/logs/`, '-O', out, '--exclude', '*', '--include', '*.log', '--parallel', '2']);
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(tree(out), ['2026/12/web.log', 'a b&c.log', 'app.log']);
    assert.match(run.stderr, /of 3 files \(2 filtered out\)/);
  });

  const hostile = (name: string, body: string, type = 'application/json') => new Map([['/evil/', { type, body }]]);
  const jsonEntry = (name: string) => `[\r\n{ "name":${JSON.stringify(name)}, "type":"file", "mtime":"Wed, 02 Dec 2026 04:00:00 GMT", "size":3 }\r\n]`;
  for (const [what, raw] of [
    ['..', hostile('..', jsonEntry('..'))],
    ['../ in a name', hostile('', jsonEntry('../../escaped'))],
    ['an absolute name', hostile('', jsonEntry('/tmp/escaped'))],
    ['NUL', hostile('', jsonEntry('a\u0000b'))],
    ['a backslash', hostile('', jsonEntry('..\\escaped'))],
    ['an HTML href with ..', hostile('', nginxHtml('/evil/', []).replace('</pre>', '<a href="..%2F..%2Fescaped">x</a>                                                  02-Dec-2026 04:00                   3\r\n</pre>'), 'text/html')],
  ] as const) {
    test(`a listing naming ${what} is refused (PATH_UNSAFE), nothing written`, async () => {
      const server = await start('json', raw);
      const out = join(home, `evil-${servers.length}`, 'out');
      const run = await shoal(home, ['get', '-r', `${server.url}/evil/`, '-O', out]);
      assert.equal(run.code, 2, run.stderr);
      assert.match(run.stderr, /PATH_UNSAFE/);
      assert.equal(existsSync(join(out, '..')), false, 'nothing was created, DIR included');
    });
  }

  test('a symlink in DIR is never followed out of it', async () => {
    const server = await start('html');
    const out = join(home, 'link-out');
    const outside = join(home, 'outside');
    mkdirSync(join(out, '2026'), { recursive: true });
    mkdirSync(outside);
    symlinkSync(outside, join(out, '2026', '12'));
    symlinkSync(join(outside, 'target'), join(out, 'app.log'));
    const run = await shoal(home, ['get', '-r', `${server.url}/logs/`, '-O', out]);
    assert.equal(run.code, 2, run.stderr);
    assert.match(run.stderr, /failed 2026\/12\/web\.log: PATH_UNSAFE: .*symlink/);
    assert.match(run.stderr, /failed app\.log: PATH_UNSAFE: .*symlink/);
    assert.deepEqual(readdirSync(outside), []);
    assert.match(run.stderr, /2 fetched, 0 already complete, 3 failed/);
  });

  test('an index nested deeper than the limit is LIMIT_EXCEEDED', async () => {
    const deep = new Map<string, Buffer>([[`/d/${'x/'.repeat(40)}f`, Buffer.from('f')]]);
    const server = await startAutoindex({ files: deep, format: 'json' });
    servers.push(server);
    const run = await shoal(home, ['get', '-r', `${server.url}/d/`, '-O', join(home, 'deep-out')]);
    assert.equal(run.code, 7, run.stderr);
    assert.match(run.stderr, /LIMIT_EXCEEDED: directories deeper than 32/);
  });

  test('--include without --recursive is USAGE', async () => {
    const run = await shoal(home, ['get', 'http://127.0.0.1:1/x', '-O', join(home, 'x'), '--include', '*.log']);
    assert.equal(run.code, 2);
    assert.match(run.stderr, /USAGE/);
  });
});

describe('get --recursive of an S3 prefix', T, () => {
  const home = mkdtempSync(join(tmpdir(), 'shoal-rec-s3-'));
  let s3: S3Server;
  const objects = new Map<string, Buffer>([
    ['logs/host1/app.log', randomBytes(100_000)],
    ['logs/host1/app.log.1', randomBytes(1000)],
    ['logs/host2/app.log', randomBytes(50_000)],
    ['logs/top.log', randomBytes(10)],
    ['other/x.log', randomBytes(10)],
  ]);
  before(async () => {
    s3 = await startS3({ buckets: [], privateBuckets: ['logs-bucket'] });
    for (const [key, body] of objects) await s3.put('logs-bucket', key, body);
  });
  after(async () => {
    await s3.close();
    rmSync(home, { recursive: true, force: true });
  });

  test('ListObjectsV2 page by page (max-keys 2: three pages), signed with the caller\'s credentials', async () => {
    const location = parseS3Url(new URL(`s3://logs-bucket/logs/?endpoint=${encodeURIComponent(s3.endpoint)}`), true);
    const listed = await listS3Prefix(location, s3Env(home), new AbortController().signal, 2);
    // s3rver lists out of order, so its pages overlap: a key seen twice is one file.
    assert.deepEqual(listed.map((f) => [f.name, f.size]).sort(), [['host1/app.log', 100_000], ['host1/app.log.1', 1000], ['host2/app.log', 50_000], ['top.log', 10]]);
    assert.equal(s3.seen.filter((r) => r.path.includes('list-type=2')).length, 3);
    assert.match(listed.find((f) => f.name === 'host1/app.log')!.url, /^s3:\/\/logs-bucket\/logs\/host1\/app\.log\?endpoint=/);
    const anonymous = await listS3Prefix(location, s3Env(home, null), new AbortController().signal).catch((e: ShoalError) => e.code);
    assert.equal(anonymous, 'SOURCE_AUTH');
  });

  test('shoal get -r s3://BUCKET/PREFIX/ --endpoint-url: the files, then a re-run skips them', async () => {
    const out = join(home, 'out');
    const args = ['get', '-r', 's3://logs-bucket/logs', '--endpoint-url', s3.endpoint, '-O', out, '--exclude', '*.1'];
    const run = await shoal(home, args, s3Env(home));
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(tree(out), ['host1/app.log', 'host2/app.log', 'top.log']);
    for (const name of tree(out)) assert.ok(readFileSync(join(out, name)).equals(objects.get(`logs/${name}`)!), name);
    const again = await shoal(home, args, s3Env(home));
    assert.match(again.stderr, /0 fetched, 3 already complete/);
    assert.doesNotMatch(run.stderr + again.stderr, /S3RVER/);
  });
});
