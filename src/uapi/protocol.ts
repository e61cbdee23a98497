// UAPI configuration protocol (spec §9), sans-I/O: one UapiSession per connection.
// Bytes go in through feed()/end(); each call returns the bytes to write back, whether
// to close the connection, and the operations that completed. `set` lines are applied
// to a UapiDevice as they are read, exactly in wireguard-go's order and with its errnos.
//
// Session states (one connection):
//   op       reading an operation line; only "set=1\n" and "get=1\n" are known,
//            anything else closes the connection without a reply.
//   getNext  after "get=1\n": the next byte must be '\n' (reply), else errno=-22.
//   set      reading key=value lines until an empty line (bufio.Scanner rules:
//            a trailing '\r' is dropped, a line of 65536+ bytes is errno=-5).
//   reply    writing a get reply, GET_PEERS_PER_STEP peers per step: one step per
//            feed()/end(), the next ones through resume() (the server calls it once per
//            event-loop turn); input meanwhile waits in the socket model, unread.
//   closed   nothing more is read or written.
//
// The read side reproduces wireguard-go's IpcHandle buffering exactly (a 4096-byte
// bufio.Reader for operation lines; a new bufio.Scanner per `set`, growing from 4096
// to 65536 bytes, fed through that reader), taking "bytes received so far" as what
// its read(2) calls would return. What that decides:
//   - an error mid-`set` replies at once; whatever the scanner had read ahead (for a
//     small request sent in one write: all the rest of it, and anything pipelined
//     after it) is lost, and bytes not yet pulled in are read as new operations
//     (usually unknown, so the connection closes);
//   - a line that cannot fit 65536 bytes with its '\n' is errno=-5 and loses those
//     65536 bytes;
//   - EOF mid-`set` applies a final unterminated line, replies, then closes.
// One deliberate deviation: after a *successful* `set`, bytes read ahead past its
// empty line are kept and processed as the next operation (wireguard-go drops them,
// so a client pipelining `set` + `get` would wait forever there).
// Parsers follow Go's net/netip and strconv as of Go 1.22+ (used by current
// wireguard-go); the Go 1.19 build of v0.0.20220316 is laxer on prefix lengths
// ("/08", "/+8") and IPv6 groups ("00000::"), and resolves endpoint zone names.
// Private and preshared keys never appear in logs or error messages.

import { isZeroKey } from '../crypto/crypto.js';
import { toHex } from '../hex.js';
import { peerLabel } from '../peer-name.js';
import { parseAddress, parsePrefix } from '../protocol/ipaddr.js';
import { errorText } from '../error-text.js';

/** Errno values as wireguard-go writes them (negative; ipc/uapi_unix.go). */
export const UAPI_ERRNO = {
  OK: 0,
  IO: -5, // EIO: read/write failure, line too long
  PROTOCOL: -71, // EPROTO: line without '='
  INVALID: -22, // EINVAL: unknown key, bad value, trailing byte after get=1
  PORT_IN_USE: -98, // EADDRINUSE: listen_port bind or fwmark failure
  UNKNOWN: -55, // ENOANO: any other internal error
} as const;

export interface UapiPeerState {
  publicKey: Uint8Array;
  /** publicKey in hex, when the device keeps it (saves a conversion per peer in a get). */
  publicKeyHex?: string;
  presharedKey: Uint8Array | null;
  /** "1.2.3.4:51820" or "[fd00::1]:51820", null if unknown. */
  endpoint: string | null;
  lastHandshakeTimeSec: number;
  lastHandshakeTimeNsec: number;
  txBytes: number;
  rxBytes: number;
  persistentKeepaliveInterval: number;
  /** Canonical "10.0.0.0/24", insertion order. */
  allowedIps: readonly string[];
}

export interface UapiDeviceState {
  privateKey: Uint8Array | null;
  listenPort: number;
  fwmark: number;
  /** Read as the reply is written (GetReplyWriter): a device may produce each peer's state on demand. */
  peers: Iterable<UapiPeerState>;
}

