/**
 * The store's SQLite drivers (src/daemon/storage/sqlite.ts): each one this
 * Node can run (better-sqlite3 on Node 20, node:sqlite on Node 24, both where
 * the addon matches the Node) behaves the same for the metadata: blobs as
 * Buffers, all-or-nothing transactions, SQLITE_FULL by name, a database
 * reopened after a restart.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { MetadataDb } from '../src/daemon/storage/metadata.js';
import { availableDrivers, openSqlite } from '../src/daemon/storage/sqlite.js';
import { isNoSpace } from '../src/daemon/storage/space.js';

const dir = mkdtempSync(join(tmpdir(), 'shoal-sqlite-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const drivers = availableDrivers();

test('this Node has a driver, and prefers node:sqlite where it has it', () => {
  assert.ok(drivers.length > 0);
  const hasBuiltin = typeof (process as { getBuiltinModule?: unknown }).getBuiltinModule === 'function' && process.getBuiltinModule('node:sqlite') !== undefined;
  if (hasBuiltin) assert.equal(drivers[0], 'node:sqlite');
  assert.equal(openSqlite(':memory:').driver, drivers[0]);
});

for (const driver of drivers) {
  describe(`driver ${driver}`, () => {
    test('tasks and pieces survive a reopen; digests come back as Buffers', () => {
      const path = join(dir, `${driver.replace(':', '-')}.db`);
      const db = new MetadataDb(path, driver);
      assert.equal(db.driver, driver);
      db.insertTask('t1', 'http://o/x', null, 1000);
      db.setShape('t1', 3 * 1024 * 1024, 1024 * 1024);
      db.insertPiece('t1', 0, Buffer.from('aa'.repeat(32), 'hex'));
      db.insertPiece('t1', 2, Buffer.from('bb'.repeat(32), 'hex'));
      db.setState('t1', 'complete', 2000);
      db.setValidator('t1', 'etag:"v1"');
      db.close();

      const again = new MetadataDb(path, driver);
      const [task] = again.allTasks();
      assert.equal(task?.id, 't1');
      assert.equal(task?.state, 'complete');
      assert.equal(task?.content_length, 3 * 1024 * 1024);
      assert.equal(task?.validator, 'etag:"v1"');
      assert.equal(typeof task?.last_access, 'number');
      const pieces = again.pieces('t1').sort((a, b) => a.number - b.number);
      assert.deepEqual(pieces.map((p) => p.number), [0, 2]);
      assert.ok(pieces.every((p) => Buffer.isBuffer(p.digest)));
      assert.equal(pieces[1]?.digest.toString('hex'), 'bb'.repeat(32));
      again.dropPieces('t1', [0]);
      assert.deepEqual(again.pieces('t1').map((p) => p.number), [2]);
      again.deleteTask('t1');
      assert.deepEqual(again.allTasks(), []);
      again.close();
    });

    test('a transaction that throws writes nothing', () => {
      const db = openSqlite(':memory:', driver);
      db.exec('CREATE TABLE t (n INTEGER)');
      const insert = db.prepare<[number]>('INSERT INTO t VALUES (?)');
      assert.throws(() => db.transaction(() => {
        insert.run(1);
        throw new Error('midway');
      }), /midway/);
      db.transaction(() => insert.run(2));
      assert.deepEqual(db.prepare<[], { n: number }>('SELECT n FROM t').all().map((r) => r.n), [2]);
      db.close();
    });

    test('a full database is SQLITE_FULL, which the store counts as no space', () => {
      const db = openSqlite(':memory:', driver);
      db.exec('PRAGMA max_page_count = 3; CREATE TABLE t (b BLOB)');
      const insert = db.prepare<[Buffer]>('INSERT INTO t VALUES (?)');
      let caught: unknown;
      try {
        for (let i = 0; i < 100; i++) insert.run(Buffer.alloc(4096));
      } catch (err) {
        caught = err;
      }
      assert.equal((caught as { code?: unknown }).code, 'SQLITE_FULL');
      assert.ok(isNoSpace(caught));
      db.close();
    });
  });
}
