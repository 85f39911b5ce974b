// Validation of the options of RpcServer and RpcClient: a bad option fails at construction, with its name.

import { RpcError, RpcErrorCode } from './errors.ts';

export function checkSecret(secret: string | undefined): void {
  // An empty secret is most likely an unset variable: refuse it rather than run unauthenticated.
  if (secret !== undefined && (typeof secret !== 'string' || secret.length === 0)) {
    throw new RpcError(RpcErrorCode.BadOption, 'secret must be a non-empty string; omit it for dev mode');
  }
}

export function checkPositiveInt(name: string, v: number, min = 1): number {
  if (!Number.isSafeInteger(v) || v < min) throw new RpcError(RpcErrorCode.BadOption, `${name} must be an integer >= ${min}, got ${v}`);
  return v;
}