export class UapiError extends Error {
  constructor(
    readonly errno: number,
    message: string,
  ) {
    super(message);
    this.name = 'UapiError';
  }
}

export interface UapiDevice {
  getState(): UapiDeviceState;
  /** Own public key (to ignore a peer section naming it), or null if no private key. */
  publicKey(): Uint8Array | null;
  /** null = remove; the implementation clamps. */
  setPrivateKey(key: Uint8Array | null): void;
  /** May throw UapiError(-98). */
  setListenPort(port: number): void;
  /** May throw UapiError(-98). */
  setFwmark(mark: number): void;
  replacePeers(): void;
  hasPeer(pub: Uint8Array): boolean;
  createPeer(pub: Uint8Array): void;
  removePeer(pub: Uint8Array): void;
  setPresharedKey(pub: Uint8Array, key: Uint8Array | null): void;
  /** host is 4 or 16 bytes. */
  setEndpoint(pub: Uint8Array, host: Uint8Array, port: number): void;
  setPersistentKeepalive(pub: Uint8Array, seconds: number): void;
  replaceAllowedIps(pub: Uint8Array): void;
  addAllowedIp(pub: Uint8Array, addr: Uint8Array, cidr: number): void;
  removeAllowedIp(pub: Uint8Array, addr: Uint8Array, cidr: number): void;
  /** Called once at the end of each successful or failed set request (e.g. to start handshakes / persist). */
  commit?(): void;
  /** Base64 public key → friendly name, for log lines naming a peer (src/peer-name.ts). */
  readonly peerNames?: ReadonlyMap<string, string>;
}

export type UapiLog = (level: 'error' | 'verbose', msg: string, fields?: object) => void;

export interface UapiRequestResult {
  op: 'get' | 'set';
  errno: number;
}

/** What the caller must do after feed()/end(): write `output` (may be empty), then close if asked. */
export interface UapiStep {
  output: Uint8Array;
  close: boolean;
  requests: UapiRequestResult[];
}

/** bufio.Scanner's MaxScanTokenSize: a set line (with its '\n') must fit in this. */
export const UAPI_MAX_LINE = 65536;
/** An operation line longer than this cannot be valid; wireguard-go would buffer it forever. */
const MAX_OP_LINE = 65536;
/** bufio.Reader's default size and bufio.Scanner's first buffer. */
const READER_SIZE = 4096;
const SCANNER_START_SIZE = 4096;

const NL = 0x0a;
const CR = 0x0d;
const EMPTY = new Uint8Array(0);
const EMPTY_BUFFER = Buffer.alloc(0);

type SessionState = 'op' | 'getNext' | 'set' | 'reply' | 'closed';

/** The peer section being configured, as wireguard-go's ipcSetPeer. */
interface SetContext {
  deviceConfig: boolean;
  peer: Uint8Array | null;
  /** Section ignored: own public key, removed, or update_only on a new peer. */
  dummy: boolean;
  /** The public_key line created the peer. */
  created: boolean;
}

/** An error of one set line; `errno` goes on the wire, `message` to the log. */
class LineError {
  constructor(
    readonly errno: number,
    readonly message: string,
  ) {}
}

export class UapiSession {
  private state: SessionState = 'op';
  private set: SetContext | null = null;
  private out: (string | Buffer)[] = [];
  private requests: UapiRequestResult[] = [];
  private closeRequested = false;
  /** The get reply being written (state 'reply'). */
  private getReply: GetReplyWriter | null = null;
  // The read side of wireguard-go's IpcHandle, byte for byte (see the file comment).
  /** Received from the client, not yet read by the model (the kernel socket buffer). */
  private sock: Buffer = EMPTY_BUFFER;
  /** The client shut down its side: reads past `sock` return EOF. */
  private eof = false;
  /** bufio.Reader's unread bytes (at most READER_SIZE). */
  private rbuf: Buffer = EMPTY_BUFFER;
  /** Operation line read so far (ReadString accumulates across fills). */
  private opAcc: Buffer[] = [];
  private opAccLen = 0;
  /** bufio.Scanner of the current set: buffer (its length is the capacity), window, sticky error. */
  private sBuf: Buffer = EMPTY_BUFFER;
  private sStart = 0;
  private sEnd = 0;
  private sErr: 'eof' | 'toolong' | null = null;

