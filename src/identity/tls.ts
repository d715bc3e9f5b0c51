/**
 * A member's TLS material, read and checked once at start: the cluster CA,
 * its certificate and key. A certificate that is unreadable, expired, not
 * signed by the CA, not matching its key, or lacking the role it is used for
 * fails with CERT_INVALID naming the file and what is wrong. Both sides of
 * every link ask for the other's certificate (mutual TLS, TLS 1.3 only) and
 * check its role (./roles.ts); host names are not checked, since members are
 * reached by IP addresses that change (pods), and the CA is the cluster's
 * own.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createSecureContext, type ConnectionOptions, type PeerCertificate, type SecureContext, type TlsOptions } from 'node:tls';
import { ShoalError } from '../common/errors.js';
import { rolesIn, type Identity, type Role } from './roles.js';

/** Where the PEM files are (the schema's `tls` section). */
export interface TlsFiles {
  ca: string;
  cert: string;
  key: string;
}

export interface TlsMaterial {
  readonly ca: string;
  readonly cert: string;
  readonly key: string;
  /** Who this member is, by its own certificate. */
  readonly identity: Identity;
  readonly notAfter: Date;
}

/** Certificates expiring within this are reported at start (docs/security.md, "Rotation"). */
export const EXPIRY_WARNING_MS = 30 * 86_400_000;

function read(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new ShoalError('CERT_INVALID', `cannot read the ${what} ${path}: ${(err as Error).message}`);
  }
}

/**
 * Reads and checks `files`; `roles`: the certificate must carry at least one
 * of them (e.g. a daemon: peer or seed).
 */
export function loadTls(files: TlsFiles, roles: readonly Role[], now: number = Date.now()): TlsMaterial {
  const ca = read(files.ca, 'cluster CA certificate');
  const cert = read(files.cert, 'certificate');
  const key = read(files.key, 'private key');
  let x509: X509Certificate;
  let cas: X509Certificate[];
  try {
    // Several CAs during a CA rotation (docs/security.md): PEM blocks one after another.
    const blocks = ca.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
    if (blocks.length === 0) throw new Error('no certificate in it');
    cas = blocks.map((block) => new X509Certificate(block));
  } catch (err) {
    throw new ShoalError('CERT_INVALID', `${files.ca} is not a PEM certificate: ${(err as Error).message}`);
  }
  try {
    x509 = new X509Certificate(cert);
  } catch (err) {
    throw new ShoalError('CERT_INVALID', `${files.cert} is not a PEM certificate: ${(err as Error).message}`);
  }
  if (!cas.some((c) => x509.checkIssued(c) && x509.verify(c.publicKey))) {
    throw new ShoalError('CERT_INVALID', `${files.cert} is not signed by the cluster CA ${files.ca}`);
  }
  let privateKey;
  try {
    privateKey = createPrivateKey(key);
  } catch (err) {
    throw new ShoalError('CERT_INVALID', `${files.key} is not a PEM private key: ${(err as Error).message}`);
  }
  if (!x509.checkPrivateKey(privateKey)) throw new ShoalError('CERT_INVALID', `${files.key} is not the key of ${files.cert}`);
  const notAfter = new Date(x509.validTo);
  if (now > notAfter.getTime()) throw new ShoalError('CERT_INVALID', `${files.cert} expired on ${notAfter.toISOString()} (shoal cluster issue makes a new one)`);
  if (now < new Date(x509.validFrom).getTime()) throw new ShoalError('CERT_INVALID', `${files.cert} is not valid before ${x509.validFrom}`);
  const held = rolesIn(x509.subjectAltName);
  if (!roles.some((r) => held.includes(r))) {
    throw new ShoalError('CERT_INVALID', `${files.cert} has role ${held.join(', ') || 'none'}; this needs ${roles.join(' or ')} (shoal cluster issue --role ${roles[0]!})`);
  }
  const cn = /(?:^|\n)CN=([^\n]*)/.exec(x509.subject)?.[1] ?? '';
  return { ca, cert, key, identity: { name: cn, roles: held, fingerprint: x509.fingerprint256 }, notAfter };
}

/** TLS 1.3 only; AES-128-GCM first: as strong as the others for this use, and the cheapest per byte. */
const PROTOCOL = { minVersion: 'TLSv1.3', ciphers: 'TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256' } as const;

/** A listener's options: its certificate, and every client must show one signed by the CA. */
export function serverTls(m: TlsMaterial): TlsOptions {
  return { ...PROTOCOL, ca: m.ca, cert: m.cert, key: m.key, requestCert: true, rejectUnauthorized: true };
}

/**
 * A client's options: its certificate, and the server's must be signed by the
 * CA and carry one of `roles` (and be named `name`, when the scheduler said
 * which member to expect).
 */
export function clientTls(m: TlsMaterial, roles: readonly Role[], name?: string): ConnectionOptions {
  return {
    ...PROTOCOL,
    secureContext: clientContext(m),
    checkServerIdentity: (_host: string, cert: PeerCertificate) => serverIdentityError(cert, roles, name),
  };
}

/**
 * One client context per member: a tls.connect given ca, cert and key makes a
 * new context each time, parsing the PEM key and certificates again (2 ms of
 * CPU with Node 20; a daemon connects to each new parent, and again after a
 * failure). The roles and the name are checked per connection, above.
 */
const clientContexts = new WeakMap<TlsMaterial, SecureContext>();

function clientContext(m: TlsMaterial): SecureContext {
  let context = clientContexts.get(m);
  if (context === undefined) {
    context = createSecureContext({ ...PROTOCOL, ca: m.ca, cert: m.cert, key: m.key });
    clientContexts.set(m, context);
  }
  return context;
}

/** Why `cert` may not serve here, or undefined. */
export function serverIdentityError(cert: PeerCertificate, roles: readonly Role[], name?: string): Error | undefined {
  const held = rolesIn(cert.subjectaltname);
  if (!roles.some((r) => held.includes(r))) return new ShoalError('CERT_INVALID', `the server's certificate (${String(cert.subject?.CN)}) has role ${held.join(', ') || 'none'}, not ${roles.join(' or ')}`);
  if (name !== undefined && name !== '' && cert.subject?.CN !== name) return new ShoalError('CERT_INVALID', `the server's certificate is ${String(cert.subject?.CN)}, not ${name}`);
  return undefined;
}
