/**
 * The Bun backend of the Wasmtime peer binding: `bun:ffi`'s `dlopen` and `toArrayBuffer`.
 * `bun:ffi` is imported through a variable specifier so that Deno, which also loads this
 * file, never resolves it.
 *
 * @module
 */

import {
  WASMTIME_SYMBOLS,
  type WasmtimeFunctions,
  type WasmtimeLibrary,
  type WasmtimePointer,
  type WasmtimeType,
} from "./symbols.ts";

type BunType = "ptr" | "usize" | "u32" | "bool" | "void";

function bunType(type: WasmtimeType): BunType {
  return type === "pointer" || type === "buffer" ? "ptr" : type;
}

/** The subset of `bun:ffi` this backend uses. */
export interface BunFfi {
  dlopen(
    path: string,
    symbols: Record<string, { args: BunType[]; returns: BunType }>,
  ): { symbols: Record<string, unknown> };
  toArrayBuffer(pointer: number, byteOffset: number, byteLength: number): ArrayBuffer;
}

/** Imports `bun:ffi`; only called when running under Bun. */
export async function importBunFfi(): Promise<BunFfi> {
  const specifier = "bun:ffi";
  return await import(specifier) as BunFfi;
}

/**
 * Opens Wasmtime's C API library at `path` with Bun's FFI.
 *
 * @param ffi `bun:ffi`.
 * @param path The path of `_libwasmtime.so`.
 */
export function openWasmtimeBun(ffi: BunFfi, path: string): WasmtimeLibrary {
  const declared: Record<string, { args: BunType[]; returns: BunType }> = {};
  for (const [name, sig] of Object.entries(WASMTIME_SYMBOLS)) {
    declared[name] = { args: sig.parameters.map(bunType), returns: bunType(sig.result) };
  }
  // Bun's pointer values are numbers, null for a null pointer result: what WasmtimePointer
  // stands for.
  const symbols = ffi.dlopen(path, declared).symbols as unknown as WasmtimeFunctions;
  return {
    runtime: "bun",
    path,
    symbols,
    pointer: (address) => (address === 0n ? null : Number(address) as unknown as WasmtimePointer),
    copyBytes: (address, byteLength) => {
      if (byteLength === 0) return new Uint8Array(0);
      return new Uint8Array(ffi.toArrayBuffer(Number(address), 0, byteLength)).slice();
    },
  };
}
