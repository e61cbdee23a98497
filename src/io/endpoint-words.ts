// Endpoint ⇄ the 12 endpoint words of a ring slot (src/dataplane/layout.ts, M_EP_FAMILY ..
// M_EP_SRC+3), the form native/udp.c reads (send rings: where a sealed message goes and from
// which local address) and writes (RECV ring: who sent a datagram and the local address it
// reached). Addresses are raw network-order bytes laid in the words' memory, so the words are
// built through a byte view of their own buffer, never by arithmetic.
//
// Main precomputes an endpoint's words once (endpointWordsOf) and copies 12 Int32s per packet.
import { formatAddress } from '../protocol/ipaddr.js';
import type { Endpoint } from '../protocol/endpoint.js';
import { EP_WORDS, M_EP_ADDR, M_EP_FAMILY, M_EP_PORT, M_EP_SCOPE, M_EP_SRC, M_EP_SRC_IFINDEX } from '../dataplane/layout.js';

// Word offsets inside the block.
const W_FAMILY = 0;
const W_PORT = M_EP_PORT - M_EP_FAMILY; // 1
const W_ADDR = M_EP_ADDR - M_EP_FAMILY; // 2..5
const W_SCOPE = M_EP_SCOPE - M_EP_FAMILY; // 6
const W_SRC_IFINDEX = M_EP_SRC_IFINDEX - M_EP_FAMILY; // 7
const W_SRC = M_EP_SRC - M_EP_FAMILY; // 8..11
/** Words of the remote part (family, port, address, scope). */
const REMOTE_WORDS = W_SRC_IFINDEX; // 7

/** A sticky source on its own: the local address a peer's datagram reached and the interface it came in on. */
export interface StickySource {
  /** 4 or 16 raw bytes (the endpoint's family); all zero = unspecified. */
  readonly addr: Uint8Array;
  /** Interface index (0 = any). */
  readonly ifindex: number;
}

/**
 * An Endpoint with the IPv6 scope id (zone) of a link-local address, which protocol/endpoint.ts's
 * Endpoint does not have yet: endpointFromWords attaches it when non-zero, endpointWords and
 * NativeBind.sendTo read it.
 */
export type ScopedEndpoint = Endpoint & { readonly scope?: number };

/**
 * The 12 endpoint words of `ep`: remote family, port, address, scope (ScopedEndpoint), and
 * its sticky source `ep.src` / `ep.srcIfindex` unless `src` is given (null = none). Compute once per
 * Endpoint object and copy.
 */
export function endpointWords(ep: Endpoint, src?: StickySource | null): Int32Array {
  const w = new Int32Array(EP_WORDS);
  const bytes = new Uint8Array(w.buffer);
  const alen = ep.family === 4 ? 4 : 16;
  w[W_FAMILY] = ep.family;
  w[W_PORT] = ep.port;
  bytes.set(ep.bytes.subarray(0, alen), W_ADDR * 4);
  w[W_SCOPE] = (ep as ScopedEndpoint).scope ?? 0;
  const addr = src === undefined ? ep.src : src?.addr;
  const ifindex = src === undefined ? ep.srcIfindex ?? 0 : src?.ifindex ?? 0;
  if (addr && addr.length === alen) {
    w[W_SRC_IFINDEX] = ifindex;
    bytes.set(addr, W_SRC * 4);
  }
  return w;
}

const cache = new WeakMap<Endpoint, Int32Array>();

/** endpointWords(ep), computed once per Endpoint object (a roam makes a new one) and shared: do not modify. */
export function endpointWordsOf(ep: Endpoint): Int32Array {
  let w = cache.get(ep);
  if (w === undefined) {
    w = endpointWords(ep);
    cache.set(ep, w);
  }
  return w;
}

/** Writes `ep`'s words at meta[base..base+12) (base = slot * META_WORDS + M_EP_FAMILY). Prefer copying precomputed words. */
export function writeEndpointWords(meta: Int32Array, base: number, ep: Endpoint, src?: StickySource | null): void {
  meta.set(endpointWords(ep, src), base);
}

