import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { ShoalError } from '../src/common/errors.js';
import { filterUrl, isTaskId, parseDigest, parseSourceUrl, taskId, DEFAULT_FILTERED_QUERY_PARAMS } from '../src/common/ids.js';

const BASE = 'https://origin.example/files/blob.tar';
const HEX = 'ab'.repeat(32);

function assertCode(fn: () => unknown, code: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ShoalError, `expected a ShoalError, got ${String(err)}`);
    assert.equal(err.code, code);
    return true;
  });
}

describe('taskId', () => {
  it('is a stable 64-hex id for the same input', () => {
    const a = taskId({ url: BASE });
    const b = taskId({ url: BASE });
    assert.equal(a, b);
    assert.match(a, /^[a-f0-9]{64}$/);
    assert.equal(taskId({ url: BASE, tag: 't', application: 'app' }), taskId({ url: BASE, tag: 't', application: 'app' }));
  });

  it('differs for different URLs (path and host)', () => {
    const a = taskId({ url: BASE });
    assert.notEqual(a, taskId({ url: 'https://origin.example/files/other.tar' }));
    assert.notEqual(a, taskId({ url: 'https://mirror.example/files/blob.tar' }));
    assert.notEqual(a, taskId({ url: 'http://origin.example/files/blob.tar' }));
  });

  it('ignores default filtered query parameters (signatures, Expires, ns)', () => {
    const plain = taskId({ url: BASE });
    for (const query of [
      'X-Amz-Signature=deadbeef',
      'X-Amz-Signature=1&X-Amz-Credential=AKIA%2F2024&X-Amz-Date=20240101T000000Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host',
      'X-Amz-Anything-New=1',
      'Expires=1700000000',
      'Signature=abc',
      'ns=docker.io',
      'X-Goog-Signature=zz',
      'q-sign-time=1;2',
    ]) {
      assert.equal(taskId({ url: `${BASE}?${query}` }), plain, `query ${query} changed the id`);
    }
  });

  it('keeps other query parameters in the identity, with filtered ones removed around them', () => {
    const plain = taskId({ url: BASE });
    const withVersion = taskId({ url: `${BASE}?versionId=7` });
    assert.notEqual(withVersion, plain);
    assert.notEqual(withVersion, taskId({ url: `${BASE}?versionId=8` }));
    assert.equal(taskId({ url: `${BASE}?X-Amz-Signature=1&versionId=7&Expires=5` }), withVersion);
    assert.equal(taskId({ url: `${BASE}?versionId=7&X-Amz-Signature=2` }), withVersion);
    // A name that merely resembles a filtered one is kept.
    assert.notEqual(taskId({ url: `${BASE}?Expiresx=1` }), plain);
    assert.notEqual(taskId({ url: `${BASE}?nsx=1` }), plain);
  });

  it('the X-Amz-* wildcard only matches the prefix', () => {
    const plain = taskId({ url: BASE });
    assert.notEqual(taskId({ url: `${BASE}?Y-X-Amz-Foo=1` }), plain);
    assert.notEqual(taskId({ url: `${BASE}?X-Am=1` }), plain);
  });

  it('user filteredQueryParams are removed too, and only when given', () => {
    const plain = taskId({ url: BASE });
    const url = `${BASE}?token=secret1`;
    assert.notEqual(taskId({ url }), plain);
    assert.equal(taskId({ url, filteredQueryParams: ['token'] }), plain);
    assert.equal(taskId({ url: `${BASE}?token=secret2`, filteredQueryParams: ['token'] }), plain);
    // wildcard in user filters
    assert.equal(taskId({ url: `${BASE}?sig-a=1&sig-b=2`, filteredQueryParams: ['sig-*'] }), plain);
    // user filters add to the defaults, they do not replace them
    assert.equal(taskId({ url: `${BASE}?token=1&X-Amz-Signature=2`, filteredQueryParams: ['token'] }), plain);
  });

  it('ignores the fragment', () => {
    assert.equal(taskId({ url: `${BASE}#part1` }), taskId({ url: BASE }));
    assert.equal(taskId({ url: `${BASE}?a=1#x` }), taskId({ url: `${BASE}?a=1#y` }));
  });

  it('tag, application and pieceSize change the id', () => {
    const plain = taskId({ url: BASE });
    const tagged = taskId({ url: BASE, tag: 'v1' });
    const app = taskId({ url: BASE, application: 'ci' });
    const sized = taskId({ url: BASE, pieceSize: 4 * 1024 * 1024 });
    assert.equal(new Set([plain, tagged, app, sized]).size, 4);
    assert.notEqual(tagged, taskId({ url: BASE, tag: 'v2' }));
    assert.notEqual(app, taskId({ url: BASE, application: 'cd' }));
    assert.notEqual(sized, taskId({ url: BASE, pieceSize: 1024 * 1024 }));
    // tag and application are separate fields: swapping them changes the id
    assert.notEqual(taskId({ url: BASE, tag: 'x' }), taskId({ url: BASE, application: 'x' }));
    // empty tag / application / zero piece size are the same as absent
    assert.equal(taskId({ url: BASE, tag: '', application: '', pieceSize: 0 }), plain);
  });

  it('a digest is the identity, whatever the URL, tag or filters', () => {
    const digest = `sha256:${HEX}`;
    assert.equal(taskId({ url: BASE, digest }), HEX);
    assert.equal(taskId({ url: 'https://registry-a.example/v2/x/blobs/1', digest }), HEX);
    assert.equal(taskId({ url: 'https://registry-b.example/v2/y/blobs/2?token=1', tag: 't', application: 'a', digest }), HEX);
    // An empty digest is no digest.
    assert.equal(taskId({ url: BASE, digest: '' }), taskId({ url: BASE }));
  });

  it('a malformed digest fails with DIGEST_INVALID rather than being ignored', () => {
    assertCode(() => taskId({ url: BASE, digest: 'sha256:1234' }), 'DIGEST_INVALID');
  });

  it('a bad URL fails with URL_INVALID', () => {
    assertCode(() => taskId({ url: 'ftp://origin.example/x' }), 'URL_INVALID');
    assertCode(() => taskId({ url: 'not a url' }), 'URL_INVALID');
  });

  it('hashes the filtered URL, tag and application (spot check of the documented construction)', () => {
    const expected = createHash('sha256').update(BASE).update('\0tag=').update('\0app=').digest('hex');
    assert.equal(taskId({ url: `${BASE}?X-Amz-Signature=1` }), expected);
  });
});

