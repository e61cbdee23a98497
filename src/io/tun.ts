// The Linux TUN device behind a small interface, so the native addon can be swapped
// (shared/spec/wireguard-protocol.md §10 "TUN (Linux)", §8 MTU).
//
// Creation. The addon (@xiaobaidadada/node-tuntap2-wintun 3.0.2) issues TUNSETIFF with
// IFF_TUN|IFF_NO_PI and an *empty* name, so the kernel picks `tunN`. Node cannot open an
// rtnetlink socket or issue SIOCSIFNAME, so createTun renames the fresh link while it is
// still down: open /dev/net/tun (O_RDWR, blocking) → tuntapInit → `ip link set dev tunN
// name IFNAME` → SIOCSIFMTU. A fresh TUN link is always down, and renaming needs it down.
// Passing the name into TUNSETIFF would remove the rename step; that needs a patched addon.
//
// The race: the name is checked before the link is created, but another process can
// create IFNAME between that check and the rename. The rename is atomic in the kernel,
// so that process wins and we fail cleanly with ERR_TUN_NAME_TAKEN (and delete our
// tunN); nothing is half-configured. For a short moment the link is also visible to
// rtnetlink listeners (udev, NetworkManager) as `tunN` before it becomes IFNAME.
//
// On any failure after /dev/net/tun was opened, the half-made link is deleted by name
// while we still hold the fd (so the name is certainly ours), then the fd is closed.
//
// Use of the fd. It stays blocking: read it with fs.readSync and write it with
// fs.writeSync from worker threads (one read = one IP packet, one write = one packet;
// shared/notes/node-dataplane.md §6). close() alone does not wake a worker blocked in
// readSync (the read holds its own file reference); deleting the link does: the blocked
// read then fails with EFAULT and later reads/writes fail too. Closing the last fd of a
// non-persistent TUN deletes the link.
//
// Whether a link exists is read from /proc/self/net/dev, which always reflects the
// network namespace of this process; /sys/class/net is only right when sysfs was
// mounted in that namespace (`ip netns exec` remounts it, `unshare -n` does not).

import fs from 'node:fs';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';

export interface TunDevice {
  readonly name: string;
  readonly fd: number;
  mtu(): number;
  setMtu(mtu: number): void;
  /** true while the kernel link exists */
  exists(): boolean;
  close(): void;
}

export type TunErrorCode =
  | 'ERR_TUN_NAME_INVALID' // not a valid Linux interface name
  | 'ERR_TUN_NAME_TAKEN' // a link with that name exists already
  | 'ERR_TUN_MTU_INVALID' // outside 68..65535 or not an integer
  | 'ERR_TUN_UNAVAILABLE' // no /dev/net/tun, no addon, or no `ip`
  | 'ERR_TUN_PERMISSION' // needs CAP_NET_ADMIN
  | 'ERR_TUN_FD_INVALID' // an inherited fd that is not this TUN device
  | 'ERR_TUN_SETUP'; // any other failure while creating or configuring

export class TunError extends Error {
  readonly code: TunErrorCode;
  constructor(code: TunErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TunError';
    this.code = code;
  }
}

/** Linux IFNAMSIZ: 16 bytes including the terminating NUL. */
export const IFNAMSIZ = 16;
/** dev->min_mtu / max_mtu of a TUN device (ETH_MIN_MTU, MAX_MTU in drivers/net/tun.c). */
export const TUN_MIN_MTU = 68;
export const TUN_MAX_MTU = 65535;

const TUN_PATH = '/dev/net/tun';
const IP_TIMEOUT_MS = 5_000;
const WATCH_INTERVAL_MS = 1_000;

/**
 * Why `name` cannot be a Linux interface name, or null if it can. Kernel rules
 * (dev_valid_name): 1..15 bytes, not "." or "..", no '/', ':' or whitespace. Stricter
 * here: printable ASCII only, and no '%' (the kernel would treat "wg%d" as a template
 * and pick another name).
 */
export function ifnameProblem(name: string): string | null {
  if (name.length === 0) return 'it is empty';
  if (name.length > IFNAMSIZ - 1) return `it is longer than ${IFNAMSIZ - 1} characters`;
  if (name === '.' || name === '..') return 'it cannot be "." or ".."';
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c <= 0x20 || c >= 0x7f) return 'it may contain only printable ASCII without whitespace';
    if (c === 0x2f /* / */ || c === 0x3a /* : */ || c === 0x25 /* % */) {
      return `it cannot contain '${name[i]}'`;
    }
  }
  return null;
}

