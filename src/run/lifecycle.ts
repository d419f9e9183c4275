/**
 * The tenant lifecycle of a recycled instance, from `Engine#instantiate` to the reset. This
 * file owns the tenancy (the lease an `Instance` stands on) and keeps this invariant: a warm
 * instance has at most one tenant, which holds a pool slot from its start to its end, and no
 * reference it was handed reaches the next tenant's state. The path of one tenant, top to
 * bottom (the files named hold the steps this one calls):
 *
 * 1. **Choose.** `Engine#instantiate` → `instantiate` (instantiate.ts) checks the options
 *    (`callSettings`, instance_setup.ts); with pooling, `recycleInstances` and a module that
 *    allows it (`plan.notRecyclable === null`, recyclability.ts), it calls
 *    {@linkcode instantiateRecycled} here. A null answer means an instance of its own
 *    (dedicated.ts), counted in `ownInstances`.
 * 2. **Take.** {@linkcode instantiateRecycled}: the imports first (`tenantImports`, recycle.ts:
 *    a LinkError leaves the idle instances where they are; a wasm function means null), then an
 *    idle warm instance (`RunEngine#takeIdle`, run_engine.ts: one whose reset is done, from the
 *    idle queue), put back when it was made with other global values; then a pool slot
 *    (`admit`). With none idle, a new one (`RunEngine#makeWarm`: host memories from the pool,
 *    `new WarmInstance` in recycle.ts, with trampolines for its function imports, its start
 *    function not run). Counted in `warmHits` or `warmMisses`.
 * 3. **Bind and start.** {@linkcode startTenancy}: the tenant's import functions go where the
 *    trampolines read them (`warm.fns`); a `Tenant` (recycle.ts) joins `run.tenants`; its call
 *    control (deadline, fuel) and its lease, {@linkcode Tenancy}, are made, with the function
 *    references bound to it (func_refs.ts, `bindImports`); `startTenant` runs the start
 *    function as a call into the instance. A failure ends the tenancy (step 5).
 * 4. **Its exports.** `Instance#exports` → `Tenancy#exports`: guarded memories, tables and
 *    globals (exports.ts) and, per function, a wrapper (`tenantFunction`, tenant_function.ts,
 *    compiled by wrappers.ts) that throws DisposedError once the tenant ended and counts its calls.
 * 5. **Its end.** `Instance#dispose` (or the finalizer, if it is collected) → `Tenancy#dispose`
 *    → `endTenancy` (recycle.ts): the tenant is dead, its memory aliases detached. Ended from
 *    inside its own call, the instance is killed (`dead` flag) and the rest waits until the
 *    outermost call returns; then the trampolines go back to throwing and `RunEngine#endTenant`
 *    takes over.
 * 6. **The reset.** `RunEngine#endTenant` (run_engine.ts) gives the slot back, then either
 *    destroys the instance (`destroyWarm`: killed, its memories back to the pool through
 *    `retire`, tenancy.ts), when it served `maxInstanceReuse` tenants, was poisoned by a
 *    deadline or fuel, or cannot be reset (`#resetForNext`: a memory shared, a memory grown
 *    past `recycleGrownMemoryPages`, a table grown); or resets it (memories natively, on the
 *    reset thread with `backgroundResets` when another idle one can serve meanwhile; tables
 *    and globals by the rewrite's `reset`) and puts it back idle (`putIdle`), where the idle
 *    timer (idle_timer.ts) may destroy it after `idleInstanceTimeoutMs`.
 *
 * **Warm-up.** `Engine#warm` → {@linkcode warm}: step 2's new warm instances, made idle at once.
 *
 * **A reservation** (reservation.ts) takes step 2 at `Engine#reserve` (the reserved variant's
 * warm instance and slot, its memories handed out before the instance exists), and step 3 at
 * `Reservation#instantiate` through {@linkcode startTenancy}, with the reservation's memory
 * aliases; steps 4 to 6 are the same. Disposed before it was instantiated, it gives the
 * instance back through `RunEngine#putBackUnused` (reset and idle, or destroyed).
 *
 * @module
 */

