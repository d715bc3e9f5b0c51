/**
 * The object-store credentials and region of this process, found where the
 * AWS CLI looks (docs/object-storage.md): AWS_ACCESS_KEY_ID +
 * AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN); else the profile
 * AWS_PROFILE (default "default") of ~/.aws/credentials, then of
 * ~/.aws/config (AWS_SHARED_CREDENTIALS_FILE and AWS_CONFIG_FILE move them);
 * none: anonymous requests. Region: AWS_REGION, AWS_DEFAULT_REGION, the
 * profile's region, else us-east-1. The files are read with the AWS SDK's own
 * parser (@smithy/shared-ini-file-loader). Credentials never leave this
 * process: they sign requests and are never logged, stored or sent to a peer.
 */
import { homedir } from 'node:os';
import { join } from 'node:path';
import { loadSharedConfigFiles } from '@smithy/shared-ini-file-loader';
import { ShoalError } from '../../../common/errors.js';

export interface AwsCredentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken?: string | undefined;
}

export interface AwsIdentity {
  /** Undefined: anonymous (unsigned) requests. */
  readonly credentials: AwsCredentials | undefined;
  readonly region: string;
  /** Where they came from, for messages: "environment", "profile default", "anonymous". Never a secret. */
  readonly from: string;
}

export type AwsEnv = Readonly<Record<string, string | undefined>>;

export const DEFAULT_REGION = 'us-east-1';

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}

/** Reads the environment and the shared files now; throws SOURCE_CREDENTIALS for half-given or missing-profile credentials. */
export async function resolveAwsIdentity(env: AwsEnv): Promise<AwsIdentity> {
  const home = nonEmpty(env.HOME) ?? homedir();
  const explicitProfile = nonEmpty(env.AWS_PROFILE);
  const profileName = explicitProfile ?? 'default';
  let files: Awaited<ReturnType<typeof loadSharedConfigFiles>>;
  try {
    files = await loadSharedConfigFiles({
      filepath: nonEmpty(env.AWS_SHARED_CREDENTIALS_FILE) ?? join(home, '.aws', 'credentials'),
      configFilepath: nonEmpty(env.AWS_CONFIG_FILE) ?? join(home, '.aws', 'config'),
      ignoreCache: true,
    });
  } catch (err) {
    throw new ShoalError('SOURCE_CREDENTIALS', `the AWS shared config files cannot be read: ${(err as Error).message}`, { cause: err });
  }
  const fromCredentials = files.credentialsFile[profileName];
  const fromConfig = files.configFile[profileName];
  const region = nonEmpty(env.AWS_REGION) ?? nonEmpty(env.AWS_DEFAULT_REGION) ?? nonEmpty(fromConfig?.region) ?? DEFAULT_REGION;

  const envKey = nonEmpty(env.AWS_ACCESS_KEY_ID);
  const envSecret = nonEmpty(env.AWS_SECRET_ACCESS_KEY);
  if (envKey !== undefined || envSecret !== undefined) {
    if (envKey === undefined || envSecret === undefined) {
      throw new ShoalError('SOURCE_CREDENTIALS', 'AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY go together: only one is set');
    }
    return { credentials: { accessKeyId: envKey, secretAccessKey: envSecret, sessionToken: nonEmpty(env.AWS_SESSION_TOKEN) }, region, from: 'environment' };
  }
  if (explicitProfile !== undefined && fromCredentials === undefined && fromConfig === undefined) {
    throw new ShoalError('SOURCE_CREDENTIALS', `AWS_PROFILE ${JSON.stringify(profileName.slice(0, 64))} is in neither the AWS credentials nor the config file`);
  }
  for (const [section, where] of [
    [fromCredentials, 'credentials'],
    [fromConfig, 'config'],
  ] as const) {
    const key = nonEmpty(section?.aws_access_key_id);
    const secret = nonEmpty(section?.aws_secret_access_key);
    if (key === undefined && secret === undefined) continue;
    if (key === undefined || secret === undefined) {
      throw new ShoalError('SOURCE_CREDENTIALS', `profile ${JSON.stringify(profileName.slice(0, 64))} of the AWS ${where} file has only one of aws_access_key_id and aws_secret_access_key`);
    }
    return { credentials: { accessKeyId: key, secretAccessKey: secret, sessionToken: nonEmpty(section?.aws_session_token) }, region, from: `profile ${profileName}` };
  }
  return { credentials: undefined, region, from: 'anonymous' };
}

/** How long a resolved identity is used before the files and variables are read again (rotated keys are picked up). */
const IDENTITY_TTL_MS = 5 * 60_000;

/** resolveAwsIdentity, remembered for a while (one read per 5 minutes, not per request). */
export function cachedAwsIdentity(env: AwsEnv, now: () => number = Date.now): () => Promise<AwsIdentity> {
  let cached: { at: number; identity: Promise<AwsIdentity> } | undefined;
  return () => {
    if (cached === undefined || now() - cached.at > IDENTITY_TTL_MS) {
      const identity = resolveAwsIdentity(env);
      cached = { at: now(), identity };
      identity.catch(() => (cached = undefined)); // a failure is not remembered
    }
    return cached.identity;
  };
}