interface TuntapAddon {
  tuntapInit(fd: number, isTap: boolean): string;
  tuntapSetMtu(name: string, mtu: number): number;
  tuntapGetMtu(name: string): number;
}

let addon: TuntapAddon | undefined;

function loadAddon(): TuntapAddon {
  if (addon === undefined) {
    const require = createRequire(import.meta.url);
    try {
      addon = require('@xiaobaidadada/node-tuntap2-wintun/build/Release/tuntap2Addon.node') as TuntapAddon;
    } catch (err) {
      throw new TunError('ERR_TUN_UNAVAILABLE', `TUN addon could not be loaded: ${errMessage(err)}`, { cause: err });
    }
  }
  return addon;
}

let ipPath: string | undefined;

/** The `ip` binary; PATH of a non-root shell often lacks /usr/sbin. */
function ipCommand(): string {
  if (ipPath === undefined) {
    ipPath = ['/usr/sbin/ip', '/sbin/ip', '/usr/bin/ip', '/bin/ip'].find((p) => fs.existsSync(p)) ?? 'ip';
  }
  return ipPath;
}

/** Runs `ip ARGS`; on failure throws an Error whose message is ip's stderr. */
function runIp(args: string[]): void {
  try {
    execFileSync(ipCommand(), args, { stdio: ['ignore', 'ignore', 'pipe'], timeout: IP_TIMEOUT_MS });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: Buffer };
    if (e.code === 'ENOENT') {
      throw new TunError('ERR_TUN_UNAVAILABLE', "the 'ip' command (iproute2) is needed to name the TUN link", { cause: err });
    }
    const stderr = e.stderr?.toString().trim();
    throw new Error(stderr ? stderr : errMessage(err), { cause: err });
  }
}

/** Whether a link called `name` exists in this process's network namespace. */
export function linkExists(name: string): boolean {
  let text: string;
  try {
    text = fs.readFileSync('/proc/self/net/dev', 'latin1');
  } catch {
    return fs.existsSync(`/sys/class/net/${name}`);
  }
  // Lines after the two header lines look like "  wg0: 123 4 0 ...".
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (colon > 0 && line.slice(0, colon).trim() === name) return true;
  }
  return false;
}

function checkName(name: string): void {
  const problem = ifnameProblem(name);
  if (problem !== null) {
    throw new TunError('ERR_TUN_NAME_INVALID', `invalid interface name ${JSON.stringify(name)}: ${problem}`);
  }
}

function checkMtu(mtu: number): void {
  if (!Number.isInteger(mtu) || mtu < TUN_MIN_MTU || mtu > TUN_MAX_MTU) {
    throw new TunError('ERR_TUN_MTU_INVALID', `invalid MTU ${mtu}: must be an integer from ${TUN_MIN_MTU} to ${TUN_MAX_MTU}`);
  }
}

function errMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Wraps an addon (errno) failure into a TunError. */
function addonError(what: string, err: unknown): TunError {
  if (err instanceof TunError) return err;
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'EPERM' || code === 'EACCES') {
    return new TunError('ERR_TUN_PERMISSION', `${what}: permission denied (CAP_NET_ADMIN is needed)`, { cause: err });
  }
  return new TunError('ERR_TUN_SETUP', `${what}: ${errMessage(err)}`, { cause: err });
}

class LinuxTun implements TunDevice {
  #closed = false;

  constructor(
    readonly fd: number,
    readonly name: string,
  ) {}

  mtu(): number {
    try {
      return loadAddon().tuntapGetMtu(this.name);
    } catch (err) {
      throw addonError(`reading the MTU of ${this.name}`, err);
    }
  }

  setMtu(mtu: number): void {
    checkMtu(mtu);
    try {
      loadAddon().tuntapSetMtu(this.name, mtu);
    } catch (err) {
      throw addonError(`setting the MTU of ${this.name} to ${mtu}`, err);
    }
  }

  exists(): boolean {
    return linkExists(this.name);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    fs.closeSync(this.fd);
  }
}

/**
 * Creates the TUN link `name` (down, no addresses) with the given MTU and returns it
 * with its blocking fd. Throws a TunError; on failure nothing is left behind.
 */
