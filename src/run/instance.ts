/**
 * `Instance`: a module instantiated to run on the runtime's own WebAssembly engine, its
 * memories taken from the engine's pool (pooling) or made by the runtime (on demand).
 *
 * @module
 */

import { DeferredFinalizer } from "../deferred_finalizer.ts";
import { DisposedError, LinkError, PoolExhaustedError } from "../errors.ts";
import type { EngineState } from "../internal.ts";
import { type Module, moduleState } from "../module.ts";
import { guardExports, unguard } from "./exports.ts";
import { guardImport, Lease, unwrapFunction } from "./guard.ts";
import type { HostMemory } from "./host_memory_pool.ts";
import { recordOf } from "./memory_record.ts";
import { planRun, type RunPlan } from "./plan.ts";
import { MEMORY_IMPORT_MODULE, memoryImportName } from "./rewrite.ts";
import { RunEngine } from "./run_engine.ts";
import { link, retire, RunState, watchRecord } from "./tenancy.ts";

/**
 * What `Engine#instantiate` takes as imports: what `new WebAssembly.Instance` takes, where a
 * memory, table, global or function exported by another wasmpool instance may stand for the
 * runtime's own objects.
 */
export type InstanceImports = Readonly<Record<string, Readonly<Record<string, unknown>>>>;

/** The exports of a running instance, by name. */
export type InstanceExports = Readonly<Record<string, unknown>>;

// An instance collected without dispose() still gives back its memories and its slot: the
// lease, referenced by the instance and every guarded object it handed out, is the target.
const finalizer = new DeferredFinalizer<RunState>((state) => retire(state));

/**
 * A running instance. Its `exports` behave like `WebAssembly.Instance#exports`: call its
 * functions, read its memories' `buffer`. Dispose it (or `using` it) to give its memories and
 * its slot back; everything it handed out then throws DisposedError or has length 0.
 *
 * @example
 * ```ts
 * using instance = engine.instantiate(module, { env: { log: console.log } });
 * const add = instance.exports.add as (a: number, b: number) => number;
 * add(1, 2);
 * ```
 */
export class Instance<E extends InstanceExports = InstanceExports> {
  readonly #module: Module;
  readonly #lease: Lease;
  readonly #raw: WebAssembly.Instance;
  readonly #plan: RunPlan;
  #exports: E | null = null;

  /** @internal Made by `Engine#instantiate`. */
  constructor(module: Module, lease: Lease, raw: WebAssembly.Instance, plan: RunPlan) {
    this.#module = module;
    this.#lease = lease;
    this.#raw = raw;
    this.#plan = plan;
  }

  /** The module this is an instance of. */
  get module(): Module {
    return this.#module;
  }

  /** The exports, by name: guarded functions, memories, tables and globals. */
  get exports(): E {
    if (this.#lease.state.dead) {
      throw new DisposedError("an instance was used after it was disposed");
    }
    return this.#exports ??= guardExports(this.#raw.exports, this.#plan, this.#lease) as E;
  }

  /** Whether `dispose()` was called (or the engine closed). */
  get disposed(): boolean {
    return this.#lease.state.dead;
  }

  /**
   * Gives the instance's memories and pool slot back: its exports throw DisposedError and the
   * buffers it handed out are detached; the next tenant of its memories sees none of its
   * bytes. Instances it shares with (imports, tables) keep its memories until they are
   * disposed too. Calling it again does nothing.
   */
  dispose(): void {
    const state = this.#lease.state;
    if (state.dead) return;
    finalizer.untrack(state);
    retire(state);
  }

  /** Same as {@linkcode Instance.dispose}, for `using`. */
  [Symbol.dispose](): void {
    this.dispose();
  }
}

/** @internal The running layer of `engine`, made on first use. */
export function runEngine(engine: EngineState): RunEngine {
  return engine.run ??= new RunEngine(engine);
}

