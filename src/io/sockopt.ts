// Socket options Node.js dgram lacks, through wirepool's small native helper
// (native/sockopt.c, built by `npm ci`): SO_MARK for wg(8)'s fwmark.
import { createRequire } from 'node:module';
import type dgram from 'node:dgram';

interface Native { setMark(fd: number, mark: number): number }
let native: Native | null | undefined;

function load(): Native | null {
  if (native === undefined) {
    try {
      native = createRequire(import.meta.url)('../../../native/build/Release/wirepool_sockopt.node') as Native;
    } catch {
      native = null;
    }
  }
  return native;
}

/** The OS file descriptor behind a bound dgram socket (Unix). */
function socketFd(s: dgram.Socket): number {
  // dgram keeps its handle under an internal symbol; the public-looking `_handle` getter
  // is deprecated and prints a warning.
  const sym = Object.getOwnPropertySymbols(s).find((x) => x.description === 'state symbol');
  const state = sym ? (s as unknown as Record<symbol, { handle?: { fd?: number } }>)[sym] : undefined;
  const fd = state?.handle?.fd;
  return typeof fd === 'number' ? fd : -1;
}

/** Apply SO_MARK to a bound socket. Returns null on success, or why it failed. */
export function setSocketMark(s: dgram.Socket, mark: number): string | null {
  const n = load();
  if (!n) return 'native helper not built (run npm ci)';
  const fd = socketFd(s);
  if (fd < 0) return 'socket has no file descriptor';
  const errno = n.setMark(fd, mark);
  return errno === 0 ? null : `setsockopt(SO_MARK) failed with errno ${errno}`;
}
