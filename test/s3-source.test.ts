/**
 * s3: sources: the SigV4 signer against AWS's published examples, the URL and
 * task identity, credentials from the environment and the shared files, and
 * the back-to-source client against a real S3-compatible server (s3rver,
 * behind a gate that verifies every signature and keeps a bucket private).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { SourceSection } from '../src/common/config/schema.js';
import { ShoalError } from '../src/common/errors.js';
import { carriesCredentials } from '../src/common/credentials.js';
import { taskId, redactUrl } from '../src/common/ids.js';
import { formatS3Url, parseS3Url } from '../src/common/s3-url.js';
import { createHttpSource, type HttpSource } from '../src/daemon/source/http-source.js';
import { resolveAwsIdentity } from '../src/daemon/source/s3/credentials.js';
import { s3ErrorDetail } from '../src/daemon/source/s3/s3-errors.js';
import { signS3 } from '../src/daemon/source/s3/sign.js';
import { bucketUrl, objectUrl } from '../src/daemon/source/s3/target.js';
import { toTaskSpec } from '../src/daemon/request.js';
import { s3Env, startS3, type S3Server } from './fixtures/s3.js';

const T = { timeout: 20_000 };

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof ShoalError, String(err));
    return `${err.code}: ${err.message}`;
  }
  return 'resolved';
}

describe('SigV4: AWS documentation examples (Signature Calculations for the Authorization Header, single chunk)', () => {
  const credentials = { accessKeyId: 'AKIAIOSFODNN7EXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY' };
  const date = new Date('2013-05-24T00:00:00Z');

  test('GET Object with Range bytes=0-9', async () => {
    const headers = await signS3({ method: 'GET', url: new URL('https://examplebucket.s3.amazonaws.com/test.txt'), headers: { range: 'bytes=0-9' }, region: 'us-east-1', credentials, date });
    assert.equal(headers['x-amz-date'], '20130524T000000Z');
    assert.equal(headers['x-amz-content-sha256'], 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    assert.equal(
      headers.authorization,
      'AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41',
    );
  });

  test('GET Bucket (List Objects) ?max-keys=2&prefix=J', async () => {
    const headers = await signS3({ method: 'GET', url: new URL('https://examplebucket.s3.amazonaws.com/?max-keys=2&prefix=J'), headers: {}, region: 'us-east-1', credentials, date });
    assert.match(headers.authorization ?? '', /SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7$/);
  });

  test('a session token is sent and signed', async () => {
    const headers = await signS3({ method: 'GET', url: new URL('https://b.s3.amazonaws.com/k'), headers: {}, region: 'us-east-1', credentials: { ...credentials, sessionToken: 'TOKEN' }, date });
    assert.equal(headers['x-amz-security-token'], 'TOKEN');
    assert.match(headers.authorization ?? '', /SignedHeaders=[^,]*x-amz-security-token/);
  });
});

describe('s3 URLs and task identity', () => {
  const base = 's3://bucket/logs/2024/a%20b.gz';

  test('parses bucket, decoded key and parameters; formats canonically', () => {
    const location = parseS3Url(new URL(`${base}?style=path&region=eu-west-1&endpoint=http%3A%2F%2F127.0.0.1%3A9000%2F`));
    assert.deepEqual(location, { bucket: 'bucket', key: 'logs/2024/a b.gz', versionId: undefined, endpoint: 'http://127.0.0.1:9000', region: 'eu-west-1', style: 'path' });
    assert.equal(formatS3Url(location), 's3://bucket/logs/2024/a%20b.gz?endpoint=http%3A%2F%2F127.0.0.1%3A9000&region=eu-west-1&style=path');
  });

  test('the task id is endpoint, bucket, key and version: never region, style or anything signed', () => {
    const id = (url: string): string => taskId({ url });
    const plain = id(base);
    assert.equal(id(`${base}?region=eu-west-1`), plain);
    assert.equal(id(`${base}?style=path`), plain);
    assert.notEqual(id(`${base}?versionId=v1`), plain);
    assert.notEqual(id(`${base}?endpoint=http%3A%2F%2Fminio%3A9000`), plain);
    assert.notEqual(id('s3://other/logs/2024/a%20b.gz'), plain);
    assert.notEqual(id(base), id('https://bucket.s3.amazonaws.com/logs/2024/a%20b.gz'));
  });

  test('an s3 task is private: each requester shows the store its own credentials', () => {
    assert.equal(carriesCredentials({ url: base }), true);
    assert.equal(redactUrl(`${base}?endpoint=http%3A%2F%2Fminio%3A9000`), 's3://bucket/logs/2024/a%20b.gz');
  });

  test('bad URLs are URL_INVALID; headers are refused', () => {
    for (const bad of ['s3://bucket/', 's3://bucket', 's3://user:pw@bucket/k', 's3://bucket/k#frag', 's3://bucket/k?acl=1', 's3://bucket/k?style=sideways', 's3://bucket/k?endpoint=ftp%3A%2F%2Fx', 's3://b%20c/k', 's3://bucket:9000/k', 's3://bucket/k?region=a&region=b', 's3://bucket/%00']) {
      assert.throws(() => toTaskSpec({ url: bad }), (e: ShoalError) => e.code === 'URL_INVALID', bad);
    }
    assert.throws(() => toTaskSpec({ url: base, headers: [['Authorization', 'x']] }), (e: ShoalError) => e.code === 'USAGE');
  });

  test('path style, virtual-host style and the AWS defaults', () => {
    const loc = (url: string) => parseS3Url(new URL(url));
    assert.equal(objectUrl(loc('s3://bkt/a/b+c'), 'eu-west-1').href, 'https://bkt.s3.eu-west-1.amazonaws.com/a/b%2Bc');
    assert.equal(objectUrl(loc('s3://my.bkt/k'), 'us-east-1').href, 'https://s3.us-east-1.amazonaws.com/my.bkt/k');
    assert.equal(objectUrl(loc('s3://bkt/k?endpoint=http%3A%2F%2F10.0.0.1%3A9000%2Fs3'), 'x').href, 'http://10.0.0.1:9000/s3/bkt/k');
    assert.equal(objectUrl(loc('s3://bkt/k?endpoint=https%3A%2F%2Fstore.example&style=virtual&versionId=a%2Bb'), 'x').href, 'https://bkt.store.example/k?versionId=a%2Bb');
    assert.equal(bucketUrl(loc('s3://bkt/k?style=path'), 'ap-south-1').href, 'https://s3.ap-south-1.amazonaws.com/bkt/');
  });

  test('S3 error documents: Code and Message only, printable', () => {
    assert.equal(s3ErrorDetail('<Error><Code>AccessDenied</Code><Message>Access\u0007 Denied</Message><StringToSign>secret-ish</StringToSign></Error>'), 'AccessDenied: Access  Denied');
    assert.equal(s3ErrorDetail('<html>nope</html>'), undefined);
  });
});

describe('credentials: environment, then the shared files', () => {
  const home = mkdtempSync(join(tmpdir(), 'shoal-aws-'));
  after(() => rmSync(home, { recursive: true, force: true }));
  mkdirSync(join(home, '.aws'));
  writeFileSync(join(home, '.aws', 'credentials'), '[default]\naws_access_key_id = FILEKEY\naws_secret_access_key = FILESECRET\n\n[half]\naws_access_key_id = ONLY\n');
  writeFileSync(join(home, '.aws', 'config'), '[default]\nregion = eu-central-1\n\n[profile team]\nregion = ap-south-1\naws_access_key_id = CFGKEY\naws_secret_access_key = CFGSECRET\naws_session_token = CFGTOKEN\n');

  test('the environment wins, region from AWS_REGION', async () => {
    const id = await resolveAwsIdentity({ HOME: home, AWS_ACCESS_KEY_ID: 'ENVKEY', AWS_SECRET_ACCESS_KEY: 'ENVSECRET', AWS_SESSION_TOKEN: 'T', AWS_REGION: 'us-west-2' });
    assert.deepEqual(id, { credentials: { accessKeyId: 'ENVKEY', secretAccessKey: 'ENVSECRET', sessionToken: 'T' }, region: 'us-west-2', from: 'environment' });
  });

  test('the default profile of ~/.aws/credentials, region from ~/.aws/config', async () => {
    const id = await resolveAwsIdentity({ HOME: home });
    assert.deepEqual(id, { credentials: { accessKeyId: 'FILEKEY', secretAccessKey: 'FILESECRET', sessionToken: undefined }, region: 'eu-central-1', from: 'profile default' });
  });

  test('AWS_PROFILE names a [profile NAME] of ~/.aws/config', async () => {
    const id = await resolveAwsIdentity({ HOME: home, AWS_PROFILE: 'team' });
    assert.deepEqual(id, { credentials: { accessKeyId: 'CFGKEY', secretAccessKey: 'CFGSECRET', sessionToken: 'CFGTOKEN' }, region: 'ap-south-1', from: 'profile team' });
  });

  test('nothing anywhere: anonymous, us-east-1', async () => {
    assert.deepEqual(await resolveAwsIdentity({ HOME: join(home, 'nowhere') }), { credentials: undefined, region: 'us-east-1', from: 'anonymous' });
  });

  test('half-given credentials and a missing profile are SOURCE_CREDENTIALS, naming no secret', async () => {
    for (const env of [{ HOME: home, AWS_ACCESS_KEY_ID: 'K' }, { HOME: home, AWS_PROFILE: 'half' }, { HOME: home, AWS_PROFILE: 'ghost' }]) {
      const got = await codeOf(resolveAwsIdentity(env));
      assert.match(got, /^SOURCE_CREDENTIALS: /);
      assert.doesNotMatch(got, /FILESECRET|CFGSECRET/);
    }
  });
});

describe('against a real S3-compatible server', T, () => {
  let s3: S3Server;
  const home = mkdtempSync(join(tmpdir(), 'shoal-aws-'));
  const content = randomBytes(300_000);
  const sources: HttpSource[] = [];
  const settings = SourceSection.parse({ retries: 0 });
  const source = (creds?: { accessKeyId: string; secretAccessKey: string } | null): HttpSource => {
    const s = createHttpSource(settings, { env: s3Env(home, creds === undefined ? undefined : creds) });
    sources.push(s);
    return s;
  };
  let url: (bucket: string, key: string) => string;

  before(async () => {
    s3 = await startS3({ buckets: ['public'], privateBuckets: ['private'] });
    await s3.put('public', 'dir/a b+c.bin', content);
    await s3.put('private', 'secret.bin', content);
    url = (bucket, key) => `s3://${bucket}/${key.split('/').map(encodeURIComponent).join('/')}?endpoint=${encodeURIComponent(s3.endpoint)}`;
  });
  after(async () => {
    await Promise.all(sources.map((s) => s.close()));
    await s3.close();
    rmSync(home, { recursive: true, force: true });
  });

  async function read(src: HttpSource, u: string, start = 0, end?: number, validator?: string): Promise<{ bytes: Buffer; validator: string; length: number | undefined }> {
    const body = await src.openRange({ url: u, headers: [], start, end, validator });
    const parts: Buffer[] = [];
    for await (const chunk of body.chunks) parts.push(chunk);
    return { bytes: Buffer.concat(parts), validator: body.validator, length: body.contentLength };
  }

  test('a whole object and a range, signed (the gate verified each signature), the ETag as validator', async () => {
    const src = source();
    const whole = await read(src, url('public', 'dir/a b+c.bin'));
    assert.ok(whole.bytes.equals(content));
    assert.equal(whole.length, content.length);
    assert.match(whole.validator, /^etag:"[0-9a-f]{32}"$/);
    const part = await read(src, url('public', 'dir/a b+c.bin'), 1000, 2000, whole.validator);
    assert.ok(part.bytes.equals(content.subarray(1000, 2000)));
    const ranged = s3.seen.filter((r) => r.range === 'bytes=1000-1999');
    assert.equal(ranged.length, 1);
    assert.ok(ranged[0]!.signed);
    assert.equal(ranged[0]!.path, '/public/dir/a%20b%2Bc.bin');
  });

  test('anonymous: a public object is read, a private one is SOURCE_AUTH (AccessDenied)', async () => {
    const src = source(null);
    assert.ok((await read(src, url('public', 'dir/a b+c.bin'))).bytes.equals(content));
    assert.match(await codeOf(read(src, url('private', 'secret.bin'))), /^SOURCE_AUTH: .*HTTP 403: AccessDenied/);
    assert.ok((await read(source(), url('private', 'secret.bin'))).bytes.equals(content));
  });

  test('wrong credentials: SOURCE_AUTH naming the store\'s reason, never the secret', async () => {
    const unknown = await codeOf(read(source({ accessKeyId: 'NOBODY', secretAccessKey: 'hunter2-secret' }), url('private', 'secret.bin')));
    assert.match(unknown, /^SOURCE_AUTH: .*InvalidAccessKeyId/);
    const wrongSecret = await codeOf(read(source({ accessKeyId: 'S3RVER', secretAccessKey: 'hunter2-secret' }), url('private', 'secret.bin')));
    assert.match(wrongSecret, /^SOURCE_AUTH: .*SignatureDoesNotMatch/);
    for (const message of [unknown, wrongSecret]) assert.doesNotMatch(message, /hunter2/);
  });

  test('a missing key is SOURCE_NOT_FOUND (NoSuchKey)', async () => {
    assert.match(await codeOf(read(source(), url('public', 'nope'))), /^SOURCE_NOT_FOUND: .*NoSuchKey/);
  });

  test('the object replaced between two reads: SOURCE_CHANGED, no bytes of the new one', async () => {
    await s3.put('public', 'moving.bin', content);
    const src = source();
    const first = await read(src, url('public', 'moving.bin'), 0, 1000);
    await s3.put('public', 'moving.bin', randomBytes(content.length));
    assert.match(await codeOf(read(src, url('public', 'moving.bin'), 1000, 2000, first.validator)), /^SOURCE_CHANGED: /);
  });
});
