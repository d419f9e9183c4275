/**
 * `Engine`: owns the allocator (pooling or on-demand) and everything instantiated from it.
 *
 * @module
 */

import {
  Config,
  DEFAULT_INSTANCE_LIMITS,
  InstanceAllocationStrategy,
  type InterruptionSettings,
  type PoolingSettings,
} from "./config.ts";
import { createScratch, engineState, registerEngine } from "./engine_state.ts";
import {
  ArgumentError,
  DisposedError,
  LimitError,
  LinkError,
  ResourceError,
  UffdUnavailableError,
  type WasmpoolError,
} from "./errors.ts";
import { native } from "./ffi/load.ts";
import type { NativePointer } from "./ffi/symbols.ts";
import type { Imports } from "./imports.ts";
import { allocate, type InstanceHandle } from "./instance_handle.ts";
import type {
  Instance,
  InstanceExports,
  InstanceImports,
  InstantiateOptions,
} from "./run/instance.ts";
import { instantiate } from "./run/instantiate.ts";
import { warm } from "./run/lifecycle.ts";
import { detachBuffer, type EngineState } from "./internal.ts";
import { Reservation, warmReserved } from "./run/reservation.ts";
import type { Module } from "./module.ts";
import type { TranslationLimits } from "./module/translate.ts";
import { Code, describeErrno } from "./native_errors.ts";
import { checkOptions, type OptionNames } from "./options.ts";
import { acquireTicker, releaseTicker } from "./run/epoch.ts";
import { type EngineStats, readStats } from "./stats.ts";

export type { EngineStats } from "./stats.ts";

/** On demand, a table may grow to this many elements (each its own mapping of 4 bytes each). */
export const ON_DEMAND_TABLE_ELEMENTS = 10_000_000;

const CONFIG_BYTES = 96;
const POOL_NAMES = ["instance", "memory", "table", "stack"];

function encodeConfig(config: Config): { bytes: Uint8Array; limits: TranslationLimits } {
  const bytes = new Uint8Array(CONFIG_BYTES);
  const view = new DataView(bytes.buffer);
  const strategy = config.allocationStrategy;
  const pooling = strategy.pooling;
  if (pooling === null) {
    view.setUint32(0, 0, true);
    view.setUint32(20, 0xffff_ffff, true);
    view.setUint32(24, 0xffff_ffff, true);
    view.setUint32(28, 65536, true);
    view.setUint32(32, ON_DEMAND_TABLE_ELEMENTS, true);
    view.setBigUint64(40, BigInt(DEFAULT_INSTANCE_LIMITS.memoryReservationSize), true);
    return { bytes, limits: { memoryPages: 65536, tableElements: ON_DEMAND_TABLE_ELEMENTS } };
  }
  const m = pooling.moduleLimits;
  view.setUint32(0, 1, true);
  view.setUint32(4, pooling.strategy === "random" ? 1 : 0, true);
  view.setBigUint64(8, BigInt(pooling.seed), true);
  view.setUint32(16, pooling.instanceLimits.count, true);
  view.setUint32(20, m.memories, true);
  view.setUint32(24, m.tables, true);
  view.setUint32(28, m.memoryPages, true);
  view.setUint32(32, m.tableElements, true);
  view.setUint32(36, pooling.uffd ? 1 : 0, true);
  view.setBigUint64(40, BigInt(pooling.instanceLimits.memoryReservationSize), true);
  view.setBigUint64(48, BigInt(pooling.stackSize), true);
  view.setBigUint64(80, BigInt(pooling.memoryKeepResident), true);
  view.setUint32(88, pooling.maxUnusedWarmSlots, true);
  return { bytes, limits: { memoryPages: m.memoryPages, tableElements: m.tableElements } };
}

const UFFD_STEPS = [
  "",
  "the userfaultfd system call",
  "the UFFDIO_API handshake",
  "UFFDIO_REGISTER",
  "starting the handler thread",
];

function uffdError(step: number, errno: number): WasmpoolError {
  const remedy = errno === 1 || errno === 13
    ? ": run as root, set the sysctl vm.unprivileged_userfaultfd=1, or use Linux 5.11+ " +
      "(user-mode-only faults need no privilege)"
    : errno === 38
    ? ": this kernel has no userfaultfd (CONFIG_USERFAULTFD); use uffd: false"
    : "";
  return new UffdUnavailableError(
    `userfaultfd mode is unavailable: ${UFFD_STEPS[step] ?? "setup"} failed with ` +
      `${describeErrno(errno)}${remedy}`,
  );
}