/** Clears the block: no endpoint (family 0; sendSlots will not send such a slot). */
export function clearEndpointWords(meta: Int32Array, base: number): void {
  meta.fill(0, base, base + EP_WORDS);
}

/** All 12 words at meta[base..) equal `words` (same remote endpoint and same source). */
export function endpointWordsEqual(meta: Int32Array, base: number, words: Int32Array): boolean {
  for (let i = 0; i < EP_WORDS; i++) if (meta[base + i] !== words[i]) return false;
  return true;
}

/** The remote part (family, port, address, scope) at meta[base..) equals that of `words`: the same sender. */
export function remoteWordsEqual(meta: Int32Array, base: number, words: Int32Array): boolean {
  for (let i = 0; i < REMOTE_WORDS; i++) if (meta[base + i] !== words[i]) return false;
  return true;
}

/** The source part (interface index and local address) at meta[base..) equals that of `words`. */
export function sourceWordsEqual(meta: Int32Array, base: number, words: Int32Array): boolean {
  for (let i = REMOTE_WORDS; i < EP_WORDS; i++) if (meta[base + i] !== words[i]) return false;
  return true;
}

/** Words copied out of a (shared) meta array, and their bytes: a view on a SharedArrayBuffer costs ≈ 1 µs to create, a copy of four words nothing. */
const scratchWords = new Int32Array(4);
const scratchBytes = new Uint8Array(scratchWords.buffer);

function addrBytes(meta: Int32Array, wordIndex: number, len: number): Uint8Array {
  for (let i = 0; i < len >> 2; i++) scratchWords[i] = meta[wordIndex + i]!;
  return scratchBytes.slice(0, len);
}

/**
 * The endpoint in the words at meta[base..) (a fresh object), or null (family neither 4 nor 6):
 * the remote address and port, and the sticky source (`src`, `srcIfindex`) when the source words
 * are non-zero, and the scope (ScopedEndpoint) when non-zero: endpointWords(result) gives the same
 * words back (for words written by recvSlots, which sets a source address whenever it sets an index).
 */
export function endpointFromWords(meta: Int32Array, base: number): ScopedEndpoint | null {
  return fromWords(meta, base, true);
}

/** Only the remote part of the words at meta[base..) (address, port, scope): no sticky source. Null when no endpoint. */
export function remoteEndpointFromWords(meta: Int32Array, base: number): ScopedEndpoint | null {
  return fromWords(meta, base, false);
}

/** One object literal per shape: spreading a finished endpoint into a new one costs ≈ 1.4 µs, this ≈ 0.2. */
function fromWords(meta: Int32Array, base: number, withSource: boolean): ScopedEndpoint | null {
  const family = meta[base + W_FAMILY];
  if (family !== 4 && family !== 6) return null;
  const bytes = addrBytes(meta, base + W_ADDR, family === 4 ? 4 : 16);
  const address = formatAddress(bytes);
  const port = meta[base + W_PORT]! & 0xffff;
  const scope = meta[base + W_SCOPE]!;
  const src = withSource ? sourceFromWords(meta, base) : null;
  if (src === null) return scope !== 0 ? { address, port, family, bytes, scope } : { address, port, family, bytes };
  const srcIfindex = src.ifindex;
  return scope !== 0 ? { address, port, family, bytes, src: src.addr, srcIfindex, scope } : { address, port, family, bytes, src: src.addr, srcIfindex };
}

/** The sticky source in the words at meta[base..) (the local address a received datagram reached), or null when all zero. */
export function sourceFromWords(meta: Int32Array, base: number): StickySource | null {
  const family = meta[base + W_FAMILY];
  if (family !== 4 && family !== 6) return null;
  const n = family === 4 ? 1 : 4;
  let any = 0;
  for (let i = 0; i < n; i++) any |= meta[base + W_SRC + i]!;
  if (any === 0) return null;
  return { addr: addrBytes(meta, base + W_SRC, family === 4 ? 4 : 16), ifindex: meta[base + W_SRC_IFINDEX]! };
}
