import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { splitHostPort } from '../src/common/config/fields.js';
import { loadConfig, readConfigFile, validateConfig } from '../src/common/config/load.js';
import { DaemonConfigSchema, SchedulerConfigSchema } from '../src/common/config/schema.js';
import { parseDuration, parseSize } from '../src/common/units.js';
import { ShoalError } from '../src/common/errors.js';

const KIB = 1024;
const MIB = 1024 * KIB;
const GIB = 1024 * MIB;

/** Asserts a ShoalError with `code` whose message contains every fragment. */
function assertShoal(fn: () => unknown, code: string, ...fragments: string[]): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ShoalError, `expected a ShoalError, got ${String(err)}`);
    assert.equal(err.code, code);
    for (const f of fragments) assert.ok(err.message.includes(f), `message ${JSON.stringify(err.message)} lacks ${JSON.stringify(f)}`);
    return true;
  });
}

describe('parseSize', () => {
  it('binary and decimal units', () => {
    assert.equal(parseSize('512MiB'), 512 * MIB);
    assert.equal(parseSize('10GB'), 10_000_000_000);
    assert.equal(parseSize('10GiB'), 10 * GIB);
    assert.equal(parseSize('1.5KiB'), 1536);
    assert.equal(parseSize('1kb'), 1000);
    assert.equal(parseSize('1K'), 1024);
    assert.equal(parseSize('2m'), 2 * MIB);
    assert.equal(parseSize('3MB'), 3_000_000);
    assert.equal(parseSize('1TiB'), 1024 * GIB);
    assert.equal(parseSize('7b'), 7);
  });

  it('is case-insensitive and tolerates a space and surrounding whitespace', () => {
    assert.equal(parseSize('512mib'), 512 * MIB);
    assert.equal(parseSize('512 MiB'), 512 * MIB);
    assert.equal(parseSize('  64KiB '), 64 * KIB);
  });

  it('bare numbers are bytes', () => {
    assert.equal(parseSize('1048576'), MIB);
    assert.equal(parseSize('0'), 0);
    assert.equal(parseSize(4096), 4096);
    assert.equal(parseSize(0), 0);
  });

  it('rejects sizes beyond the safe integer range given as strings, as it does for numbers', () => {
    assert.throws(() => parseSize('100000000TiB'), /size/);
    assert.throws(() => parseSize('9007199254740993'), /size/);
    assert.equal(parseSize('8191TiB'), 8191 * 1024 * GIB);
  });

  it('rejects invalid sizes', () => {
    for (const bad of ['', 'abc', 'MiB', '-1', '-1MiB', '10XB', '10 MiB extra', '1e6', '1,000', '0x10', '.5MiB']) {
      assert.throws(() => parseSize(bad), /invalid size/, `accepted ${JSON.stringify(bad)}`);
    }
    for (const bad of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 60]) {
      assert.throws(() => parseSize(bad), /invalid size/, `accepted ${bad}`);
    }
  });
});

describe('parseDuration', () => {
  it('units give milliseconds', () => {
    assert.equal(parseDuration('30s'), 30_000);
    assert.equal(parseDuration('10m'), 600_000);
    assert.equal(parseDuration('2h'), 7_200_000);
    assert.equal(parseDuration('1500ms'), 1500);
    assert.equal(parseDuration('1d'), 86_400_000);
    assert.equal(parseDuration('0.5s'), 500);
    assert.equal(parseDuration(' 5 s '), 5000);
  });

  it('a bare number is seconds', () => {
    assert.equal(parseDuration('5'), 5000);
    assert.equal(parseDuration(5), 5000);
    assert.equal(parseDuration(0), 0);
    assert.equal(parseDuration(0.25), 250);
  });

  it('rejects invalid durations', () => {
    for (const bad of ['', 'soon', 's', '-5s', '10x', '5 minutes', '1h30m', 'ms']) {
      assert.throws(() => parseDuration(bad), /invalid duration/, `accepted ${JSON.stringify(bad)}`);
    }
    for (const bad of [-1, Number.NaN, Number.POSITIVE_INFINITY]) {
      assert.throws(() => parseDuration(bad), /invalid duration/, `accepted ${bad}`);
    }
  });
});

