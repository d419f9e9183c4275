/**
 * Wasmtime as the measured peer: a Wasmtime engine (pooling or on-demand allocation,
 * copy-on-write memory images on or off) driven through its C API from Deno or Bun, and the
 * cycle the benches time, `wasmtime_store_new` + `wasmtime_instance_pre_instantiate` +
 * `wasmtime_store_delete`, on an `InstancePre` made once per module.
 *
 * Every C call that can fail is checked; a failure throws {@linkcode WasmtimeCallError} with
 * Wasmtime's own message.
 *
 * @example
 * ```ts
 * const lib = await openWasmtime();
 * if (lib !== null) {
 *   const engine = new WasmtimeEngine(lib, { allocation: "pooling" });
 *   const pre = engine.instantiatePre(new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0]));
 *   pre.cycle();
 *   pre.close();
 *   engine.close();
 * }
 * ```
 *
 * @module
 */

import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { importBunFfi, openWasmtimeBun } from "./bun.ts";
import { openWasmtimeDeno } from "./deno.ts";
import type { WasmtimeLibrary, WasmtimePointer } from "./symbols.ts";

export type { WasmtimeLibrary, WasmtimePointer } from "./symbols.ts";

const PINNED_LIBRARY_URL = new URL(
  "../../.tools/wasmtime/wasmtime/linux-x86_64/_libwasmtime.so",
  import.meta.url,
);

/** A Wasmtime C API call that failed: the call, then Wasmtime's message. */
export class WasmtimeCallError extends Error {
  /**
   * @param call The C function that failed.
   * @param message Wasmtime's message.
   */
  constructor(call: string, message: string) {
    super(`${call} failed: ${message}`);
    this.name = "WasmtimeCallError";
  }
}

function readEnv(name: string): string | undefined {
  try {
    const deno = (globalThis as { Deno?: { env: { get(n: string): string | undefined } } }).Deno;
    if (deno) return deno.env.get(name);
    const process = (globalThis as { process?: { env: Record<string, string | undefined> } })
      .process;
    return process?.env[name];
  } catch {
    return undefined;
  }
}

/** Where Wasmtime's C API library is expected: `WASMTIME_LIB`, else the pinned install. */
export function wasmtimeLibraryPath(): string {
  return readEnv("WASMTIME_LIB") || fileURLToPath(PINNED_LIBRARY_URL);
}

/**
 * Opens Wasmtime's C API library in the running runtime (Deno or Bun).
 *
 * @param path The library, default {@linkcode wasmtimeLibraryPath}.
 * @returns The library, or null when the file does not exist (`script/bootstrap` installs it
 * on Linux x86_64).
 */
export async function openWasmtime(path = wasmtimeLibraryPath()): Promise<WasmtimeLibrary | null> {
  if (!existsSync(path)) return null;
  if (typeof (globalThis as { Bun?: unknown }).Bun !== "undefined") {
    return openWasmtimeBun(await importBunFfi(), path);
  }
  return openWasmtimeDeno(path);
}

/** A `wasm_byte_vec_t` Wasmtime filled in, as text; the vector is freed. */
function takeByteVec(lib: WasmtimeLibrary, vec: BigUint64Array<ArrayBuffer>): string {
  // wasm_byte_vec_t is { size_t size; wasm_byte_t *data; }.
  const bytes = lib.copyBytes(vec[1], Number(vec[0]));
  lib.symbols.wasm_byte_vec_delete(vec);
  return new TextDecoder().decode(bytes);
}

/** Throws when `error` is not null, with its message; frees it either way. */
function check(lib: WasmtimeLibrary, call: string, error: WasmtimePointer | null): void {
  if (error === null) return;
  const vec = new BigUint64Array(2);
  lib.symbols.wasmtime_error_message(error, vec);
  const message = takeByteVec(lib, vec);
  lib.symbols.wasmtime_error_delete(error);
  throw new WasmtimeCallError(call, message);
}

