/**
 * Stands in for `@aws-sdk/credential-provider-node` in the enclave image only
 * (an esbuild `--alias` in build-eif.sh; sources and tests use the real
 * package). The enclave gets its credentials from the parent, explicitly
 * (enclave/kms/client.ts passes `credentials`), so the SDK's default chain
 * (env, ini files, SSO, IMDS, ECS, web identity, login, process) is never
 * consulted — and none of it belongs in the measured image: about 200 KB,
 * with nested STS/SSO/OIDC clients. Should anything ever reach for the default
 * chain, it fails closed with this error instead of looking for credentials on
 * its own.
 */

export class NoDefaultCredentialsError extends Error {
  readonly code = 'KMS_NO_DEFAULT_CREDENTIALS';
  constructor() {
    super('the enclave has no default AWS credential chain: credentials come from the parent, explicitly');
    this.name = 'NoDefaultCredentialsError';
  }
}

/** The name @aws-sdk/client-kms imports: a provider factory whose providers always reject. */
export const defaultProvider =
  (_init?: unknown) =>
  async (): Promise<never> => {
    throw new NoDefaultCredentialsError();
  };
