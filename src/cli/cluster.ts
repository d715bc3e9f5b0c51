/**
 * `shoal cluster init DIR`, `shoal cluster issue DIR --name N --role R`,
 * `shoal cluster inspect FILE`: the cluster's CA and its members'
 * certificates (src/identity/issue.ts). Keys are written mode 0600 and never
 * printed.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ShoalError } from '../common/errors.js';
import { isRole, rolesIn, type Role } from '../identity/roles.js';
import type { CliIo } from './io.js';

/** What `init` issues besides the CA: one member per role, named after it. */
const INIT_MEMBERS: ReadonlyArray<{ name: string; role: Role }> = [
  { name: 'scheduler', role: 'scheduler' },
  { name: 'seed', role: 'seed' },
  { name: 'peer', role: 'peer' },
  { name: 'admin', role: 'admin' },
];

export interface IssueFlags {
  name?: string;
  role: string[];
  host: string[];
  days?: string;
  out?: string;
  force: boolean;
}

function days(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 36_500) throw new ShoalError('USAGE', `--days ${JSON.stringify(value)}: a whole number of days, 1..36500`);
  return n;
}

export async function runClusterInit(dir: string, flags: { force: boolean; days?: string }, io: CliIo): Promise<number> {
  const { createCa, issueCert } = await import('../identity/issue.js');
  const ca = await createCa(dir, { force: flags.force });
  io.stderr.write(`cluster CA ${join(dir, 'ca.crt')} (key ${join(dir, 'ca.key')}, keep it offline), valid until ${ca.notAfter.toISOString().slice(0, 10)}\n`);
  for (const member of INIT_MEMBERS) {
    const validity = days(flags.days);
    const issued = await issueCert({ dir, name: member.name, roles: [member.role], force: flags.force, ...(validity === undefined ? {} : { days: validity }) });
    io.stderr.write(`  ${member.role.padEnd(9)} ${join(dir, `${member.name}.crt`)} until ${issued.notAfter.toISOString().slice(0, 10)}\n`);
  }
  io.stderr.write(`start members with --tls ${join(dir, '<name>')}, e.g. shoal scheduler --tls ${join(dir, 'scheduler')}\n`);
  return 0;
}

export async function runClusterIssue(dir: string, flags: IssueFlags, io: CliIo): Promise<number> {
  if (flags.name === undefined) throw new ShoalError('USAGE', 'shoal cluster issue needs --name NAME');
  const roles: Role[] = [];
  for (const r of flags.role) {
    if (!isRole(r)) throw new ShoalError('USAGE', `--role ${JSON.stringify(r)}: one of scheduler, seed, peer, admin`);
    roles.push(r);
  }
  const { issueCert } = await import('../identity/issue.js');
  const validity = days(flags.days);
  const issued = await issueCert({
    dir,
    name: flags.name,
    roles,
    hosts: flags.host,
    force: flags.force,
    ...(validity === undefined ? {} : { days: validity }),
    ...(flags.out === undefined ? {} : { out: flags.out }),
  });
  io.stderr.write(`${join(flags.out ?? dir, `${flags.name}.crt`)}: ${roles.join(', ')}, until ${issued.notAfter.toISOString().slice(0, 10)}\n`);
  return 0;
}

export function runClusterInspect(file: string, io: CliIo): number {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(readFileSync(file));
  } catch (err) {
    throw new ShoalError('CERT_INVALID', `${file}: ${(err as Error).message}`);
  }
  const left = Math.floor((new Date(cert.validTo).getTime() - Date.now()) / 86_400_000);
  io.stdout.write(
    [
      `subject   ${cert.subject.replace(/\n/g, ', ')}`,
      `issuer    ${cert.issuer.replace(/\n/g, ', ')}`,
      `roles     ${rolesIn(cert.subjectAltName).join(', ') || (cert.ca ? '(a CA)' : 'none')}`,
      `valid     ${new Date(cert.validFrom).toISOString()} to ${new Date(cert.validTo).toISOString()} (${left < 0 ? 'EXPIRED' : `${left} days left`})`,
      `sha256    ${cert.fingerprint256}`,
      '',
    ].join('\n'),
  );
  return left < 0 ? 2 : 0;
}
