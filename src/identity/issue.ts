/**
 * `shoal cluster init` and `shoal cluster issue`: the cluster's CA and the
 * certificates it issues, each carrying its roles (./roles.ts). Keys are
 * ECDSA P-256 made by Node's WebCrypto; @peculiar/x509 only encodes the
 * certificates (no crypto of our own). Keys are written mode 0600, never
 * printed or logged.
 *
 *   DIR/ca.crt, DIR/ca.key          the cluster CA (10 years)
 *   DIR/NAME.crt, DIR/NAME.key      a member: CN=NAME, roles as URI SANs, plus DNS/IP SANs (1 year)
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { KeyObject, X509Certificate, createPrivateKey, randomBytes, webcrypto } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { ShoalError } from '../common/errors.js';
import { ROLE_URI_PREFIX, type Role } from './roles.js';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY_MS = 86_400_000;
export const CA_DAYS = 3650;
export const MEMBER_DAYS = 365;
/** A member name: a DNS-like label, so it is also a safe file name. */
const NAME = /^[a-z0-9]([a-z0-9._-]{0,62}[a-z0-9])?$/i;

export interface IssueOptions {
  /** The cluster directory holding ca.crt and ca.key; the new files go there too unless `out` says. */
  dir: string;
  name: string;
  roles: readonly Role[];
  /** Extra subject alternative names: host names and IP addresses this member is reached by. */
  hosts?: readonly string[];
  days?: number;
  out?: string;
  /** Replace existing files of that name. */
  force?: boolean;
}

export interface Issued {
  cert: string;
  key: string;
  notAfter: Date;
}

function serial(): string {
  // Positive, 16 bytes, as RFC 5280 asks.
  const bytes = randomBytes(16);
  bytes[0] = bytes[0]! & 0x7f;
  return bytes.toString('hex');
}

function keyPem(key: webcrypto.CryptoKey): string {
  return KeyObject.from(key).export({ type: 'pkcs8', format: 'pem' }) as string;
}

function write(path: string, text: string, mode: number, force: boolean): void {
  if (!force && existsSync(path)) throw new ShoalError('USAGE', `${path} exists (--force replaces it)`);
  writeFileSync(path, text, { mode });
}

/** Makes a new cluster CA in `dir`. */
export async function createCa(dir: string, options: { force?: boolean; days?: number } = {}): Promise<Issued> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const keys = await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify']);
  const now = Date.now();
  const notAfter = new Date(now + (options.days ?? CA_DAYS) * DAY_MS);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=shoal cluster CA ${randomBytes(4).toString('hex')}`,
    notBefore: new Date(now - 60_000),
    notAfter,
    keys,
    signingAlgorithm: ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const issued = { cert: cert.toString('pem'), key: keyPem(keys.privateKey), notAfter };
  write(join(dir, 'ca.key'), issued.key, 0o600, options.force === true);
  write(join(dir, 'ca.crt'), issued.cert, 0o644, options.force === true);
  return issued;
}

/** Issues a member certificate signed by the CA in `options.dir`. */
export async function issueCert(options: IssueOptions): Promise<Issued> {
  if (!NAME.test(options.name)) throw new ShoalError('USAGE', `member name ${JSON.stringify(options.name)} must be letters, digits, '.', '_' or '-' (at most 64)`);
  if (options.roles.length === 0) throw new ShoalError('USAGE', 'a certificate needs at least one role (--role scheduler|seed|peer|admin)');
  const caCert = new x509.X509Certificate(readCa(options.dir, 'ca.crt'));
  const caKey = await webcrypto.subtle.importKey('pkcs8', createPrivateKey(readCa(options.dir, 'ca.key')).export({ type: 'pkcs8', format: 'der' }), ALGORITHM, false, ['sign']);
  const keys = await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify']);
  const now = Date.now();
  const notAfter = new Date(Math.min(now + (options.days ?? MEMBER_DAYS) * DAY_MS, caCert.notAfter.getTime()));
  const names: x509.JsonGeneralName[] = options.roles.map((role) => ({ type: 'url', value: `${ROLE_URI_PREFIX}${role}` }));
  for (const host of options.hosts ?? []) names.push(isIP(host) !== 0 ? { type: 'ip', value: host } : { type: 'dns', value: host });
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${options.name}`,
    issuer: caCert.subject,
    notBefore: new Date(now - 60_000),
    notAfter,
    signingKey: caKey,
    publicKey: keys.publicKey,
    signingAlgorithm: ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
      new x509.SubjectAlternativeNameExtension(names),
      await x509.AuthorityKeyIdentifierExtension.create(caCert),
    ],
  });
  const issued = { cert: cert.toString('pem'), key: keyPem(keys.privateKey), notAfter };
  const out = options.out ?? options.dir;
  mkdirSync(out, { recursive: true, mode: 0o700 });
  write(join(out, `${options.name}.key`), issued.key, 0o600, options.force === true);
  write(join(out, `${options.name}.crt`), issued.cert, 0o644, options.force === true);
  return issued;
}

function readCa(dir: string, file: string): string {
  try {
    return readFileSync(join(dir, file), 'utf8');
  } catch (err) {
    throw new ShoalError('CERT_INVALID', `cannot read the cluster CA's ${join(dir, file)} (shoal cluster init DIR makes it): ${(err as Error).message}`);
  }
}

/** Whether `cert` (PEM) was signed by the CA `ca` (PEM); for tests and `shoal cluster issue`'s check. */
export function signedBy(cert: string, ca: string): boolean {
  return new X509Certificate(cert).checkIssued(new X509Certificate(ca)) && new X509Certificate(cert).verify(new X509Certificate(ca).publicKey);
}
