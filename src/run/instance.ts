/**
 * `Instance`: a module instantiated to run on the runtime's own WebAssembly engine, its
 * memories taken from the engine's pool (pooling) or made by the runtime (on demand).
 *
 * @module
 */

import { DeferredFinalizer } from "../deferred_finalizer.ts";
import {
  ArgumentError,
  DisposedError,
  LinkError,
  PoolExhaustedError,
  ResourceError,
} from "../errors.ts";
import type { EngineState } from "../internal.ts";
import { type Module, moduleState } from "../module.ts";
import { CallControl, UNLIMITED_FUEL, unwrapFunction } from "./calls.ts";
import { type EpochPage, epochPage } from "./epoch.ts";
import { guardExports, unguard } from "./exports.ts";
import type { HostMemory } from "./host_memory_pool.ts";
import { installHooks } from "./hooks.ts";
import { anyChecks, EPOCH_IMPORT, PAD_IMPORT } from "./interrupt.ts";
import type { MemoryShape, RunPlan } from "./plan.ts";
import { KILL_EXPORT, MEMORY_IMPORT_MODULE, memoryImportName, START_EXPORT } from "./rewrite.ts";
import { RunEngine } from "./run_engine.ts";
import { link, retire, RunState } from "./tenancy.ts";

/**
 * What `Engine#instantiate` takes as imports: what `new WebAssembly.Instance` takes, where a
 * memory, table or global exported by another wasmpool instance may stand for the runtime's
 * own objects (its functions are the runtime's own already).
 */
export type InstanceImports = Readonly<Record<string, Readonly<Record<string, unknown>>>>;

/** The exports of a running instance, by name. */
export type InstanceExports = Readonly<Record<string, unknown>>;

/** Options of `Engine#instantiate`; everything is optional. */
export interface InstantiateOptions {
  /**
   * A deadline for the start function and, until {@linkcode Instance.setDeadline} changes it,
   * for every call into the instance's exports: milliseconds from each call's start. A call
   * that runs past it throws {@linkcode DeadlineExceededError}. Needs an engine with
   * `Config#withInterruption`. Default: none.
   */
  readonly deadlineMs?: number | null;
  /**
   * The fuel the instance may use, in all its calls together, start function included (about
   * one unit an instruction); past it, the call throws {@linkcode FuelExhaustedError}. Needs an
   * engine with `Config#withFuel`. Default: 2^53 - 1, no limit in practice.
   */
  readonly fuel?: number;
}

