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
  UnsupportedFeatureError,
} from "../errors.ts";
import type { EngineState } from "../internal.ts";
import { type Module, moduleState } from "../module.ts";
import { checkOptions, type OptionNames } from "../options.ts";
import type { ParsedModule } from "../module/types.ts";
import { CallControl, UNLIMITED_FUEL, unwrapFunction } from "./calls.ts";
import { type EpochPage, epochPage, wasmpoolImports } from "./epoch.ts";
import { guardExports, unguard } from "./exports.ts";
import { FuncRefs } from "./func_refs.ts";
import { importValues } from "./import_values.ts";
import type { HostMemory } from "./host_memory_pool.ts";
import { installHooks } from "./hooks.ts";
import { anyChecks } from "./interrupt.ts";
import type { MemoryShape, RunPlan } from "./plan.ts";
import { KILL_EXPORT, MEMORY_IMPORT_MODULE, START_EXPORT } from "./rewrite.ts";
import {
  endTenancy,
  sameGlobals,
  startTenant,
  Tenant,
  tenantFunction,
  tenantImports,
  type WarmInstance,
} from "./recycle.ts";
import type { AliasBox } from "./memory_record.ts";
import { RunEngine } from "./run_engine.ts";
import { segmentError } from "./segment_bounds.ts";
import { type SnapshotSource, takeSnapshot } from "./snapshot.ts";
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

// An instance collected without dispose() still gives back its memories and its slot. For a
// dedicated instance the target is the runtime's instance, which its own exported functions and
// every guarded object keep alive; for a tenant of a recycled one, the tenant's lease, which its
// wrappers and guarded objects keep alive. The held values reference none of them.
const finalizer = new DeferredFinalizer<RunState>((state) => retire(state));
const tenantFinalizer = new DeferredFinalizer<Tenant>((tenant) => endTenancy(tenant));

/** What an Instance stands on: a dedicated instance, or a tenancy of a recycled one. */
interface Backing {
  /** Whether it is over. */
  readonly dead: boolean;
  /** The calls into it, with interruption or fuel on; else null. */
  readonly control: CallControl | null;
  /** Makes the exports object. */
  exports(): InstanceExports;
  /** What a snapshot reads. */
  snapshotSource(): SnapshotSource;
  /** Ends it. */
  dispose(): void;
}

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

