// The S3 gateway: `startS3Gateway` serves a cluster's namespace over the S3 API.

import type { AddressInfo } from 'node:net';
import { S3Gateway, type GatewayOptions, type Routes } from './gateway.ts';
import { bucketLocation, createBucket, deleteBucket, deleteObjects, headBucket, listBuckets, listObjectsV1, listObjectsV2, listObjectVersions } from './buckets.ts';
import { deleteObject, getObject, putObject } from './objects.ts';
import { abortUpload, completeUpload, createUpload, listParts, listUploads, uploadPart } from './multipart.ts';

export { completedUploadKeepMsDefault, completeKeepAliveMsDefault, S3Gateway, type GatewayOptions } from './gateway.ts';
export { S3Error, S3ErrorCode } from './errors.ts';

/** Operations by method, and by method and subresource ('GET ?uploads'): the first subresource present picks. */
export const routes: Routes = {
  listBuckets,
  bucket: {
    PUT: createBucket,
    DELETE: deleteBucket,
    HEAD: headBucket,
    GET: listObjectsV1,
    'GET ?list-type': listObjectsV2,
    'GET ?location': bucketLocation,
    'GET ?uploads': listUploads,
    'GET ?versions': listObjectVersions,
    'POST ?delete': deleteObjects,
  },
  object: {
    PUT: putObject,
    'PUT ?uploadId': uploadPart,
    GET: getObject,
    'GET ?uploadId': listParts,
    HEAD: getObject,
    DELETE: deleteObject,
    'DELETE ?uploadId': abortUpload,
    'POST ?uploads': createUpload,
    'POST ?uploadId': completeUpload,
  },
  params: {
    listObjectsV1: ['prefix', 'delimiter', 'marker', 'max-keys', 'encoding-type'],
    listObjectsV2: ['prefix', 'delimiter', 'max-keys', 'encoding-type', 'continuation-token', 'start-after', 'fetch-owner'],
    listObjectVersions: ['prefix', 'delimiter', 'key-marker', 'version-id-marker', 'max-keys', 'encoding-type'],
    listUploads: ['prefix', 'key-marker', 'upload-id-marker', 'max-uploads', 'encoding-type'],
    getObject: ['response-content-type', 'response-content-language', 'response-expires', 'response-cache-control', 'response-content-disposition', 'response-content-encoding'],
    uploadPart: ['partNumber'],
    listParts: ['max-parts', 'part-number-marker', 'encoding-type'],
  },
};

export async function startS3Gateway(opts: GatewayOptions, host: string, port: number): Promise<{ gateway: S3Gateway; address: AddressInfo }> {
  const gateway = new S3Gateway(opts, routes);
  const address = await gateway.listen(host, port);
  return { gateway, address };
}
