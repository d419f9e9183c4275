/**
 * The download cache of the native library: fetches a packaged library from its URL into a
 * cache directory, under its SHA-256 digest, and verifies it before and after it is stored.
 *
 * Invariant: a file at a final path (`<cache>/libwasmpool-<sha256>.so`) was complete and had
 * that digest when it was given that name. A download is verified in memory, written to a
 * temporary file beside its final path (created exclusively, under a name no other process
 * uses), flushed, and renamed into place, which is atomic within one filesystem. So processes
 * that load wasmpool for the first time at once may each download the library, but none ever
 * sees a partial file, and the last rename replaces a file with the same bytes. A cached file
 * is verified again at every load before it is used: one changed since is refused, not opened.
 *
 * @module
 */

import { createHash, randomBytes } from "node:crypto";
import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { LibraryError } from "../errors.ts";
import { describe, isPermissionDenial, permissionHint } from "./permissions.ts";

/** A library to fetch: where it is and what it must be. */
export interface LibraryDownload {
  /** Where to fetch it from. */
  readonly url: URL;
  /** Its SHA-256 digest, lowercase hex. */
  readonly sha256: string;
  /** Its size. */
  readonly sizeBytes: number;
}

/** Options of {@linkcode cachedLibrary}. */
export interface CacheOptions {
  /** The cache directory; made if missing. */
  readonly cacheDir: string;
  /** How long the fetch may take, response body included. Default {@linkcode FETCH_TIMEOUT_MS}. */
  readonly timeoutMs?: number;
}

/** How long fetching the library may take by default: 60 s. */
export const FETCH_TIMEOUT_MS = 60_000;

/** The final path of the library with digest `sha256` in `cacheDir`. */
export function cachePath(cacheDir: string, sha256: string): string {
  return join(cacheDir, `libwasmpool-${sha256}.so`);
}

/** The SHA-256 digest of `bytes`, lowercase hex. */
export function sha256Hex(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/**
 * The cache directory: `WASMPOOL_CACHE` if set, else `wasmpool` in the platform's cache
 * directory (`$XDG_CACHE_HOME`, else `~/.cache` on Linux; `~/Library/Caches` on macOS;
 * `%LOCALAPPDATA%` on Windows). `getEnv` may throw for a variable it may not read (Deno
 * without `--allow-env`): that variable counts as unset, and if no directory can be found
 * the error names the flag.
 */
export function cacheDirectory(
  getEnv: (name: string) => string | undefined,
  platform: string = process.platform,
): string {
  const denied: string[] = [];
  const read = (name: string): string | undefined => {
    try {
      return getEnv(name) || undefined;
    } catch (error) {
      if (!isPermissionDenial(error)) throw error;
      denied.push(name);
      return undefined;
    }
  };
  const explicit = read("WASMPOOL_CACHE");
  if (explicit !== undefined) return explicit;
  let base: string | undefined;
  if (platform === "win32") {
    base = read("LOCALAPPDATA");
  } else if (platform === "darwin") {
    const home = read("HOME");
    base = home === undefined ? undefined : join(home, "Library", "Caches");
  } else {
    const home = read("HOME");
    base = read("XDG_CACHE_HOME") ?? (home === undefined ? undefined : join(home, ".cache"));
  }
  if (base !== undefined) return join(base, "wasmpool");
  const names = platform === "win32"
    ? "WASMPOOL_CACHE,LOCALAPPDATA"
    : platform === "darwin"
    ? "WASMPOOL_CACHE,HOME"
    : "WASMPOOL_CACHE,XDG_CACHE_HOME,HOME";
  if (denied.length > 0) {
    throw new LibraryError(
      "permission",
      `wasmpool could not read ${denied.join(", ")} to find its cache directory; ` +
        `Deno needs --allow-env=${names}`,
    );
  }
  throw new LibraryError(
    "cache",
    `wasmpool found no cache directory: none of ${names.replaceAll(",", ", ")} is set; ` +
      "set WASMPOOL_CACHE to a writable directory",
  );
}

/**
 * The path of the verified library `download` in the cache, fetching it first if it is not
 * there. Throws a {@linkcode LibraryError} naming the URL or path, the digests, or the
 * permission flag Deno needs.
 */
export async function cachedLibrary(
  download: LibraryDownload,
  options: CacheOptions,
): Promise<string> {
  const path = cachePath(options.cacheDir, download.sha256);
  const cached = readCached(path, options.cacheDir);
  if (cached !== null) {
    verify(
      cached,
      download,
      `the cached wasmpool native library ${path}`,
      "delete it and wasmpool fetches it again",
    );
    return path;
  }
  const bytes = await fetchLibrary(download, options.timeoutMs ?? FETCH_TIMEOUT_MS);
  verify(
    bytes,
    download,
    `the wasmpool native library fetched from ${download.url.href}`,
    "nothing was written to the cache",
  );
  store(path, bytes, options.cacheDir);
  return path;
}

/** The bytes at `path`, or null when there is no such file. */
function readCached(path: string, cacheDir: string): Uint8Array | null {
  try {
    return readFileSync(path);
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === "ENOENT" || code === "ENOTDIR") return null;
    throw new LibraryError(
      isPermissionDenial(error) ? "permission" : "cache",
      `could not read the wasmpool library cache at ${path}: ${describe(error)}` +
        permissionHint(error, `--allow-read=${cacheDir}`) +
        "; or set WASMPOOL_CACHE to another directory",
      { cause: error },
    );
  }
}

