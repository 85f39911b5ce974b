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

// Entities are decoded here (xmlText), not by the parser: its own decoding takes the five named
// ones and no character references (&#x0D;, which SDKs write for a carriage return in a key), and
// decoding those after it would decode twice ("&amp;#32;" is the text "&#32;").
const parser = new XMLParser({
  ignoreAttributes: true,
  processEntities: false,
  htmlEntities: false,
  parseTagValue: false,
  trimValues: false,
  isArray: (name) => name === 'Object' || name === 'Part',
});

/** Parses a request body; MalformedXML when it is not well-formed or its root is not `root`, alone. */
export function parseXml(body: Buffer, root: string): Record<string, unknown> {
  const text = body.toString('utf8');
  // Declared entities could expand a small body into a huge one: S3's bodies never need them.
  if (/<!(DOCTYPE|ENTITY)/i.test(text)) throw new S3Error(S3ErrorCode.MalformedXML, 'the XML you provided has a document type declaration, which S3 requests never need');
  // Text in a CDATA section is not to be decoded, and no S3 client writes one.
  if (text.includes('<![CDATA[')) throw new S3Error(S3ErrorCode.MalformedXML, 'the XML you provided has a CDATA section: write its text with references (&amp;, &#x0D;) instead');
  let doc: Record<string, unknown>;
  try {
    doc = parser.parse(text, true) as Record<string, unknown>;
  } catch (err) {
    throw new S3Error(S3ErrorCode.MalformedXML, `the XML you provided was not well-formed: ${(err as Error).message.split('\n')[0]}`);
  }
  const roots = Object.keys(doc).filter((k) => k !== '?xml');
  const top = doc[root];
  if (typeof top !== 'object' || top === null || Array.isArray(top)) throw new S3Error(S3ErrorCode.MalformedXML, `the XML you provided has no ${root} element`);
  if (roots.length !== 1) throw new S3Error(S3ErrorCode.MalformedXML, `the XML you provided has ${roots.length} top-level elements: only ${root}`);
  return decoded(top) as Record<string, unknown>;
}

/** The parsed document with every text's references decoded. */
function decoded(v: unknown): unknown {
  if (typeof v === 'string') return xmlText(v);
  if (Array.isArray(v)) return v.map(decoded);
  if (typeof v === 'object' && v !== null) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) if (k !== '__proto__') out[k] = decoded(x);
    return out;
  }
  return v;
}

const named: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

/** Text as XML reads it: the five named entities and character references decoded, in one pass. */
export function xmlText(raw: string): string {
  return raw.replace(/&([^;&]*);?/g, (whole, ref: string) => {
    if (!whole.endsWith(';')) throw new S3Error(S3ErrorCode.MalformedXML, `the XML you provided has a bare '&' (write &amp;) in '${raw.slice(0, 60)}'`);
    const n = ref.startsWith('#x') ? parseInt(ref.slice(2), 16) : ref.startsWith('#') ? Number(ref.slice(1)) : undefined;
    if (n === undefined) {
      if (!Object.hasOwn(named, ref)) throw new S3Error(S3ErrorCode.MalformedXML, `the XML you provided has an unknown entity &${ref.slice(0, 20)};`);
      return named[ref];
    }
    const valid = /^#(x[0-9a-fA-F]{1,6}|[0-9]{1,7})$/.test(ref) && (n === 0x9 || n === 0xa || n === 0xd || (n >= 0x20 && n <= 0xd7ff) || (n >= 0xe000 && n <= 0xfffd) || (n >= 0x10000 && n <= 0x10ffff));
    if (!valid) throw new S3Error(S3ErrorCode.MalformedXML, `the XML you provided has a reference &${ref.slice(0, 20)}; to no character XML allows`);
    return String.fromCodePoint(n);
  });
}
