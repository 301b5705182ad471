/**
 * Where the parent gets the AWS credentials it hands to the enclave for KMS
 * (`credentials.set`). The enclave signs its own KMS requests; the parent
 * only relays the instance role's temporary credentials, which KMS's key
 * policy cannot turn into a decryption without an attestation document.
 *
 *   none    nothing is sent (an enclave that never calls KMS, or tests)
 *   static  fixed keys from the config (development, the KMS emulator)
 *   env     AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN,
 *           read again on every hand-over
 *   custom  any async function (the CLI's `imds` is parent/imds.ts behind it)
 *
 * Nothing here logs or formats a secret: errors name the missing variable,
 * never its value.
 */
import { isSignerError } from '../common/errors.js';
import { ParentError } from './errors.js';

/** The `credentials.set` params, as the enclave API defines them. */
export interface AwsCredentialsWire {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
  /** ISO 8601; the parent hands over fresh credentials before this time. */
  expiration?: string;
}

export type CredentialsConfig =
  | { kind: 'none' }
  | ({ kind: 'static' } & AwsCredentialsWire)
  | { kind: 'env'; env?: NodeJS.ProcessEnv }
  | { kind: 'custom'; name: string; get: () => Promise<AwsCredentialsWire> };

export interface CredentialsProvider {
  readonly name: string;
  /** Undefined when there is nothing to hand over (kind none). */
  get(): Promise<AwsCredentialsWire | undefined>;
}

function checkWire(c: AwsCredentialsWire, source: string): AwsCredentialsWire {
  const bad = (what: string) => new ParentError('PARENT_CREDENTIALS', `${source}: ${what}`);
  if (typeof c?.accessKeyId !== 'string' || c.accessKeyId.length === 0 || c.accessKeyId.length > 128) throw bad('accessKeyId must be 1..128 characters');
  if (typeof c.secretAccessKey !== 'string' || c.secretAccessKey.length === 0 || c.secretAccessKey.length > 256) throw bad('secretAccessKey must be 1..256 characters');
  const out: AwsCredentialsWire = { accessKeyId: c.accessKeyId, secretAccessKey: c.secretAccessKey };
  if (c.sessionToken !== undefined) {
    if (typeof c.sessionToken !== 'string' || c.sessionToken.length === 0 || c.sessionToken.length > 8192) throw bad('sessionToken must be 1..8192 characters');
    out.sessionToken = c.sessionToken;
  }
  if (c.expiration !== undefined) {
    if (typeof c.expiration !== 'string' || Number.isNaN(new Date(c.expiration).getTime())) throw bad('expiration must be an ISO 8601 date');
    out.expiration = new Date(c.expiration).toISOString();
  }
  return out;
}

export function createCredentialsProvider(cfg: CredentialsConfig): CredentialsProvider {
  switch (cfg.kind) {
    case 'none':
      return { name: 'none', get: async () => undefined };
    case 'static': {
      const { kind: _kind, ...wire } = cfg;
      const c = checkWire(wire, 'static credentials');
      return { name: 'static', get: async () => ({ ...c }) };
    }
    case 'env': {
      const env = cfg.env ?? process.env;
      return {
        name: 'env',
        get: async () => {
          const accessKeyId = env.AWS_ACCESS_KEY_ID;
          const secretAccessKey = env.AWS_SECRET_ACCESS_KEY;
          if (!accessKeyId) throw new ParentError('PARENT_CREDENTIALS', 'AWS_ACCESS_KEY_ID is not set in the environment');
          if (!secretAccessKey) throw new ParentError('PARENT_CREDENTIALS', 'AWS_SECRET_ACCESS_KEY is not set in the environment');
          const c: AwsCredentialsWire = { accessKeyId, secretAccessKey };
          if (env.AWS_SESSION_TOKEN) c.sessionToken = env.AWS_SESSION_TOKEN;
          if (env.AWS_CREDENTIAL_EXPIRATION) c.expiration = env.AWS_CREDENTIAL_EXPIRATION;
          return checkWire(c, 'environment credentials');
        },
      };
    }
    case 'custom':
      return {
        name: cfg.name,
        get: async () => {
          let c: AwsCredentialsWire;
          try {
            c = await cfg.get();
          } catch (e) {
            // Our own errors carry vetted messages; anything else may quote what it failed on: only its code.
            const code = (e as { code?: unknown })?.code;
            const detail = isSignerError(e) ? `: ${e.code}: ${e.message}` : typeof code === 'string' ? `: ${code}` : '';
            throw new ParentError('PARENT_CREDENTIALS', `credentials provider ${cfg.name} failed${detail}`, { cause: e });
          }
          return checkWire(c, `credentials provider ${cfg.name}`);
        },
      };
    default:
      throw new ParentError('PARENT_CONFIG', `unknown credentials provider kind ${JSON.stringify((cfg as { kind?: unknown }).kind)}`);
  }
}

/**
 * When to hand over credentials again: 5 minutes before they expire, or at
 * 80% of their remaining life when that is sooner; undefined when they do
 * not expire.
 */
export function refreshDelayMs(c: AwsCredentialsWire | undefined, now = Date.now()): number | undefined {
  if (!c?.expiration) return undefined;
  const left = new Date(c.expiration).getTime() - now;
  return Math.max(1_000, Math.min(left - 5 * 60_000, Math.floor(left * 0.8)));
}
