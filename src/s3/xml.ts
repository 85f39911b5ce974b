// S3's XML: answers written by a small serializer (elements, text escaped, arrays as repeated
// elements), and the few request bodies S3 takes (DeleteObjects, CompleteMultipartUpload) parsed by
// fast-xml-parser with entities off, so that a body cannot expand itself.

import { XMLParser } from 'fast-xml-parser';
import { S3Error, S3ErrorCode } from './errors.ts';

export const s3Namespace = 'http://s3.amazonaws.com/doc/2006-03-01/';

export type XmlValue = string | number | boolean | undefined | XmlElement | XmlValue[];
export interface XmlElement {
  [name: string]: XmlValue;
}

export const xmlDeclaration = '<?xml version="1.0" encoding="UTF-8"?>\n';

/**
 * A whole document: the declaration, then `root` (with S3's namespace) holding `body`; without
 * `declaration` only the root element (for a body whose declaration went out first).
 */
export function xmlDocument(root: string, body: XmlElement, withNamespace = true, declaration = true): string {
  const attrs = withNamespace ? ` xmlns="${s3Namespace}"` : '';
  return `${declaration ? xmlDeclaration : ''}<${root}${attrs}>${children(body)}</${root}>`;
}

function children(body: XmlElement): string {
  let out = '';
  for (const [name, value] of Object.entries(body)) out += element(name, value);
  return out;
}

function element(name: string, value: XmlValue): string {
  if (value === undefined) return '';
  if (Array.isArray(value)) return value.map((v) => element(name, v)).join('');
  if (typeof value === 'object') return `<${name}>${children(value)}</${name}>`;
  return `<${name}>${escapeXml(String(value))}</${name}>`;
}

export function escapeXml(text: string): string {
  // Characters XML 1.0 cannot carry at all are written as references S3 uses too.
  return text.replace(/[&<>"'\r\u0000-\u0008\u000b\u000c\u000e-\u001f]/g, (c) => {
    switch (c) {
      case '&':
        return '&amp;';
      case '<':
        return '&lt;';
      case '>':
        return '&gt;';
      case '"':
        return '&quot;';
      case "'":
        return '&apos;';
      default:
        return `&#x${c.charCodeAt(0).toString(16)};`;
    }
  });
}

const parser = new XMLParser({
  ignoreAttributes: true,
  processEntities: true,
  htmlEntities: false,
  parseTagValue: false,
  trimValues: false,
  isArray: (name) => name === 'Object' || name === 'Part',
});

/** Parses a request body; MalformedXML when it is not well-formed or its root is not `root`. */
export function parseXml(body: Buffer, root: string): Record<string, unknown> {
  const text = body.toString('utf8');
  // Declared entities could expand a small body into a huge one: S3's bodies never need them.
  if (/<!(DOCTYPE|ENTITY)/i.test(text)) throw new S3Error(S3ErrorCode.MalformedXML, 'the XML you provided has a document type declaration, which S3 requests never need');
  let doc: Record<string, unknown>;
  try {
    doc = parser.parse(text, true) as Record<string, unknown>;
  } catch (err) {
    throw new S3Error(S3ErrorCode.MalformedXML, `the XML you provided was not well-formed: ${(err as Error).message.split('\n')[0]}`);
  }
  const top = doc[root];
  if (typeof top !== 'object' || top === null) throw new S3Error(S3ErrorCode.MalformedXML, `the XML you provided has no ${root} element`);
  return top as Record<string, unknown>;
}
