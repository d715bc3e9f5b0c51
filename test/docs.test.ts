import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { formatDuration, formatSize, generateDocs, schemaKeys } from '../scripts/docs.js';
import { validateConfig } from '../src/common/config/load.js';
import { DaemonConfigSchema, SchedulerConfigSchema } from '../src/common/config/schema.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const read = (path: string): string => readFileSync(join(ROOT, path), 'utf8');

/** "line N: …" of the first line where two texts differ. */
function firstDifference(actual: string, expected: string): string {
  const a = actual.split('\n');
  const e = expected.split('\n');
  const i = a.findIndex((line, n) => line !== e[n]);
  const n = i < 0 ? a.length : i;
  return `line ${n + 1}: has ${JSON.stringify(a[n] ?? '(end)')}, would be ${JSON.stringify(e[n] ?? '(end)')}`;
}

describe('generated docs', () => {
  for (const doc of generateDocs(ROOT)) {
    it(`${doc.path} is what npm run docs writes`, () => {
      const text = read(doc.path);
      assert.ok(text === doc.text, `${doc.path} is stale (run npm run docs): ${firstDifference(text, doc.text)}`);
    });
  }
});

/** The key paths a YAML example sets, as schemaKeys writes them. */
function keysOf(value: unknown, prefix = ''): string[] {
  if (Array.isArray(value)) return value.flatMap((v) => keysOf(v, `${prefix}[].`));
  if (typeof value !== 'object' || value === null) return [];
  return Object.entries(value).flatMap(([k, v]) => {
    const path = `${prefix}${k}`;
    const below = keysOf(v, Array.isArray(v) ? path : `${path}.`);
    // A section is not a key of its own in the reference; a list of entries is.
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? below : [path, ...below];
  });
}

describe('docs/configuration.md examples', () => {
  const blocks = [...read('docs/configuration.md').matchAll(/^```yaml\n([\s\S]*?)^```$/gm)].map((m) => m[1] ?? '');
  const examples = [
    { name: 'daemon', schema: DaemonConfigSchema, yaml: blocks[0] },
    { name: 'scheduler', schema: SchedulerConfigSchema, yaml: blocks[1] },
  ];
  assert.equal(blocks.length, examples.length, 'docs/configuration.md: expected a daemon and a scheduler YAML example');

  for (const { name, schema, yaml } of examples) {
    it(`the ${name} example is valid and shows every key`, () => {
      const raw: unknown = parseYaml(yaml ?? '');
      validateConfig(schema, raw, `docs/configuration.md (${name} example)`);
      const shown = new Set(keysOf(raw));
      const missing = schemaKeys(schema).filter((key) => !shown.has(key));
      assert.deepEqual(missing, [], `docs/configuration.md: the ${name} example lacks ${missing.join(', ')}`);
    });
  }
});

describe('defaults as people write them', () => {
  it('durations in the largest unit that divides them', () => {
    assert.equal(formatDuration(10_000), '10s');
    assert.equal(formatDuration(250), '250ms');
    assert.equal(formatDuration(300_000), '5m');
    assert.equal(formatDuration(3_600_000), '1h');
    assert.equal(formatDuration(1500), '1500ms');
    assert.equal(formatDuration(0), '0');
  });

  it('sizes in binary units, else bytes', () => {
    assert.equal(formatSize(64 * 1024 * 1024), '64MiB');
    assert.equal(formatSize(1536), '1536');
    assert.equal(formatSize(0), '0');
  });
});