/** Throws when the `wasm_trap_t *` out-parameter holds a trap, with its message. */
function checkTrap(lib: WasmtimeLibrary, call: string, trapOut: BigUint64Array<ArrayBuffer>) {
  const trap = lib.pointer(trapOut[0]);
  if (trap === null) return;
  trapOut[0] = 0n;
  const vec = new BigUint64Array(2);
  lib.symbols.wasm_trap_message(trap, vec);
  const message = takeByteVec(lib, vec);
  lib.symbols.wasm_trap_delete(trap);
  throw new WasmtimeCallError(call, `trap: ${message}`);
}

function nonNull(call: string, pointer: WasmtimePointer | null): WasmtimePointer {
  if (pointer === null) throw new WasmtimeCallError(call, "returned null");
  return pointer;
}

/** How a {@linkcode WasmtimeEngine} allocates instances. */
export interface WasmtimeEngineOptions {
  /**
   * `"pooling"`: `wasmtime_pooling_allocation_strategy_set` with a pool of
   * {@linkcode WasmtimeEngineOptions.poolSize} instances; `"on-demand"`: Wasmtime's default.
   */
  readonly allocation: "pooling" | "on-demand";
  /** `wasmtime_config_memory_init_cow_set` (Wasmtime's default: true). */
  readonly memoryInitCow?: boolean;
  /**
   * Pooling only: the pool's total core instances, memories and tables (Wasmtime's default
   * for each: 1000). Default 100, as the wasmpool engines the benches compare with.
   */
  readonly poolSize?: number;
}

/** A Wasmtime engine (`wasm_engine_t`), configured as {@linkcode WasmtimeEngineOptions} says. */
export class WasmtimeEngine {
  /** The library it runs on. */
  readonly lib: WasmtimeLibrary;
  #engine: WasmtimePointer | null;
  readonly #pres = new Set<WasmtimeInstancePre>();

  /**
   * Creates the engine.
   *
   * @param lib Wasmtime's C API.
   * @param options The allocation strategy and copy-on-write.
   * @throws {WasmtimeCallError} When Wasmtime refuses the configuration.
   */
  constructor(lib: WasmtimeLibrary, options: WasmtimeEngineOptions) {
    const s = lib.symbols;
    this.lib = lib;
    const config = nonNull("wasm_config_new", s.wasm_config_new());
    s.wasmtime_config_memory_init_cow_set(config, options.memoryInitCow ?? true);
    if (options.allocation === "pooling") {
      const size = options.poolSize ?? 100;
      if (!Number.isInteger(size) || size < 1 || size > 0xffff_ffff) {
        s.wasm_config_delete(config);
        throw new RangeError(`poolSize ${size} is not an integer in [1, 2^32)`);
      }
      const pooling = s.wasmtime_pooling_allocation_config_new();
      if (pooling === null) {
        s.wasm_config_delete(config);
        throw new WasmtimeCallError("wasmtime_pooling_allocation_config_new", "returned null");
      }
      s.wasmtime_pooling_allocation_config_total_core_instances_set(pooling, size);
      s.wasmtime_pooling_allocation_config_total_memories_set(pooling, size);
      s.wasmtime_pooling_allocation_config_total_tables_set(pooling, size);
      s.wasmtime_pooling_allocation_strategy_set(config, pooling);
      s.wasmtime_pooling_allocation_config_delete(pooling);
    }
    // Takes the config, whether it succeeds or not. Null when the engine cannot be made (for
    // pooling: when the pool's reservation fails); Wasmtime has no message for it here.
    this.#engine = nonNull("wasm_engine_new_with_config", s.wasm_engine_new_with_config(config));
  }

  #live(): WasmtimePointer {
    if (this.#engine === null) throw new Error("the Wasmtime engine is closed");
    return this.#engine;
  }