  constructor(
    private readonly device: UapiDevice,
    private readonly log: UapiLog = () => {},
  ) {}

  get closed(): boolean {
    return this.state === 'closed';
  }

  /**
   * Inside an operation: a set begun and not ended, or a get reply not all written. The server
   * lets no other session be fed meanwhile, as wireguard-go holds its IPC lock for an operation
   * (a get never sees half a set, two sets never interleave, no set lands inside a get reply).
   */
  get midOperation(): boolean {
    return this.state === 'set' || this.state === 'reply';
  }

  /** A get reply is being written: call resume() for its next step (and nothing else is read until it ends). */
  get replying(): boolean {
    return this.state === 'reply';
  }

  /** The next step of a get reply; after its last, the input that waited is read as usual. */
  resume(): UapiStep {
    if (this.state === 'reply') this.run();
    return this.flush();
  }

  /** Bytes received from the client. */
  feed(data: Uint8Array): UapiStep {
    if (this.state !== 'closed' && data.byteLength > 0) {
      const chunk = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
      this.sock = this.sock.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.sock, chunk]);
      this.run();
    }
    return this.flush();
  }

  /** The client shut down its side (EOF). Always ends the session. */
  end(): UapiStep {
    if (this.state !== 'closed') {
      this.eof = true;
      this.run(); // every state reaches EOF and closes; a set in progress completes first
    }
    return this.flush();
  }

  /** Ends the session; the next flush() tells the caller to close. */
  private shutdown(): void {
    this.state = 'closed';
    this.sock = this.rbuf = this.sBuf = EMPTY_BUFFER;
    this.opAcc = [];
    this.closeRequested = true;
  }

  private flush(): UapiStep {
    const out = this.out;
    const step: UapiStep = {
      output: out.length === 0 ? EMPTY
        : out.length === 1 && typeof out[0] !== 'string' ? out[0]! // a get reply's step: no copy
        : Buffer.concat(out.map((o) => (typeof o === 'string' ? Buffer.from(o, 'latin1') : o))),
      close: this.closeRequested,
      requests: this.requests,
    };
    this.out = [];
    this.requests = [];
    this.closeRequested = false;
    return step;
  }

  /** Advances until the model would block on a read, or the session closes. */
  private run(): void {
    for (;;) {
      switch (this.state) {
        case 'closed':
          return;
        case 'op': {
          const op = this.readOpLine();
          if (op === 'block') return;
          if (op === 'eof') {
            this.shutdown();
            return;
          }
          if (op === 'set=1\n') {
            this.state = 'set';
            this.set = { deviceConfig: true, peer: null, dummy: false, created: false };
          } else if (op === 'get=1\n') {
            this.state = 'getNext';
          } else {
            this.log('error', 'invalid UAPI operation', { length: op.length });
            this.shutdown();
            return;
          }
          break;
        }
        case 'getNext': {
          if (this.rbuf.length === 0) {
            const r = this.readSocket(READER_SIZE);
            if (r === 'block') return;
            if (r === 'eof') {
              this.shutdown();
              return;
            }
            this.rbuf = r;
          }
          const next = this.rbuf[0];
          this.rbuf = this.rbuf.subarray(1);
          this.state = 'op';
          if (next === NL) {
            this.get();
          } else {
            this.log('error', 'trailing character in UAPI get');
            this.reply('get', UAPI_ERRNO.INVALID);
          }
          break;
        }
        case 'reply': {
          const reply = this.getReply!;
          let errno: number = UAPI_ERRNO.OK;
          try {
            this.out.push(reply.chunk(GET_PEERS_PER_STEP));
            if (!reply.done) return; // the next step comes with resume()
          } catch (err) {
            errno = this.stateUnreadable(err);
          }
          this.getReply = null;
          this.state = 'op';
          this.reply('get', errno);
          break;
        }
        case 'set': {
          const line = this.scanLine();
          if (line === 'block') return;
          if (line === 'eof') {
            this.finishSet(UAPI_ERRNO.OK, false);
          } else if (line === 'toolong') {
            this.log('error', 'failed to read input: line too long');
            this.finishSet(UAPI_ERRNO.IO, false);
          } else {
            const result = this.setLine(line);
            // An error has replied already and dropped the scanner's read-ahead.
            if (result === 'done') this.finishSet(UAPI_ERRNO.OK, true);
          }
          break;
        }
      }
    }
  }

  /** One read(2) of up to max bytes. */
  private readSocket(max: number): Buffer | 'block' | 'eof' {
    if (this.sock.length === 0) return this.eof ? 'eof' : 'block';
    const n = Math.min(max, this.sock.length);
    const got = this.sock.subarray(0, n);
    this.sock = this.sock.subarray(n);
    return got;
  }

  /** bufio.Reader.ReadString('\n'): the line with its '\n'. */
  private readOpLine(): string | 'block' | 'eof' {
    for (;;) {
      const nl = this.rbuf.indexOf(NL);
      if (nl >= 0) {
        this.opAcc.push(this.rbuf.subarray(0, nl + 1));
        this.rbuf = this.rbuf.subarray(nl + 1);
        const line = Buffer.concat(this.opAcc).toString('latin1');
        this.opAcc = [];
        this.opAccLen = 0;
        return line;
      }
      if (this.rbuf.length > 0) {
        this.opAcc.push(this.rbuf);
        this.opAccLen += this.rbuf.length;
        this.rbuf = EMPTY_BUFFER;
        // Not a valid operation whatever follows; wireguard-go would buffer it without bound.
        if (this.opAccLen > MAX_OP_LINE) return 'eof';
      }
      const r = this.readSocket(READER_SIZE);
      if (typeof r === 'string') return r;
      this.rbuf = r;
    }
  }

  /** bufio.Reader.Read(p) with len(p) = want: buffered bytes first, a large read goes direct. */
  private readerRead(want: number): Buffer | 'block' | 'eof' {
    if (this.rbuf.length === 0) {
      if (want >= READER_SIZE) return this.readSocket(want);
      const r = this.readSocket(READER_SIZE);
      if (typeof r === 'string') return r;
      this.rbuf = r;
    }
    const n = Math.min(want, this.rbuf.length);
    const got = this.rbuf.subarray(0, n);
    this.rbuf = this.rbuf.subarray(n);
    return got;
  }

  /**
   * bufio.Scanner.Scan with ScanLines: the next line without '\n' and without a
   * trailing '\r'; 'eof' when input ended; 'toolong' when a line cannot fit
   * UAPI_MAX_LINE bytes. Restartable after 'block'.
   */
  private scanLine(): Buffer | 'block' | 'eof' | 'toolong' {
    for (;;) {
      const atEOF = this.sErr !== null;
      if (this.sEnd > this.sStart || atEOF) {
        const data = this.sBuf.subarray(this.sStart, this.sEnd);
        const nl = data.indexOf(NL);
        if (nl >= 0) {
          this.sStart += nl + 1;
          return dropCR(data.subarray(0, nl));
        }
        if (atEOF && data.length > 0) {
          this.sStart = this.sEnd;
          return dropCR(data);
        }
      }
      if (this.sErr !== null) return this.sErr;
      const cap = this.sBuf.length;
      if (this.sStart > 0 && (this.sEnd === cap || this.sStart > cap / 2)) {
        this.sBuf.copyWithin(0, this.sStart, this.sEnd);
        this.sEnd -= this.sStart;
        this.sStart = 0;
      }
      if (this.sEnd === cap) {
        if (cap >= UAPI_MAX_LINE) {
          this.sErr = 'toolong';
          return 'toolong';
        }
        const grown = Buffer.alloc(cap === 0 ? SCANNER_START_SIZE : Math.min(cap * 2, UAPI_MAX_LINE));
        this.sBuf.copy(grown, 0, this.sStart, this.sEnd);
        this.sEnd -= this.sStart;
        this.sStart = 0;
        this.sBuf = grown;
      }
      const r = this.readerRead(this.sBuf.length - this.sEnd);
      if (r === 'block') return 'block';
      if (r === 'eof') {
        this.sErr = 'eof';
        continue;
      }
      r.copy(this.sBuf, this.sEnd);
      this.sEnd += r.length;
    }
  }

  private reply(op: 'get' | 'set', errno: number): void {
    this.out.push(`errno=${errno}\n\n`);
    this.requests.push({ op, errno });
  }

  private get(): void {
    try {
      this.getReply = new GetReplyWriter(this.device.getState());
    } catch (err) {
      this.reply('get', this.stateUnreadable(err));
      return;
    }
    this.state = 'reply'; // run() writes its first step now
  }

  /** The device failed while its state was read for a get: logged; the errno to reply with. */
  private stateUnreadable(err: unknown): number {
    this.log('error', 'failed to read device state', { error: errorMessage(err) });
    return errnoOf(err, UAPI_ERRNO.UNKNOWN);
  }

  /**
   * Ends the set: commit, reply. wireguard-go drops whatever its scanner read past
   * this point; after a successful set we keep it (keepReadAhead) so a pipelined
   * next operation is answered, where wireguard-go would leave the client waiting.
   */
  private finishSet(errno: number, keepReadAhead: boolean): void {
    if (keepReadAhead && this.sEnd > this.sStart) {
      this.rbuf = Buffer.concat([this.sBuf.subarray(this.sStart, this.sEnd), this.rbuf]);
    }
    this.sBuf = EMPTY_BUFFER;
    this.sStart = this.sEnd = 0;
    this.sErr = null;
    this.set = null;
    this.state = 'op';
    if (this.device.commit) {
      try {
        this.device.commit();
      } catch (err) {
        this.log('error', 'failed to commit configuration', { error: errorMessage(err) });
        if (errno === UAPI_ERRNO.OK) errno = errnoOf(err, UAPI_ERRNO.UNKNOWN);
      }
    }
    this.reply('set', errno);
  }

  /**
   * One line of a set request (without '\n'). Returns 'continue', 'done' (empty
   * line, not yet replied) or 'error' (already replied, state back to op).
   */
  private setLine(raw: Buffer): 'continue' | 'done' | 'error' {
    if (raw.length === 0) return 'done';
    const line = raw.toString('latin1');
    const eq = line.indexOf('=');
    let failure: LineError | null;
    if (eq < 0) {
      failure = new LineError(UAPI_ERRNO.PROTOCOL, 'failed to parse line: no "="');
    } else {
      const key = line.slice(0, eq);
      const value = line.slice(eq + 1);
      try {
        failure = this.applyLine(this.set as SetContext, key, value);
      } catch (err) {
        failure = new LineError(errnoOf(err, UAPI_ERRNO.UNKNOWN), `device error on ${printable(key)}: ${errorMessage(err)}`);
      }
    }
    if (failure === null) return 'continue';
    this.log('error', failure.message, { errno: failure.errno });
    this.finishSet(failure.errno, false);
    return 'error';
  }

  private applyLine(ctx: SetContext, key: string, value: string): LineError | null {
    if (key === 'public_key') {
      ctx.deviceConfig = false;
      return this.selectPeer(ctx, value);
    }
    return ctx.deviceConfig ? this.deviceLine(key, value) : this.peerLine(ctx, key, value);
  }

  private deviceLine(key: string, value: string): LineError | null {
    const dev = this.device;
    switch (key) {
      case 'private_key': {
        const sk = parseHexKey(value);
        if (sk === null) return invalid('failed to set private_key: invalid hex key');
        this.log('verbose', 'UAPI: Updating private key');
        dev.setPrivateKey(isZeroKey(sk) ? null : sk);
        return null;
      }
      case 'listen_port': {
        const port = parseUint(value, 0xffff);
        if (port === null) return invalid(`failed to parse listen_port: ${printable(value)}`);
        this.log('verbose', 'UAPI: Updating listen port');
        return this.deviceCall(UAPI_ERRNO.PORT_IN_USE, 'failed to set listen_port', () => dev.setListenPort(port));
      }
      case 'fwmark': {
        const mark = parseUint(value, 0xffffffff);
        if (mark === null) return invalid(`invalid fwmark: ${printable(value)}`);
        this.log('verbose', 'UAPI: Updating fwmark');
        return this.deviceCall(UAPI_ERRNO.PORT_IN_USE, 'failed to update fwmark', () => dev.setFwmark(mark));
      }
      case 'replace_peers':
        if (value !== 'true') return invalid(`failed to set replace_peers, invalid value: ${printable(value)}`);
        this.log('verbose', 'UAPI: Removing all peers');
        dev.replacePeers();
        return null;
      default:
        return invalid(`invalid UAPI device key: ${printable(key)}`);
    }
  }

  private selectPeer(ctx: SetContext, value: string): LineError | null {
    const pub = parseHexKey(value);
    if (pub === null) return invalid('failed to get peer by public key: invalid hex key');
    const own = this.device.publicKey();
    ctx.peer = pub;
    ctx.dummy = own !== null && equalBytes(own, pub);
    ctx.created = false;
    if (ctx.dummy) return null;
    if (!this.device.hasPeer(pub)) {
      const failed = this.deviceCall(UAPI_ERRNO.INVALID, 'failed to create new peer', () => this.device.createPeer(pub));
      if (failed) return failed;
      ctx.created = true;
      this.log('verbose', 'UAPI: Created peer', peerLabel(pub, this.device.peerNames));
    }
    return null;
  }

  /** Every value is validated even in an ignored section; only live peers are touched. */
  private peerLine(ctx: SetContext, key: string, value: string): LineError | null {
    const dev = this.device;
    const pub = ctx.peer as Uint8Array;
    const live = !ctx.dummy;
    switch (key) {
      case 'update_only':
        if (value !== 'true') return invalid(`failed to set update only, invalid value: ${printable(value)}`);
        if (ctx.created && live) {
          dev.removePeer(pub);
          ctx.dummy = true;
        }
        return null;
      case 'remove':
        if (value !== 'true') return invalid(`failed to set remove, invalid value: ${printable(value)}`);
        if (live) {
          this.log('verbose', 'UAPI: Removing peer', peerLabel(pub, this.device.peerNames));
          dev.removePeer(pub);
        }
        ctx.dummy = true;
        return null;
      case 'preshared_key': {
        const psk = parseHexKey(value);
        if (psk === null) return invalid('failed to set preshared key: invalid hex key');
        if (live) dev.setPresharedKey(pub, isZeroKey(psk) ? null : psk);
        return null;
      }
      case 'endpoint': {
        const ep = parseEndpoint(value);
        if (ep === null) return invalid(`failed to set endpoint ${printable(value)}`);
        if (live) dev.setEndpoint(pub, ep.addr, ep.port);
        return null;
      }
      case 'persistent_keepalive_interval': {
        const secs = parseUint(value, 0xffff);
        if (secs === null) return invalid(`failed to set persistent keepalive interval: ${printable(value)}`);
        if (live) dev.setPersistentKeepalive(pub, secs);
        return null;
      }
      case 'replace_allowed_ips':
        if (value !== 'true') return invalid(`failed to replace allowedips, invalid value: ${printable(value)}`);
        if (live) dev.replaceAllowedIps(pub);
        return null;
      case 'allowed_ip': {
        // "-addr/cidr" removes (wireguard-go 0.0.20250515+); v0.0.20220316 answers -22 to it.
        const remove = value.startsWith('-');
        const prefix = parseAllowedIp(remove ? value.slice(1) : value);
        if (prefix === null) return invalid(`failed to set allowed ip: ${printable(value)}`);
        if (live) {
          if (remove) dev.removeAllowedIp(pub, prefix.addr, prefix.cidr);
          else dev.addAllowedIp(pub, prefix.addr, prefix.cidr);
        }
        return null;
      }
      case 'protocol_version':
        if (value !== '1') return invalid(`invalid protocol version: ${printable(value)}`);
        return null;
      default:
        return invalid(`invalid UAPI peer key: ${printable(key)}`);
    }
  }

  /** Run a device call whose plain (non-UapiError) failures map to `errno`. */
  private deviceCall(errno: number, what: string, fn: () => void): LineError | null {
    try {
      fn();
      return null;
    } catch (err) {
      return new LineError(errnoOf(err, errno), `${what}: ${errorMessage(err)}`);
    }
  }
}

