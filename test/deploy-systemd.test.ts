/**
 * deploy/systemd: the units are what systemd accepts (`systemd-analyze
 * verify`, with nothing printed) and hardened (`systemd-analyze security`
 * rates each one OK or better), when systemd-analyze is on the machine; and
 * everywhere, each unit's command line is what Shoal accepts: flags parsed by
 * the CLI, the config file beside it validated by the schema, the
 * certificate handed over as a credential of the role it needs, the data
 * directory and socket in the unit's own StateDirectory and RuntimeDirectory.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, posix } from 'node:path';
import { after, describe, test } from 'node:test';
import { daemonInit, schedulerInit, type DaemonFlags, type SchedulerFlags } from '../src/cli/serve.js';
import { validateConfig } from '../src/common/config/load.js';
import { DaemonConfigSchema, SchedulerConfigSchema } from '../src/common/config/schema.js';
import { createCa, issueCert } from '../src/identity/issue.js';
import { ROLES, isRole, type Role } from '../src/identity/roles.js';
import { loadTls } from '../src/identity/tls.js';
import { SHOAL } from './fixtures/cluster.js';
import { parseFlags } from './fixtures/cli-flags.js';

const DIR = join(import.meta.dirname, '../deploy/systemd');
const units = readdirSync(DIR).filter((f) => f.endsWith('.service')).sort();
const analyze = spawnSync('systemd-analyze', ['--version'], { encoding: 'utf8' });
const noAnalyze = analyze.error !== undefined || analyze.status !== 0 ? 'systemd-analyze is not installed' : false;
const scratch = mkdtempSync(join(tmpdir(), 'shoal-systemd-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

/** `Key=value` lines of the [Service] section (a key may repeat). */
function serviceKeys(text: string): Map<string, string[]> {
  const keys = new Map<string, string[]>();
  let section = '';
  for (const line of text.split('\n')) {
    const header = /^\[(\w+)\]$/.exec(line.trim());
    if (header !== null) section = header[1] ?? '';
    const kv = /^(\w+)=(.*)$/.exec(line);
    if (section !== 'Service' || kv === null) continue;
    keys.set(kv[1] ?? '', [...(keys.get(kv[1] ?? '') ?? []), kv[2] ?? '']);
  }
  return keys;
}

const one = (keys: Map<string, string[]>, key: string): string => {
  const values = keys.get(key) ?? [];
  assert.equal(values.length, 1, `${key}= once`);
  return values[0] ?? '';
};

test('there are units for the scheduler, a peer daemon and a seed', () => {
  assert.deepEqual(units, ['shoal-daemon.service', 'shoal-scheduler.service', 'shoal-seed.service']);
});

describe('systemd-analyze', { skip: noAnalyze }, () => {
  // verify wants the ExecStart binary to exist: point the copies at an executable of the repository.
  const copies = join(scratch, 'units');
  mkdirSync(copies);
  for (const unit of units) writeFileSync(join(copies, unit), readFileSync(join(DIR, unit), 'utf8').replaceAll('/usr/local/bin/shoal', SHOAL));

  test('verify accepts every unit without a warning', () => {
    const r = spawnSync('systemd-analyze', ['verify', ...units.map((u) => join(copies, u))], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr.trim(), '', 'systemd-analyze verify printed warnings');
  });

  for (const unit of units) {
    test(`security rates ${unit} OK`, () => {
      const r = spawnSync('systemd-analyze', ['security', '--offline=yes', join(copies, unit)], { encoding: 'utf8', timeout: 60_000 });
      const m = /Overall exposure level for \S+: (\d+(?:\.\d+)?) (\w+)/.exec(r.stdout);
      assert.ok(m !== null, r.stdout + r.stderr);
      assert.ok(Number(m[1]) <= 2, `exposure ${m[1]} ${m[2]}`);
    });
  }
});

describe("each unit's command line is what Shoal accepts", () => {
  const tls = join(scratch, 'tls');
  const ready = (async () => {
    await createCa(tls);
    for (const role of ROLES) await issueCert({ dir: tls, name: role, roles: [role] });
  })();

  for (const unit of units) {
    test(unit, async () => {
      await ready;
      const keys = serviceKeys(readFileSync(join(DIR, unit), 'utf8'));
      for (const [key, value] of [['DynamicUser', 'yes'], ['ProtectSystem', 'strict'], ['NoNewPrivileges', 'yes'], ['ProtectHome', 'yes'], ['PrivateTmp', 'yes'], ['CapabilityBoundingSet', '']]) {
        assert.equal(one(keys, key ?? ''), value, `${key}=${value}`);
      }
      assert.ok(!keys.has('MemoryDenyWriteExecute'), 'V8 needs to write code it runs');

      // The credentials: ca.crt and one member's certificate and key, from /etc/shoal/tls.
      const credentials = join(scratch, basename(unit, '.service'));
      mkdirSync(credentials, { recursive: true });
      const names = (keys.get('LoadCredential') ?? []).map((c) => {
        const [name = '', source = ''] = c.split(':');
        assert.equal(source, `/etc/shoal/tls/${name}`);
        writeFileSync(join(credentials, name), readFileSync(join(tls, name)));
        return name;
      });
      const role = names.find((n) => n.endsWith('.crt') && n !== 'ca.crt')?.replace(/\.crt$/, '') ?? '';
      assert.ok(isRole(role), `a certificate of a role among the credentials: ${names.join(', ')}`);
      assert.deepEqual(names.sort(), ['ca.crt', `${role}.crt`, `${role}.key`].sort());

      const [binary, ...args] = one(keys, 'ExecStart').replaceAll('${CREDENTIALS_DIRECTORY}', credentials).split(/\s+/);
      assert.equal(binary, '/usr/local/bin/shoal');
      const flags = await parseFlags(args);
      const configPath = String(flags['config']);
      assert.match(configPath, /^\/etc\/shoal\/[a-z]+\.yaml$/);
      const config = join(DIR, posix.basename(configPath));
      const state = `/var/lib/${one(keys, 'StateDirectory')}`;
      const isDaemon = args[0] === 'daemon';
      const settings = isDaemon
        ? validateConfig(DaemonConfigSchema, daemonInit({ ...(flags as DaemonFlags), config }, {}), config)
        : validateConfig(SchedulerConfigSchema, schedulerInit({ ...(flags as SchedulerFlags), config }, {}), config);
      assert.ok(settings.tls !== undefined);
      const needs: Role[] = !isDaemon ? ['scheduler'] : (settings as { seed: boolean }).seed ? ['seed'] : ['peer', 'seed'];
      assert.deepEqual(loadTls(settings.tls, needs).identity.roles, [role]);
      if ('data' in settings) {
        assert.equal(settings.data, state, 'data: the unit\'s StateDirectory');
        assert.equal(posix.dirname(String(settings.api)), `/run/${one(keys, 'RuntimeDirectory')}`, "api: in the unit's RuntimeDirectory");
        assert.equal(unit === 'shoal-seed.service', settings.seed);
      }
      if ('console' in settings && settings.console !== undefined) assert.equal(posix.dirname(String(settings.console.tokenFile)), state);
    });
  }
});
