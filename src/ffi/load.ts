/**
 * Finds the runtime and the library: `WASMPOOL_LIB` if set, else the local build in
 * `zig/zig-out/lib/`, else an error that says how to build it. The library is opened on first
 * use, so importing wasmpool never fails for want of it.
 *
 * @module
 */

import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { WasmpoolError } from "../errors.ts";
import { type BunFfi, importBunFfi, openBun } from "./bun.ts";
import { openDeno } from "./deno.ts";
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

const LOCAL_BUILD_URL = new URL("../../zig/zig-out/lib/libwasmpool.so", import.meta.url);

function readEnv(name: string): string | undefined {
  try {
    const deno = (globalThis as { Deno?: { env: { get(n: string): string | undefined } } }).Deno;
    if (deno) return deno.env.get(name);
    const process = (globalThis as { process?: { env: Record<string, string | undefined> } })
      .process;
    return process?.env[name];
  } catch {
    // Without --allow-env the variable cannot be read: fall back to the local build.
    return undefined;
  }
}

/** Where the library is expected: `WASMPOOL_LIB`, else the local build. */
export function libraryPath(): string {
  const fromEnv = readEnv("WASMPOOL_LIB");
  if (fromEnv) return fromEnv;
  return LOCAL_BUILD_URL.protocol === "file:"
    ? fileURLToPath(LOCAL_BUILD_URL)
    : LOCAL_BUILD_URL.href;
}

let library: NativeLibrary | null = null;

/** The library, opened on first call. Throws a WasmpoolError that says how to get it. */
export function native(): NativeLibrary {
  if (library !== null) return library;
  if (RUNTIME === null) {
    throw new WasmpoolError("wasmpool runs in Deno or Bun; this runtime is neither");
  }
  const path = libraryPath();
  if (!existsSync(path)) {
    throw new WasmpoolError(
      `the wasmpool native library was not found at ${path}: build it with ` +
        "`script/bootstrap` (or `cd zig && zig build -Doptimize=ReleaseSafe`), " +
        "or set WASMPOOL_LIB to the path of libwasmpool.so",
    );
  }
  let opened: NativeLibrary;
  try {
    opened = RUNTIME === "bun" ? openBun(bunFfi!, path) : openDeno(path);
  } catch (cause) {
    throw new WasmpoolError(`could not load the wasmpool native library at ${path}: ${cause}`, {
      cause,
    });
  }
  const version = opened.abiVersion();
  if (version !== ABI_VERSION) {
    throw new WasmpoolError(
      `the wasmpool native library at ${path} speaks ABI version ${version}, ` +
        `this module needs ${ABI_VERSION}: rebuild it with \`script/bootstrap\``,
    );
  }
  library = opened;
  return library;
}