function invalid(message: string): LineError {
  return new LineError(UAPI_ERRNO.INVALID, message);
}

function errnoOf(err: unknown, fallback: number): number {
  return err instanceof UapiError ? err.errno : fallback;
}

/** A device error's message, with anything key-like redacted. */
function errorMessage(err: unknown): string {
  return redact(errorText(err));
}

/** Long hex or base64 runs (a pasted key) replaced: logs never carry key material. */
function redact(s: string): string {
  return s.replace(/[0-9A-Za-z+/=]{32,}/g, '<redacted>');
}

/** ScanLines drops one trailing '\r'. */
function dropCR(line: Buffer): Buffer {
  return line.length > 0 && line[line.length - 1] === CR ? line.subarray(0, line.length - 1) : line;
}

/**
 * A client-supplied string made safe for a log line. Key values are never passed
 * here; anything that could still be a pasted key (a long hex or base64 run) is
 * redacted anyway.
 */
function printable(s: string): string {
  return JSON.stringify(redact(s.length > 64 ? `${s.slice(0, 64)}...` : s));
}

// ---- get reply ------------------------------------------------------------------

const ZERO_KEY_HEX = '0'.repeat(64);

/** Peers a get reply formats per step (≈ 1-1.5 ms of main-thread time; the server writes a step per event-loop turn). */
export const GET_PEERS_PER_STEP = 1000;

