// The load generator's Crypto: src/crypto/crypto.ts's nodeCrypto with X25519 made cheaper for
// thousands of one-shot handshakes. nodeCrypto caches imported KeyObjects per Uint8Array
// object, which never hits for the generator's keys: every ephemeral is new, and noise.ts
// copies it into the handshake state before the response's DH. Here ephemerals come straight
// are imported once when generated, and KeyObjects are cached by key *content* in a bounded
// insertion-ordered map, so the ephemeral generated for an initiation is reused for the DHs
// of its response. Everything else (hashes, AEADs, MACs) is nodeCrypto's.
// Generator side only: the daemons under test use their own crypto.

import { createPrivateKey, createPublicKey, diffieHellman, type KeyObject } from 'node:crypto';
import { KEY_LEN } from '../../src/constants.js';
import { type Crypto, nodeCrypto } from '../../src/crypto/crypto.js';

interface PrivateEntry {
  key: KeyObject;
  publicKey: Uint8Array;
}

const toB64u = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64url');
const fromB64u = (s: string): Uint8Array => {
  const b = Buffer.from(s, 'base64url');
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
};

/** A bounded map that forgets its oldest entries. */
class BoundedCache<V> {
  private readonly map = new Map<string, V>();
  constructor(private readonly max: number) {}
  get(k: string): V | undefined {
    return this.map.get(k);
  }
  set(k: string, v: V): void {
    if (this.map.size >= this.max) {
      const oldest = this.map.keys().next();
      if (oldest.done !== true) this.map.delete(oldest.value);
    }
    this.map.set(k, v);
  }
  clear(): void {
    this.map.clear();
  }
}

export interface CachingCrypto extends Crypto {
  /** Drops every cached key (call when done: the cache holds private keys). */
  clearCache(): void;
}

/** nodeCrypto with content-keyed X25519 KeyObject caches of at most `maxEntries` keys each. */
export function cachingCrypto(maxEntries = 1 << 16): CachingCrypto {
  const privates = new BoundedCache<PrivateEntry>(maxEntries);
  const publics = new BoundedCache<KeyObject>(maxEntries);

  const privateEntry = (k: Uint8Array): PrivateEntry => {
    if (k.length !== KEY_LEN) throw new RangeError(`X25519 private key must be ${KEY_LEN} bytes`);
    const id = toB64u(k);
    let e = privates.get(id);
    if (e === undefined) {
      const key = createPrivateKey({ key: { kty: 'OKP', crv: 'X25519', d: id, x: '' }, format: 'jwk' });
      e = { key, publicKey: fromB64u(createPublicKey(key).export({ format: 'jwk' }).x!) };
      privates.set(id, e);
    }
    return e;
  };

  const publicKeyObject = (k: Uint8Array): KeyObject => {
    if (k.length !== KEY_LEN) throw new RangeError(`X25519 public key must be ${KEY_LEN} bytes`);
    const id = toB64u(k);
    let key = publics.get(id);
    if (key === undefined) {
      key = createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: id }, format: 'jwk' });
      publics.set(id, key);
    }
    return key;
  };

  return {
    ...nodeCrypto,

    generatePrivateKey(): Uint8Array {
      // Random bytes + import rather than generateKeyPairSync: on Node 20, exporting (as JWK) a
      // key made by generateKeyPairSync can self-deadlock when a GC inside the export finalises
      // the generating job, which shares the key's mutex (seen here after a few hundred keys).
      const d = nodeCrypto.generatePrivateKey();
      privateEntry(d);
      return d;
    },

    publicKey(privateKey: Uint8Array): Uint8Array {
      return privateEntry(privateKey).publicKey.slice();
    },

    dh(privateKey: Uint8Array, publicKey: Uint8Array): Uint8Array | null {
      let shared: Buffer;
      try {
        shared = diffieHellman({ privateKey: privateEntry(privateKey).key, publicKey: publicKeyObject(publicKey) });
      } catch {
        return null; // all-zero result: a low-order peer key
      }
      let acc = 0;
      for (const b of shared) acc |= b;
      return acc === 0 ? null : new Uint8Array(shared.buffer, shared.byteOffset, shared.byteLength);
    },

    clearCache(): void {
      privates.clear();
      publics.clear();
    },
  };
}