  /**
   * Compiles `bytes` (`wasmtime_module_new`) and pre-links it (`wasmtime_linker_instantiate_pre`)
   * with a linker that defines each of the module's imports as a function that traps
   * (`wasmtime_linker_define_unknown_imports_as_traps`), so a module's function imports cost
   * what a host function costs at instantiation, and nothing is ever called.
   *
   * @param bytes The module's binary.
   * @throws {WasmtimeCallError} When Wasmtime rejects the module or cannot link it.
   */
  instantiatePre(bytes: Uint8Array<ArrayBuffer>): WasmtimeInstancePre {
    const engine = this.#live();
    const s = this.lib.symbols;
    const out = new BigUint64Array(1);
    check(this.lib, "wasmtime_module_new", s.wasmtime_module_new(engine, bytes, bytes.length, out));
    const module = nonNull("wasmtime_module_new", this.lib.pointer(out[0]));
    const linker = s.wasmtime_linker_new(engine);
    try {
      if (linker === null) throw new WasmtimeCallError("wasmtime_linker_new", "returned null");
      check(
        this.lib,
        "wasmtime_linker_define_unknown_imports_as_traps",
        s.wasmtime_linker_define_unknown_imports_as_traps(linker, module),
      );
      out[0] = 0n;
      check(
        this.lib,
        "wasmtime_linker_instantiate_pre",
        s.wasmtime_linker_instantiate_pre(linker, module, out),
      );
      // The InstancePre holds its own reference to the module and the definitions it needs.
      const pre = nonNull("wasmtime_linker_instantiate_pre", this.lib.pointer(out[0]));
      const instancePre = new WasmtimeInstancePre(this.lib, engine, pre);
      this.#pres.add(instancePre);
      return instancePre;
    } finally {
      if (linker !== null) s.wasmtime_linker_delete(linker);
      s.wasmtime_module_delete(module);
    }
  }

  /** Deletes the engine, after closing every {@linkcode WasmtimeInstancePre} made by it. */
  close(): void {
    if (this.#engine === null) return;
    for (const pre of this.#pres) pre.close();
    this.#pres.clear();
    this.lib.symbols.wasm_engine_delete(this.#engine);
    this.#engine = null;
  }
}

/** One module, compiled and linked once (`wasmtime_instance_pre_t`), ready to instantiate. */
export class WasmtimeInstancePre {
  /**
   * One measured cycle: `wasmtime_store_new`, `wasmtime_store_context`,
   * `wasmtime_instance_pre_instantiate` into that store, `wasmtime_store_delete` (which
   * returns the instance's memory and tables to the engine's allocator).
   *
   * @throws {WasmtimeCallError} When Wasmtime fails to instantiate, with its message.
   */
  readonly cycle: () => void;
  readonly #lib: WasmtimeLibrary;
  /** The `wasmtime_instance_pre_t`; null once closed, which `cycle` checks. */
  readonly #live: { pre: WasmtimePointer | null };

  /**
   * Made by {@linkcode WasmtimeEngine.instantiatePre}.
   *
   * @param lib Wasmtime's C API.
   * @param engine The engine the module was compiled for.
   * @param pre The `wasmtime_instance_pre_t`, owned from here on.
   */
  constructor(lib: WasmtimeLibrary, engine: WasmtimePointer, pre: WasmtimePointer) {
    this.#lib = lib;
    const live: { pre: WasmtimePointer | null } = { pre };
    this.#live = live;
    const s = lib.symbols;
    // wasmtime_instance_t is { uint64_t store_id; size_t __private; }.
    const instanceOut = new BigUint64Array(2);
    const trapOut = new BigUint64Array(1);
    // Checking the trap slot as two u32 halves keeps BigInt off the hot path.
    const trapWords = new Uint32Array(trapOut.buffer);
    this.cycle = () => {
      const pre = live.pre;
      if (pre === null) throw new Error("the Wasmtime InstancePre is closed");
      const store = s.wasmtime_store_new(engine, null, null);
      if (store === null) throw new WasmtimeCallError("wasmtime_store_new", "returned null");
      const context = s.wasmtime_store_context(store);
      const error = s.wasmtime_instance_pre_instantiate(pre, context, instanceOut, trapOut);
      if (error !== null || trapWords[0] !== 0 || trapWords[1] !== 0) {
        s.wasmtime_store_delete(store);
        check(lib, "wasmtime_instance_pre_instantiate", error);
        checkTrap(lib, "wasmtime_instance_pre_instantiate", trapOut);
      }
      s.wasmtime_store_delete(store);
    };
  }

  /** Deletes the `InstancePre`. */
  close(): void {
    if (this.#live.pre === null) return;
    this.#lib.symbols.wasmtime_instance_pre_delete(this.#live.pre);
    this.#live.pre = null;
  }
}