function creationError(bytes: Uint8Array): WasmpoolError {
  const view = new DataView(bytes.buffer);
  const code = view.getInt32(56, true);
  const pool = POOL_NAMES[view.getUint32(60, true)] ?? "unknown";
  const errno = view.getUint32(64, true);
  const size = view.getBigUint64(72, true);
  switch (code) {
    case Code.overflow:
      return new LimitError(
        "the pool's size overflows the address space: lower instanceLimits.count, " +
          "memoryReservationSize, moduleLimits.memories or moduleLimits.tables",
      );
    case Code.reservationFailed:
      return new ResourceError(
        `failed to reserve ${size} bytes of address space for the ${pool} pool: ` +
          describeErrno(errno),
      );
    case Code.outOfMemory:
      return new ResourceError("the native heap could not hold the pool's bookkeeping");
    case Code.uffdUnavailable:
      return uffdError(view.getUint32(60, true), errno);
    default:
      return new LimitError(`the native side refused the configuration (code ${code})`);
  }
}

/**
 * What a Worker needs to use an engine created elsewhere in the process: pass it with
 * `postMessage` (it is plain data) and call {@linkcode Engine.attach} in the Worker.
 */
export interface EngineHandle {
  /** The native engine's id: a stale id (the engine is gone) attaches to nothing. */
  readonly id: number;
  /** The pooling settings, or null for on-demand. */
  readonly pooling: PoolingSettings | null;
  /** Epoch interruption's settings, or null when it is off. */
  readonly interruption?: InterruptionSettings | null;
  /** Whether fuel is on. */
  readonly fuel?: boolean;
}

/** The name of every field of an {@linkcode EngineHandle} (see `checkOptions`). */
const ENGINE_HANDLE_FIELDS: OptionNames<EngineHandle> = {
  id: true,
  pooling: true,
  interruption: true,
  fuel: true,
};

// Set by Engine.attach for the constructor it calls: the engine to adopt instead of creating.
let adopting: NativePointer | null = null;

/**
 * The allocator and its instances. Create one per configuration and keep it: with pooling,
 * its whole address space is reserved here, once.
 *
 * @example
 * ```ts
 * using engine = new Engine(new Config().withAllocationStrategy(
 *   InstanceAllocationStrategy.pooling({ instanceLimits: { count: 100 } }),
 * ));
 * ```
 */
export class Engine {
  /** The configuration this engine was made with. */
  readonly config: Config;
  readonly #state: EngineState;

  /** Makes an engine; with pooling, reserves the pools. Throws WasmpoolError on failure. */
  constructor(config: Config = new Config()) {
    if (!(config instanceof Config)) throw new LimitError("new Engine() expects a Config");
    const strategy = config.allocationStrategy;
    const lib = native();
    const { bytes, limits } = encodeConfig(config);
    const pointer = adopting ?? lib.engineCreate(bytes);
    adopting = null;
    if (pointer === null) throw creationError(bytes);
    let scratch;
    let tickerHolder = -1;
    try {
      scratch = createScratch(lib, 0);
      const interruption = config.interruption;
      if (interruption !== null) tickerHolder = acquireTicker(lib, interruption.tickMs);
    } catch (error) {
      if (scratch !== undefined) lib.scratchDestroy(scratch.pointer, scratch.bytes);
      lib.engineRelease(pointer);
      throw error;
    }
    this.config = config;
    this.#state = {
      lib,
      pointer,
      kind: strategy.kind,
      pooling: strategy.pooling,
      limits,
      scratch,
      slots: [],
      modules: new Set(),
      closed: false,
      finalization: config.instanceFinalization,
      run: null,
      checks: Object.freeze({ interruption: config.interruption !== null, fuel: config.fuel }),
      tickMs: config.interruption?.tickMs ?? null,
      tickerHolder,
    };
    registerEngine(this, this.#state);
  }

