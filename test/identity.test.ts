/** Cluster identity: the CA and member certificates, roles from certificates, and every way a certificate is refused. */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ShoalError } from '../src/common/errors.js';
import { createCa, issueCert, signedBy } from '../src/identity/issue.js';
import { identityOf, rolesIn } from '../src/identity/roles.js';
import { loadTls, serverIdentityError } from '../src/identity/tls.js';
import { run } from './fixtures/cluster.js';

function refused(fn: () => unknown, ...fragments: string[]): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ShoalError, String(err));
    assert.equal(err.code, 'CERT_INVALID');
    for (const f of fragments) assert.ok(err.message.includes(f), `${JSON.stringify(err.message)} lacks ${JSON.stringify(f)}`);
    return true;
  });
}

describe('cluster identity', () => {
  let dir: string;
  let other: string;
  const files = (name: string, ca = dir) => ({ ca: join(ca, 'ca.crt'), cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) });

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'shoal-identity-'));
    other = mkdtempSync(join(tmpdir(), 'shoal-identity-other-'));
    await createCa(dir);
    await createCa(other);
    await issueCert({ dir, name: 'seed-1', roles: ['seed'], hosts: ['10.0.0.1', 'seed-1.internal'] });
    await issueCert({ dir, name: 'both', roles: ['peer', 'admin'] });
    await issueCert({ dir: other, name: 'stranger', roles: ['seed'] });
  });

  after(() => {
    rmSync(dir, { recursive: true, force: true });
    rmSync(other, { recursive: true, force: true });
  });

  it('issues certificates signed by the CA, carrying their roles and names; keys are mode 0600', () => {
    const cert = readFileSync(join(dir, 'seed-1.crt'), 'utf8');
    assert.ok(signedBy(cert, readFileSync(join(dir, 'ca.crt'), 'utf8')));
    const x = new X509Certificate(cert);
    assert.deepEqual(rolesIn(x.subjectAltName), ['seed']);
    assert.match(x.subjectAltName ?? '', /IP Address:10\.0\.0\.1/);
    assert.match(x.subjectAltName ?? '', /DNS:seed-1\.internal/);
    assert.equal(statSync(join(dir, 'seed-1.key')).mode & 0o777, 0o600);
    assert.equal(statSync(join(dir, 'ca.key')).mode & 0o777, 0o600);
    const m = loadTls(files('both'), ['admin']);
    assert.deepEqual(m.identity.roles, ['peer', 'admin']);
    assert.equal(m.identity.name, 'both');
  });

  it('refuses a certificate of another CA, a key that is not its own, an expired one, one without the role, missing files', () => {
    refused(() => loadTls({ ...files('seed-1'), cert: join(other, 'stranger.crt'), key: join(other, 'stranger.key') }, ['seed']), 'not signed by the cluster CA');
    refused(() => loadTls({ ...files('seed-1'), key: join(dir, 'both.key') }, ['seed']), 'is not the key of');
    refused(() => loadTls(files('seed-1'), ['seed'], Date.now() + 400 * 86_400_000), 'expired');
    refused(() => loadTls(files('seed-1'), ['scheduler']), 'has role seed', 'needs scheduler', '--role scheduler');
    refused(() => loadTls({ ...files('seed-1'), cert: join(dir, 'nope.crt') }, ['seed']), 'cannot read the certificate', 'nope.crt');
    refused(() => loadTls({ ...files('seed-1'), ca: join(dir, 'seed-1.key') }, ['seed']), 'is not a PEM certificate');
  });

  it('during a CA rotation, a tls.ca with both CAs accepts members of either', () => {
    const both = join(dir, 'both-cas.crt');
    writeFileSync(both, readFileSync(join(other, 'ca.crt'), 'utf8') + readFileSync(join(dir, 'ca.crt'), 'utf8'));
    assert.equal(loadTls({ ...files('seed-1'), ca: both }, ['seed']).identity.name, 'seed-1');
    assert.equal(loadTls({ ca: both, cert: join(other, 'stranger.crt'), key: join(other, 'stranger.key') }, ['seed']).identity.name, 'stranger');
  });

  it('a server certificate is checked for its role and, when the scheduler named it, its name', () => {
    const cert = { subject: { CN: 'seed-1' }, subjectaltname: 'URI:urn:shoal:role:seed', raw: Buffer.alloc(1), fingerprint256: 'x' } as unknown as Parameters<typeof serverIdentityError>[0];
    assert.equal(serverIdentityError(cert, ['peer', 'seed'], 'seed-1'), undefined);
    assert.match(String(serverIdentityError(cert, ['scheduler'])), /role seed, not scheduler/);
    assert.match(String(serverIdentityError(cert, ['seed'], 'seed-2')), /is seed-1, not seed-2/);
    assert.equal(identityOf(cert)?.name, 'seed-1');
    assert.equal(identityOf(undefined), undefined);
    assert.deepEqual(rolesIn('URI:urn:shoal:role:seed, URI:urn:shoal:role:bogus, DNS:x, URI:urn:shoal:role:seed'), ['seed']);
  });

  it('shoal cluster init, issue and inspect', async () => {
    const home = mkdtempSync(join(tmpdir(), 'shoal-cluster-cli-'));
    try {
      const init = run(['cluster', 'init', join(home, 'tls')]);
      assert.equal(await init.exited, 0, init.stderr());
      for (const name of ['scheduler', 'seed', 'peer', 'admin']) assert.doesNotThrow(() => loadTls({ ca: join(home, 'tls/ca.crt'), cert: join(home, `tls/${name}.crt`), key: join(home, `tls/${name}.key`) }, [name as 'peer']));
      assert.doesNotMatch(init.stderr(), /PRIVATE KEY/, 'keys are never printed');
      const again = run(['cluster', 'init', join(home, 'tls')]);
      assert.equal(await again.exited, 2, 'an existing CA is not replaced without --force');
      const issue = run(['cluster', 'issue', join(home, 'tls'), '--name', 'node-7', '--role', 'peer', '--role', 'seed', '--days', '30']);
      assert.equal(await issue.exited, 0, issue.stderr());
      const inspect = run(['cluster', 'inspect', join(home, 'tls/node-7.crt')]);
      let out = '';
      inspect.child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      assert.equal(await inspect.exited, 0);
      assert.match(out, /roles +peer, seed/);
      assert.match(out, /(29|30) days left/);
      const bad = run(['cluster', 'issue', join(home, 'tls'), '--name', 'x', '--role', 'root']);
      assert.equal(await bad.exited, 2);
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  });
});
