// How log lines name a peer, everywhere (engine, device, UAPI): `peer` is its public key in
// base64, the form wg(8) and configuration files show, and `friendly_name` is added when the
// configuration names the peer (`# friendly_name = …` in a [Peer] section, the same name the
// metrics carry). Public keys only: private and preshared keys never go through here.

/** The fields that name a peer in a log line (a type, not an interface: it is passed as log fields). */
export type PeerLabel = { peer: string; friendly_name?: string };

/** Base64 of a public key (44 characters). */
export function peerKeyBase64(publicKey: Uint8Array): string {
  return Buffer.from(publicKey.buffer, publicKey.byteOffset, publicKey.byteLength).toString('base64');
}

/** The log fields of the peer with `publicKey`; `friendlyNames` maps base64 public keys to names. */
export function peerLabel(publicKey: Uint8Array, friendlyNames?: ReadonlyMap<string, string>): PeerLabel {
  const peer = peerKeyBase64(publicKey);
  const name = friendlyNames?.get(peer);
  return name === undefined ? { peer } : { peer, friendly_name: name };
}
