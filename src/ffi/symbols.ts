/**
 * The C ABI of libwasmpool, declared once for both runtimes. Each name is the Zig export
 * without its `wasmpool_` prefix; `zig/src/root.zig` lists the same functions.
 *
 * @module
 */

/** A parameter or result type, in the runtime-neutral vocabulary of this table. */
export type NativeType = "pointer" | "buffer" | "u32" | "i32" | "void";

/** One C function: its parameter types and result type. */
export interface NativeSignature {
  /** Parameter types in order. */
  readonly parameters: readonly NativeType[];
  /** The result type. */
  readonly result: NativeType;
}

/**
 * Every export of the library. Hot-path functions (allocate, dispose) take only pointers
 * and 32-bit integers and return i32, which both runtimes call on their fast path.
 */
export const SYMBOLS = {
  abi_version: { parameters: [], result: "u32" },
  engine_create: { parameters: ["buffer"], result: "pointer" },
  engine_release: { parameters: ["pointer"], result: "void" },
  engine_id: { parameters: ["pointer"], result: "u32" },
  engine_attach: { parameters: ["u32"], result: "pointer" },
  test_inject_failures: { parameters: ["u32", "u32"], result: "i32" },
  engine_stats: { parameters: ["pointer", "buffer", "u32"], result: "void" },
  module_create: { parameters: ["pointer", "buffer", "u32", "buffer"], result: "pointer" },
  module_destroy: { parameters: ["pointer", "pointer"], result: "i32" },
  scratch_create: { parameters: ["u32"], result: "pointer" },
  scratch_destroy: { parameters: ["pointer", "u32"], result: "void" },
  allocate: { parameters: ["pointer", "pointer", "pointer", "u32"], result: "i32" },
  instance_dispose: { parameters: ["pointer", "u32"], result: "i32" },
  instance_admit: { parameters: ["pointer"], result: "i32" },
  instance_leave: { parameters: ["pointer", "u32"], result: "i32" },
  memory_grow: {
    parameters: ["pointer", "u32", "u32", "u32", "pointer", "u32"],
    result: "i32",
  },
  table_grow: {
    parameters: ["pointer", "u32", "u32", "u32", "pointer", "u32"],
    result: "i32",
  },
  memory_placement: { parameters: ["pointer", "u32", "u32", "u32", "buffer"], result: "i32" },
  write_tracker_create: { parameters: ["buffer"], result: "pointer" },
  write_tracker_destroy: { parameters: ["pointer"], result: "void" },
  write_tracker_register: { parameters: ["pointer", "pointer", "u32"], result: "i32" },
  write_tracker_unregister: { parameters: ["pointer", "pointer", "u32"], result: "i32" },
  write_tracker_scan: {
    parameters: ["pointer", "pointer", "u32", "buffer", "u32", "buffer"],
    result: "i32",
  },
  write_tracker_restore: { parameters: ["pointer", "pointer", "u32", "pointer"], result: "i32" },
  ticker_acquire: { parameters: ["u32"], result: "i32" },
  ticker_release: { parameters: ["u32"], result: "i32" },
  ticker_map: { parameters: ["pointer", "u32", "u32"], result: "i32" },
  ticker_errno: { parameters: [], result: "u32" },
  ticker_now_low: { parameters: [], result: "u32" },
  module_imaged: { parameters: ["pointer"], result: "u32" },
  host_memory_adopt: { parameters: ["pointer", "pointer", "u32", "u32", "u32"], result: "pointer" },
  host_memory_prepare: { parameters: ["pointer", "pointer", "pointer", "u32"], result: "i32" },
  host_memory_reset: { parameters: ["pointer", "pointer"], result: "i32" },
  host_memory_reset_later: { parameters: ["pointer", "pointer"], result: "i32" },
  host_memory_claim: { parameters: ["pointer", "pointer", "u32"], result: "i32" },
  host_memory_extend: { parameters: ["pointer", "pointer", "u32"], result: "i32" },
  host_memory_restore_all: { parameters: ["pointer", "pointer"], result: "i32" },
  reset_settled: { parameters: ["u32"], result: "u32" },
  host_memory_drop: { parameters: ["pointer", "pointer"], result: "i32" },
} as const satisfies Record<string, NativeSignature>;

/** The ABI version this TypeScript side speaks; `abi_version()` must answer it. */
export const ABI_VERSION = 8;

/** A native pointer: an object in Deno, a number in Bun. Opaque outside src/ffi/. */
export type NativePointer = { readonly __nativePointer: unique symbol };

