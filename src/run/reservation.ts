/**
 * Reservations (`Engine#reserve`): the memories a module imports, handed out before the
 * instance exists, as Emscripten's glue needs them. Built with an imported memory, that glue
 * makes `new WebAssembly.Memory(...)` (or takes its `wasmMemory` option) and reads its `buffer`
 * for its `HEAP*` views before it instantiates through `instantiateWasm(imports, receive)`;
 * it grows it with `grow` and reads `buffer` again. A reservation gives it a pooled memory
 * instead, already holding the module's data, and then the instance on that memory.
 *
 * - **Images of imported memories.** For each memory the module imports, a native module of
 *   one defined memory of the import's type, with the active data segments into that memory
 *   (translate.ts, `importedMemoryBlob`), is boxed on the module's first reservation: the native
 *   side builds its image as for any defined memory (constant offsets that fit the initial
 *   size; else it holds zeros and instantiation applies the segments).
 * - **The reserved variant** of the module (plan.ts, rewrite.ts) imports those memories from
 *   wasmpool under its own names (`memory0`, ...) instead of the names the module declares, and
 *   has the segments an image holds emptied. So the memory that links is always the pool's:
 *   the user's import object must carry the reservation's memory under the declared name
 *   (where the glue puts it), and anything else there is a LinkError naming the import.
 * - **Recycled.** When the module allows it (recyclability.ts: its imported memories count as
 *   pooled ones), the reservation takes an idle warm instance of the reserved variant (or makes
 *   one) at once, and hands out that instance's memories: `instantiate` starts a tenancy of it,
 *   and its dispose resets the memories to their images for the next reservation. Otherwise
 *   the memories are taken from the pool, and `instantiate` makes an instance of its own on
 *   them.
 * - **Plain `engine.instantiate`** is unchanged: a memory the user brings is the user's, and
 *   the runtime applies the data segments into it (the module's own rewrite keeps them).
 * - **On demand** a reservation makes fresh memories, and `instantiate` an instance of its own.
 *
 * A reservation counts against `instanceLimits.count` from `reserve` on. Errors found before
 * anything is instantiated (a foreign or missing memory, a missing import, bad options) leave
 * it open; a failure of the instantiation itself ends it, everything given back.
 *
 * @module
 */

import {
  DisposedError,
  LimitError,
  LinkError,
  ResourceError,
  UnsupportedFeatureError,
  WasmpoolError,
} from "../errors.ts";
import type { NativePointer } from "../ffi/symbols.ts";
import type { EngineState } from "../internal.ts";
import { WASM_PAGE_BYTES } from "../memory.ts";
import { type Module, moduleState } from "../module.ts";
import { importedMemoryBlob } from "../module/translate.ts";
import { Code, imageError } from "../native_errors.ts";
import { DeferredFinalizer, type Finalizable } from "../deferred_finalizer.ts";
import type { HostMemory } from "./host_memory_pool.ts";
import { grew } from "./hooks.ts";
import { dedicated } from "./dedicated.ts";
import type { Instance, InstanceExports, InstanceImports, InstantiateOptions } from "./instance.ts";
import { admit, callSettings, instantiationError, runEngine } from "./instance_setup.ts";
import { startTenancy } from "./lifecycle.ts";
import { type AliasBox, dropBox, type MemoryRecord, recordOf } from "./memory_record.ts";
import { type ImportedMemoryPlan, planRun, type RunPlan } from "./plan.ts";
import { sameGlobals, tenantImports, type WarmInstance } from "./recycle.ts";

/** An imported memory, as the module declares it. */
interface MemoryImport {
  /** The import's module name. */
  readonly module: string;
  /** The import's field name. */
  readonly name: string;
  /** Initial pages. */
  readonly min: number;
  /** Maximum pages, or null. */
  readonly max: number | null;
}

/** What the reservations of one module share, made on its first reservation. */
interface Reserved {
  /** The reserved variant (pooling), or the module's own plan (on demand). */
  readonly plan: RunPlan;
  /** Per imported memory: the native module holding its image (pooling). */
  readonly images: readonly NativePointer[];
  /** The imported memories, in order. */
  readonly imports: readonly MemoryImport[];
}

const reservedOf = new WeakMap<Module, Reserved>();