import { DeferredFinalizer } from "../deferred_finalizer.ts";
import { DisposedError, UnsupportedFeatureError } from "../errors.ts";
import type { EngineState } from "../internal.ts";
import { type Module, moduleState } from "../module.ts";
import type { CallControl } from "./calls.ts";
import { guardExports } from "./exports.ts";
import { FuncRefs } from "./func_refs.ts";
import { type Backing, Instance, type InstanceExports, type InstanceImports } from "./instance.ts";
import {
  admit,
  callControl,
  type CallSettings,
  type Fn,
  instantiationError,
  parsedOf,
  runEngine,
} from "./instance_setup.ts";
import type { AliasBox } from "./memory_record.ts";
import type { RunPlan } from "./plan.ts";
import {
  endTenancy,
  sameGlobals,
  startTenant,
  Tenant,
  tenantImports,
  type WarmInstance,
} from "./recycle.ts";
import type { RunEngine } from "./run_engine.ts";
import { segmentError } from "./segment_bounds.ts";
import type { SnapshotSource } from "./snapshot.ts";
import { tenantFunction } from "./tenant_function.ts";

// A tenant collected without dispose() still ends its tenancy (its instance reset, its slot
// given back). The target is the tenant's lease, which its wrappers and guarded objects keep
// alive. The held value references none of them.
const tenantFinalizer = new DeferredFinalizer<Tenant>((tenant) => endTenancy(tenant));

/**
 * @internal A tenancy of a warm instance of `module` (an idle one, else a new one); null when
 * this tenant needs an instance of its own (see `tenantImports`).
 */
export function instantiateRecycled(
  engine: EngineState,
  run: RunEngine,
  module: Module,
  plan: RunPlan,
  imports: InstanceImports | undefined,
  settings: CallSettings,
): Instance | null {
  // The imports first: a LinkError must leave the idle instances where they are.
  const bound = tenantImports(plan, imports);
  if (bound === null) return null;
  const idle = run.takeIdle(plan);
  if (idle !== null && !sameGlobals(idle.globals, bound.globals)) {
    run.putIdle(idle);
    return null;
  }
  let ticket: number;
  try {
    ticket = admit(engine);
  } catch (error) {
    if (idle !== null) run.putIdle(idle);
    throw error;
  }
  let warm = idle;
  if (warm === null) {
    try {
      warm = run.makeWarm(plan, moduleState(module).pointer, bound.globals);
    } catch (error) {
      engine.lib.instanceLeave(engine.pointer, ticket);
      throw instantiationError(segmentError(error, parsedOf(module), plan, imports));
    }
    run.counters.warmMisses += 1;
  } else {
    run.counters.warmHits += 1;
  }
  return startTenancy(engine, run, module, plan, warm, ticket, bound.fns, settings);
}

/**
 * @internal A tenancy of `warm` (taken for this tenant, counted against the pool by `ticket`)
 * with the import functions `fns`: the start function has run. `boxes` (a reservation's
 * memory aliases) are detached when the tenancy ends. On failure the tenancy is ended.
 */
export function startTenancy(
  engine: EngineState,
  run: RunEngine,
  module: Module,
  plan: RunPlan,
  warm: WarmInstance,
  ticket: number,
  bound: readonly Fn[],
  settings: CallSettings,
  boxes: readonly AliasBox[] = [],
): Instance {
  const fns = warm.fns;
  for (let i = 0; i < bound.length; i++) fns[i] = bound[i];
  const tenant = new Tenant(engine, run, warm, ticket);
  for (const box of boxes) tenant.boxes.push(box);
  run.tenants.add(tenant);
  run.counters.instantiations += 1;
  let tenancy: Tenancy;
  try {
    const control = callControl(engine, plan, warm.raw, warm.state, settings);
    tenancy = new Tenancy(tenant, control);
    if (tenancy.refs !== null) bindImports(tenancy.refs, fns);
    startTenant(tenant, control);
  } catch (error) {
    endTenancy(tenant);
    throw instantiationError(error);
  }
  if (engine.finalization) tenantFinalizer.track(tenancy, tenant);
  return new Instance(module, tenancy);
}

