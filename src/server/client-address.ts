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
  const hops = forwardedFor
    .split(',')
    .map((h) => normalize(h.trim()))
    .filter((h): h is string => h !== undefined);
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = hops[i]!;
    if (!trustedProxies.has(hop)) return hop;
  }
  return peer;
}

/** An IP address in one canonical spelling (IPv4-mapped IPv6 unwrapped), or undefined. */
export function normalize(address: string | undefined): string | undefined {
  if (address === undefined) return undefined;
  const a =
    address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
  return isIP(a) === 0 ? undefined : a.toLowerCase();
}