describe('DaemonConfigSchema', () => {
  it('fills every default from an empty object', () => {
    const config = DaemonConfigSchema.parse({});
    assert.equal(config.listen, '0.0.0.0:4000');
    assert.equal(config.seed, false);
    assert.equal(config.idc, '');
    assert.equal(config.location, '');
    assert.equal(config.logLevel, 'info');
    assert.equal(config.scheduler, undefined);
    assert.equal(config.upload.rate, 0);
    assert.equal(config.upload.slots, undefined);
    assert.deepEqual(config.download, { concurrentPieces: 16, perParent: 4, pieceTimeout: 10_000, scheduleTimeout: 15_000, starvationTimeout: 10_000, protocol: 'tcp', askAhead: false, rate: 0 });
    assert.deepEqual(config.cache, { quota: 0, ttl: 0, gcInterval: 60_000, directIo: true, recentPieces: 16 * 1024 * 1024 });
    assert.equal(config.source.retries, 5);
    assert.equal(config.source.timeout, 30_000);
    assert.equal(config.source.insecure, false);
  });

  it('fills inner defaults when a section is partly given, and converts sizes and durations', () => {
    const config = DaemonConfigSchema.parse({
      upload: { rate: '10MiB', slots: 8 },
      download: { perParent: 2, pieceTimeout: '5s' },
      cache: { quota: '20GB', ttl: '2h' },
      source: { timeout: 90 },
    });
    assert.equal(config.upload.rate, 10 * MIB);
    assert.equal(config.upload.slots, 8);
    assert.deepEqual(config.download, { concurrentPieces: 16, perParent: 2, pieceTimeout: 5000, scheduleTimeout: 15_000, starvationTimeout: 10_000, protocol: 'tcp', askAhead: false, rate: 0 });
    assert.deepEqual(config.cache, { quota: 20_000_000_000, ttl: 7_200_000, gcInterval: 60_000, directIo: true, recentPieces: 16 * 1024 * 1024 });
    assert.equal(config.source.timeout, 90_000);
  });

  it('rejects unknown keys, naming where they are', () => {
    assertShoal(() => validateConfig(DaemonConfigSchema, { upload: { slotz: 3 } }, 'daemon.yaml'), 'CONFIG_INVALID', 'daemon.yaml', 'upload', 'slotz');
    assertShoal(() => validateConfig(DaemonConfigSchema, { bogus: 1 }, 'daemon.yaml'), 'CONFIG_INVALID', 'bogus');
    assertShoal(() => validateConfig(DaemonConfigSchema, { cache: { quota: 1, qouta: 2 } }, 'x'), 'CONFIG_INVALID', 'cache', 'qouta');
  });

  it('rejects wrong types and bad values, naming the key', () => {
    assertShoal(() => validateConfig(DaemonConfigSchema, { seed: 'yes' }, 'f'), 'CONFIG_INVALID', 'seed');
    assertShoal(() => validateConfig(DaemonConfigSchema, { download: { concurrentPieces: 'many' } }, 'f'), 'CONFIG_INVALID', 'download.concurrentPieces');
    assertShoal(() => validateConfig(DaemonConfigSchema, { download: { pieceTimeout: 'soon' } }, 'f'), 'CONFIG_INVALID', 'download.pieceTimeout', 'soon');
    assertShoal(() => validateConfig(DaemonConfigSchema, { upload: { rate: 'fast' } }, 'f'), 'CONFIG_INVALID', 'upload.rate');
    assertShoal(() => validateConfig(DaemonConfigSchema, { upload: { slots: 0 } }, 'f'), 'CONFIG_INVALID', 'upload.slots');
    assertShoal(() => validateConfig(DaemonConfigSchema, { listen: 'nope' }, 'f'), 'CONFIG_INVALID', 'listen');
    assertShoal(() => validateConfig(DaemonConfigSchema, { logLevel: 'loud' }, 'f'), 'CONFIG_INVALID', 'logLevel');
    assertShoal(() => validateConfig(DaemonConfigSchema, { scheduler: 'ftp://10.0.0.1:8002' }, 'f'), 'CONFIG_INVALID', 'scheduler');
    assertShoal(() => validateConfig(DaemonConfigSchema, [], 'f'), 'CONFIG_INVALID');
  });

  it('accepts a scheduler http(s) URL', () => {
    assert.equal(DaemonConfigSchema.parse({ scheduler: 'http://10.0.0.1:8002' }).scheduler, 'http://10.0.0.1:8002');
  });

  it('reports every bad key, not just the first', () => {
    assertShoal(() => validateConfig(DaemonConfigSchema, { seed: 1, idc: 2 }, 'f'), 'CONFIG_INVALID', 'seed', 'idc');
  });
});

