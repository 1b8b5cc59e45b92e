import { isIP } from 'node:net';

/**
 * The client's address for rate limiting: the socket's peer address, and
 * `X-Forwarded-For` only when that peer is one of `trustedProxies` — then
 * the rightmost address in the header that is not itself a trusted proxy
 * (entries to its left are whatever the client wrote). Without a socket
 * (the app called in-process) the key is `local`.
 *
 * @example
 * ```ts
 * const key = clientAddress(socketAddress, request.headers.get('x-forwarded-for'), ['10.0.0.2']);
 * ```
 */
export function clientAddress(
  socketAddress: string | undefined,
  forwardedFor: string | null,
  trustedProxies: ReadonlySet<string>,
): string {
  const peer = normalize(socketAddress) ?? 'local';
  if (forwardedFor === null || !trustedProxies.has(peer)) return peer;
  const hops = forwardedFor.split(',');
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = normalize(withoutPort(hops[i]!.trim()));
    // An entry that is no address (`unknown`, garbage) ends the walk: what lies
    // to its left was written by someone the proxies did not vouch for.
    if (hop === undefined) return UNKNOWN_CLIENT;
    if (!trustedProxies.has(hop)) return hop;
  }
  return peer;
}

/** The key of a forwarded client whose address could not be read (not loopback, one shared bucket). */
export const UNKNOWN_CLIENT = 'unknown';

/** `203.0.113.5:4711` → `203.0.113.5`, `[2001:db8::1]:443` → `2001:db8::1`; anything else unchanged. */
function withoutPort(hop: string): string {
  const v6 = /^\[([^\]]+)\](?::\d+)?$/.exec(hop);
  if (v6) return v6[1]!;
  const v4 = /^(\d{1,3}(?:\.\d{1,3}){3}):\d+$/.exec(hop);
  return v4 ? v4[1]! : hop;
}

/** An IP address in one canonical spelling (IPv4-mapped IPv6 unwrapped), or undefined. */
export function normalize(address: string | undefined): string | undefined {
  if (address === undefined) return undefined;
  const a =
    address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
  return isIP(a) === 0 ? undefined : a.toLowerCase();
}

/**
 * The rate limiter's key for a client address: an IPv6 address counts by
 * its /64 — the block one subscriber usually gets, so changing the low bits
 * does not buy a fresh bucket — and anything else (IPv4, `local`) as itself.
 *
 * @example
 * ```ts
 * rateLimitKey('2001:db8:1:2:a:b:c:d'); // '2001:db8:1:2::/64'
 * rateLimitKey('203.0.113.7');          // '203.0.113.7'
 * ```
 */
export function rateLimitKey(address: string): string {
  if (isIP(address) !== 6) return address;
  const bare = address.split('%')[0]!;
  const [l = '', r] = bare.split('::');
  const left = l === '' ? [] : l.split(':');
  const right = r === undefined || r === '' ? [] : r.split(':');
  // An embedded IPv4 tail (…:1.2.3.4) stands for two groups.
  const width = (parts: string[]) => parts.reduce((n, p) => n + (p.includes('.') ? 2 : 1), 0);
  const groups =
    r === undefined
      ? left
      : [...left, ...Array<string>(8 - width(left) - width(right)).fill('0'), ...right];
  const prefix = groups
    .slice(0, 4)
    .map((g) => (g.includes('.') ? '0' : Number.parseInt(g, 16).toString(16)));
  return `${prefix.join(':')}::/64`;
}

/**
 * True for 127.0.0.0/8, ::1 and `localhost`: the hosts demo mode (and a
 * cookie without `Secure`) are allowed on, and the clients `/metrics`
 * answers by default (`local` and `unknown` are not loopback).
 *
 * @example
 * ```ts
 * isLoopbackHost('127.0.0.1'); // true
 * isLoopbackHost('0.0.0.0'); // false
 * ```
 */
export function isLoopbackHost(host: string): boolean {
  if (host === 'localhost') return true;
  const ip = normalize(host.replace(/^\[|\]$/g, ''));
  if (ip === undefined) return false;
  return isIP(ip) === 4 ? ip.startsWith('127.') : ip === '::1';
}