/** Puts in `fns` the tenant's host imports that take or return funcrefs, binding them. */
function bindImports(refs: FuncRefs, fns: Fn[]): void {
  const signatures = refs.tenant.warm.plan.funcRefs!.imports;
  for (let i = 0; i < signatures.length; i++) {
    const signature = signatures[i];
    if (signature !== null) fns[i] = refs.importAdapter(fns[i], signature);
  }
}

/** A tenancy of a recycled instance; this object is the tenant's lease. */
class Tenancy implements Backing {
  readonly #tenant: Tenant;
  readonly control: CallControl | null;
  /** The function references the tenant was handed, when its module hands any out. */
  readonly refs: FuncRefs | null;

  constructor(tenant: Tenant, control: CallControl | null) {
    this.#tenant = tenant;
    this.control = control;
    this.refs = tenant.warm.plan.funcRefs === null ? null : new FuncRefs(tenant, this);
  }

  get dead(): boolean {
    return this.#tenant.dead;
  }

  exports(): InstanceExports {
    const tenant = this.#tenant;
    const warm = tenant.warm;
    const control = this.control;
    const refs = this.refs;
    if (refs === null) {
      return guardExports(
        warm.raw,
        warm.plan,
        tenant,
        warm.state,
        this,
        (fn) => tenantFunction(tenant, this, fn, control),
      );
    }
    const signatures = warm.plan.funcRefs!.exports;
    return guardExports(warm.raw, warm.plan, tenant, warm.state, this, (fn, k) => {
      const signature = signatures[k];
      // An adapter binds the references in the signature; the wrapper stands for the export.
      const inner = signature !== null && signature !== true
        ? refs.exportAdapter(fn as Fn, signature)
        : fn;
      const wrapper = tenantFunction(tenant, this, inner, control);
      refs.exported(wrapper, fn);
      return wrapper;
    }, refs);
  }

  snapshotSource(): SnapshotSource {
    const tenant = this.#tenant;
    const warm = tenant.warm;
    return {
      raw: warm.raw,
      dead: tenant.dead,
      poisoned: warm.state.poisoned,
      inCall: tenant.depth > 0,
    };
  }

  dispose(): void {
    const tenant = this.#tenant;
    if (tenant.dead) return;
    tenantFinalizer.untrack(tenant);
    endTenancy(tenant);
  }
}

/** @internal Makes idle warm instances of `module` until `count` wait; returns how many do. */
export function warm(
  engine: EngineState,
  module: Module,
  count: number,
  imports: InstanceImports | undefined,
): number {
  const plan = moduleState(module).run;
  const reason = engine.pooling === null
    ? "the engine allocates on demand"
    : !engine.pooling.recycleInstances
    ? "recycleInstances is false"
    : plan.notRecyclable;
  if (reason !== null) {
    throw new UnsupportedFeatureError(`instances of this module cannot be recycled: ${reason}`, 0);
  }
  const run = runEngine(engine);
  // The functions are each tenant's own: only the globals matter here.
  const bound = tenantImports(plan, stubFunctions(plan, imports))!;
  let idle = run.idle.get(plan)?.length ?? 0;
  for (; idle < count; idle++) {
    let made;
    try {
      made = run.makeWarm(plan, moduleState(module).pointer, bound.globals);
    } catch (error) {
      throw instantiationError(segmentError(error, parsedOf(module), plan, imports));
    }
    run.putIdle(made);
  }
  return idle;
}

/** `imports` with a stand-in for every function import (warm instances get each tenant's). */
function stubFunctions(plan: RunPlan, imports: InstanceImports | undefined): InstanceImports {
  const out: Record<string, Record<string, unknown>> = {};
  for (const d of plan.imports) {
    const value = d.kind === "function" ? stub : (imports?.[d.module] as Record<string, unknown>)?.[
      d.name
    ];
    (out[d.module] ??= {})[d.name] = value;
  }
  return out;
}

function stub(): never {
  throw new DisposedError("an import of a recycled instance was called between tenants");
}