/**
 * The get reply without its errno line, in wireguard-go's order, as bytes, a step at a time: the
 * device lines, then up to `max` peers per chunk(), each peer's state read from the device only
 * when its turn comes (a concentrator's 100,000 peers are ≈ 38 MB of reply and ≈ 0.1 s of
 * formatting, which the thread that routes every packet must not spend in one turn). One template
 * per peer, written into one buffer per step (a string per peer joined into one rope made V8
 * flatten 10,000 pieces to encode them: 11-32 ms at 10,000 peers, against 10.5-13 ms).
 */
class GetReplyWriter {
  private readonly peers: Iterator<UapiPeerState>;
  private ahead: IteratorResult<UapiPeerState>;
  private head: string | null;

  constructor(state: UapiDeviceState) {
    let head = '';
    if (state.privateKey !== null && !isZeroKey(state.privateKey)) head += `private_key=${toHex(state.privateKey)}\n`;
    if (state.listenPort !== 0) head += `listen_port=${formatUint(state.listenPort)}\n`;
    if (state.fwmark !== 0) head += `fwmark=${formatUint(state.fwmark)}\n`;
    this.head = head;
    this.peers = state.peers[Symbol.iterator]();
    this.ahead = this.peers.next();
  }

  /** Everything has been written. */
  get done(): boolean {
    return this.head === null && this.ahead.done === true;
  }