// An instance collected without dispose() still gives back its memories and its slot. The
// target is the runtime's instance, which its own exported functions and every guarded object
// keep alive; the held state references none of them.
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
  readonly #state: RunState;
  readonly #raw: WebAssembly.Instance;
  readonly #plan: RunPlan;
  readonly #control: CallControl | null;
  #exports: E | null = null;

  /** @internal Made by `Engine#instantiate`. */
  constructor(
    module: Module,
    state: RunState,
    raw: WebAssembly.Instance,
    plan: RunPlan,
    control: CallControl | null,
  ) {
    this.#module = module;
    this.#state = state;
    this.#raw = raw;
    this.#plan = plan;
    this.#control = control;
  }

  /** The module this is an instance of. */
  get module(): Module {
    return this.#module;
  }

  /** The exports, by name: functions, and guarded memories, tables and globals. */
  get exports(): E {
    if (this.#state.dead) throw new DisposedError("an instance was used after it was disposed");
    return this.#exports ??= guardExports(
      this.#raw,
      this.#plan,
      this.#state,
      this.#control,
    ) as E;
  }

  /**
   * Sets the deadline of every later call into the exports, in milliseconds from each call's
   * start, or removes it (`null`). Needs an engine with `Config#withInterruption`; throws
   * {@linkcode ArgumentError} otherwise, or for a value that is not a positive number.
   */
  setDeadline(ms: number | null): void {
    if (this.#state.dead) throw new DisposedError("an instance was used after it was disposed");
    const control = this.#control;
    if (control === null || !this.#plan.checks.interruption) {
      throw new ArgumentError(
        "deadlines need an engine with interruption on: new Config().withInterruption()",
      );
    }
    control.deadlineMs = checkDeadline(ms);
  }

  /**
   * The fuel the instance has used so far (at most what it was given). Needs an engine with
   * `Config#withFuel`; throws {@linkcode ArgumentError} otherwise.
   */
  get fuelConsumed(): number {
    if (this.#state.dead) throw new DisposedError("an instance was used after it was disposed");
    const control = this.#control;
    if (control === null || !this.#plan.checks.fuel) {
      throw new ArgumentError("fuel needs an engine with fuel on: new Config().withFuel()");
    }
    return control.fuelConsumed;
  }

  /** Whether `dispose()` was called (or the engine closed). */
  get disposed(): boolean {
    return this.#state.dead;
  }

  /**
   * Gives the instance's memories and pool slot back: its functions throw DisposedError, the
   * buffers it handed out are detached, and the next tenant of its memories sees none of its
   * bytes. Instances it shares a memory with keep the memory until they are disposed too.
   * Calling it again does nothing.
   */
  dispose(): void {
    const state = this.#state;
    if (state.dead) return;
    kill(this.#raw);
    finalizer.untrack(state);
    retire(state);
  }

  /** Same as {@linkcode Instance.dispose}, for `using`. */
  [Symbol.dispose](): void {
    this.dispose();
  }
}

/** Sets the instance's `dead` flag: from now on, entering its code throws DisposedError. */
function kill(raw: WebAssembly.Instance): void {
  (raw.exports[KILL_EXPORT] as () => void)();
}

/** @internal The running layer of `engine`, made on first use. */
export function runEngine(engine: EngineState): RunEngine {
  return engine.run ??= new RunEngine(engine);
}

/** The longest deadline: about 24 days, so that every deadline is a whole number of µs. */
const MAX_DEADLINE_MS = 2 ** 31;

function checkDeadline(ms: unknown): number | null {
  if (ms === null || ms === undefined) return null;
  if (typeof ms !== "number" || !(ms > 0) || ms > MAX_DEADLINE_MS) {
    throw new ArgumentError(
      `a deadline must be a number of milliseconds above 0 and at most ${MAX_DEADLINE_MS}, ` +
        `or null, got ${String(ms)}`,
    );
  }
  return ms;
}

function checkFuel(fuel: unknown): number {
  if (fuel === undefined) return UNLIMITED_FUEL;
  if (typeof fuel !== "number" || !Number.isInteger(fuel) || fuel < 0 || fuel > UNLIMITED_FUEL) {
    throw new ArgumentError(
      `fuel must be a whole number from 0 to ${UNLIMITED_FUEL}, got ${String(fuel)}`,
    );
  }
  return fuel;
}

/** @internal Instantiates `module` to run on the runtime's engine. */
export function instantiate(
  engine: EngineState,
  module: Module,
  imports: InstanceImports | undefined,
  options: InstantiateOptions = {},
): Instance {
  const plan = moduleState(module).run;
  const deadlineMs = checkDeadline(options.deadlineMs);
  if (deadlineMs !== null && !plan.checks.interruption) {
    throw new ArgumentError(
      "deadlineMs needs an engine with interruption on: new Config().withInterruption()",
    );
  }
  const fuel = checkFuel(options.fuel);
  if (options.fuel !== undefined && !plan.checks.fuel) {
    throw new ArgumentError("fuel needs an engine with fuel on: new Config().withFuel()");
  }
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
  run.live.add(state);
  run.counters.instantiations += 1;
  let raw: WebAssembly.Instance;
  let control: CallControl | null = null;
  try {
    const pool = run.pool;
    let passed: WebAssembly.Memory[] = [];
    if (pool !== null) {
      for (let m = 0; m < plan.memories.length; m++) {
        memories.push(pool.take(plan.memories[m], plan));
      }
      passed = memories.map((m) => m.memory);
    } else if (plan.memories.length > 0) {
      passed = plan.memories.map(freshMemory);
    }
    const epoch = plan.checks.interruption ? epochPage(engine.lib) : null;
    raw = new WebAssembly.Instance(
      plan.compiled,
      runtimeImports(plan, imports, state, passed, epoch),
    );
    installHooks(raw);
    if (anyChecks(plan.checks)) {
      control = new CallControl(raw, state, epoch);
      control.deadlineMs = deadlineMs;
      if (plan.checks.fuel) control.giveFuel(fuel);
    }
    if (plan.start) {
      const start = raw.exports[START_EXPORT] as () => void;
      if (control !== null) control.call(start, []);
      else start();
    }
  } catch (error) {
    retire(state);
    throw instantiationError(error);
  }
  if (engine.finalization) finalizer.track(raw, state);
  return new Instance(module, state, raw, plan, control);
}

/** A memory of `shape` for one instance on demand (its epoch memory must come after it). */
function freshMemory(shape: MemoryShape): WebAssembly.Memory {
  try {
    return new WebAssembly.Memory(
      shape.max === null ? { initial: shape.min } : { initial: shape.min, maximum: shape.max },
    );
  } catch (cause) {
    throw new ResourceError(
      `the runtime could not make a memory of ${shape.min} pages: ${cause}`,
      { cause },
    );
  }
}

function instantiationError(error: unknown): unknown {
  if (error instanceof WebAssembly.LinkError || error instanceof TypeError) {
    return new LinkError(error.message, { cause: error });
  }
  return error;
}

/**
 * The import object the runtime gets: the user's imports unguarded (functions unwrapped), plus
 * the memories wasmpool passes in and the epoch memory.
 */
function runtimeImports(
  plan: RunPlan,
  imports: InstanceImports | undefined,
  state: RunState,
  memories: readonly WebAssembly.Memory[],
  epoch: EpochPage | null,
): WebAssembly.Imports | undefined {
  const declared = plan.imports;
  if (declared.length === 0 && memories.length === 0 && epoch === null) return undefined;
  const out: Record<string, Record<string, unknown>> = Object.create(null);
  if (memories.length !== 0 || epoch !== null) {
    const pooled: Record<string, unknown> = Object.create(null);
    for (let m = 0; m < memories.length; m++) pooled[memoryImportName(m)] = memories[m];
    if (epoch !== null) {
      pooled[EPOCH_IMPORT] = epoch.memory;
      pooled[PAD_IMPORT] = epoch.pad;
    }
    out[MEMORY_IMPORT_MODULE] = pooled;
  }
  if (declared.length === 0) return out as WebAssembly.Imports;
  if (typeof imports !== "object" || imports === null) {
    throw new LinkError(
      `the module has ${declared.length} imports, and no import object was given`,
    );
  }
  for (let i = 0; i < declared.length; i++) {
    const d = declared[i];
    const namespace = imports[d.module];
    if ((typeof namespace !== "object" && typeof namespace !== "function") || namespace === null) {
      throw new LinkError(`import module ${JSON.stringify(d.module)} is not an object`);
    }
    const value = (namespace as Record<string, unknown>)[d.name];
    (out[d.module] ??= Object.create(null))[d.name] = d.kind === "function"
      ? unwrapFunction(value)
      : importObject(value, state);
  }
  return out as WebAssembly.Imports;
}

function importObject(value: unknown, state: RunState): unknown {
  const guarded = unguard(value);
  if (guarded === null) {
    if (value instanceof WebAssembly.Memory) (state.userMemories ??= new Set()).add(value);
    return value;
  }
  if (guarded.state.dead) {
    throw new DisposedError("an import belongs to an instance that was disposed");
  }
  // Sharing a memory makes one group: released together.
  if (guarded.raw instanceof WebAssembly.Memory) link(state, guarded.state);
  return guarded.raw;
}