/** @internal Instantiates `module` to run on the runtime's engine. */
export function instantiate(
  engine: EngineState,
  module: Module,
  imports: InstanceImports | undefined,
): Instance {
  const moduleData = moduleState(module);
  const plan = moduleData.run ??= planRun(
    moduleData.bytes,
    moduleData.translation,
    engine.pooling === null ? "plain" : "pooled",
  );
  const run = runEngine(engine);
  let ticket = -1;
  if (engine.pooling !== null) {
    ticket = engine.lib.instanceAdmit(engine.pointer);
    if (ticket < 0) {
      throw new PoolExhaustedError(
        `Limit of ${engine.pooling.instanceLimits.count} concurrent instances has been reached`,
      );
    }
  }
  const memories: HostMemory[] = [];
  const state = new RunState(engine, run, plan, ticket, memories);
  const lease = new Lease(state);
  run.live.add(state);
  run.counters.instantiations += 1;
  let raw: WebAssembly.Instance;
  try {
    const pool = run.pool;
    if (pool !== null) {
      for (const shape of plan.memories) memories.push(pool.take(shape, plan));
    }
    const importObject = runtimeImports(plan, imports, lease, memories);
    state.depth += 1;
    try {
      raw = new WebAssembly.Instance(plan.compiled, importObject);
    } finally {
      state.depth -= 1;
    }
  } catch (error) {
    retire(state);
    throw instantiationError(error);
  }
  if (engine.finalization) finalizer.track(lease, state);
  return new Instance(module, lease, raw, plan);
}

function instantiationError(error: unknown): unknown {
  if (error instanceof WebAssembly.LinkError || error instanceof TypeError) {
    return new LinkError(error.message, { cause: error });
  }
  return error;
}

/** The import object the runtime gets: the user's imports unguarded, plus pooled memories. */
function runtimeImports(
  plan: RunPlan,
  imports: InstanceImports | undefined,
  lease: Lease,
  memories: readonly HostMemory[],
): WebAssembly.Imports | undefined {
  const out: Record<string, Record<string, unknown>> = Object.create(null);
  if (memories.length !== 0) {
    const pooled: Record<string, unknown> = Object.create(null);
    for (let m = 0; m < memories.length; m++) pooled[memoryImportName(m)] = memories[m].memory;
    out[MEMORY_IMPORT_MODULE] = pooled;
  }
  const declared = plan.imports;
  if (declared.length === 0) return memories.length === 0 ? undefined : out as WebAssembly.Imports;
  if (typeof imports !== "object" || imports === null) {
    throw new LinkError(
      `the module has ${declared.length} imports, and no import object was given`,
    );
  }
  let f = 0;
  for (const i of declared) {
    const namespace = imports[i.module];
    if (typeof namespace !== "object" && typeof namespace !== "function" || namespace === null) {
      throw new LinkError(`import module ${JSON.stringify(i.module)} is not an object`);
    }
    const value = (namespace as Record<string, unknown>)[i.name];
    const converted = i.kind === "function"
      ? importFunction(value, lease, plan.functionImports[f++].type)
      : importObject(value, lease);
    (out[i.module] ??= Object.create(null))[i.name] = converted;
  }
  return out as WebAssembly.Imports;
}

function importFunction(
  value: unknown,
  lease: Lease,
  type: RunPlan["functionImports"][number]["type"],
): unknown {
  if (typeof value !== "function") return value;
  const unwrapped = unwrapFunction(value, lease.state);
  if (unwrapped !== value) return unwrapped;
  return guardImport(value as (...args: never[]) => unknown, lease, type);
}

function importObject(value: unknown, lease: Lease): unknown {
  const guarded = unguard(value);
  if (guarded !== null) {
    if (guarded.lease.state.dead) {
      throw new DisposedError("an import belongs to an instance that was disposed");
    }
    link(lease.state, guarded.lease.state);
    if (guarded.raw instanceof WebAssembly.Memory) {
      watchRecord(lease.state, recordOf(guarded.raw));
    }
    return guarded.raw;
  }
  if (value instanceof WebAssembly.Memory) watchRecord(lease.state, recordOf(value));
  return value;
}