// The image modules go with their module (or with the engine, which frees every native module).
const imageFinalizer = new FinalizationRegistry<
  { engine: EngineState; pointers: readonly NativePointer[] }
>(({ engine, pointers }) => {
  for (const pointer of pointers) {
    if (engine.closed || !engine.modules.delete(pointer)) continue;
    engine.lib.moduleDestroy(engine.pointer, pointer);
  }
});

function memoryImports(module: Module): MemoryImport[] {
  const out: MemoryImport[] = [];
  for (const i of moduleState(module).translation.parsed.imports) {
    if (i.desc.kind !== "memory") continue;
    out.push({ module: i.module, name: i.name, min: i.desc.type.min, max: i.desc.type.max });
  }
  return out;
}

/** Boxes the image module of `module`'s imported memory `index`; its plan for the variant. */
function boxImage(
  engine: EngineState,
  module: Module,
  index: number,
  pointers: NativePointer[],
): ImportedMemoryPlan {
  const state = moduleState(module);
  const made = importedMemoryBlob(state.translation.parsed, index, engine.limits);
  if (made === null) {
    const declared = memoryImports(module)[index].min;
    throw new LimitError(
      `memory index ${index} has a minimum page size of ${declared} which exceeds the limit ` +
        `of ${engine.limits.memoryPages}`,
      { limit: "memoryPages", value: declared, maximum: engine.limits.memoryPages },
    );
  }
  const memories = engine.pooling!.moduleLimits.memories;
  if (memories < 1) {
    // The native side builds an image for a defined memory only, within this limit.
    throw new LimitError(
      `a reservation's memory image is built as a defined memory's: moduleLimits.memories of ` +
        `${memories} must be at least 1`,
      { limit: "memories", value: 1, maximum: memories },
    );
  }
  const code = new Int32Array(4);
  const pointer = engine.lib.moduleCreate(engine.pointer, made.blob, made.blob.byteLength, code);
  if (pointer === null) {
    if (code[0] === Code.imageFailed) throw imageError(code[2], code[1], made.blob.byteLength);
    throw new WasmpoolError(
      `the native side refused the image of imported memory ${index} (code ${code[0]})`,
    );
  }
  engine.modules.add(pointer);
  pointers.push(pointer);
  const { min, max } = made.plan;
  return {
    shape: { min, max, key: `${min}:${max}` },
    imaged: made.data && engine.lib.moduleImaged(pointer) === 1,
  };
}

function reservedRun(engine: EngineState, module: Module): Reserved {
  const known = reservedOf.get(module);
  if (known !== undefined) return known;
  const state = moduleState(module);
  const imports = memoryImports(module);
  if (imports.length === 0) {
    throw new UnsupportedFeatureError(
      "the module imports no memory, so there is nothing to reserve: use engine.instantiate",
      0,
    );
  }
  let reserved: Reserved;
  if (engine.pooling === null) {
    reserved = { plan: state.run, images: [], imports };
  } else {
    const pointers: NativePointer[] = [];
    try {
      const memories = imports.map((_, i) => boxImage(engine, module, i, pointers));
      const imaged = engine.lib.moduleImaged(state.pointer) === 1;
      const plan = planRun(
        state.bytes,
        state.translation,
        "reserved",
        imaged,
        engine.checks,
        memories,
      );
      reserved = { plan, images: pointers, imports };
    } catch (error) {
      for (const pointer of pointers) {
        engine.modules.delete(pointer);
        engine.lib.moduleDestroy(engine.pointer, pointer);
      }
      throw error;
    }
    imageFinalizer.register(module, { engine, pointers });
  }
  reservedOf.set(module, reserved);
  return reserved;
}

/**
 * A memory handed out by a reservation: what glue reads of a `WebAssembly.Memory`. Its
 * `buffer` is an alias of its bytes, detached when it grows and when the reservation ends (its
 * instance is disposed, or it is disposed without one).
 */
export class ReservedMemory {
  readonly #record: MemoryRecord;
  readonly #box: AliasBox;
  readonly #reservation: Reservation;

  /** @internal Made by `Engine#reserve`. */
  constructor(record: MemoryRecord, reservation: Reservation) {
    this.#record = record;
    this.#box = { alias: null, record };
    this.#reservation = reservation;
  }

  /** @internal The box of this memory's alias. */
  get box(): AliasBox {
    return this.#box;
  }

