// Tests of the one host:port parser (src/address.ts) that flags, RPC clients, admin requests and
// metadata commands share.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatAddress, parseAddress } from '../../src/address.ts';

test('names, IPv4 and bracketed IPv6 hosts with ports 1..65535 parse', () => {
  assert.deepEqual(parseAddress('localhost:7000'), { host: 'localhost', port: 7000 });
  assert.deepEqual(parseAddress('10.0.0.1:1'), { host: '10.0.0.1', port: 1 });
  assert.deepEqual(parseAddress('master-1.cairn_internal:65535'), { host: 'master-1.cairn_internal', port: 65535 });
  assert.deepEqual(parseAddress('[::1]:9000'), { host: '::1', port: 9000 });
  assert.deepEqual(parseAddress('[::]:9000'), { host: '::', port: 9000 });
  assert.deepEqual(parseAddress('[2001:db8::8a2e:370:7334]:443'), { host: '2001:db8::8a2e:370:7334', port: 443 });
  assert.deepEqual(parseAddress('[1:2:3:4:5:6:7:8]:80'), { host: '1:2:3:4:5:6:7:8', port: 80 });
  assert.deepEqual(parseAddress('[::ffff:192.0.2.1]:80'), { host: '::ffff:192.0.2.1', port: 80 });
});

test('port 0 only where the OS may pick', () => {
  assert.match(problem('h:0'), /port '0' is not a number from 1 to 65535/);
  assert.deepEqual(parseAddress('127.0.0.1:0', { portZero: true }), { host: '127.0.0.1', port: 0 });
  assert.deepEqual(parseAddress('[::1]:0', { portZero: true }), { host: '::1', port: 0 });
});

test('everything else is refused with what is wrong', () => {
  const cases: [string, RegExp][] = [
    ['nohost', /no port/],
    [':7000', /no host/],
    ['h:', /port '' is not a number/],
    ['h:65536', /port '65536'/],
    ['h:+80', /port '\+80'/],
    ['h:8e3', /port '8e3'/],
    ['h:123456', /port '123456'/],
    ['::1:7000', /IPv6 address goes in brackets/],
    ['a:b:80', /IPv6 address goes in brackets/],
    ['[::1]', /no port after the IPv6 address/],
    ['[::1:80', /no '\]'/],
    ['[::1]7000', /no port after the IPv6 address/],
    ['[fe80::1%eth0]:80', /zone ids are not supported/],
    ['[1::2::3]:80', /is not an IPv6 address/],
    ['[1:2:3:4:5:6:7:8:9]:80', /is not an IPv6 address/],
    ['[1:2:3:4:5:6:7]:80', /is not an IPv6 address/],
    ['[12345::]:80', /is not an IPv6 address/],
    ['[::ffff:192.0.2.256]:80', /is not an IPv6 address/],
    ['[localhost]:80', /is not an IPv6 address/],
    ['host name:80', /is not a name or an IP address/],
    ['h/x:80', /is not a name or an IP address/],
    [`${'a'.repeat(254)}:80`, /longer than 253/],
  ];
  for (const [text, why] of cases) assert.match(problem(text), why, text);
});

test('formatAddress brackets IPv6 hosts, and parseAddress reads back what it writes', () => {
  assert.equal(formatAddress('127.0.0.1', 7000), '127.0.0.1:7000');
  assert.equal(formatAddress('::1', 7000), '[::1]:7000');
  for (const [host, port] of [['h', 1], ['::', 80], ['fe80::1', 65535]] as const) {
    assert.deepEqual(parseAddress(formatAddress(host, port)), { host, port });
  }
});

function problem(text: string): string {
  const r = parseAddress(text);
  assert.ok('problem' in r, `${text} parsed as ${JSON.stringify(r)}`);
  return r.problem;
}
