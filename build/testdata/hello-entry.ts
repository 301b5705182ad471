/**
 * A stand-in enclave entry point for build tests (build/check-reproducible.sh)
 * until enclave/main.ts exists: pulls in a CommonJS-heavy dependency (the AWS
 * SDK) and our own CBOR codec, so the bundle exercises what the real one does.
 */
import { KMSClient } from '@aws-sdk/client-kms';
import { encodeCbor } from '../../common/cbor.js';

const client = new KMSClient({ region: 'us-east-1' });
process.stdout.write(`enclave-signer test image: ${typeof client.send} ${Buffer.from(encodeCbor(new Map([["ok", true]]))).length}\n`);
