/**
 * Bundled by build/bundle-contents.test.ts with the enclave image's own
 * esbuild options (read from build-eif.sh), then run under node: proves that
 * the enclave's KMS client, as bundled — SDK ES modules, default credential
 * chain and browser user-agent parser aliased away — still speaks KMS's real
 * protocol (SigV4, JSON 1.1, TLS through our dialer) to the emulator, and
 * that the stubbed default chain fails closed.
 *
 * argv: <tcp port of the emulator> <CA PEM file> <key id>; env: PROBE_AKID, PROBE_SECRET.
 * Prints one JSON line.
 */
import { readFileSync } from 'node:fs';
import { DecryptCommand, DescribeKeyCommand, GenerateDataKeyCommand, KMSClient } from '@aws-sdk/client-kms';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { connect } from '../../common/transport/index.js';
import { createKmsClient } from '../../enclave/kms/client.js';
import { kmsHttpsAgent } from '../../enclave/kms/connection.js';

const [port, caFile, keyId] = process.argv.slice(2) as [string, string, string];
const ca = readFileSync(caFile, 'utf8');
const endpoint = `https://localhost:${port}`;
const dial = () => connect(`tcp://127.0.0.1:${port}`);
const credentials = async () => ({ accessKeyId: process.env.PROBE_AKID!, secretAccessKey: process.env.PROBE_SECRET! });

const out: Record<string, unknown> = {};
const kms = createKmsClient({ region: 'us-east-1', dial, endpoint, ca, credentials });
try {
  const gen = await kms.send(new GenerateDataKeyCommand({ KeyId: keyId, KeySpec: 'AES_256' }));
  const dec = await kms.send(new DecryptCommand({ CiphertextBlob: gen.CiphertextBlob!, KeyId: keyId }));
  out.roundTrip = gen.Plaintext !== undefined && Buffer.from(gen.Plaintext).equals(Buffer.from(dec.Plaintext!));
  out.plaintextBytes = dec.Plaintext?.length;
} catch (e) {
  out.roundTripError = `${(e as Error).name}: ${(e as Error).message}`;
} finally {
  kms.destroy();
}

// No explicit credentials: the SDK falls back to its default chain, which the image does not carry.
const bare = new KMSClient({
  region: 'us-east-1',
  endpoint,
  maxAttempts: 1,
  requestHandler: new NodeHttpHandler({ httpsAgent: kmsHttpsAgent({ dial, servername: 'localhost', ca }) }),
});
try {
  await bare.send(new DescribeKeyCommand({ KeyId: keyId }));
  out.defaultChain = 'used';
} catch (e) {
  out.defaultChain = `${(e as Error).name}: ${(e as Error).message}`;
} finally {
  bare.destroy();
}
process.stdout.write(`${JSON.stringify(out)}\n`);
