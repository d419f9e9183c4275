/**
 * Dedicated instances: an instance of the runtime made for one tenant and disposed with it, for
 * a module that cannot be recycled, an engine without pooling or `recycleInstances`, a tenant
 * that passes a wasm function or other global values than the idle instances were made with,
 * or a reservation's instance of its own. Its memories come from the pool (or the runtime), its
 * imports are the user's, unwrapped; its `RunState` (tenancy.ts) holds what it gives back.
 *
 * @module
 */

import { DeferredFinalizer } from "../deferred_finalizer.ts";
import { DisposedError, ResourceError } from "../errors.ts";
import type { EngineState } from "../internal.ts";
import { type Module, moduleState } from "../module.ts";
import { type CallControl, unwrapFunction } from "./calls.ts";
import { type EpochPage, epochPage, wasmpoolImports } from "./epoch.ts";
import { guardExports, unguard } from "./exports.ts";
import { importValues } from "./import_values.ts";
import type { HostMemory } from "./host_memory_pool.ts";
import { installHooks } from "./hooks.ts";
import { type Backing, Instance, type InstanceExports, type InstanceImports } from "./instance.ts";
import {
  callControl,
  type CallSettings,
  type Fn,
  instantiationError,
  parsedOf,
} from "./instance_setup.ts";
import type { MemoryShape, RunPlan } from "./plan.ts";
import { KILL_EXPORT, MEMORY_IMPORT_MODULE, START_EXPORT } from "./rewrite.ts";
import type { AliasBox } from "./memory_record.ts";
import type { RunEngine } from "./run_engine.ts";
import { segmentError } from "./segment_bounds.ts";
import type { SnapshotSource } from "./snapshot.ts";
import { link, retire, RunState } from "./tenancy.ts";

// A dedicated instance collected without dispose() still gives back its memories and its slot.
// The target is the runtime's instance, which its own exported functions and every guarded
// object keep alive. The held value references none of them.
const finalizer = new DeferredFinalizer<RunState>((state) => retire(state));

/** An instance made for one tenant, disposed with it. */
class Dedicated implements Backing {
  readonly #state: RunState;
  readonly #raw: WebAssembly.Instance;
  readonly #plan: RunPlan;
  readonly control: CallControl | null;

  constructor(
    state: RunState,
    raw: WebAssembly.Instance,
    plan: RunPlan,
    control: CallControl | null,
  ) {
    this.#state = state;
    this.#raw = raw;
    this.#plan = plan;
    this.control = control;
  }

  get dead(): boolean {
    return this.#state.dead;
  }

  exports(): InstanceExports {
    const state = this.#state;
    const control = this.control;
    return guardExports(
      this.#raw,
      this.#plan,
      state,
      state,
      this.#raw,
      control === null ? null : (fn) => control.wrap(fn as Fn),
    );
  }

  snapshotSource(): SnapshotSource {
    const state = this.#state;
    // Its exports are the runtime's own functions, or wrappers that count no depth: a call in
    // progress cannot be seen (see snapshot.ts).
    return { raw: this.#raw, dead: state.dead, poisoned: state.poisoned, inCall: false };
  }

  dispose(): void {
    const state = this.#state;
    if (state.dead) return;
    kill(this.#raw);
    finalizer.untrack(state);
    retire(state);
  }
}

/**
 * @internal An instance of its own for one tenant, counted against the pool by `ticket` (-1 on
 * demand), on `taken`: the first of `plan.memories`, already taken from the pool (a
 * reservation's); the rest are taken here. `boxes` (a reservation's memory aliases) are
 * detached with the instance's own. On failure everything, `taken` and `ticket` included, is
 * given back.
 */
export function dedicated(
  engine: EngineState,
  run: RunEngine,
  module: Module,
  plan: RunPlan,
  imports: InstanceImports | undefined,
  settings: CallSettings,
  ticket: number,
  taken: readonly HostMemory[] = [],
  boxes: readonly AliasBox[] = [],
): Instance {
  if (run.pool !== null && taken.length !== plan.imported) {
    throw new RangeError(`dedicated: ${taken.length} memories taken of ${plan.imported}`);
  }
  const memories: HostMemory[] = [...taken];
  const state = new RunState(engine, run, ticket, memories);
  for (const box of boxes) state.boxes.push(box);
  run.live.add(state);
  run.counters.instantiations += 1;
  let raw: WebAssembly.Instance;
  let control: CallControl | null = null;
  try {
    const pool = run.pool;
    let passed: WebAssembly.Memory[] = [];
    if (pool !== null) {
      const native = moduleState(module).pointer;
      for (let m = memories.length; m < plan.memories.length; m++) {
        memories.push(pool.take(plan.memories[m], plan, native, m - plan.imported));
      }
      passed = memories.map((m) => m.memory);
    } else if (plan.memories.length > 0) {
      passed = plan.memories.map(freshMemory);
    }
    const epoch = plan.checks.interruption ? epochPage(engine.lib) : null;
    const given = runtimeImports(plan, imports, state, passed, epoch);
    try {
      raw = new WebAssembly.Instance(plan.compiled, given);
    } catch (error) {
      // Only segments can trap here: the start function runs below.
      throw segmentError(error, parsedOf(module), plan, imports);
    }
    installHooks(raw);
    control = callControl(engine, plan, raw, state, settings);
    if (plan.start) {
      const start = raw.exports[START_EXPORT] as () => void;
      if (control !== null) control.call(start as Fn, []);
      else start();
    }
  } catch (error) {
    retire(state);
    throw instantiationError(error);
  }
  if (engine.finalization) finalizer.track(raw, state);
  return new Instance(module, new Dedicated(state, raw, plan, control));
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

/** Sets the instance's `dead` flag: from now on, entering its code throws DisposedError. */
function kill(raw: WebAssembly.Instance): void {
  (raw.exports[KILL_EXPORT] as (dead: number) => void)(1);
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
    out[MEMORY_IMPORT_MODULE] = wasmpoolImports(memories, epoch);
  }
  const values = importValues(declared, imports);
  for (let i = 0; i < declared.length; i++) {
    const d = declared[i];
    (out[d.module] ??= Object.create(null))[d.name] = d.kind === "function"
      ? unwrapFunction(values[i])
      : importObject(values[i], state);
  }
  return out as WebAssembly.Imports;
}

function importObject(value: unknown, state: RunState): unknown {
  const guarded = unguard(value);
  if (guarded === null) {
    if (value instanceof WebAssembly.Memory) (state.userMemories ??= new Set()).add(value);
    return value;
  }
  if (guarded.owner.dead) {
    throw new DisposedError("an import belongs to an instance that was disposed");
  }
  // Sharing a memory makes one group: released together. So does sharing a recycled instance's
  // table or global: its instance is then not recycled (the importer could reach the next
  // tenant's entries and values), but destroyed when its tenant ends.
  if (guarded.raw instanceof WebAssembly.Memory || guarded.state.recycled) {
    link(state, guarded.state);
  }
  return guarded.raw;
}