  /** The next piece of the reply: the device lines (first time) and up to `max` peers. */
  chunk(max: number): Buffer {
    const w = new AsciiWriter(256 + 420 * max); // a peer is ≈ 380 bytes and ≈ 30 per allowed IP
    if (this.head !== null) {
      w.write(this.head);
      this.head = null;
    }
    for (let n = 0; n < max && this.ahead.done !== true; n++) {
      w.write(peerLines(this.ahead.value));
      this.ahead = this.peers.next();
    }
    return w.bytes();
  }
}

function peerLines(peer: UapiPeerState): string {
  let out = `public_key=${peer.publicKeyHex ?? toHex(peer.publicKey)}\n` +
    `preshared_key=${peer.presharedKey === null ? ZERO_KEY_HEX : toHex(peer.presharedKey)}\nprotocol_version=1\n`;
  if (peer.endpoint !== null) out += `endpoint=${peer.endpoint}\n`;
  out += `last_handshake_time_sec=${formatUint(peer.lastHandshakeTimeSec)}\n` +
    `last_handshake_time_nsec=${formatUint(peer.lastHandshakeTimeNsec)}\n` +
    `tx_bytes=${formatUint(peer.txBytes)}\nrx_bytes=${formatUint(peer.rxBytes)}\n` +
    `persistent_keepalive_interval=${formatUint(peer.persistentKeepaliveInterval)}\n`;
  for (const ip of peer.allowedIps) out += `allowed_ip=${ip}\n`;
  return out;
}