  /**
   * The memory's bytes, as an ArrayBuffer that stays the same until the memory grows or the
   * reservation ends, which detach it (length 0), like a `WebAssembly.Memory`'s buffer.
   */
  get buffer(): ArrayBuffer {
    const reservation = this.#reservation;
    if (reservation.ended) {
      throw new DisposedError("a reserved memory was used after its reservation ended");
    }
    return this.#record.aliasFor(this.#box, reservation.engineState.lib);
  }

  /**
   * Grows the memory by `delta` pages and returns its previous size in pages, or throws the
   * runtime's RangeError past the maximum. Every buffer handed out over it is detached.
   */
  grow(delta: number): number {
    if (this.#reservation.ended) {
      throw new DisposedError("a reserved memory was used after its reservation ended");
    }
    const old = this.#record.memory.grow(delta);
    grew();
    return old;
  }
}

/**
 * @internal Makes idle instances of the variant reservations of `module` run, until `count`
 * wait (what `Engine#warm` does for a module that imports its memory); returns how many do.
 * Throws UnsupportedFeatureError, naming the reason, when reservations of it are not recycled.
 */
export function warmReserved(engine: EngineState, module: Module, count: number): number {
  const pooling = engine.pooling;
  let reason = pooling === null
    ? "the engine allocates on demand"
    : !pooling.recycleInstances
    ? "recycleInstances is false"
    : null;
  const reserved = reason === null ? reservedRun(engine, module) : null;
  const plan = reserved?.plan;
  reason ??= plan!.notRecyclable ??
    (plan!.imports.some((d) => d.kind === "global")
      ? "it imports globals, and a reservation's instance is made before their values are known"
      : null);
  if (reason !== null) {
    throw new UnsupportedFeatureError(
      `reserved instances of this module cannot be recycled: ${reason}`,
      0,
    );
  }
  const run = runEngine(engine);
  const native = moduleState(module).pointer;
  let idle = run.idle.get(plan!)?.length ?? 0;
  for (; idle < count; idle++) {
    let made;
    try {
      made = run.makeWarm(plan!, native, [], reserved!.images);
    } catch (error) {
      throw instantiationError(error);
    }
    run.putIdle(made);
  }
  return idle;
}

/** What a reservation holds until it is instantiated or disposed. */
type Holding =
  | { readonly kind: "warm"; readonly warm: WarmInstance; readonly ticket: number }
  | { readonly kind: "pooled"; readonly memories: HostMemory[]; readonly ticket: number }
  | FreshHolding;

/** On demand: the memories a reservation made. */
interface FreshHolding {
  readonly kind: "fresh";
  readonly memories: WebAssembly.Memory[];
}

/**
 * What a reservation holds, apart from the reservation itself: what its finalizer gives back
 * when a reservation nobody disposed is collected (it must not reference the reservation).
 */
class Hold implements Finalizable {
  /** The engine. */
  readonly engine: EngineState;
  /** The slot and memories, or warm instance; null once instantiated or given back. */
  holding: Holding | null;
  /** The alias boxes of the reservation's memories. */
  readonly boxes: readonly AliasBox[];
  /** Whether the finalizer registered it. */
  finalizing = false;
  /** Its place among the values waiting for the finalizer's registration, or -1. */
  pending = -1;

  constructor(engine: EngineState, holding: Holding, boxes: readonly AliasBox[]) {
    this.engine = engine;
    this.holding = holding;
    this.boxes = boxes;
  }

  /** Whether it was instantiated or given back, for the finalizer. */
  get released(): boolean {
    return this.holding === null;
  }

  /** Lets go of what it holds, taken by an instantiation: the finalizer gives nothing back. */
  take(): void {
    finalizer.untrack(this);
    this.holding = null;
  }
}

/** Gives back what `hold` holds: its memories, its pool slot, its warm instance. */
function giveBack(hold: Hold): void {
  const holding = hold.holding;
  if (holding === null) return;
  hold.holding = null;
  for (const box of hold.boxes) dropBox(box);
  const engine = hold.engine;
  if (engine.closed) return;
  const run = runEngine(engine);
  if (holding.kind === "warm") return run.putBackUnused(holding.warm, holding.ticket);
  if (holding.kind === "pooled") {
    for (const memory of holding.memories) run.pool!.give(memory);
    engine.lib.instanceLeave(engine.pointer, holding.ticket);
  }
}

