/**
 * One path from settings to component: the CLI, the embedded scheduler and a
 * test that calls createDaemon/createScheduler directly all end with the
 * schema's defaults and no others.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { daemonInit, schedulerInit } from '../src/cli/serve.js';
import { DaemonConfigSchema, SchedulerConfigSchema } from '../src/common/config/schema.js';
import { createDaemon, type Daemon } from '../src/daemon/daemon.js';
import { createScheduler } from '../src/scheduler/server.js';

describe('settings', () => {
  let dir: string;
  let daemon: Daemon;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'shoal-settings-'));
    daemon = createDaemon({ data: join(dir, 'data'), listen: '127.0.0.1:0' });
    await daemon.start();
  });

  after(async () => {
    await daemon?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('the scheduler a daemon runs in-process has the settings `shoal scheduler` runs with, but its address and recovery window', () => {
    const embedded = daemon.embeddedScheduler?.settings;
    assert.ok(embedded !== undefined, 'a daemon without a scheduler URL runs one in-process');
    const standalone = createScheduler(schedulerInit({})).settings;
    assert.deepEqual({ ...embedded, listen: standalone.listen, recoveryWindow: standalone.recoveryWindow }, standalone);
    assert.equal(embedded.listen, '127.0.0.1:0');
    assert.equal(embedded.recoveryWindow, 0);
    assert.equal(standalone.stripes, SchedulerConfigSchema.parse({}).stripes, 'split trees in both');
  });

  it('a daemon created directly has the settings `shoal daemon` gives it for the same flags', () => {
    const env = { SHOAL_DATA: join(dir, 'data'), SHOAL_ENDPOINT: join(dir, 'api.sock') };
    const viaCli = createDaemon(daemonInit({ listen: '127.0.0.1:0' }, env)).settings;
    assert.deepEqual({ ...daemon.settings, api: viaCli.api }, viaCli);
    assert.deepEqual(daemon.settings.download, DaemonConfigSchema.parse({}).download);
  });

  it('flags override the file section by section, and the schema checks the result', () => {
    const init = daemonInit({ uploadRate: '10MiB', mirror: '127.0.0.1:0', upstream: ['docker.io', 'http://127.0.0.1:5000'] }, { SHOAL_DATA: dir });
    const settings = createDaemon(init).settings;
    assert.equal(settings.upload.rate, 10 * 1024 * 1024);
    assert.equal(settings.mirror?.listen, '127.0.0.1:0');
    assert.equal(settings.mirror?.tagTtl, 0, 'the rest of the section has its defaults');
    assert.equal(settings.mirror?.upstream, 'docker.io', 'the first --upstream is the default');
    assert.deepEqual(settings.mirror?.upstreams, [
      { host: 'docker.io', insecure: false },
      { host: '127.0.0.1:5000', url: 'http://127.0.0.1:5000', insecure: true },
    ]);
    assert.throws(() => createDaemon(daemonInit({ upstream: ['docker.io'] }, { SHOAL_DATA: dir })), /mirror\.upstream.*needs mirror\.listen/);
  });

  it('a daemon needs a data directory; a bad value names its key', () => {
    assert.throws(() => createDaemon({}), (err: Error & { code?: string }) => err.code === 'CONFIG_INVALID' && /data/.test(err.message));
    assert.throws(() => createDaemon({ data: dir, download: { perParent: 0 } }), /download\.perParent/);
    assert.throws(() => createScheduler({ stripes: 9 }), /stripes/);
  });
});