/** ASCII text appended into one growing buffer (every character of a get reply is ASCII). */
class AsciiWriter {
  private buf: Buffer;
  private len = 0;
  constructor(capacity: number) {
    this.buf = Buffer.allocUnsafe(capacity);
  }
  write(s: string): void {
    if (this.len + s.length > this.buf.length) {
      const grown = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.len + s.length));
      this.buf.copy(grown, 0, 0, this.len);
      this.buf = grown;
    }
    this.len += this.buf.write(s, this.len, 'latin1');
  }
  bytes(): Buffer {
    return this.buf.subarray(0, this.len);
  }
}

/** Decimal without exponent notation, like Go's %d. */
function formatUint(n: number): string {
  return Number.isSafeInteger(n) ? String(n) : BigInt(Math.trunc(n)).toString();
}

// ---- value parsers (Go semantics) ---------------------------------------------

/** Exactly 64 hex digits, either case (Go's hex.DecodeString into [32]byte). */
export function parseHexKey(s: string): Uint8Array | null {
  if (s.length !== 64) return null;
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++) {
    const hi = hexDigit(s.charCodeAt(2 * i));
    const lo = hexDigit(s.charCodeAt(2 * i + 1));
    if (hi < 0 || lo < 0) return null;
    out[i] = (hi << 4) | lo;
  }
  return out;
}

