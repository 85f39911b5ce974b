// `host:port` addresses, read the same way wherever one comes in (flags, config files, RPC
// clients, admin requests, metadata commands), so that what one part accepts no other refuses.
// Pure: nothing is resolved or connected here.

export interface HostPort {
  /** A name, an IPv4 address, or an IPv6 address without its brackets. */
  host: string;
  port: number;
}

/** The longest DNS name. */
const hostBytesMax = 253;
const portMax = 65_535;

/**
 * Parses `host:port`: a name or IPv4 address, or an IPv6 address in brackets (`[::1]:7000`), and a
 * port from 1 to 65535 (from 0 with `portZero`, for an address to listen on, where 0 lets the OS
 * pick). Returns the parts, or the problem as a phrase for the caller's one-line message.
 */
export function parseAddress(text: string, opts: { portZero?: boolean } = {}): HostPort | { problem: string } {
  const split = splitHostPort(text);
  if ('problem' in split) return split;
  const { host, portText } = split;
  const hostProblem = split.bracketed ? ipv6Problem(host) : nameProblem(host);
  if (hostProblem !== undefined) return { problem: hostProblem };
  const portMin = opts.portZero === true ? 0 : 1;
  const port = Number(portText);
  if (!/^\d{1,5}$/.test(portText) || port < portMin || port > portMax) return { problem: `port '${portText}' is not a number from ${portMin} to ${portMax}` };
  return { host, port };
}

/** `host:port`, with an IPv6 host in brackets. */
export function formatAddress(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

function splitHostPort(text: string): { host: string; portText: string; bracketed: boolean } | { problem: string } {
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0) return { problem: "no ']' after the IPv6 address (expected [host]:port)" };
    if (text[close + 1] !== ':') return { problem: 'no port after the IPv6 address (expected [host]:port)' };
    return { host: text.slice(1, close), portText: text.slice(close + 2), bracketed: true };
  }
  const colon = text.lastIndexOf(':');
  if (colon < 0) return { problem: 'no port (expected host:port)' };
  return { host: text.slice(0, colon), portText: text.slice(colon + 1), bracketed: false };
}

function nameProblem(host: string): string | undefined {
  if (host.length === 0) return 'no host (expected host:port)';
  if (host.includes(':')) return `host '${host}' has a ':' (an IPv6 address goes in brackets: [::1]:7000)`;
  if (host.length > hostBytesMax) return `host of ${host.length} characters is longer than ${hostBytesMax}`;
  if (!/^[A-Za-z0-9._-]+$/.test(host)) return `host '${host}' is not a name or an IP address`;
  return undefined;
}

function ipv6Problem(host: string): string | undefined {
  if (host.includes('%')) return `IPv6 zone ids are not supported ('[${host}]')`;
  return isIpv6(host) ? undefined : `'[${host}]' is not an IPv6 address`;
}

/** Eight 16-bit groups in hex, a run of zero groups written once as `::`, the last two perhaps as IPv4. */
function isIpv6(s: string): boolean {
  const halves = s.split('::');
  if (halves.length > 2) return false;
  const groups = halves.flatMap((h) => (h === '' ? [] : h.split(':')));
  let count = groups.length;
  const last = groups.at(-1);
  if (last !== undefined && last.includes('.')) {
    if (!isIpv4(last)) return false;
    groups.pop();
    count++;
  }
  if (!groups.every((g) => /^[0-9A-Fa-f]{1,4}$/.test(g))) return false;
  return halves.length === 2 ? count <= 7 : count === 8;
}

function isIpv4(s: string): boolean {
  const parts = s.split('.');
  return parts.length === 4 && parts.every((p) => /^(0|[1-9]\d{0,2})$/.test(p) && Number(p) <= 255);
}