describe('SchedulerConfigSchema', () => {
  it('defaults', () => {
    assert.deepEqual(SchedulerConfigSchema.parse({}), {
      listen: '0.0.0.0:8002',
      logLevel: 'info',
      insecure: false,
      candidateParents: 4,
      backToSourceLimit: 1,
      cacheRestoreTimeout: 60_000,
      seedTimeout: 10_000,
      recoveryWindow: 3000,
      seedChildren: 1,
      peerChildren: 1,
      stripes: 2,
      stripesFrom: 16,
      preheat: { startTimeout: 30_000, timeout: 3_600_000, pollInterval: 250 },
    });
    assert.throws(() => SchedulerConfigSchema.parse({ stripes: 9 }), 'at most 8 stripes');
    assert.throws(() => SchedulerConfigSchema.parse({ stripesFrom: 0 }), 'split trees from at least one peer');
    assert.throws(() => SchedulerConfigSchema.parse({ stripes: 1.5 }), 'a whole number of stripes');
  });

  it('durations are converted and bounds enforced', () => {
    const config = SchedulerConfigSchema.parse({ seedTimeout: '30s', recoveryWindow: 1, candidateParents: 8 });
    assert.equal(config.seedTimeout, 30_000);
    assert.equal(config.recoveryWindow, 1000);
    assert.equal(config.candidateParents, 8);
    assertShoal(() => validateConfig(SchedulerConfigSchema, { candidateParents: 0 }, 'f'), 'CONFIG_INVALID', 'candidateParents');
    assertShoal(() => validateConfig(SchedulerConfigSchema, { backToSourceLimit: 1.5 }, 'f'), 'CONFIG_INVALID', 'backToSourceLimit');
    assertShoal(() => validateConfig(SchedulerConfigSchema, { seed: true }, 'f'), 'CONFIG_INVALID', 'seed');
  });
});

describe('readConfigFile + validateConfig (how src/cli/serve.ts merges flags over the file)', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'shoal-config-raw-'));
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('no path gives an empty object', () => {
    assert.deepEqual(readConfigFile(undefined), {});
  });

  it('returns the raw, unconverted values', () => {
    const path = join(dir, 'raw.yaml');
    writeFileSync(path, 'seedTimeout: 30s\nrecoveryWindow: 2\n');
    assert.deepEqual(readConfigFile(path), { seedTimeout: '30s', recoveryWindow: 2 });
  });

  it('file values merged with flags are converted exactly once', () => {
    const path = join(dir, 'sched.yaml');
    writeFileSync(path, 'seedTimeout: 30s\nrecoveryWindow: 2\n');
    const merged = validateConfig(SchedulerConfigSchema, { ...readConfigFile(path), listen: '127.0.0.1:9000' }, path);
    assert.equal(merged.seedTimeout, 30_000);
    assert.equal(merged.recoveryWindow, 2000);
    assert.equal(merged.listen, '127.0.0.1:9000');
    // Defaults stay in milliseconds (a second conversion would make them 1000× larger).
    const defaults = validateConfig(DaemonConfigSchema, readConfigFile(undefined), 'command line');
    assert.equal(defaults.download.pieceTimeout, 10_000);
    assert.equal(defaults.source.timeout, 30_000);
  });

  it('a YAML document that is not a mapping fails with CONFIG_INVALID', () => {
    for (const [name, text] of [['list.yaml', '- a\n- b\n'], ['scalar.yaml', 'just a string\n']] as const) {
      const path = join(dir, name);
      writeFileSync(path, text);
      assertShoal(() => readConfigFile(path), 'CONFIG_INVALID', path);
      assertShoal(() => loadConfig(DaemonConfigSchema, path), 'CONFIG_INVALID', path);
    }
  });
});