const finalizer = new DeferredFinalizer<Hold>(giveBack);

/**
 * The memories a module imports, pooled and holding the module's data, handed out before the
 * instance is made: what Emscripten's glue needs (see `Engine#reserve`). Instantiate it once
 * with {@linkcode Reservation.instantiate}; dispose the instance to end it, or dispose the
 * reservation if it is never instantiated.
 */
export class Reservation {
  readonly #engine: EngineState;
  readonly #module: Module;
  readonly #reserved: Reserved;
  readonly #hold: Hold;
  #instance: Instance | null = null;
  /** The imported memories, in the module's order. */
  readonly memories: readonly ReservedMemory[];

  /** @internal Made by `Engine#reserve`. */
  constructor(engine: EngineState, module: Module) {
    const reserved = reservedRun(engine, module);
    this.#engine = engine;
    this.#module = module;
    this.#reserved = reserved;
    const holding = hold(engine, module, reserved);
    const raws = holding.kind === "warm"
      ? holding.warm.state.memories.slice(0, reserved.imports.length)
      : holding.memories;
    // Not frozen (typed readonly): freezing costs more than the rest of the reservation in V8.
    const memories: ReservedMemory[] = [];
    const boxes: AliasBox[] = [];
    for (const raw of raws) {
      const memory = new ReservedMemory(
        raw instanceof WebAssembly.Memory ? recordOf(raw) : raw,
        this,
      );
      memories.push(memory);
      boxes.push(memory.box);
    }
    this.memories = memories;
    this.#hold = new Hold(engine, holding, boxes);
    if (engine.finalization) finalizer.track(this, this.#hold);
  }

  /** The module's first imported memory: pass it where the glue takes its memory. */
  get memory(): ReservedMemory {
    return this.memories[0];
  }

  /** @internal The engine. */
  get engineState(): EngineState {
    return this.#engine;
  }

  /** Whether it is over: disposed, or its instance disposed, or the engine closed. */
  get ended(): boolean {
    if (this.#engine.closed) return true;
    const instance = this.#instance;
    return instance === null ? this.#hold.holding === null : instance.disposed;
  }

  /**
   * Instantiates the module on the reserved memories, as `Engine#instantiate` does: `imports`
   * are the module's imports, and carry the reservation's memories where the module declares
   * them (`reservation.memory` under, for instance, `a.a` or `env.memory`). With pooling, the
   * instance is a recycled one where the module allows it. Throws {@linkcode LinkError} naming
   * the import when it carries anything else there, or when an import is missing (the
   * reservation stays open then), and {@linkcode DisposedError} once the reservation was
   * instantiated or disposed. Any other failure ends the reservation, everything given back.
   */
  instantiate<E extends InstanceExports = InstanceExports>(
    imports?: InstanceImports,
    options: InstantiateOptions = {},
  ): Instance<E> {
    const engine = this.#engine;
    const kept = this.#hold;
    const holding = kept.holding;
    if (holding === null || engine.closed) {
      throw new DisposedError("a reservation was used after it was instantiated or disposed");
    }
    const plan = this.#reserved.plan;
    const settings = callSettings(plan, options);
    this.#checkMemories(imports);
    const run = runEngine(engine);
    const module = this.#module;
    const boxes = kept.boxes;
    if (holding.kind === "warm") {
      const { warm, ticket } = holding;
      const bound = tenantImports(plan, imports);
      kept.take();
      if (bound !== null && sameGlobals(warm.globals, bound.globals)) {
        const instance = startTenancy(
          engine,
          run,
          module,
          plan,
          warm,
          ticket,
          bound.fns,
          settings,
          boxes,
        );
        return this.#keep(instance) as Instance<E>;
      }
      // A wasm function or other global values: an instance of its own, on the same memories.
      run.counters.ownInstances += 1;
      const taken = warm.state.memories.splice(0, plan.imported);
      run.destroyWarm(warm);
      return this.#keep(
        dedicated(engine, run, module, plan, imports, settings, ticket, taken, boxes),
      ) as Instance<E>;
    }
    kept.take();
    if (holding.kind === "pooled") {
      run.counters.notRecyclable += 1;
      const { ticket, memories } = holding;
      return this.#keep(
        dedicated(engine, run, module, plan, imports, settings, ticket, memories, boxes),
      ) as Instance<E>;
    }
    const passed = this.#withMemories(imports, holding.memories);
    return this.#keep(
      dedicated(engine, run, module, plan, passed, settings, -1, [], boxes),
    ) as Instance<E>;
  }

  /**
   * Gives back what the reservation holds, when it was never instantiated: its memories, its
   * pool slot, its idle instance; every buffer its memories handed out is detached. Once
   * instantiated, the instance's dispose ends it and this does nothing. Calling it again does
   * nothing.
   */
  dispose(): void {
    const kept = this.#hold;
    if (kept.holding === null) return;
    finalizer.untrack(kept);
    giveBack(kept);
  }

  /** Same as {@linkcode Reservation.dispose}, for `using`. */
  [Symbol.dispose](): void {
    this.dispose();
  }

  #keep(instance: Instance): Instance {
    this.#instance = instance;
    return instance;
  }

  /** Throws LinkError unless `imports` carry each reserved memory where the module declares it. */
  #checkMemories(imports: InstanceImports | undefined): void {
    const declared = this.#reserved.imports;
    for (let i = 0; i < declared.length; i++) {
      const { module, name } = declared[i];
      const namespace = imports?.[module] as Record<string, unknown> | undefined;
      const value = typeof namespace === "object" || typeof namespace === "function"
        ? namespace?.[name]
        : undefined;
      if (value === this.memories[i]) continue;
      throw new LinkError(
        `import ${JSON.stringify(module)}.${JSON.stringify(name)} must be the reservation's ` +
          `memory (reservation.memories[${i}]), got ${describe(value)}`,
      );
    }
  }

  /** `imports` with the runtime's memories in place of the reserved ones (on demand). */
  #withMemories(
    imports: InstanceImports | undefined,
    memories: readonly WebAssembly.Memory[],
  ): InstanceImports {
    const out: Record<string, Record<string, unknown>> = { ...imports };
    this.#reserved.imports.forEach((declared, i) => {
      out[declared.module] = { ...out[declared.module], [declared.name]: memories[i] };
    });
    return out;
  }
}

