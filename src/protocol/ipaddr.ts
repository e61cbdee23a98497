// Text forms of IP addresses and prefixes for UAPI and configuration (spec §8, §9):
// parseAddress / formatAddress / parsePrefix / formatPrefix. Pure functions over
// 4-byte (IPv4) and 16-byte (IPv6) big-endian arrays.
//
// Parsing is strict: IPv4 is exactly four decimal octets 0..255 without leading
// zeros (as inet_pton and Go's netip); IPv6 is RFC 4291 text (1..4 hex digits per
// group, at most one "::", optional trailing dotted quad), case-insensitive.
// Zone identifiers ("fe80::1%eth0") are rejected. No surrounding whitespace.
// A prefix needs the "/": "10.0.0.1" alone is not a prefix. The cidr is decimal
// without leading zeros or sign ("/08", "/+8" rejected), at most 32 / 128.
// parsePrefix returns the address as written (host bits kept); AllowedIPs.insert and
// formatPrefix mask them.
//
// Formatting: IPv6 follows RFC 5952 (lowercase, no leading zeros, the first longest
// run of two or more zero groups becomes "::"), which is what node's URL prints;
// IPv4-mapped addresses (::ffff:0:0/96) use the mixed form "::ffff:1.2.3.4" as RFC
// 5952 §5, Go's netip (wireguard-go UAPI) and inet_ntop do.

/** Parse a dotted quad in s[start..end) into out[o..o+4); false if malformed. */
function parseV4Into(s: string, start: number, end: number, out: Uint8Array, o: number): boolean {
  let part = 0;
  let value = 0;
  let digits = 0;
  for (let i = start; i <= end; i++) {
    const c = i === end ? 46 /* '.' sentinel */ : s.charCodeAt(i);
    if (c >= 48 && c <= 57) {
      if (digits > 0 && value === 0) return false; // leading zero
      value = value * 10 + (c - 48);
      if (value > 255) return false;
      digits++;
    } else if (c === 46) {
      if (digits === 0 || part > 3) return false;
      out[o + part] = value;
      part++;
      value = 0;
      digits = 0;
    } else {
      return false;
    }
  }
  return part === 4;
}

function parseV6(s: string): Uint8Array | null {
  const out = new Uint8Array(16);
  const groups: number[] = [];
  let gap = -1; // index in groups where "::" sits
  let i = 0;
  const n = s.length;
  if (n < 2) return null;
  if (s.startsWith('::')) {
    gap = 0;
    i = 2;
    if (i === n) return out; // "::"
  } else if (s.charCodeAt(0) === 58) {
    return null; // single leading ':'
  }
  for (;;) {
    // Parse one group starting at i (or a trailing dotted quad).
    let j = i;
    let value = 0;
    while (j < n && j - i < 5) {
      const c = s.charCodeAt(j);
      let d: number;
      if (c >= 48 && c <= 57) d = c - 48;
      else if (c >= 97 && c <= 102) d = c - 87;
      else if (c >= 65 && c <= 70) d = c - 55;
      else break;
      value = value * 16 + d;
      j++;
    }
    if (j < n && s.charCodeAt(j) === 46) {
      // Embedded IPv4: must be the last thing and fit in the last two groups.
      if (groups.length > 6 || !parseV4Into(s, i, n, out, 12)) return null;
      groups.push((out[12]! << 8) | out[13]!, (out[14]! << 8) | out[15]!);
      break;
    }
    const len = j - i;
    if (len === 0 || len > 4) return null;
    groups.push(value);
    if (groups.length > 8) return null;
    if (j === n) break;
    if (s.charCodeAt(j) !== 58) return null;
    // j is ':'
    if (j + 1 < n && s.charCodeAt(j + 1) === 58) {
      if (gap >= 0) return null; // second "::"
      gap = groups.length;
      i = j + 2;
      if (i === n) break; // trailing "::"
    } else {
      i = j + 1;
      if (i === n) return null; // trailing single ':'
    }
  }
  if (gap >= 0) {
    if (groups.length > 7) return null; // "::" must stand for at least one group
    const tail = groups.length - gap;
    for (let g = 0; g < gap; g++) {
      out[2 * g] = groups[g]! >>> 8;
      out[2 * g + 1] = groups[g]! & 0xff;
    }
    for (let g = 0; g < tail; g++) {
      const idx = 8 - tail + g;
      out[2 * idx] = groups[gap + g]! >>> 8;
      out[2 * idx + 1] = groups[gap + g]! & 0xff;
    }
    for (let g = gap; g < 8 - tail; g++) {
      out[2 * g] = 0;
      out[2 * g + 1] = 0;
    }
  } else {
    if (groups.length !== 8) return null;
    for (let g = 0; g < 8; g++) {
      out[2 * g] = groups[g]! >>> 8;
      out[2 * g + 1] = groups[g]! & 0xff;
    }
  }
  return out;
}