describe('loadConfig', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'shoal-config-test-'));
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  function file(name: string, text: string): string {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  }

  it('no path gives the defaults', () => {
    assert.deepEqual(loadConfig(DaemonConfigSchema, undefined), DaemonConfigSchema.parse({}));
  });

  it('reads and validates a YAML file', () => {
    const path = file('ok.yaml', ['listen: 127.0.0.1:4100', 'seed: true', 'upload:', '  rate: 100MiB', 'cache:', '  ttl: 10m', ''].join('\n'));
    const config = loadConfig(DaemonConfigSchema, path);
    assert.equal(config.listen, '127.0.0.1:4100');
    assert.equal(config.seed, true);
    assert.equal(config.upload.rate, 100 * MIB);
    assert.equal(config.cache.ttl, 600_000);
  });

  it('an empty file gives the defaults', () => {
    assert.deepEqual(loadConfig(SchedulerConfigSchema, file('empty.yaml', '')), SchedulerConfigSchema.parse({}));
  });

  it('malformed YAML fails with CONFIG_INVALID naming the file and the line', () => {
    const path = file('bad.yaml', ['listen: 0.0.0.0:4000', 'seed: false', 'upload:', '  rate: [1, 2', 'idc: x', ''].join('\n'));
    assertShoal(() => loadConfig(DaemonConfigSchema, path), 'CONFIG_INVALID', path, 'not valid YAML');
    // The summary names the line up front: "<file>: not valid YAML at line N: ...".
    assert.throws(() => loadConfig(DaemonConfigSchema, path), /not valid YAML at line [45]\b/);
  });

  it('the line reported is where the YAML breaks', () => {
    const path = file('bad-indent.yaml', ['seed: false', 'idc: a', 'listen: 0.0.0.0:4000', '  oops: indent', ''].join('\n'));
    assert.throws(() => loadConfig(DaemonConfigSchema, path), (err: unknown) => {
      assert.ok(err instanceof ShoalError);
      assert.equal(err.code, 'CONFIG_INVALID');
      const m = /not valid YAML at line (\d+)/.exec(err.message);
      assert.ok(m !== null, err.message);
      assert.ok(Number(m[1]) >= 3 && Number(m[1]) <= 4, `line ${m[1]}`);
      return true;
    });
  });

  it('valid YAML with a bad key fails with CONFIG_INVALID naming the file and key', () => {
    const path = file('unknown.yaml', ['upload:', '  slotz: 3', ''].join('\n'));
    assertShoal(() => loadConfig(DaemonConfigSchema, path), 'CONFIG_INVALID', path, 'upload', 'slotz');
  });

  it('a missing file fails with CONFIG_INVALID naming it', () => {
    const path = join(dir, 'does-not-exist.yaml');
    assertShoal(() => loadConfig(DaemonConfigSchema, path), 'CONFIG_INVALID', path);
  });

  it('a directory instead of a file fails with CONFIG_INVALID', () => {
    assertShoal(() => loadConfig(DaemonConfigSchema, dir), 'CONFIG_INVALID');
  });
});

describe('splitHostPort', () => {
  it('splits host names, IPv4 and bracketed IPv6', () => {
    assert.deepEqual(splitHostPort('localhost:4000'), { host: 'localhost', port: 4000 });
    assert.deepEqual(splitHostPort('10.0.0.1:8002'), { host: '10.0.0.1', port: 8002 });
    assert.deepEqual(splitHostPort('seed-1.example.com:65535'), { host: 'seed-1.example.com', port: 65535 });
    assert.deepEqual(splitHostPort('[::1]:4000'), { host: '::1', port: 4000 });
    assert.deepEqual(splitHostPort('[fe80::1:2]:1'), { host: 'fe80::1:2', port: 1 });
  });

  it('rejects anything else with USAGE', () => {
    for (const bad of ['localhost', ':4000', 'host:', 'host:65536', 'host:123456', '::1:4000', '[::1]', 'http://host:80', 'host:80/x', 'a b:80', '']) {
      assertShoal(() => splitHostPort(bad), 'USAGE');
    }
  });
});