function hexDigit(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  return -1;
}

/** strconv.ParseUint(s, 10, bits): ASCII digits only (leading zeros fine), no sign, no spaces. */
export function parseUint(s: string, max: number): number | null {
  if (s.length === 0) return null;
  let first = -1;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return null;
    if (first < 0 && c !== 0x30) first = i;
  }
  if (first < 0) return 0;
  if (s.length - first > 16) return null;
  const n = Number(s.slice(first));
  return n <= max ? n : null;
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let acc = 0;
  for (let i = 0; i < a.length; i++) acc |= a[i] ^ b[i];
  return acc === 0;
}

// Endpoint and prefix text use the project's strict address parser (src/protocol/ipaddr.ts),
// which accepts and rejects what Go's net/netip does (no leading zeros in IPv4 fields, one
// "::", at most 4 hex digits per group, canonical prefix lengths).

/** netip.ParseAddrPort: "a.b.c.d:port" or "[v6(%zone)]:port"; the zone is accepted and dropped. */
export function parseEndpoint(s: string): { addr: Uint8Array; port: number } | null {
  const i = s.lastIndexOf(':');
  if (i < 0) return null;
  let ip = s.slice(0, i);
  const portStr = s.slice(i + 1);
  if (ip.length === 0 || portStr.length === 0) return null;
  const bracketed = ip[0] === '[';
  if (bracketed) {
    if (ip.length < 2 || ip[ip.length - 1] !== ']') return null;
    ip = ip.slice(1, -1);
    const pct = ip.indexOf('%');
    if (pct >= 0) {
      if (pct === ip.length - 1) return null; // empty zone
      ip = ip.slice(0, pct);
    }
  }
  const port = parseUint(portStr, 0xffff);
  if (port === null) return null;
  const addr = parseAddress(ip);
  if (addr === null) return null;
  if (bracketed !== (addr.length === 16)) return null;
  return { addr, port };
}

/** netip.ParsePrefix (Go 1.22+): no zone, prefix length in canonical decimal. */
export const parseAllowedIp = parsePrefix;
