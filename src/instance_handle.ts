/**
 * `InstanceHandle`: the allocator alone. A module's memories, tables and globals, allocated and
 * initialized in a pool slot (or their own mappings, on demand), for embedders that run code
 * themselves. Nothing runs here: {@linkcode Engine.instantiate} gives instances that run.
 *
 * @module
 */

import { DeferredFinalizer } from "./deferred_finalizer.ts";
import { DisposedError } from "./errors.ts";
import { coerce, type Global, type GlobalValue, trustedGlobal } from "./global.ts";
import { FunctionExport, type ImportedFunction, type Imports, resolveImports } from "./imports.ts";
import { type EngineState, readAddress, Slot } from "./internal.ts";
import { Memory } from "./memory.ts";
import { type Module, moduleState } from "./module.ts";
import type { ConstExpr } from "./module/types.ts";
import { instantiationError, quarantineError } from "./native_errors.ts";
import { readStats } from "./stats.ts";
import { Table } from "./table.ts";

/** What an instance exports under one name. */
export type ExportValue = Memory | Table | Global | FunctionExport | ImportedFunction;

const NO_IMPORTS: Imports = Object.freeze({});
const NO_FUNCTIONS: readonly ImportedFunction[] = Object.freeze([]);

// An instance collected without dispose() still gives its slot back: the lease, referenced by
// the instance, its memories and its tables, is the finalizer's target.
const finalizer = new DeferredFinalizer<Slot>((slot) => slot.releaseInstance());

/**
 * A module's state allocated by the pooling allocator, with raw addresses: for embedders that
 * run code themselves. Dispose it (or `using` it) to give its slot back.
 */
export class InstanceHandle {
  readonly #module: Module;
  readonly #slot: Slot;
  // Referenced by the instance and its memories and tables; collected with the last of them.
  readonly #lease: object;
  readonly #memories: readonly Memory[];
  readonly #tables: readonly Table[];
  readonly #globals: readonly Global[];
  readonly #functions: readonly ImportedFunction[];
  #exports: Readonly<Record<string, ExportValue>> | null = null;
  #disposed = false;

  /** @internal Made by {@linkcode allocate}. */
  constructor(
    module: Module,
    slot: Slot,
    lease: object,
    memories: readonly Memory[],
    tables: readonly Table[],
    globals: readonly Global[],
    functions: readonly ImportedFunction[],
  ) {
    this.#module = module;
    this.#slot = slot;
    this.#lease = lease;
    this.#memories = memories;
    this.#tables = tables;
    this.#globals = globals;
    this.#functions = functions;
  }

  #check(): void {
    if (this.#disposed || !this.#slot.alive) {
      throw new DisposedError("an instance was used after it was disposed");
    }
  }

  /** The module this is an instance of. */
  get module(): Module {
    return this.#module;
  }

  /** Every memory in the module's memory index space: imports first. */
  get memories(): readonly Memory[] {
    this.#check();
    return this.#memories;
  }

  /** Every table in the module's table index space: imports first. */
  get tables(): readonly Table[] {
    this.#check();
    return this.#tables;
  }

  /** Every global in the module's global index space: imports first. */
  get globals(): readonly Global[] {
    this.#check();
    return this.#globals;
  }

  /** The module's exports by name. */
  get exports(): Readonly<Record<string, ExportValue>> {
    this.#check();
    if (this.#exports === null) this.#exports = this.#buildExports();
    return this.#exports;
  }

  #buildExports(): Readonly<Record<string, ExportValue>> {
    const { translation } = moduleState(this.#module);
    const parsed = translation.parsed;
    const importedFunctions = translation.importCounts.function;
    const exports: Record<string, ExportValue> = Object.create(null);
    for (const e of parsed.exports) {
      switch (e.kind) {
        case "memory":
          exports[e.name] = this.#memories[e.index];
          break;
        case "table":
          exports[e.name] = this.#tables[e.index];
          break;
        case "global":
          exports[e.name] = this.#globals[e.index];
          break;
        case "function":
          exports[e.name] = e.index < importedFunctions
            ? this.#functions[e.index]
            : new FunctionExport(
              e.index,
              parsed.types[parsed.functions[e.index - importedFunctions]],
            );
          break;
      }
    }
    return Object.freeze(exports);
  }

  /** Whether `dispose()` was called (or the engine closed). */
  get disposed(): boolean {
    return this.#disposed || !this.#slot.alive;
  }

  /**
   * Gives the slot back: buffers handed out are detached and the memories read as their
   * module's image (zeros without one) for the next tenant. Memories and tables another live
   * instance imported stay alive until that instance is disposed too. Calling it again does
   * nothing. Should the operating system refuse the reset (and the slot be quarantined), the
   * instance is disposed all the same and a `ResourceError` names the cause.
   */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    const slot = this.#slot;
    finalizer.untrack(slot);
    slot.releaseInstance();
    if (slot.quarantined && !slot.engine.closed) {
      const stats = readStats(slot.engine);
      throw quarantineError(slot.id, stats.quarantineOperation, stats.quarantineErrno);
    }
  }

  /** Same as {@linkcode InstanceHandle.dispose}, for `using`. */
  [Symbol.dispose](): void {
    this.dispose();
  }
}

