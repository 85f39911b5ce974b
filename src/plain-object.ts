// The test every boundary applies before reading fields of an untrusted decoded value (RPC frames
// and handshakes, metadata commands): a plain object, not an array, a buffer or a class instance.

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const proto: unknown = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}