function describe(value: unknown): string {
  if (value === undefined) return "nothing";
  if (value instanceof ReservedMemory) return "another reservation's memory";
  if (value instanceof WebAssembly.Memory) return "a WebAssembly.Memory of its own";
  if (value === null) return "null";
  if (typeof value === "object") return `an object (${value.constructor?.name ?? "no class"})`;
  return `a ${typeof value}`;
}

/** Takes what a reservation of `module` holds: a slot and memories, or a warm instance. */
function hold(engine: EngineState, module: Module, reserved: Reserved): Holding {
  const { plan, images } = reserved;
  const run = runEngine(engine);
  const pool = run.pool;
  if (pool === null) {
    return {
      kind: "fresh",
      memories: reserved.imports.map((d) => freshMemory(d.min, d.max)),
    };
  }
  const ticket = admit(engine);
  const native = moduleState(module).pointer;
  const taken: HostMemory[] = [];
  try {
    // A warm instance is made before its tenant's imports are known: only without imported
    // globals, whose values it is made with.
    const globals = plan.imports.some((d) => d.kind === "global");
    if (plan.notRecyclable === null && engine.pooling!.recycleInstances && !globals) {
      let warm = run.takeIdle(plan);
      if (warm === null) {
        warm = run.makeWarm(plan, native, [], images);
        run.counters.warmMisses += 1;
      } else {
        run.counters.warmHits += 1;
      }
      return { kind: "warm", warm, ticket };
    }
    for (let m = 0; m < plan.imported; m++) {
      taken.push(pool.take(plan.memories[m], plan, images[m], 0));
    }
    return { kind: "pooled", memories: taken, ticket };
  } catch (error) {
    for (const memory of taken) pool.give(memory);
    engine.lib.instanceLeave(engine.pointer, ticket);
    throw instantiationError(error);
  }
}

function freshMemory(min: number, max: number | null): WebAssembly.Memory {
  try {
    return new WebAssembly.Memory(max === null ? { initial: min } : { initial: min, maximum: max });
  } catch (cause) {
    throw new ResourceError(
      `the runtime could not make a memory of ${min} pages (${min * WASM_PAGE_BYTES} bytes): ` +
        `${cause}`,
      { cause },
    );
  }
}
