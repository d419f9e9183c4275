/**
 * Finds the runtime and the native library, in this order:
 *
 * 1. `WASMPOOL_LIB`, if set.
 * 2. In a checkout, the local build `zig/zig-out/lib/libwasmpool.so`.
 * 3. The packaged library for this OS and architecture (`lib/<arch>-linux/libwasmpool.so`,
 *    listed with its digest in `packaged.ts`). When this module was loaded from a file (a
 *    checkout, Bun's node_modules, an npm install) it is opened in place. When it was imported
 *    over http(s), as from JSR, the library is fetched from beside this module's URL into the
 *    cache, verified against its digest, and opened from there (`library_cache.ts`). An
 *    installed copy that lacks the library (JSR's npm compatibility layer carries modules only)
 *    fetches it the same way from the package's files on JSR.
 *
 * Where the library is, is settled while this module loads (a fetch must be awaited); it is
 * opened on first use, and an error of either step is thrown then, so importing wasmpool never
 * fails for want of it.
 *
 * @module
 */

import { statSync } from "node:fs";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { LibraryError, WasmpoolError } from "../errors.ts";
import { type BunFfi, importBunFfi, openBun } from "./bun.ts";
import { openDeno } from "./deno.ts";
import { cacheDirectory, cachedLibrary } from "./library_cache.ts";
import { PACKAGE_NAME, PACKAGE_VERSION, PACKAGED_LIBRARIES } from "./packaged.ts";
import { describe, isPermissionDenial, permissionHint } from "./permissions.ts";
import { ABI_VERSION, type NativeLibrary } from "./symbols.ts";

/** The runtime wasmpool runs in. */
export type Runtime = "deno" | "bun";

function detectRuntime(): Runtime | null {
  if (typeof (globalThis as { Bun?: unknown }).Bun !== "undefined") return "bun";
  if (typeof (globalThis as { Deno?: unknown }).Deno !== "undefined") return "deno";
  return null;
}

/** The runtime this process is, or null for one wasmpool does not support. */
export const RUNTIME: Runtime | null = detectRuntime();

// Bun's FFI module can only be had asynchronously; fetch it while this module loads.
const bunFfi: BunFfi | null = RUNTIME === "bun" ? await importBunFfi() : null;

/** The package root: the directory that holds `mod.ts`. */
const PACKAGE_ROOT = new URL("../../", import.meta.url);

/** Where a package's files are served by JSR, for an installed copy that lacks its library. */
const JSR_PACKAGE_URL = new URL(`https://jsr.io/${PACKAGE_NAME}/${PACKAGE_VERSION}/`);

/** The variable's value; throws (Deno, without `--allow-env`) if it may not be read. */
function getEnv(name: string): string | undefined {
  const deno = (globalThis as { Deno?: { env: { get(n: string): string | undefined } } }).Deno;
  return deno ? deno.env.get(name) : process.env[name];
}

/** This platform as the packaged libraries are keyed: `<arch>-<os>`, Zig's names. */
export function platformKey(
  arch: string = process.arch,
  platform: string = process.platform,
): string {
  const zigArch: Record<string, string> = { x64: "x86_64", arm64: "aarch64" };
  const zigOs: Record<string, string> = { darwin: "macos", win32: "windows" };
  return `${zigArch[arch] ?? arch}-${zigOs[platform] ?? platform}`;
}

/** Whether there is a file at `path`; a permission refusal is an error that names the flag. */
function fileExists(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch (error) {
    if (!isPermissionDenial(error)) return false;
    throw new LibraryError(
      "permission",
      `could not look for the wasmpool native library at ${path}: ${describe(error)}` +
        permissionHint(error, "--allow-read"),
      { cause: error },
    );
  }
}

/** Where the library was found: the step of the search order that found it. */
type Source = "WASMPOOL_LIB" | "local build" | "package" | "cache";

