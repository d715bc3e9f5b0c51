/** The proxy's pure parts: rules, hop-by-hop headers, Via loops, CONNECT authorities, blob digests; and the status line. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { recentLine } from '../src/cli/status.js';
import { endToEnd, fromObject, viaLoops, withVia } from '../src/daemon/proxy/headers.js';
import { ProxySection } from '../src/common/config/schema.js';
import { ProxyRules } from '../src/daemon/proxy/rules.js';
import { parseAuthority } from '../src/daemon/proxy/tunnel.js';
import { blobDigestOf } from '../src/daemon/request.js';

const HEX = 'ab'.repeat(32);

describe('proxy rules', () => {
  it('default (Dragonfly\'s: registry blobs, content-addressed and immutable): blob URLs through P2P, everything else straight through', () => {
    const defaults = ProxySection.parse({}).rules;
    assert.deepEqual(defaults, [{ regex: 'blobs/sha256.*', direct: false }]);
    const rules = new ProxyRules(defaults);
    assert.equal(rules.decide('GET', `http://r.example/v2/a/blobs/sha256:${HEX}`, false), 'p2p');
    assert.equal(rules.decide('GET', 'http://r.example/v2/a/manifests/latest', false), 'direct');
    assert.equal(rules.decide('HEAD', `http://r.example/v2/a/blobs/sha256:${HEX}`, false), 'direct');
    assert.equal(rules.decide('POST', `http://r.example/v2/a/blobs/sha256:${HEX}`, false), 'direct');
    assert.equal(rules.decide('GET', `http://r.example/v2/a/blobs/sha256:${HEX}`, true), 'direct', 'a GET with a body is not a download');
  });

  it('the first matching rule decides; direct rules keep URLs off P2P', () => {
    const rules = new ProxyRules([{ regex: 'private/', direct: true }, { regex: '\\.iso$' }]);
    assert.equal(rules.decide('GET', 'http://h/private/x.iso', false), 'direct');
    assert.equal(rules.decide('GET', 'http://h/public/x.iso', false), 'p2p');
    assert.equal(rules.decide('GET', 'http://h/public/x.iso?sig=1', false), 'direct');
    assert.equal(rules.decide('GET', 'http://h/public/x.tar', false), 'direct');
  });

  it('bad rules are configuration errors naming the rule', () => {
    assert.throws(() => new ProxyRules([{ regex: 'ok' }, { regex: '(' }]), (err: Error & { code?: string }) => err.code === 'CONFIG_INVALID' && /proxy\.rules\.1\.regex/.test(err.message));
    assert.throws(() => new ProxyRules([{ regex: 'a'.repeat(2000) }]), /longer than 1024/);
  });
});

describe('proxy headers', () => {
  it('removes hop-by-hop headers and those Connection names, keeps the rest in order', () => {
    const got = endToEnd([
      ['Host', 'h'],
      ['Connection', 'keep-alive, X-Private'],
      ['X-Private', 'secret'],
      ['Keep-Alive', 'timeout=5'],
      ['Proxy-Connection', 'keep-alive'],
      ['Proxy-Authorization', 'Basic x'],
      ['Proxy-Authenticate', 'Basic'],
      ['TE', 'trailers'],
      ['Trailer', 'X-T'],
      ['Transfer-Encoding', 'chunked'],
      ['Upgrade', 'h2c'],
      ['Authorization', 'Bearer t'],
      ['X-Kept', 'a'],
      ['x-kept', 'b'],
    ]);
    assert.deepEqual(got, [
      ['Host', 'h'],
      ['Authorization', 'Bearer t'],
      ['X-Kept', 'a'],
      ['x-kept', 'b'],
    ]);
  });

  it('adds a Via entry after any there, and tells a loop by its own name', () => {
    const headers = withVia([['Via', '1.0 fred'], ['Accept', '*/*']], 'shoal-a-4002');
    assert.deepEqual(headers, [['Accept', '*/*'], ['Via', '1.0 fred, 1.1 shoal-a-4002']]);
    assert.equal(viaLoops(headers, 'shoal-a-4002'), true);
    assert.equal(viaLoops(headers, 'shoal-b-4002'), false);
    assert.equal(viaLoops([['via', '1.1 shoal-a-4002-x']], 'shoal-a-4002'), false);
  });

  it('flattens undici header objects', () => {
    assert.deepEqual(fromObject({ 'set-cookie': ['a=1', 'b=2'], 'content-type': 'text/plain', gone: undefined }), [
      ['set-cookie', 'a=1'],
      ['set-cookie', 'b=2'],
      ['content-type', 'text/plain'],
    ]);
  });
});

describe('CONNECT authorities and blob digests', () => {
  it('parses host:port and refuses the rest', () => {
    assert.deepEqual(parseAuthority('example.com:443'), { host: 'example.com', port: 443 });
    assert.deepEqual(parseAuthority('[::1]:8443'), { host: '::1', port: 8443 });
    assert.deepEqual(parseAuthority('127.0.0.1:1'), { host: '127.0.0.1', port: 1 });
    for (const bad of ['example.com', 'example.com:0', 'example.com:65536', ':443', 'a b:1', 'http://x:1', 'x:1/y', '-x:1']) {
      assert.equal(parseAuthority(bad), undefined, bad);
    }
  });

  it('a blob URL names its digest; other URLs do not', () => {
    assert.equal(blobDigestOf(`https://r/v2/a/b/blobs/sha256:${HEX}`), `sha256:${HEX}`);
    assert.equal(blobDigestOf(`https://r/v2/a/b/blobs/sha256:${HEX}?X-Amz-Signature=1`), `sha256:${HEX}`);
    assert.equal(blobDigestOf(`https://r/v2/a/b/blobs/sha256:${HEX}/more`), undefined);
    assert.equal(blobDigestOf(`https://r/x?u=/blobs/sha256:${HEX}`), undefined);
    assert.equal(blobDigestOf(`https://r/v2/a/blobs/sha256:${HEX.toUpperCase()}`), undefined);
    assert.equal(blobDigestOf('not a url'), undefined);
  });
});

describe('shoal status: the one-line answer', () => {
  it('says how much went through Shoal and how much of it came from peers', () => {
    const MiB = 1048576;
    assert.equal(
      recentLine({ windowMs: 600_000, tasks: 1, bytes: 100 * MiB, peers: 60 * MiB, seeds: 30 * MiB, cache: 5 * MiB, source: 5 * MiB, backToSource: 1 }),
      'last 10 minutes: 100.0 MiB through Shoal, of which 90% from peers, 5% from cache, 5% from the origin; 1 back-to-source event',
    );
    assert.equal(recentLine({ windowMs: 600_000, tasks: 0, bytes: 0, peers: 0, seeds: 0, cache: 0, source: 0, backToSource: 0 }), 'last 10 minutes: nothing through Shoal; 0 back-to-source events');
  });
});