describe('filterUrl', () => {
  it('drops the fragment and filtered params, keeping the rest in order', () => {
    const out = filterUrl(new URL(`${BASE}?b=2&Signature=s&a=1#frag`), DEFAULT_FILTERED_QUERY_PARAMS);
    assert.equal(out, `${BASE}?b=2&a=1`);
  });

  it('matches filter names case-insensitively', () => {
    const out = filterUrl(new URL(`${BASE}?x-amz-signature=1&EXPIRES=2&keep=3`), DEFAULT_FILTERED_QUERY_PARAMS);
    assert.equal(out, `${BASE}?keep=3`);
  });

  it('leaves no dangling "?" when every param is filtered', () => {
    assert.equal(filterUrl(new URL(`${BASE}?Expires=1`), DEFAULT_FILTERED_QUERY_PARAMS), BASE);
  });
});

describe('parseDigest', () => {
  it('accepts sha256:<64 lowercase hex>', () => {
    assert.deepEqual(parseDigest(`sha256:${HEX}`), { algorithm: 'sha256', hex: HEX });
    const zeros = '0'.repeat(64);
    assert.equal(parseDigest(`sha256:${zeros}`).hex, zeros);
  });

  it('rejects uppercase, short, long, other algorithms, missing prefix and padding', () => {
    for (const bad of [
      `sha256:${HEX.toUpperCase()}`,
      `SHA256:${HEX}`,
      `sha256:${HEX.slice(0, 63)}`,
      `sha256:${HEX}0`,
      `md5:${'a'.repeat(32)}`,
      `md5:${HEX}`,
      `sha512:${HEX}`,
      HEX,
      `:${HEX}`,
      `sha256:${'g'.repeat(64)}`,
      ` sha256:${HEX}`,
      `sha256:${HEX}\n`,
      '',
    ]) {
      assertCode(() => parseDigest(bad), 'DIGEST_INVALID');
    }
  });
});

describe('parseSourceUrl', () => {
  it('accepts http and https URLs and returns a URL', () => {
    const u = parseSourceUrl('https://origin.example:8443/a/b?c=d');
    assert.ok(u instanceof URL);
    assert.equal(u.hostname, 'origin.example');
    assert.equal(u.port, '8443');
    assert.equal(parseSourceUrl('http://127.0.0.1/x').protocol, 'http:');
  });

  it('rejects other schemes, garbage and credentials with URL_INVALID', () => {
    for (const bad of [
      'ftp://origin.example/file',
      'file:///etc/passwd',
      'data:text/plain,hello',
      'javascript:alert(1)',
      'not a url',
      '',
      '//origin.example/x',
      'https://user:pass@origin.example/x',
      'https://user@origin.example/x',
      'https://:pass@origin.example/x',
    ]) {
      assertCode(() => parseSourceUrl(bad), 'URL_INVALID');
    }
  });
});

describe('isTaskId', () => {
  it('accepts exactly 64 lowercase hex digits', () => {
    assert.equal(isTaskId(HEX), true);
    assert.equal(isTaskId(taskId({ url: BASE })), true);
    assert.equal(isTaskId(HEX.toUpperCase()), false);
    assert.equal(isTaskId(HEX.slice(1)), false);
    assert.equal(isTaskId(HEX + 'a'), false);
    assert.equal(isTaskId(`sha256:${HEX}`), false);
    assert.equal(isTaskId('../' + HEX.slice(3)), false);
    assert.equal(isTaskId(''), false);
  });
});
