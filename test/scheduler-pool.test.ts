/** Several schedulers, the pure parts: rendezvous order and a name standing for several addresses (src/daemon/scheduler-pool.ts). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { rendezvousOrder } from '../src/common/rendezvous.js';
import { expandSchedulers } from '../src/daemon/scheduler-pool.js';

const urls = ['https://10.0.0.1:8002', 'https://10.0.0.2:8002', 'https://10.0.0.3:8002'];

test('rendezvous: tasks spread over the schedulers, and one gone moves only its own tasks, each to its next', () => {
  const tasks = Array.from({ length: 3000 }, (_, i) => `task-${i}`);
  const owner = new Map(tasks.map((t) => [t, rendezvousOrder(t, urls, (u) => u)]));
  for (const u of urls) {
    const share = tasks.filter((t) => owner.get(t)![0] === u).length / tasks.length;
    assert.ok(share > 0.28 && share < 0.39, `${u} owns ${share}`);
  }
  const left = urls.filter((u) => u !== urls[1]);
  for (const t of tasks) {
    const before = owner.get(t)!;
    const after = rendezvousOrder(t, left, (u) => u);
    assert.equal(after[0], before[0] === urls[1] ? before[1] : before[0]);
  }
});

test('one URL whose name resolves to several addresses is one scheduler per address; IPs, lists and one address stay as given', async () => {
  const resolve = (name: string): Promise<string[]> =>
    Promise.resolve(name === 'schedulers.shoal.svc' ? ['10.1.0.7', '10.1.0.5', 'fd00::9'] : name === 'one.shoal.svc' ? ['10.1.0.9'] : []);
  assert.deepEqual(await expandSchedulers(['https://schedulers.shoal.svc:8002'], resolve), ['https://10.1.0.5:8002', 'https://10.1.0.7:8002', 'https://[fd00::9]:8002']);
  assert.deepEqual(await expandSchedulers(['https://one.shoal.svc:8002'], resolve), ['https://one.shoal.svc:8002']);
  assert.deepEqual(await expandSchedulers(['http://127.0.0.1:8002'], resolve), ['http://127.0.0.1:8002']);
  assert.deepEqual(await expandSchedulers([...urls, urls[0]!], resolve), urls);
  // A name that does not resolve now stays as given (its link keeps retrying).
  assert.deepEqual(await expandSchedulers(['https://gone.shoal.svc:8002'], () => Promise.reject(new Error('ENOTFOUND'))), ['https://gone.shoal.svc:8002']);
});
