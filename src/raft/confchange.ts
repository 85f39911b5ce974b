// The encoding of a membership change inside a log entry: type, node id, and opaque context
// (the application's record of the node, such as its address).

import { CairnError, ErrorCode } from '../errors.ts';
import { ConfChangeType, type ConfChange } from './types.ts';

const headerBytes = 5;

export function encodeConfChange(cc: ConfChange, context: Uint8Array = new Uint8Array(0)): Uint8Array {
  const out = new Uint8Array(headerBytes + context.length);
  out[0] = cc.type;
  new DataView(out.buffer).setUint32(1, cc.node);
  out.set(context, headerBytes);
  return out;
}

export function decodeConfChange(data: Uint8Array): ConfChange & { context: Uint8Array } {
  if (data.length < headerBytes) throw new CairnError(ErrorCode.InvalidArgument, `conf change entry of ${data.length} bytes is too short`);
  const type = data[0];
  if (type !== ConfChangeType.AddLearner && type !== ConfChangeType.AddVoter && type !== ConfChangeType.Remove) {
    throw new CairnError(ErrorCode.InvalidArgument, `unknown conf change type ${type}`);
  }
  const node = new DataView(data.buffer, data.byteOffset, data.byteLength).getUint32(1);
  return { type, node, context: data.subarray(headerBytes) };
}
