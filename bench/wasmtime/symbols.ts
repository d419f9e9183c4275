/**
 * The part of Wasmtime's C API (50.x, `crates/c-api/include/`) the peer bench calls,
 * declared once for both runtimes. Only the benches use it; wasmpool itself never loads
 * Wasmtime.
 *
 * Out-parameters (`wasmtime_module_t **`, `wasm_trap_t **`, `wasmtime_instance_t *`,
 * `wasm_byte_vec_t *`) are `buffer`s: the caller passes a typed array and reads what Wasmtime
 * wrote into it. A `wasmtime_error_t *` result is null on success.
 *
 * @module
 */

/** A parameter or result type, in the runtime-neutral vocabulary of this table. */
export type WasmtimeType = "pointer" | "buffer" | "usize" | "u32" | "bool" | "void";

/** One C function: its parameter types and result type. */
export interface WasmtimeSignature {
  /** Parameter types in order. */
  readonly parameters: readonly WasmtimeType[];
  /** The result type. */
  readonly result: WasmtimeType;
}

/** Every C function the bench calls, by its C name. */
export const WASMTIME_SYMBOLS = {
  // Configuration. wasm_engine_new_with_config takes ownership of the config;
  // wasmtime_pooling_allocation_strategy_set copies the pooling config (still the caller's).
  wasm_config_new: { parameters: [], result: "pointer" },
  wasm_config_delete: { parameters: ["pointer"], result: "void" },
  wasmtime_config_memory_init_cow_set: { parameters: ["pointer", "bool"], result: "void" },
  wasmtime_pooling_allocation_config_new: { parameters: [], result: "pointer" },
  wasmtime_pooling_allocation_config_delete: { parameters: ["pointer"], result: "void" },
  wasmtime_pooling_allocation_config_total_core_instances_set: {
    parameters: ["pointer", "u32"],
    result: "void",
  },
  wasmtime_pooling_allocation_config_total_memories_set: {
    parameters: ["pointer", "u32"],
    result: "void",
  },
  wasmtime_pooling_allocation_config_total_tables_set: {
    parameters: ["pointer", "u32"],
    result: "void",
  },
  wasmtime_pooling_allocation_strategy_set: {
    parameters: ["pointer", "pointer"],
    result: "void",
  },
  wasm_engine_new_with_config: { parameters: ["pointer"], result: "pointer" },
  wasm_engine_delete: { parameters: ["pointer"], result: "void" },
  // Compilation and linking, once per module.
  wasmtime_module_new: {
    parameters: ["pointer", "buffer", "usize", "buffer"],
    result: "pointer",
  },
  wasmtime_module_delete: { parameters: ["pointer"], result: "void" },
  wasmtime_linker_new: { parameters: ["pointer"], result: "pointer" },
  wasmtime_linker_delete: { parameters: ["pointer"], result: "void" },
  wasmtime_linker_define_unknown_imports_as_traps: {
    parameters: ["pointer", "pointer"],
    result: "pointer",
  },
  wasmtime_linker_instantiate_pre: {
    parameters: ["pointer", "pointer", "buffer"],
    result: "pointer",
  },
  wasmtime_instance_pre_delete: { parameters: ["pointer"], result: "void" },
  // The measured cycle.
  wasmtime_store_new: { parameters: ["pointer", "pointer", "pointer"], result: "pointer" },
  wasmtime_store_context: { parameters: ["pointer"], result: "pointer" },
  wasmtime_instance_pre_instantiate: {
    parameters: ["pointer", "pointer", "buffer", "buffer"],
    result: "pointer",
  },
  wasmtime_store_delete: { parameters: ["pointer"], result: "void" },
  // Errors and traps.
  wasmtime_error_message: { parameters: ["pointer", "buffer"], result: "void" },
  wasmtime_error_delete: { parameters: ["pointer"], result: "void" },
  wasm_trap_message: { parameters: ["pointer", "buffer"], result: "void" },
  wasm_trap_delete: { parameters: ["pointer"], result: "void" },
  wasm_byte_vec_delete: { parameters: ["buffer"], result: "void" },
} as const satisfies Record<string, WasmtimeSignature>;

/** A native pointer: an object in Deno, a number in Bun. Opaque outside bench/wasmtime/. */
export type WasmtimePointer = { readonly __wasmtimePointer: unique symbol };

/** The JavaScript value a parameter of type `T` takes. */
type Parameter<T extends WasmtimeType> = T extends "pointer" ? WasmtimePointer | null
  : T extends "buffer" ? ArrayBufferView<ArrayBuffer>
  : T extends "usize" | "u32" ? number
  : T extends "bool" ? boolean
  : never;

/** The JavaScript value a result of type `T` is. */
type Result<T extends WasmtimeType> = T extends "pointer" ? WasmtimePointer | null
  : T extends "bool" ? boolean
  : T extends "usize" | "u32" ? number
  : void;

/** The parameters of one signature, as a tuple of JavaScript values. */
type Parameters<P extends readonly WasmtimeType[]> = { -readonly [I in keyof P]: Parameter<P[I]> };

/** The C functions of {@linkcode WASMTIME_SYMBOLS}, callable from JavaScript. */
export type WasmtimeFunctions = {
  readonly [K in keyof typeof WASMTIME_SYMBOLS]: (
    ...args: Parameters<typeof WASMTIME_SYMBOLS[K]["parameters"]>
  ) => Result<typeof WASMTIME_SYMBOLS[K]["result"]>;
};

/** The library's functions and the runtime's memory primitives, the same in both runtimes. */
export interface WasmtimeLibrary {
  /** Which runtime backs this library. */
  readonly runtime: "deno" | "bun";
  /** Where the library was loaded from. */
  readonly path: string;
  /** The C functions. */
  readonly symbols: WasmtimeFunctions;
  /** The pointer at `address` (as written into an out-parameter), or null for 0. */
  pointer(address: bigint): WasmtimePointer | null;
  /** A copy of `byteLength` bytes at `address`. */
  copyBytes(address: bigint, byteLength: number): Uint8Array<ArrayBuffer>;
}
