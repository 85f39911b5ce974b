// S3's errors: each a stable code (S3's own names, which clients branch on), an HTTP status and a
// one-line message. The gateway answers them as S3's XML error document.

export const S3ErrorCode = {
  AccessDenied: 'AccessDenied',
  AuthorizationHeaderMalformed: 'AuthorizationHeaderMalformed',
  AuthorizationQueryParametersError: 'AuthorizationQueryParametersError',
  BadDigest: 'BadDigest',
  BucketAlreadyExists: 'BucketAlreadyExists',
  BucketAlreadyOwnedByYou: 'BucketAlreadyOwnedByYou',
  BucketNotEmpty: 'BucketNotEmpty',
  EntityTooLarge: 'EntityTooLarge',
  EntityTooSmall: 'EntityTooSmall',
  IncompleteBody: 'IncompleteBody',
  InternalError: 'InternalError',
  InvalidAccessKeyId: 'InvalidAccessKeyId',
  InvalidArgument: 'InvalidArgument',
  InvalidBucketName: 'InvalidBucketName',
  InvalidDigest: 'InvalidDigest',
  InvalidPart: 'InvalidPart',
  InvalidPartOrder: 'InvalidPartOrder',
  InvalidRange: 'InvalidRange',
  InvalidRequest: 'InvalidRequest',
  InvalidURI: 'InvalidURI',
  KeyTooLongError: 'KeyTooLongError',
  /** What follows an aws-chunked body's final chunk is not the trailer x-amz-trailer declares (or not a trailer). */
  MalformedTrailerError: 'MalformedTrailerError',
  MalformedXML: 'MalformedXML',
  MetadataTooLarge: 'MetadataTooLarge',
  MethodNotAllowed: 'MethodNotAllowed',
  MissingContentLength: 'MissingContentLength',
  MissingSecurityHeader: 'MissingSecurityHeader',
  NoSuchBucket: 'NoSuchBucket',
  NoSuchKey: 'NoSuchKey',
  NoSuchUpload: 'NoSuchUpload',
  NotImplemented: 'NotImplemented',
  /** cairn's own: a key that would make one path both an object and a directory. */
  ObjectPathConflict: 'XCairnObjectPathConflict',
  PreconditionFailed: 'PreconditionFailed',
  RequestHeaderSectionTooLarge: 'RequestHeaderSectionTooLarge',
  RequestTimeout: 'RequestTimeout',
  RequestTimeTooSkewed: 'RequestTimeTooSkewed',
  ServiceUnavailable: 'ServiceUnavailable',
  SignatureDoesNotMatch: 'SignatureDoesNotMatch',
  XAmzContentSHA256Mismatch: 'XAmzContentSHA256Mismatch',
} as const;
export type S3ErrorCode = (typeof S3ErrorCode)[keyof typeof S3ErrorCode];

const statusOf: Record<S3ErrorCode, number> = {
  AccessDenied: 403,
  AuthorizationHeaderMalformed: 400,
  AuthorizationQueryParametersError: 400,
  BadDigest: 400,
  BucketAlreadyExists: 409,
  BucketAlreadyOwnedByYou: 409,
  BucketNotEmpty: 409,
  EntityTooLarge: 400,
  EntityTooSmall: 400,
  IncompleteBody: 400,
  InternalError: 500,
  InvalidAccessKeyId: 403,
  InvalidArgument: 400,
  InvalidBucketName: 400,
  InvalidDigest: 400,
  InvalidPart: 400,
  InvalidPartOrder: 400,
  InvalidRange: 416,
  InvalidRequest: 400,
  InvalidURI: 400,
  KeyTooLongError: 400,
  MalformedTrailerError: 400,
  MalformedXML: 400,
  MetadataTooLarge: 400,
  MethodNotAllowed: 405,
  MissingContentLength: 411,
  MissingSecurityHeader: 400,
  NoSuchBucket: 404,
  NoSuchKey: 404,
  NoSuchUpload: 404,
  NotImplemented: 501,
  XCairnObjectPathConflict: 409,
  PreconditionFailed: 412,
  RequestHeaderSectionTooLarge: 400,
  RequestTimeout: 400,
  RequestTimeTooSkewed: 403,
  ServiceUnavailable: 503,
  SignatureDoesNotMatch: 403,
  XAmzContentSHA256Mismatch: 400,
};

export class S3Error extends Error {
  readonly code: S3ErrorCode;
  readonly status: number;
  /** Extra elements of the error document (e.g. the bucket or key). */
  readonly fields: Record<string, string>;

  constructor(code: S3ErrorCode, message: string, fields: Record<string, string> = {}) {
    super(message);
    this.code = code;
    this.status = statusOf[code];
    this.fields = fields;
  }
}