  /**
   * A handle for using this engine from a Worker: the Worker calls {@linkcode Engine.attach}
   * with it. Every attached engine shares this engine's pool (slots, limits, stats) and has
   * its own modules and instances; the pool is unmapped when the last of them is closed.
   */
  handle(): EngineHandle {
    const state = engineState(this);
    return {
      id: state.lib.engineId(state.pointer),
      pooling: state.pooling,
      interruption: this.config.interruption,
      fuel: this.config.fuel,
    };
  }

  /**
   * Attaches to the engine behind `handle`, typically in a Worker. Throws DisposedError when
   * that engine has been closed by every holder, ArgumentError for a field a handle lacks.
   */
  static attach(handle: EngineHandle): Engine {
    checkOptions(handle, ENGINE_HANDLE_FIELDS, "Engine.attach()");
    const lib = native();
    const pointer = lib.engineAttach(handle.id >>> 0);
    if (pointer === null) {
      throw new DisposedError(`no engine with id ${handle.id} is alive to attach to`);
    }
    const strategy = handle.pooling === null
      ? InstanceAllocationStrategy.onDemand()
      : InstanceAllocationStrategy.pooling(handle.pooling);
    const config = new Config().withAllocationStrategy(strategy).withFuel(handle.fuel === true);
    if (handle.interruption != null) config.withInterruption(handle.interruption);
    adopting = pointer;
    try {
      return new Engine(config);
    } finally {
      adopting = null;
    }
  }

  /**
   * The allocator alone (the seed's `InstanceAllocator::allocate`): allocates and initializes
   * the memories, tables and globals of an instance of `module`, for embedders that run code
   * themselves. Throws {@linkcode PoolExhaustedError} when the pool is full,
   * {@linkcode OutOfBoundsError} when a segment does not fit, and {@linkcode LinkError} for a
   * missing or mismatched import; nothing is left allocated then.
   */
  allocate(module: Module, imports?: Imports): InstanceHandle {
    const state = this.#state;
    if (state.closed) throw new DisposedError("the engine was used after close()");
    if (module.engine !== this) {
      throw new LinkError("the module was translated for another engine");
    }
    return allocate(state, module, imports);
  }

  /**
   * Instantiates `module` to run on the runtime's own WebAssembly engine (V8 in Deno,
   * JavaScriptCore in Bun): its start function has run, and its `exports` behave like
   * `WebAssembly.Instance#exports`. With pooling, its memories come from the engine's pool and
   * the instance counts against `instanceLimits.count` (across Workers attached to the engine).
   * `imports` are what `new WebAssembly.Instance` takes; exports of other wasmpool instances
   * may be passed for them.
   *
   * `options` give the instance a deadline (`deadlineMs`: it bounds the start function and
   * every call into the exports, on an engine with `Config#withInterruption`) and fuel
   * (`fuel`, with `Config#withFuel`); any other name is an {@linkcode ArgumentError}.
   *
   * Throws {@linkcode PoolExhaustedError} when the pool is full, {@linkcode LinkError} for a
   * missing or mismatched import, {@linkcode MalformedModuleError} when the runtime does not
   * compile the module, {@linkcode OutOfBoundsError} when a data or element segment does not
   * fit (its `cause` the runtime's `WebAssembly.RuntimeError`), the runtime's own
   * `WebAssembly.RuntimeError` when the start function traps, and
   * {@linkcode DeadlineExceededError} or {@linkcode FuelExhaustedError} when the start function
   * is stopped. Nothing is left allocated then.
   */
  instantiate<E extends InstanceExports = InstanceExports>(
    module: Module,
    imports?: InstanceImports,
    options?: InstantiateOptions,
  ): Instance<E> {
    const state = this.#state;
    if (state.closed) throw new DisposedError("the engine was used after close()");
    if (module.engine !== this) {
      throw new LinkError("the module was translated for another engine");
    }
    return instantiate(state, module, imports, options) as Instance<E>;
  }