/** Parse an IPv4 (4 bytes) or IPv6 (16 bytes) address; null if malformed. */
export function parseAddress(s: string): Uint8Array | null {
  if (s.indexOf(':') >= 0) return parseV6(s);
  const out = new Uint8Array(4);
  return parseV4Into(s, 0, s.length, out, 0) ? out : null;
}

/** Parse "addr/cidr" (address not masked); null on anything malformed. */
export function parsePrefix(s: string): { addr: Uint8Array; cidr: number } | null {
  const slash = s.indexOf('/');
  if (slash < 0) return null;
  const addr = parseAddress(s.slice(0, slash));
  if (addr === null) return null;
  const bits = s.slice(slash + 1);
  if (!/^(0|[1-9][0-9]{0,2})$/.test(bits)) return null;
  const cidr = Number(bits);
  if (cidr > addr.length * 8) return null;
  return { addr, cidr };
}

/** Canonical text of a 4- or 16-byte address. */
export function formatAddress(addr: Uint8Array): string {
  if (addr.length === 4) return `${addr[0]}.${addr[1]}.${addr[2]}.${addr[3]}`;
  if (addr.length !== 16) throw new RangeError(`address must be 4 or 16 bytes, got ${addr.length}`);
  let mapped = addr[10] === 0xff && addr[11] === 0xff;
  for (let i = 0; mapped && i < 10; i++) if (addr[i] !== 0) mapped = false;
  if (mapped) return `::ffff:${addr[12]}.${addr[13]}.${addr[14]}.${addr[15]}`;
  // First longest run of >= 2 zero groups.
  let bestStart = -1;
  let bestLen = 1;
  for (let g = 0; g < 8; ) {
    if (addr[2 * g] === 0 && addr[2 * g + 1] === 0) {
      let e = g;
      while (e < 8 && addr[2 * e] === 0 && addr[2 * e + 1] === 0) e++;
      if (e - g > bestLen) {
        bestStart = g;
        bestLen = e - g;
      }
      g = e;
    } else {
      g++;
    }
  }
  let out = '';
  for (let g = 0; g < 8; g++) {
    if (g === bestStart) {
      out += '::';
      g += bestLen - 1;
      continue;
    }
    if (out.length > 0 && !out.endsWith(':')) out += ':';
    out += ((addr[2 * g]! << 8) | addr[2 * g + 1]!).toString(16);
  }
  return out;
}

/** Canonical "addr/cidr" with host bits masked: "10.0.0.0/24", "fd00::/64". Throws RangeError on a bad length or cidr. */
export function formatPrefix(addr: Uint8Array, cidr: number): string {
  const maxBits = addr.length === 4 ? 32 : addr.length === 16 ? 128 : -1;
  if (maxBits < 0) throw new RangeError(`address must be 4 or 16 bytes, got ${addr.length}`);
  if (!Number.isInteger(cidr) || cidr < 0 || cidr > maxBits) {
    throw new RangeError(`cidr must be an integer in 0..${maxBits}, got ${cidr}`);
  }
  const masked = new Uint8Array(addr.length);
  for (let i = 0; i < addr.length; i++) {
    const bits = cidr - 8 * i;
    masked[i] = bits >= 8 ? addr[i]! : bits <= 0 ? 0 : addr[i]! & (0xff << (8 - bits));
  }
  return `${formatAddress(masked)}/${cidr}`;
}
