/** Content verification (src/daemon/storage/verify.ts): pieces and whole contents. */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { ShoalError } from '../src/common/errors.js';
import { pieceDigest, verifyContent, verifyPiece } from '../src/daemon/storage/verify.js';

const dir = mkdtempSync(join(tmpdir(), 'shoal-verify-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('verify', () => {
  test('a piece digest is the SHA-256 of its bytes', () => {
    const piece = Buffer.from('a piece');
    assert.deepEqual(pieceDigest(piece), createHash('sha256').update(piece).digest());
  });

  test('a piece verifies against its own digest only, and never against a digest of another length', () => {
    const piece = Buffer.alloc(1000, 7);
    const digest = pieceDigest(piece);
    assert.equal(verifyPiece(piece, digest), true);
    assert.equal(verifyPiece(Buffer.alloc(1000, 8), digest), false);
    assert.equal(verifyPiece(piece, digest.subarray(0, 16)), false);
    assert.equal(verifyPiece(piece, Buffer.alloc(0)), false);
  });

  test('a whole content verifies against its sha256: digest, streamed from disk', async () => {
    const path = join(dir, 'content');
    const content = Buffer.alloc(3 * 1024 * 1024 + 5, 1);
    writeFileSync(path, content);
    const digest = `sha256:${createHash('sha256').update(content).digest('hex')}`;
    assert.equal(await verifyContent(path, digest), true);
    assert.equal(await verifyContent(path, `sha256:${'0'.repeat(64)}`), false);
    await assert.rejects(verifyContent(path, 'md5:abc'), (err: unknown) => err instanceof ShoalError && err.code === 'DIGEST_INVALID');
  });
});
