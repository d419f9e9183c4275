/**
 * The Deno backend of the Wasmtime peer binding: `Deno.dlopen` and `Deno.UnsafePointerView`.
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

/** The subset of the Deno namespace this backend uses. */
interface DenoFfi {
  dlopen(
    path: string,
    symbols: Record<string, { parameters: WasmtimeType[]; result: WasmtimeType }>,
  ): { symbols: Record<string, unknown> };
  UnsafePointer: { create(value: bigint): unknown };
  UnsafePointerView: {
    getArrayBuffer(pointer: unknown, byteLength: number, offset?: number): ArrayBuffer;
  };
}

/**
 * Opens Wasmtime's C API library at `path` with Deno's FFI.
 *
 * @param path The path of `_libwasmtime.so`.
 */
export function openWasmtimeDeno(path: string): WasmtimeLibrary {
  const deno = (globalThis as unknown as { Deno: DenoFfi }).Deno;
  const declared: Record<string, { parameters: WasmtimeType[]; result: WasmtimeType }> = {};
  for (const [name, sig] of Object.entries(WASMTIME_SYMBOLS)) {
    declared[name] = { parameters: [...sig.parameters], result: sig.result };
  }
  // Deno's pointer values are objects or null, which is what WasmtimePointer stands for.
  const symbols = deno.dlopen(path, declared).symbols as unknown as WasmtimeFunctions;
  return {
    runtime: "deno",
    path,
    symbols,
    pointer: (address) => deno.UnsafePointer.create(address) as WasmtimePointer | null,
    copyBytes: (address, byteLength) => {
      if (byteLength === 0) return new Uint8Array(0);
      const view = deno.UnsafePointerView.getArrayBuffer(
        deno.UnsafePointer.create(address),
        byteLength,
      );
      return new Uint8Array(view).slice();
    },
  };
}