  /**
   * Reserves an instance of `module`, a module that imports its memory (as Emscripten builds
   * with an imported memory do): its memories come first, pooled and already holding the
   * module's data, for glue that makes its memory before it instantiates. Pass
   * `reservation.memory` where the glue takes its memory, and instantiate with
   * `reservation.instantiate(imports)` where the glue instantiates: `imports` must carry that
   * memory under the module's own import name (a {@linkcode LinkError} names the import
   * otherwise). With pooling the reservation counts against `instanceLimits.count` at once,
   * and its instance is recycled where the module allows it, so the next reservation reuses
   * it with its memory reset; on demand its memories are fresh. Dispose the instance to end
   * the reservation, or the reservation if it is never instantiated.
   *
   * Throws {@linkcode PoolExhaustedError} when the pool is full, {@linkcode LimitError} when
   * an imported memory's minimum exceeds `moduleLimits.memoryPages`, and
   * {@linkcode UnsupportedFeatureError} for a module that imports no memory.
   *
   * @example Emscripten's `MODULARIZE` glue, driven unchanged
   * ```ts
   * using engine = new Engine(new Config().withAllocationStrategy(
   *   InstanceAllocationStrategy.pooling({ moduleLimits: { importedMemories: 1 } }),
   * ));
   * const module = new Module(engine, wasmBytes);
   * const reservation = engine.reserve(module);
   * const glue = await factory({
   *   wasmMemory: reservation.memory,
   *   instantiateWasm(imports: WebAssembly.Imports, receive: (i: unknown, m: unknown) => void) {
   *     receive(reservation.instantiate(imports as InstanceImports), module);
   *     return {};
   *   },
   * });
   * // ... use glue; then dispose the instance (glue.instance, or keep the one returned above)
   * ```
   */
  reserve(module: Module): Reservation {
    const state = this.#state;
    if (state.closed) throw new DisposedError("the engine was used after close()");
    if (module.engine !== this) {
      throw new LinkError("the module was translated for another engine");
    }
    return new Reservation(state, module);
  }

  /**
   * Makes instances of `module` ahead of time, until `count` wait idle for tenants, so that the
   * next `count` instantiations are served at once (`stats().warmHits`). For a module whose
   * instances are recycled (`module.notRecyclable === null`), with pooling; they count against
   * the pool's memories, not its instances: the pool takes them back when it needs the room.
   * `imports` give the values of the globals the module imports (its functions are each
   * tenant's own). Returns how many wait idle now. Idle instances beyond
   * `maxUnusedWarmSlots` are released after `idleInstanceTimeoutMs` like any others (set it to
   * `Infinity` to keep them). Throws UnsupportedFeatureError, naming the reason, for a module
   * whose instances cannot be recycled, and {@linkcode OutOfBoundsError} when a segment does not
   * fit.
   *
   * For a module that imports its memory, the instances made are the ones
   * {@linkcode Engine.reserve} takes, each with its pooled memories holding the module's data.
   */
  warm(module: Module, count: number, imports?: InstanceImports): number {
    const state = this.#state;
    if (state.closed) throw new DisposedError("the engine was used after close()");
    if (module.engine !== this) {
      throw new LinkError("the module was translated for another engine");
    }
    if (!Number.isInteger(count) || count < 0) {
      throw new ArgumentError(`warm expects a whole number of instances, got ${count}`);
    }
    if (module.imports.some((i) => i.kind === "memory")) return warmReserved(state, module, count);
    return warm(state, module, count, imports);
  }

  /** Counters and sizes of the allocator. */
  stats(): EngineStats {
    return readStats(engineState(this));
  }

  /** Whether `close()` was called. */
  get closed(): boolean {
    return this.#state.closed;
  }

  /**
   * Releases everything this engine object holds: its live instances are disposed (their
   * buffers detached), its modules freed, and the pools unmapped unless another attached
   * engine (a Worker's) still holds them. Calling it again does nothing.
   */
  close(): void {
    const state = this.#state;
    if (state.closed) return;
    // First, while the native engine is alive: running instances give their slots back.
    state.run?.close();
    state.closed = true;
    const { lib, pointer } = state;
    for (const slot of state.slots) {
      if (slot === undefined) continue;
      slot.detachViews();
      lib.instanceDispose(pointer, slot.id);
    }
    state.slots.length = 0;
    for (const module of state.modules) lib.moduleDestroy(pointer, module);
    state.modules.clear();
    detachBuffer(state.scratch.words.buffer);
    lib.scratchDestroy(state.scratch.pointer, state.scratch.bytes);
    lib.engineRelease(pointer);
    if (state.tickerHolder >= 0) {
      releaseTicker(lib, state.tickerHolder);
      state.tickerHolder = -1;
    }
  }

  /** Same as {@linkcode Engine.close}, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }
}