/** The library's functions and the runtime's memory primitives, the same in both runtimes. */
export interface NativeLibrary {
  /** Which runtime backs this library. */
  readonly runtime: "deno" | "bun";
  /** Whether this isolate is the process's main one (not a Worker's, which may be torn down
   * at any time, memories and all). */
  readonly mainThread: boolean;
  /** Where the library was loaded from. */
  readonly path: string;
  /** `wasmpool_abi_version`. */
  abiVersion(): number;
  /** `wasmpool_engine_create`: null on failure, with the reason in the config buffer. */
  engineCreate(config: Uint8Array): NativePointer | null;
  /** `wasmpool_engine_release`: drops this holder; the last one destroys the engine. */
  engineRelease(engine: NativePointer): void;
  /** `wasmpool_engine_id`: the id another thread can attach with. */
  engineId(engine: NativePointer): number;
  /** `wasmpool_engine_attach`: holds the live engine `id`, or null. */
  engineAttach(id: number): NativePointer | null;
  /** `wasmpool_test_inject_failures`: test hook, see zig/src/sys.zig. */
  testInjectFailures(operation: number, count: number): number;
  /** `wasmpool_engine_stats`. */
  engineStats(engine: NativePointer, out: Uint8Array): void;
  /**
   * `wasmpool_module_create`: null on failure, with `[code, errno, step]` in `out` (4 words;
   * errno and step for an image that could not be built).
   */
  moduleCreate(
    engine: NativePointer,
    blob: Uint8Array,
    blobBytes: number,
    out: Int32Array,
  ): NativePointer | null;
  /** `wasmpool_module_destroy`. */
  moduleDestroy(engine: NativePointer, module: NativePointer): number;
  /** `wasmpool_scratch_create`. */
  scratchCreate(sizeBytes: number): NativePointer | null;
  /** `wasmpool_scratch_destroy`. */
  scratchDestroy(scratch: NativePointer, sizeBytes: number): void;
  /** `wasmpool_allocate`: the instance id, or a negative code. */
  allocate(
    engine: NativePointer,
    module: NativePointer,
    scratch: NativePointer,
    scratchBytes: number,
  ): number;
  /** `wasmpool_instance_dispose`: 0, or `Code.quarantined` when the slot's reset failed. */
  instanceDispose(engine: NativePointer, id: number): number;
  /** `wasmpool_instance_admit`: a pool slot for a running instance, or a negative code. */
  instanceAdmit(engine: NativePointer): number;
  /** `wasmpool_instance_leave`: gives back a slot taken by `instanceAdmit`. */
  instanceLeave(engine: NativePointer, index: number): number;
  /** `wasmpool_memory_grow`: the old size in pages, or a negative code. */
  memoryGrow(
    engine: NativePointer,
    id: number,
    index: number,
    deltaPages: number,
    scratch: NativePointer,
    scratchBytes: number,
  ): number;
  /** `wasmpool_table_grow`: the old size in elements, or a negative code. */
  tableGrow(
    engine: NativePointer,
    id: number,
    index: number,
    delta: number,
    scratch: NativePointer,
    scratchBytes: number,
  ): number;
  /**
   * `wasmpool_memory_placement`: 1 when the host memory at `address` is reserved in place for
   * at least its maximum and the minimum (it never moves), 0 when not, negative when that cannot
   * be told; the reservation's reach in wasm pages goes to `outReservedWasmPages[0]`.
   */
  memoryPlacement(
    address: NativePointer,
    accessibleWasmPages: number,
    maximumWasmPages: number,
    minimumReservedWasmPages: number,
    outReservedWasmPages: Uint32Array,
  ): number;
  /** `wasmpool_write_tracker_create`: null when unavailable, reason and errno in `outReason`. */
  writeTrackerCreate(outReason: Int32Array): NativePointer | null;
  /** `wasmpool_write_tracker_destroy`: releases every range the tracker registered. */
  writeTrackerDestroy(tracker: NativePointer): void;
  /** `wasmpool_write_tracker_register`: 0, or -errno. */
  writeTrackerRegister(
    tracker: NativePointer,
    address: NativePointer,
    sizeHostPages: number,
  ): number;
  /** `wasmpool_write_tracker_unregister`: 0, or -errno. */
  writeTrackerUnregister(
    tracker: NativePointer,
    address: NativePointer,
    sizeHostPages: number,
  ): number;
  /**
   * `wasmpool_write_tracker_scan`: the runs of 4 KiB pages written since the last scan, as
   * (first page, page count) pairs in `outRuns`, protected again; their number, or -errno. The
   * page where the walk stopped goes to `outEndHostPage[0]`.
   */
  writeTrackerScan(
    tracker: NativePointer,
    address: NativePointer,
    sizeHostPages: number,
    outRuns: Uint32Array,
    capacityRuns: number,
    outEndHostPage: Uint32Array,
  ): number;
  /** `wasmpool_write_tracker_restore`: the pages copied back from `source`, or -errno. */
  writeTrackerRestore(
    tracker: NativePointer,
    address: NativePointer,
    sizeHostPages: number,
    source: NativePointer,
  ): number;
  /**
   * `wasmpool_ticker_acquire`: a holder of the process's epoch ticker with a tick of `tickUs`
   * (the first starts its thread), or a negative code (zig/src/ticker.zig's `Error`).
   */
  tickerAcquire(tickUs: number): number;
  /** `wasmpool_ticker_release`: gives a holder back; the last one stops the thread. */
  tickerRelease(holder: number): number;
  /**
   * `wasmpool_ticker_map`: maps the ticker's page over the first host page of the epoch memory
   * at `address`, once it is checked to be reserved by the runtime for itself; 0 or a
   * negative code.
   */
  tickerMap(address: NativePointer, accessibleWasmPages: number, maximumWasmPages: number): number;
  /** `wasmpool_ticker_errno`: the errno behind the ticker's last failure. */
  tickerErrno(): number;
  /** `wasmpool_ticker_now_low`: the low 32 bits of CLOCK_MONOTONIC in microseconds. */
  tickerNowLow(): number;
  /** The address of the first byte of `buffer` (a memory's buffer, say); null when empty. */
  pointerOf(buffer: ArrayBufferLike | ArrayBufferView): NativePointer | null;
  /** `wasmpool_module_imaged`: 1 when every data segment of the module is in its images. */
  moduleImaged(module: NativePointer): number;
  /** `wasmpool_host_memory_adopt`: the record of a runtime's memory, or null. */
  hostMemoryAdopt(
    engine: NativePointer,
    address: NativePointer,
    pages: number,
    maxPages: number,
    minReservedPages: number,
  ): NativePointer | null;
  /** `wasmpool_host_memory_prepare`: 0, or a negative code (drop the memory). */
  hostMemoryPrepare(
    engine: NativePointer,
    memory: NativePointer,
    module: NativePointer,
    index: number,
  ): number;
  /** `wasmpool_host_memory_reset`: 0, or a negative code (drop the memory). */
  hostMemoryReset(engine: NativePointer, memory: NativePointer): number;
  /**
   * `wasmpool_host_memory_reset_later`: a ticket > 0 when the reset was queued for the reset
   * thread, 0 when it was done inline, or a negative code (drop the memory).
   */
  hostMemoryResetLater(engine: NativePointer, memory: NativePointer): number;
  /**
   * `wasmpool_host_memory_claim`: 0 when the memory is ready for its next use (a queued reset
   * taken back and done now, or waited for), 1 when it is not yet and `wait` is 0, or a
   * negative code (its reset failed: drop the memory).
   */
  hostMemoryClaim(engine: NativePointer, memory: NativePointer, wait: number): number;
  /**
   * `wasmpool_host_memory_extend`: the memory grew in place to `pages`; its record takes the
   * new pages in, zeroed and tracked. 0, or a negative code (drop the memory).
   */
  hostMemoryExtend(engine: NativePointer, memory: NativePointer, pages: number): number;
  /**
   * `wasmpool_host_memory_restore_all`: the whole memory back to its image and zeros, whatever
   * was written before it was adopted. 0, or a negative code (drop the memory).
   */
  hostMemoryRestoreAll(engine: NativePointer, memory: NativePointer): number;
  /** `wasmpool_reset_settled`: 1 once the reset queued under `ticket` is over. */
  resetSettled(ticket: number): number;
  /** `wasmpool_host_memory_drop`: gives the memory up and frees its record. */
  hostMemoryDrop(engine: NativePointer, memory: NativePointer): number;
  /** An ArrayBuffer over `byteLength` bytes of native memory at `address` (no copy). */
  arrayBuffer(address: number, byteLength: number): ArrayBuffer;
  /** The numeric address of a pointer. */
  address(pointer: NativePointer): number;
}
