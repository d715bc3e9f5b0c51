import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { DirtyPages, readProcDirtyState, type DirtyState } from '../src/daemon/storage/dirty-pages.js';

describe('dirty pages (when the store writes on the event loop)', () => {
  it('is "near" until known, then follows dirty memory against the throttling point; a failed read is "near"', async () => {
    let state: DirtyState | undefined = { dirtyBytes: 10, throttleAtBytes: 1000 };
    let fail = false;
    const pages = new DirtyPages(async () => {
      if (fail) throw new Error('no /proc');
      return state;
    });
    assert.equal(pages.near(), true);
    await sleep(5);
    assert.equal(pages.near(), false);
    state = { dirtyBytes: 800, throttleAtBytes: 1000 };
    await sleep(1050);
    pages.near();
    await sleep(5);
    assert.equal(pages.near(), true);
    fail = true;
    await sleep(1050);
    pages.near();
    await sleep(5);
    assert.equal(pages.near(), true);
    state = undefined;
  });

  it('reads this machine\'s /proc (Linux)', async () => {
    const state = await readProcDirtyState();
    assert.ok(state !== undefined && state.throttleAtBytes > 0 && state.dirtyBytes >= 0);
  });
});
