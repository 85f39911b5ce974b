// Buckets and keys as paths: a bucket is a top-level directory, a key the path below it ('/' between
// names). So a key must be a path the namespace can hold: no empty, '.' or '..' name, no NUL, at most
// 1024 bytes (S3's bound) and 255 bytes a name; a key ending in '/' names a directory (a marker).

import { s3BucketNamePattern } from '../meta/commands.ts';
import { printable } from '../cli/format.ts';
import { isPutTempName } from '../client/files.ts';
import { S3Error, S3ErrorCode } from './errors.ts';

export const keyBytesMax = 1024;
const nameBytesMax = 255;
/** The gateway's own files (multipart uploads): not a valid bucket name, so never listed as one. */
export const systemDir = '/.cairn-s3';

export function checkBucketName(bucket: string): void {
  if (!s3BucketNamePattern.test(bucket) || bucket.includes('..') || bucket.includes('.-') || bucket.includes('-.') || /^\d+\.\d+\.\d+\.\d+$/.test(bucket)) {
    throw new S3Error(S3ErrorCode.InvalidBucketName, `'${bucket.slice(0, 80)}' is not a valid bucket name: 3 to 63 lower-case letters, digits, '.' and '-', starting and ending with a letter or digit`, { BucketName: bucket.slice(0, 80) });
  }
}

/** Names S3 keeps for its own kinds of buckets: a new bucket may not take one (existing ones stay usable). */
export function checkNewBucketName(bucket: string): void {
  checkBucketName(bucket);
  if (/^(xn--|sthree-|amzn-s3-demo-)/.test(bucket) || /(-s3alias|--ol-s3|\.mrap|--x-s3|--table-s3)$/.test(bucket)) {
    throw new S3Error(S3ErrorCode.InvalidBucketName, `'${bucket}' is not a valid bucket name: S3 reserves its prefix or suffix`, { BucketName: bucket });
  }
}

export function isBucketName(name: string): boolean {
  try {
    checkBucketName(name);
    return true;
  } catch {
    return false;
  }
}

/** The path of a key in a bucket (a marker's path has no trailing '/'); refuses keys no path can hold. */
export function keyPath(bucket: string, key: string): string {
  if (key === '') throw new S3Error(S3ErrorCode.InvalidArgument, 'the key is empty');
  if (Buffer.byteLength(key) > keyBytesMax) throw new S3Error(S3ErrorCode.KeyTooLongError, `the key has ${Buffer.byteLength(key)} bytes, more than ${keyBytesMax}`);
  if (key.includes('\0')) throw new S3Error(S3ErrorCode.InvalidArgument, 'a key may not hold a NUL byte');
  const names = (key.endsWith('/') ? key.slice(0, -1) : key).split('/');
  for (const name of names) {
    if (name === '' || name === '.' || name === '..') throw new S3Error(S3ErrorCode.InvalidArgument, `the key '${printableKey(key)}' has an empty, '.' or '..' name between slashes: a file system cannot hold it`);
    if (Buffer.byteLength(name) > nameBytesMax) throw new S3Error(S3ErrorCode.KeyTooLongError, `a name in the key has more than ${nameBytesMax} bytes`);
    // Listings hide such names (an unfinished PUT's), so an object of one could never be seen.
    if (isPutTempName(name)) throw new S3Error(S3ErrorCode.InvalidArgument, `the key '${printableKey(key)}' has a name of the form cairn gives unfinished uploads (.NAME.cairn-put-ID)`);
  }
  return `/${bucket}/${names.join('/')}`;
}

export function isMarkerKey(key: string): boolean {
  return key.endsWith('/');
}

/** A key shortened and with its control characters escaped, for messages and logs. */
export function printableKey(key: string): string {
  return printable(key.slice(0, 200));
}