function verify(bytes: Uint8Array, expected: LibraryDownload, what: string, then: string): void {
  const actual = sha256Hex(bytes);
  if (actual === expected.sha256 && bytes.byteLength === expected.sizeBytes) return;
  throw new LibraryError(
    "digest",
    `${what} has SHA-256 ${actual} (${bytes.byteLength} bytes), but this version of wasmpool ` +
      `ships ${expected.sha256} (${expected.sizeBytes} bytes): refusing to load it; ${then}`,
  );
}

async function fetchLibrary(download: LibraryDownload, timeoutMs: number): Promise<Uint8Array> {
  const url = download.url.href;
  const failed = (error: unknown): LibraryError => {
    const timedOut = error instanceof Error && error.name === "TimeoutError";
    return new LibraryError(
      isPermissionDenial(error) ? "permission" : "fetch",
      `could not fetch the wasmpool native library from ${url}: ` +
        (timedOut ? `no complete response within ${timeoutMs} ms` : describe(error)) +
        permissionHint(error, `--allow-net=${download.url.host} for the first load`),
      { cause: error },
    );
  };
  const signal = AbortSignal.timeout(timeoutMs);
  let response: Response;
  try {
    response = await fetch(download.url, { signal });
  } catch (error) {
    throw failed(error);
  }
  if (!response.ok || response.body === null) {
    await response.body?.cancel();
    throw new LibraryError(
      "fetch",
      `could not fetch the wasmpool native library from ${url}: HTTP ${response.status}` +
        (response.statusText ? ` ${response.statusText}` : ""),
    );
  }
  // Read at most one byte more than the library's size: a longer answer is refused unread.
  const bytes = new Uint8Array(download.sizeBytes + 1);
  let length = 0;
  const reader = response.body.getReader();
  try {
    while (length < bytes.byteLength) {
      const { done, value } = await reader.read();
      if (done) break;
      const take = Math.min(value.byteLength, bytes.byteLength - length);
      bytes.set(value.subarray(0, take), length);
      length += take;
    }
  } catch (error) {
    throw failed(error);
  } finally {
    await reader.cancel().catch(() => {});
  }
  return bytes.subarray(0, length);
}

function store(path: string, bytes: Uint8Array, cacheDir: string): void {
  const failed = (error: unknown): LibraryError =>
    new LibraryError(
      isPermissionDenial(error) ? "permission" : "cache",
      `could not write the wasmpool native library into the cache directory ${cacheDir}: ` +
        describe(error) + permissionHint(error, `--allow-write=${cacheDir} for the first load`) +
        "; or set WASMPOOL_CACHE to a writable directory",
      { cause: error },
    );
  try {
    mkdirSync(cacheDir, { recursive: true });
  } catch (error) {
    throw failed(error);
  }
  const temporary = `${path}.${process.pid}-${randomBytes(8).toString("hex")}.partial`;
  let fd: number | null = null;
  try {
    fd = openSync(temporary, "wx", 0o755);
    let written = 0;
    while (written < bytes.byteLength) {
      written += writeSync(fd, bytes, written, bytes.byteLength - written);
    }
    fsyncSync(fd);
    closeSync(fd);
    fd = null;
    renameSync(temporary, path);
  } catch (error) {
    if (fd !== null) closeSync(fd);
    try {
      unlinkSync(temporary);
    } catch {
      // Never created, or already renamed: nothing to clean.
    }
    throw failed(error);
  }
}
