/**
 * The size and shape limits of everything that crosses the parent ⇄ enclave
 * bridge — defined once, here, and imported by both sides.
 *
 * Why one file: the parent is the enclave's only client, and it forwards what
 * hostile local clients send. Whenever the parent accepted something the
 * enclave refused (issue 8, finding 2: nesting 32 vs 16, a frame cap above
 * the enclave's 1 MiB), one small request made the enclave drop the bridge
 * and every client's request in flight failed. With one definition the
 * parent refuses, per request and with a precise error, anything the enclave
 * would refuse; the enclave still checks everything itself (it never trusts
 * the parent), and a frame it cannot read fails that request only.
 *
 * These values are part of the enclave image (PCR2): changing one is a new
 * image and a new PCR manifest. Depths follow the CBOR decoder's convention:
 * the top-level item is at depth 0, an item inside N arrays/maps is at depth
 * N, and an item deeper than the limit is refused (so `[[x]]` has x at 2).
 */

/**
 * Largest CBOR body of one bridge frame (the 4-byte length prefix excluded),
 * both directions: 1 MiB. Far above any signing request (a PSBT of 512 KiB as
 * hex is the largest legitimate one) yet small enough that the enclave can
 * hold `maxInFlight` of them without memory trouble.
 */
export const MAX_FRAME_BYTES = 1024 * 1024;

/**
 * A frame announcing more than MAX_FRAME_BYTES but at most this many is read
 * and discarded (only its first bytes are kept, to find its request id) so
 * the connection stays in sync and only that request fails. Beyond it the
 * peer is not a conforming one — no build of ours ever writes such a frame —
 * and the connection is closed rather than spend bandwidth discarding up to
 * 4 GiB.
 */
export const MAX_FRAME_SKIP_BYTES = 16 * MAX_FRAME_BYTES;

/**
 * Deepest nesting of a bridge frame's CBOR item. The bridge envelope takes up
 * to 5 levels (message → params → request → tx/typedData → message) and the
 * enclave's EIP-712 signer accepts structs/arrays nested 32 levels
 * (enclave/signers/eth-typed-data.ts), so 48 leaves room for both while
 * keeping the decoder's recursion trivially small.
 */
export const MAX_BRIDGE_CBOR_DEPTH = 48;

/**
 * Items in one CBOR array or map (bridge frames and the decoder's default).
 * Bounds the memory a small hostile item can claim before its bytes are read.
 */
export const MAX_CBOR_ITEMS = 65536;

/**
 * Default nesting limit of the CBOR decoder for documents that are not bridge
 * frames: attestation documents, COSE structures, NSM messages, EIF
 * signature sections. None of them nests deeper than 4.
 */
export const DEFAULT_CBOR_DEPTH = 16;

/**
 * Room the parent needs to wrap a client's params into a bridge request
 * (message map, params map, request map, op-specific wrappers), with margin.
 */
export const BRIDGE_ENVELOPE_DEPTH = 8;

/**
 * Deepest nesting of one JSON-RPC request's `params` the parent accepts
 * (`params` itself at depth 0). Deeper is -32602 naming the field, before
 * anything is forwarded: wrapped into a bridge request it could exceed
 * MAX_BRIDGE_CBOR_DEPTH.
 */
export const MAX_JSON_PARAMS_DEPTH = MAX_BRIDGE_CBOR_DEPTH - BRIDGE_ENVELOPE_DEPTH;

/**
 * Deepest nesting of a request's `signer_auth` member the parent forwards (the member at depth
 * 0). Both envelope forms (docs/principals.md) nest 2 levels at most (`webauthn`'s strings);
 * deeper is refused as AUTH_MALFORMED naming the field, before anything is forwarded, like
 * params that nest too deep.
 */
export const MAX_SIGNER_AUTH_DEPTH = 4;

/**
 * Default largest HTTP body / IPC message of the signing socket (the parent's
 * `maxBodyBytes`, configurable). A request that fits still has to fit one
 * bridge frame once encoded as CBOR, which can be larger than its JSON (a
 * float such as `0.5` takes 4 JSON bytes, 9 CBOR bytes): the parent checks the
 * encoded size and answers -32602 when it does not.
 */
export const DEFAULT_JSON_RPC_BODY_BYTES = 1024 * 1024;
