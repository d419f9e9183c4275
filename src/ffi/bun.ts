/**
 * The Bun backend: `bun:ffi`'s `dlopen`, `toArrayBuffer` and `ptr`. `bun:ffi` is imported through a
 * variable specifier so that Deno, which also loads this file, never resolves it.
 *
 * @module
 */

import type { NativeLibrary, NativePointer, NativeType } from "./symbols.ts";
import { SYMBOLS } from "./symbols.ts";

type BunType = "ptr" | "u32" | "i32" | "void";

function bunType(type: NativeType): BunType {
  return type === "pointer" || type === "buffer" ? "ptr" : type;
}

type Fn = (...args: unknown[]) => unknown;

/** The subset of `bun:ffi` this backend uses. */
export interface BunFfi {
  dlopen(
    path: string,
    symbols: Record<string, { args: BunType[]; returns: BunType }>,
  ): { symbols: Record<string, Fn> };
  toArrayBuffer(pointer: number, byteOffset: number, byteLength: number): ArrayBuffer;
  ptr(buffer: ArrayBufferLike | ArrayBufferView): number;
}

/** Imports `bun:ffi`; only called when running under Bun. */
export async function importBunFfi(): Promise<BunFfi> {
  const specifier = "bun:ffi";
  return await import(specifier) as BunFfi;
}

/** Opens the library at `path` with Bun's FFI. */
export function openBun(ffi: BunFfi, path: string): NativeLibrary {
  const declared: Record<string, { args: BunType[]; returns: BunType }> = {};
  for (const [name, sig] of Object.entries(SYMBOLS)) {
    declared[`wasmpool_${name}`] = {
      args: sig.parameters.map(bunType),
      returns: bunType(sig.result),
    };
  }
  const s = ffi.dlopen(path, declared).symbols;
  const out = (p: unknown): NativePointer | null =>
    p === null || p === 0 ? null : p as NativePointer;
  return {
    runtime: "bun",
    mainThread: (globalThis as unknown as { Bun: { isMainThread: boolean } }).Bun.isMainThread,
    path,
    abiVersion: () => s.wasmpool_abi_version() as number,
    engineCreate: (config) => out(s.wasmpool_engine_create(config)),
    engineRelease: (engine) => void s.wasmpool_engine_release(engine),
    engineId: (engine) => s.wasmpool_engine_id(engine) as number,
    engineAttach: (id) => out(s.wasmpool_engine_attach(id)),
    testInjectFailures: (op, count) => s.wasmpool_test_inject_failures(op, count) as number,
    engineStats: (engine, o) => void s.wasmpool_engine_stats(engine, o, o.byteLength),
    moduleCreate: (engine, blob, bytes, code) =>
      out(s.wasmpool_module_create(engine, blob, bytes, code)),
    moduleDestroy: (engine, module) => s.wasmpool_module_destroy(engine, module) as number,
    scratchCreate: (bytes) => out(s.wasmpool_scratch_create(bytes)),
    scratchDestroy: (scratch, bytes) => void s.wasmpool_scratch_destroy(scratch, bytes),
    allocate: s.wasmpool_allocate as NativeLibrary["allocate"],
    instanceDispose: s.wasmpool_instance_dispose as NativeLibrary["instanceDispose"],
    instanceAdmit: s.wasmpool_instance_admit as NativeLibrary["instanceAdmit"],
    instanceLeave: s.wasmpool_instance_leave as NativeLibrary["instanceLeave"],
    memoryGrow: s.wasmpool_memory_grow as NativeLibrary["memoryGrow"],
    tableGrow: s.wasmpool_table_grow as NativeLibrary["tableGrow"],
    memoryPlacement: s.wasmpool_memory_placement as NativeLibrary["memoryPlacement"],
    writeTrackerCreate: (reason) => out(s.wasmpool_write_tracker_create(reason)),
    writeTrackerDestroy: (tracker) => void s.wasmpool_write_tracker_destroy(tracker),
    writeTrackerRegister: s.wasmpool_write_tracker_register as NativeLibrary[
      "writeTrackerRegister"
    ],
    writeTrackerUnregister: s.wasmpool_write_tracker_unregister as NativeLibrary[
      "writeTrackerUnregister"
    ],
    writeTrackerScan: s.wasmpool_write_tracker_scan as NativeLibrary["writeTrackerScan"],
    writeTrackerRestore: s.wasmpool_write_tracker_restore as NativeLibrary["writeTrackerRestore"],
    tickerAcquire: s.wasmpool_ticker_acquire as NativeLibrary["tickerAcquire"],
    tickerRelease: s.wasmpool_ticker_release as NativeLibrary["tickerRelease"],
    tickerMap: (address, accessible, maximum) =>
      s.wasmpool_ticker_map(address, accessible, maximum) as number,
    tickerErrno: s.wasmpool_ticker_errno as NativeLibrary["tickerErrno"],
    tickerNowLow: s.wasmpool_ticker_now_low as NativeLibrary["tickerNowLow"],
    pointerOf: (
      buffer,
    ) => (buffer.byteLength === 0 ? null : ffi.ptr(buffer) as unknown as NativePointer),
    moduleImaged: (module) => s.wasmpool_module_imaged(module) as number,
    hostMemoryAdopt: (engine, address, pages, maxPages, minReserved) =>
      out(s.wasmpool_host_memory_adopt(engine, address, pages, maxPages, minReserved)),
    hostMemoryPrepare: s.wasmpool_host_memory_prepare as NativeLibrary["hostMemoryPrepare"],
    hostMemoryReset: s.wasmpool_host_memory_reset as NativeLibrary["hostMemoryReset"],
    hostMemoryResetLater: s.wasmpool_host_memory_reset_later as NativeLibrary[
      "hostMemoryResetLater"
    ],
    hostMemoryClaim: s.wasmpool_host_memory_claim as NativeLibrary["hostMemoryClaim"],
    hostMemoryExtend: s.wasmpool_host_memory_extend as NativeLibrary["hostMemoryExtend"],
    hostMemoryRestoreAll: s.wasmpool_host_memory_restore_all as NativeLibrary[
      "hostMemoryRestoreAll"
    ],
    resetSettled: s.wasmpool_reset_settled as NativeLibrary["resetSettled"],
    hostMemoryDrop: s.wasmpool_host_memory_drop as NativeLibrary["hostMemoryDrop"],
    arrayBuffer: (address, byteLength) => ffi.toArrayBuffer(address, 0, byteLength),
    address: (pointer) => pointer as unknown as number,
  };
}