/**
 * A running instance. Its `exports` behave like `WebAssembly.Instance#exports`: call its
 * functions, read its memories' `buffer`. Dispose it (or `using` it) to give its memories and
 * its slot back; everything it handed out then throws DisposedError or has length 0.
 *
 * With pooling, the instance of a module that allows it is recycled: kept alive after its
 * tenant disposes it and reset in place for the next tenant (see the README: "Recycled
 * instances"). Nothing of that shows but the speed: each tenant gets its own exports, which
 * stop working when it disposes.
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
  readonly #backing: Backing;
  #exports: E | null = null;

  /** @internal Made by `Engine#instantiate`. */
  constructor(module: Module, backing: Backing) {
    this.#module = module;
    this.#backing = backing;
  }

  /** The module this is an instance of. */
  get module(): Module {
    return this.#module;
  }

  /** The exports, by name: functions, and guarded memories, tables and globals. */
  get exports(): E {
    if (this.#backing.dead) throw new DisposedError("an instance was used after it was disposed");
    return this.#exports ??= this.#backing.exports() as E;
  }

  /** Whether `dispose()` was called (or the engine closed). */
  get disposed(): boolean {
    return this.#backing.dead;
  }

  /**
   * Sets the deadline of every later call into the exports, in milliseconds from each call's
   * start, or removes it (`null`). Needs an engine with `Config#withInterruption`; throws
   * {@linkcode ArgumentError} otherwise, or for a value that is not a positive number.
   */
  setDeadline(ms: number | null): void {
    const backing = this.#backing;
    if (backing.dead) throw new DisposedError("an instance was used after it was disposed");
    const control = backing.control;
    if (control === null || !moduleState(this.#module).run.checks.interruption) {
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
    const backing = this.#backing;
    if (backing.dead) throw new DisposedError("an instance was used after it was disposed");
    const control = backing.control;
    if (control === null || !moduleState(this.#module).run.checks.fuel) {
      throw new ArgumentError("fuel needs an engine with fuel on: new Config().withFuel()");
    }
    return control.fuelConsumed;
  }

  /**
   * Gives the instance's memories and pool slot back (or, recycled, the instance itself, reset
   * for the next tenant): its functions throw DisposedError, the buffers it handed out are
   * detached, and the next tenant sees none of its state. Instances it shares a memory with
   * keep the memory until they are disposed too. Calling it again does nothing.
   */
  dispose(): void {
    this.#backing.dispose();
  }

  /**
   * A new module of the same engine whose instances start in the state this instance is in
   * now: its memories (as copy-on-write images), mutable globals and tables, without running the
   * start function again (see the README: "Snapshots"). Take it between calls. Throws
   * {@linkcode SnapshotError}, with nothing changed, when the state cannot be captured.
   *
   * @example
   * ```ts
   * const ready = instance.snapshot();
   * using tenant = engine.instantiate(ready, imports); // already initialized
   * ```
   */
  snapshot(): Module {
    return takeSnapshot(this.#module, this.#backing.snapshotSource());
  }

  /** Same as {@linkcode Instance.dispose}, for `using`. */
  [Symbol.dispose](): void {
    this.dispose();
  }
}

/** Sets the instance's `dead` flag: from now on, entering its code throws DisposedError. */
function kill(raw: WebAssembly.Instance): void {
  (raw.exports[KILL_EXPORT] as (dead: number) => void)(1);
}

/** @internal The running layer of `engine`, made on first use. */
export function runEngine(engine: EngineState): RunEngine {
  return engine.run ??= new RunEngine(engine);
}

/** @internal A function of the instance or of a tenant's imports. */
export type Fn = (...args: unknown[]) => unknown;

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

/** What an instance's calls start with: its deadline and fuel, checked against its engine. */
export interface CallSettings {
  readonly deadlineMs: number | null;
  readonly fuel: number;
}

/** The name of every option of `Engine#instantiate` (see `checkOptions`). */
const INSTANTIATE_OPTIONS: OptionNames<InstantiateOptions> = { deadlineMs: true, fuel: true };

/** @internal `options` checked against `plan`'s engine. */
export function callSettings(plan: RunPlan, options: InstantiateOptions): CallSettings {
  checkOptions(options, INSTANTIATE_OPTIONS, "instantiate()");
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
  return { deadlineMs, fuel };
}

/** The calls into `raw` with `settings`, when its module has checks; else null. */
function callControl(
  engine: EngineState,
  plan: RunPlan,
  raw: WebAssembly.Instance,
  state: RunState,
  settings: CallSettings,
): CallControl | null {
  if (!anyChecks(plan.checks)) return null;
  const page = plan.checks.interruption ? epochPage(engine.lib) : null;
  const control = new CallControl(raw, state, page, engine.tickMs);
  control.deadlineMs = settings.deadlineMs;
  if (plan.checks.fuel) control.giveFuel(settings.fuel);
  return control;
}

/** @internal Instantiates `module` to run on the runtime's engine. */
export function instantiate(
  engine: EngineState,
  module: Module,
  imports: InstanceImports | undefined,
  options: InstantiateOptions = {},
): Instance {
  const plan = moduleState(module).run;
  const settings = callSettings(plan, options);
  const run = runEngine(engine);
  if (run.pool !== null) {
    if (plan.notRecyclable === null && engine.pooling!.recycleInstances) {
      const recycled = instantiateRecycled(engine, run, module, plan, imports, settings);
      if (recycled !== null) return recycled;
      run.counters.ownInstances += 1;
    } else {
      run.counters.notRecyclable += 1;
    }
  }
  const ticket = engine.pooling === null ? -1 : admit(engine);
  return dedicated(engine, run, module, plan, imports, settings, ticket);
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

/** @internal Takes a pool slot; throws PoolExhaustedError, naming the limit, when none is free. */
export function admit(engine: EngineState): number {
  const ticket = engine.lib.instanceAdmit(engine.pointer);
  if (ticket < 0) {
    throw new PoolExhaustedError(
      `Limit of ${engine.pooling!.instanceLimits.count} concurrent instances has been reached`,
    );
  }
  return ticket;
}

/**
 * A tenancy of a warm instance of `module` (an idle one, else a new one); null when this tenant
 * needs an instance of its own (see `tenantImports`).
 */
function instantiateRecycled(
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

/** @internal The parsed module of `module`. */
export function parsedOf(module: Module): ParsedModule {
  return moduleState(module).translation.parsed;
}

/** @internal The WasmpoolError standing for the runtime's `error`, or `error` itself. */
export function instantiationError(error: unknown): unknown {
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