function evaluate(expr: ConstExpr, globals: readonly Global[]): GlobalValue {
  switch (expr.kind) {
    case "i32.const":
    case "f32.const":
    case "f64.const":
    case "i64.const":
      return expr.value;
    case "v128.const":
      return expr.bytes;
    case "global.get":
      return globals[expr.index].value;
    case "ref.null":
      return null;
    case "ref.func":
      return expr.index;
  }
}

/** @internal Allocates and initializes the state of an instance of `module` in `engine`. */
export function allocate(engine: EngineState, module: Module, imports?: Imports): InstanceHandle {
  const state = moduleState(module);
  const t = state.translation;
  const resolved = t.imports.length === 0 ? null : resolveImports(engine, t, imports ?? NO_IMPORTS);
  const scratch = engine.scratch;
  const id = engine.lib.allocate(engine.pointer, state.pointer, scratch.pointer, scratch.bytes);
  if (id < 0) throw instantiationError(id, scratch.words);

  // The hot path of the library: plain loops, no closures, nothing allocated that is not kept.
  const slot = new Slot(engine, id);
  engine.slots[id] = slot;
  const lease = {};
  const words = scratch.words;
  const memories: Memory[] = resolved ? resolved.memories.slice() : [];
  const memoryPlans = t.memories;
  for (let m = 0; m < memoryPlans.length; m++) {
    const plan = memoryPlans[m];
    memories.push(new Memory(slot, lease, m, readAddress(words, m), plan.min, plan.max));
  }
  const tables: Table[] = resolved ? resolved.tables.slice() : [];
  const tablePlans = t.tables;
  for (let i = 0; i < tablePlans.length; i++) {
    const plan = tablePlans[i];
    const address = readAddress(words, memoryPlans.length + i);
    tables.push(new Table(slot, lease, i, address, plan.min, plan.max, plan.element));
  }
  const globals: Global[] = resolved ? resolved.globals.slice() : [];
  const globalDefs = t.parsed.globals;
  for (let g = 0; g < globalDefs.length; g++) {
    const def = globalDefs[g];
    globals.push(trustedGlobal(def.type, coerce(def.type.type, evaluate(def.init, globals))));
  }
  if (resolved) {
    const held = resolved.slots;
    for (let h = 0; h < held.length; h++) held[h].refs += 1;
    slot.held = held;
  }
  if (engine.finalization) finalizer.track(lease, slot);
  return new InstanceHandle(
    module,
    slot,
    lease,
    memories,
    tables,
    globals,
    resolved ? resolved.functions : NO_FUNCTIONS,
  );
}
