/**
 * The Deno backend: `Deno.dlopen` and `Deno.UnsafePointerView`.
 *
 * @module
 */

import type { NativeLibrary, NativePointer, NativeType } from "./symbols.ts";
import { SYMBOLS } from "./symbols.ts";

type DenoType = "pointer" | "buffer" | "u32" | "i32" | "void";

function denoType(type: NativeType): DenoType {
  return type;
}

type Fn = (...args: unknown[]) => unknown;

/** The subset of the Deno namespace this backend uses. */
interface DenoFfi {
  dlopen(
    path: string,
    symbols: Record<string, { parameters: DenoType[]; result: DenoType }>,
  ): { symbols: Record<string, Fn> };
  UnsafePointer: {
    create(value: bigint): unknown;
    of(buffer: ArrayBufferLike | ArrayBufferView): unknown;
    value(pointer: unknown): bigint | number;
  };
  UnsafePointerView: {
    getArrayBuffer(pointer: unknown, byteLength: number, offset?: number): ArrayBuffer;
  };
}

/** Opens the library at `path` with Deno's FFI. */
export function openDeno(path: string): NativeLibrary {
  const deno = (globalThis as unknown as { Deno: DenoFfi }).Deno;
  const declared: Record<string, { parameters: DenoType[]; result: DenoType }> = {};
  for (const [name, sig] of Object.entries(SYMBOLS)) {
    declared[`wasmpool_${name}`] = {
      parameters: sig.parameters.map(denoType),
      result: denoType(sig.result),
    };
  }
  const s = deno.dlopen(path, declared).symbols;
  const ptr = (p: NativePointer): unknown => p;
  const out = (p: unknown): NativePointer | null => (p === null ? null : p as NativePointer);
  return {
    runtime: "deno",
    mainThread:
      typeof (globalThis as { WorkerGlobalScope?: unknown }).WorkerGlobalScope === "undefined",
    path,
    abiVersion: () => s.wasmpool_abi_version() as number,
    engineCreate: (config) => out(s.wasmpool_engine_create(config)),
    engineRelease: (engine) => void s.wasmpool_engine_release(ptr(engine)),
    engineId: (engine) => s.wasmpool_engine_id(ptr(engine)) as number,
    engineAttach: (id) => out(s.wasmpool_engine_attach(id)),
    testInjectFailures: (op, count) => s.wasmpool_test_inject_failures(op, count) as number,
    engineStats: (engine, o) => void s.wasmpool_engine_stats(ptr(engine), o, o.byteLength),
    moduleCreate: (engine, blob, bytes, code) =>
      out(s.wasmpool_module_create(ptr(engine), blob, bytes, code)),
    moduleDestroy: (engine, module) =>
      s.wasmpool_module_destroy(ptr(engine), ptr(module)) as number,
    scratchCreate: (bytes) => out(s.wasmpool_scratch_create(bytes)),
    scratchDestroy: (scratch, bytes) => void s.wasmpool_scratch_destroy(ptr(scratch), bytes),
    allocate: s.wasmpool_allocate as NativeLibrary["allocate"],
    instanceDispose: s.wasmpool_instance_dispose as NativeLibrary["instanceDispose"],
    instanceAdmit: s.wasmpool_instance_admit as NativeLibrary["instanceAdmit"],
    instanceLeave: s.wasmpool_instance_leave as NativeLibrary["instanceLeave"],
    memoryGrow: s.wasmpool_memory_grow as NativeLibrary["memoryGrow"],
    tableGrow: s.wasmpool_table_grow as NativeLibrary["tableGrow"],
    memoryPlacement: s.wasmpool_memory_placement as NativeLibrary["memoryPlacement"],
    writeTrackerCreate: (reason) => out(s.wasmpool_write_tracker_create(reason)),
    writeTrackerDestroy: (tracker) => void s.wasmpool_write_tracker_destroy(ptr(tracker)),
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
      s.wasmpool_ticker_map(ptr(address), accessible, maximum) as number,
    tickerErrno: s.wasmpool_ticker_errno as NativeLibrary["tickerErrno"],
    tickerNowLow: s.wasmpool_ticker_now_low as NativeLibrary["tickerNowLow"],
    pointerOf: (buffer) => out(deno.UnsafePointer.of(buffer)),
    moduleImaged: (module) => s.wasmpool_module_imaged(ptr(module)) as number,
    hostMemoryAdopt: (engine, address, pages, maxPages, minReserved) =>
      out(s.wasmpool_host_memory_adopt(ptr(engine), ptr(address), pages, maxPages, minReserved)),
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
    arrayBuffer: (address, byteLength) =>
      deno.UnsafePointerView.getArrayBuffer(deno.UnsafePointer.create(BigInt(address)), byteLength),
    address: (pointer) => Number(deno.UnsafePointer.value(pointer)),
  };
}