export function createTun(name: string, mtu: number): TunDevice {
  checkName(name);
  checkMtu(mtu);
  if (linkExists(name)) {
    throw new TunError('ERR_TUN_NAME_TAKEN', `interface ${name} already exists`);
  }
  const tuntap = loadAddon();

  let fd: number;
  try {
    fd = fs.openSync(TUN_PATH, fs.constants.O_RDWR);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENODEV' || code === 'ENXIO') {
      throw new TunError('ERR_TUN_UNAVAILABLE', `${TUN_PATH} is missing (load the tun module, or give the container the device)`, { cause: err });
    }
    if (code === 'EACCES' || code === 'EPERM') {
      throw new TunError('ERR_TUN_PERMISSION', `cannot open ${TUN_PATH}: permission denied (CAP_NET_ADMIN is needed)`, { cause: err });
    }
    throw new TunError('ERR_TUN_SETUP', `cannot open ${TUN_PATH}: ${errMessage(err)}`, { cause: err });
  }

  let linkName: string | null = null; // the name our link has right now, once it exists
  try {
    try {
      linkName = tuntap.tuntapInit(fd, false);
    } catch (err) {
      throw addonError('creating the TUN device', err);
    }
    if (linkName !== name) {
      try {
        runIp(['link', 'set', 'dev', linkName, 'name', name]);
      } catch (err) {
        if (err instanceof TunError) throw err;
        if (/File exists/i.test(errMessage(err))) {
          throw new TunError('ERR_TUN_NAME_TAKEN', `interface ${name} already exists`, { cause: err });
        }
        throw new TunError('ERR_TUN_SETUP', `renaming ${linkName} to ${name} failed: ${errMessage(err)}`, { cause: err });
      }
      linkName = name;
    }
    const dev = new LinuxTun(fd, name);
    dev.setMtu(mtu);
    return dev;
  } catch (err) {
    if (linkName !== null) {
      try {
        runIp(['link', 'delete', 'dev', linkName]);
      } catch {
        // Closing the fd below removes a non-persistent TUN link anyway.
      }
    }
    try {
      fs.closeSync(fd);
    } catch {
      // Already reporting the first failure.
    }
    throw err instanceof TunError ? err : addonError(`creating ${name}`, err);
  }
}

/**
 * Wraps an inherited TUN fd (WG_TUN_FD). Checks, where /proc allows, that the fd is a
 * TUN device attached to the link `name`.
 */
export function openTunFromFd(fd: number, name: string): TunDevice {
  checkName(name);
  if (!Number.isInteger(fd) || fd < 0) {
    throw new TunError('ERR_TUN_FD_INVALID', `invalid TUN fd ${fd}`);
  }
  let info: string;
  try {
    info = fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'latin1');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      // Either the fd is not open or /proc is not mounted; fstat tells which.
      let isChar: boolean;
      try {
        isChar = fs.fstatSync(fd).isCharacterDevice();
      } catch (statErr) {
        throw new TunError('ERR_TUN_FD_INVALID', `TUN fd ${fd} is not open`, { cause: statErr });
      }
      if (!isChar) throw new TunError('ERR_TUN_FD_INVALID', `fd ${fd} is not a TUN device`);
      return new LinuxTun(fd, name);
    }
    throw new TunError('ERR_TUN_FD_INVALID', `cannot inspect fd ${fd}: ${errMessage(err)}`, { cause: err });
  }
  // drivers/net/tun.c tun_chr_show_fdinfo prints "iff:\t<name>" (empty once detached).
  const m = /^iff:\t(.*)$/m.exec(info);
  if (m === null) throw new TunError('ERR_TUN_FD_INVALID', `fd ${fd} is not a TUN device`);
  if (m[1] === '') throw new TunError('ERR_TUN_FD_INVALID', `TUN fd ${fd} is not attached to a link (was it deleted?)`);
  if (m[1] !== name) {
    throw new TunError('ERR_TUN_FD_INVALID', `TUN fd ${fd} belongs to ${m[1]}, not ${name}`);
  }
  return new LinuxTun(fd, name);
}

/**
 * Calls onGone once, within about a second, after the link `name` disappears (for
 * example `ip link delete`, as wg-quick down does). Polls every second on an unref'd
 * timer, so it never keeps the process alive. Returns a function that stops the watch.
 */
export function watchTunRemoval(name: string, onGone: () => void): () => void {
  const timer = setInterval(() => {
    if (!linkExists(name)) {
      clearInterval(timer);
      onGone();
    }
  }, WATCH_INTERVAL_MS);
  timer.unref();
  return () => clearInterval(timer);
}