/** Where the library is: a local path, fetched into the cache first if need be. */
async function locate(): Promise<{ path: string; source: Source }> {
  if (RUNTIME === null) {
    throw new WasmpoolError("wasmpool runs in Deno or Bun; this runtime is neither");
  }
  let fromEnv: string | undefined;
  try {
    fromEnv = getEnv("WASMPOOL_LIB");
  } catch {
    // Without --allow-env the variable cannot be read: look for the library elsewhere.
  }
  if (fromEnv) return { path: fromEnv, source: "WASMPOOL_LIB" };

  const local = PACKAGE_ROOT.protocol === "file:";
  const localBuild = new URL("zig/zig-out/lib/libwasmpool.so", PACKAGE_ROOT);
  if (local && fileExists(fileURLToPath(localBuild))) {
    return { path: fileURLToPath(localBuild), source: "local build" };
  }

  const platform = platformKey();
  const packaged = PACKAGED_LIBRARIES[platform];
  if (packaged === undefined) {
    throw new LibraryError(
      "platform",
      `wasmpool ships native libraries for ${Object.keys(PACKAGED_LIBRARIES).join(" and ")}, ` +
        `and this is ${platform}: build one from source (\`cd zig && zig build ` +
        "-Doptimize=ReleaseSafe`) and set WASMPOOL_LIB to its path",
    );
  }
  const cache = async (url: URL): Promise<{ path: string; source: Source }> => ({
    path: await cachedLibrary({ ...packaged, url }, { cacheDir: cacheDirectory(getEnv) }),
    source: "cache",
  });

  if (!local) {
    if (PACKAGE_ROOT.protocol !== "http:" && PACKAGE_ROOT.protocol !== "https:") {
      throw new LibraryError(
        "missing",
        `wasmpool was loaded from ${import.meta.url}, beside which it cannot fetch its native ` +
          "library: set WASMPOOL_LIB to the path of libwasmpool.so",
      );
    }
    return await cache(new URL(packaged.path, PACKAGE_ROOT));
  }
  const inPlace = fileURLToPath(new URL(packaged.path, PACKAGE_ROOT));
  if (fileExists(inPlace)) return { path: inPlace, source: "package" };
  if (fileExists(fileURLToPath(new URL("zig/build.zig", PACKAGE_ROOT)))) {
    throw new LibraryError(
      "missing",
      `the wasmpool native library was found neither at ${fileURLToPath(localBuild)} nor at ` +
        `${inPlace}: build it with \`script/bootstrap\` (or \`cd zig && zig build ` +
        "-Doptimize=ReleaseSafe`), or set WASMPOOL_LIB to the path of libwasmpool.so",
    );
  }
  return await cache(new URL(packaged.path, JSR_PACKAGE_URL));
}

/** Where the library is, or why it cannot be had. */
type Located = { path: string; source: Source } | { error: WasmpoolError };

async function settle(): Promise<Located> {
  try {
    return await locate();
  } catch (error) {
    return {
      error: error instanceof WasmpoolError ? error : new LibraryError(
        "missing",
        `could not locate the wasmpool native library: ${describe(error)}`,
        { cause: error },
      ),
    };
  }
}

/** Settled once, while this module loads. */
const located: Located = await settle();

let library: NativeLibrary | null = null;

/** The library, opened on first call. Throws a WasmpoolError that says how to get it. */
export function native(): NativeLibrary {
  if (library !== null) return library;
  if ("error" in located) throw located.error;
  const { path, source } = located;
  if (!fileExists(path)) {
    throw new LibraryError(
      "missing",
      source === "WASMPOOL_LIB"
        ? `WASMPOOL_LIB names ${path}, where there is no file: set it to the path of ` +
          "libwasmpool.so, or unset it to use the library wasmpool ships"
        : `the wasmpool native library was not found at ${path} (${source}), where it was a ` +
          "moment ago",
    );
  }
  let opened: NativeLibrary;
  try {
    opened = RUNTIME === "bun" ? openBun(bunFfi!, path) : openDeno(path);
  } catch (cause) {
    throw new LibraryError(
      isPermissionDenial(cause) ? "permission" : "open",
      `could not load the wasmpool native library at ${path}: ${describe(cause)}` +
        permissionHint(cause, "--allow-ffi") +
        (source === "cache"
          ? " (a cache on a filesystem mounted noexec cannot hold libraries: set WASMPOOL_CACHE)"
          : ""),
      { cause },
    );
  }
  const version = opened.abiVersion();
  if (version !== ABI_VERSION) {
    throw new LibraryError(
      "open",
      `the wasmpool native library at ${path} speaks ABI version ${version}, ` +
        `this module needs ${ABI_VERSION}: rebuild it with \`script/bootstrap\``,
    );
  }
  library = opened;
  return library;
}
