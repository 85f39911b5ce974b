// The mutual HMAC challenge of the cluster secret. The server proves it knows the secret too, so a
// client never sends requests to an impostor; neither side ever sends the secret itself.
//
//   server -> client  hello { v, nonce: serverNonce }                       (32 random bytes)
//   client -> server  auth  { nonce: clientNonce, proof: HMAC(secret, label | serverNonce | clientNonce) }
//   server -> client  auth  { proof: HMAC(secret, label | clientNonce | serverNonce) }  or error UNAUTHENTICATED
//
// The two proofs hash the nonces in opposite orders, so one side's proof is never valid as the other's.

import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { nonceBytes } from './limits.ts';

const label = Buffer.from('cairn-auth-v1');

export function newNonce(): Buffer {
  return randomBytes(nonceBytes);
}

function proof(secret: string, first: Uint8Array, second: Uint8Array): Buffer {
  return createHmac('sha256', secret).update(label).update(first).update(second).digest();
}

export function clientProof(secret: string, serverNonce: Uint8Array, clientNonce: Uint8Array): Buffer {
  return proof(secret, serverNonce, clientNonce);
}

export function serverProof(secret: string, clientNonce: Uint8Array, serverNonce: Uint8Array): Buffer {
  return proof(secret, clientNonce, serverNonce);
}

export function isNonce(v: unknown): v is Uint8Array {
  return v instanceof Uint8Array && v.byteLength === nonceBytes;
}

/** Constant-time comparison of a proof received from the wire (any type) with the expected one. */
export function proofMatches(expected: Buffer, received: unknown): boolean {
  return received instanceof Uint8Array && received.byteLength === expected.length && timingSafeEqual(expected, received);
}
