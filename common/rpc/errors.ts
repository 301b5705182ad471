/**
 * A wrong JSON-RPC parameter (-32602), named by its field (`params[1]`, `keyId`,
 * `chainId`…). Raised by the readers in ./params.ts, which both sides run: the
 * parent to route a request, the enclave to re-read a signed request from the
 * exact params the principal signed (./sign-call.ts). At the parent it is
 * answered with data.code PARENT_INVALID_PARAMS, the code clients have always
 * seen for a request the parent refused (docs/json-rpc.md); from the enclave it
 * arrives as INVALID_PARAMS. Both are -32602.
 */
import { SignerError } from '../errors.js';

export class InvalidParamError extends SignerError {
  readonly field: string;
  constructor(field: string, message: string, hint?: string) {
    super('INVALID_PARAMS', `${field}: ${message}`, hint === undefined ? {} : { hint });
    this.field = field;
  }
}

export function invalidParam(field: string, message: string, hint?: string): InvalidParamError {
  return new InvalidParamError(field, message, hint);
}
