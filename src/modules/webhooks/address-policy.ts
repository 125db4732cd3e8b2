import ipaddr from 'ipaddr.js';

// IPv4-compatible IPv6 (::a.b.c.d, deprecated): ipaddr.js calls it unicast, but it embeds an IPv4 address.
const IPV4_COMPATIBLE = ipaddr.parseCIDR('::/96');
// The local-use NAT64 prefix (RFC 8215): a translator on the network maps it to the embedded IPv4 address, private
// ones included. ipaddr.js knows only the well-known 64:ff9b::/96 (its `rfc6052`) and calls this one unicast.
const NAT64_LOCAL_USE = ipaddr.parseCIDR('64:ff9b:1::/48');

/**
 * Whether a webhook may connect to this address: only globally routable unicast. Loopback, private (RFC 1918, ULA),
 * link-local (169.254.169.254 included), CGNAT, multicast, unspecified, broadcast, reserved and the IPv6 forms
 * that embed an IPv4 address (mapped, compatible, NAT64 well-known and local-use, 6to4, Teredo) are refused. The ranges are ipaddr.js's.
 */
export function isPublicAddress(ip: string): boolean {
  if (!ipaddr.isValid(ip)) {
    return false;
  }
  const addr = ipaddr.parse(ip);
  if (addr.kind() === 'ipv6') {
    const v6 = addr as ipaddr.IPv6;
    if (v6.isIPv4MappedAddress()) {
      return isPublicAddress(v6.toIPv4Address().toString());
    }
    if (v6.match(IPV4_COMPATIBLE) || v6.match(NAT64_LOCAL_USE)) {
      return false;
    }
  }
  return addr.range() === 'unicast';
}
