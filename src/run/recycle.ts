/**
 * Recycled instances: a module whose instances can be reset in place (recyclability.ts) keeps
 * them alive between tenants. A tenant is handed an instance that already exists; when it is
 * disposed, the instance is returned to the state of a new one and waits for the next tenant.
 *
 * - **Warm instances** are made with trampolines for their function imports (each reads the
 *   current tenant's function: every tenant passes its own imports) and without running the
 *   start function, which runs for each tenant. Immutable imported globals are fixed when the
 *   instance is made: a tenant passing other values gets a new instance of its own.
 * - **Tenants** get their own exports: a wrapper per function, guarded memories, tables and
 *   globals, all of which throw DisposedError once the tenant is disposed, though the instance
 *   lives on. A function's wrappers are closures of code compiled for that function of that
 *   warm instance (tenant_function.ts, wrappers.ts), so that each one's call of the wasm
 *   function stays monomorphic however many modules and warm instances there are. No
 *   reference a tenant can reach calls into, or reads, the next tenant's state: the instance's
 *   own functions are never handed out raw (function references that leave it are bound to
 *   their tenant, see func_refs.ts).
 * - **The reset** restores the memories natively (the pages the tenant wrote, from the module's
 *   images), then the tables and globals (the rewrite's `reset` function). A tenant that grew a
 *   table, or a memory past `PoolingOptions.recycleGrownMemoryPages`, or shared a memory (or a
 *   table or global) with another instance, is not recycled: the instance is destroyed, and
 *   counted. A memory grown within that limit is kept at its grown size and reset up to it,
 *   adopted again where the runtime moved it (see `HostMemory#keepGrown`).
 * - **Disposed from inside its own call** (a host import), a tenant cannot have its instance
 *   reset under the code still running: the instance's `dead` flag stops that code at its next
 *   check, and the reset waits until the outermost call has returned.
 *
 * @module
 */

import type { Finalizable } from "../deferred_finalizer.ts";
import { DisposedError, LinkError } from "../errors.ts";
import type { EngineState } from "../internal.ts";
import type { HostMemory } from "./host_memory_pool.ts";
import { installHooks } from "./hooks.ts";
import { type AliasBox, dropBox } from "./memory_record.ts";
import { type ImportObject, importValues } from "./import_values.ts";
import type { RunPlan } from "./plan.ts";
import { KILL_EXPORT, MEMORY_IMPORT_MODULE, RESET_EXPORT, START_EXPORT } from "./rewrite.ts";
import type { CallControl } from "./calls.ts";
import { epochPage, wasmpoolImports } from "./epoch.ts";
import { type Owner, type Releaser, RunState } from "./tenancy.ts";

type Fn = (...args: unknown[]) => unknown;

function noTenant(): never {
  throw new DisposedError("an import of a recycled instance was called between tenants");
}

/** Calls `fns[i]` with the arity of the import, so that `this` is undefined as the runtime's. */
function trampoline(fns: Fn[], i: number, arity: number): Fn {
  switch (arity) {
    case 0:
      return () => {
        const f = fns[i];
        return f();
      };
    case 1:
      return (a) => {
        const f = fns[i];
        return f(a);
      };
    case 2:
      return (a, b) => {
        const f = fns[i];
        return f(a, b);
      };
    case 3:
      return (a, b, c) => {
        const f = fns[i];
        return f(a, b, c);
      };
    default:
      return (...args) => {
        const f = fns[i];
        return f(...args);
      };
  }
}

/** An instance kept alive between tenants. */
export class WarmInstance {
  /** The runtime's instance. */
  readonly raw: WebAssembly.Instance;
  /** Its state: its pooled memories, its group (a tenant holds the pool slot). */
  readonly state: RunState;
  /** The plan of its module. */
  readonly plan: RunPlan;
  /** The current tenant's import functions, read by the trampolines. */
  readonly fns: Fn[];
  /** The values of the immutable globals it imports, as it was made with them. */
  readonly globals: readonly unknown[];
  /**
   * The rewrite's `reset`: 1 when a table grew (nothing reset), else 0. Its argument, with a
   * logical size for memory 0 (logical_memory.ts), is 1 when the next tenant starts at the
   * physical size (a module grown from JavaScript); else it is ignored.
   */
  readonly reset: (fromJs: number) => number;
  /** The rewrite's `kill(dead)`. */
  readonly kill: (dead: number) => void;
  /** The module's start function, or null. */
  readonly start: (() => void) | null;
  /** Whether `kill(1)` stopped its code (a tenant ended during a call): revived when reset. */
  killed = false;
  /** Tenancies it has served to their end (`maxInstanceReuse`). */
  tenantsServed = 0;
  /** The idle timer's sweep count when it last went idle (see idle_timer.ts). */
  idleSweep = 0;

  /** Makes an instance of `plan`'s module on `memories`, importing `globals`. */
  constructor(
    engine: EngineState,
    run: Releaser,
    plan: RunPlan,
    memories: HostMemory[],
    globals: readonly unknown[],
  ) {
    this.plan = plan;
    this.globals = globals;
    this.fns = new Array(plan.importArities.length).fill(noTenant);
    const imports: Record<string, Record<string, unknown>> = Object.create(null);
    const epoch = plan.checks.interruption ? epochPage(engine.lib) : null;
    if (memories.length !== 0 || epoch !== null) {
      imports[MEMORY_IMPORT_MODULE] = wasmpoolImports(memories.map((m) => m.memory), epoch);
    }
    let f = 0;
    let g = 0;
    for (const d of plan.imports) {
      const value = d.kind === "function"
        ? trampoline(this.fns, f, plan.importArities[f++])
        : globals[g++];
      (imports[d.module] ??= Object.create(null))[d.name] = value;
    }
    this.raw = new WebAssembly.Instance(plan.compiled, imports as WebAssembly.Imports);
    installHooks(this.raw);
    const exports = this.raw.exports;
    this.reset = exports[RESET_EXPORT] as (fromJs: number) => number;
    this.kill = exports[KILL_EXPORT] as (dead: number) => void;
    this.start = plan.start ? exports[START_EXPORT] as () => void : null;
    this.state = new RunState(engine, run, -1, memories, true);
  }
}

/**
 * What an ended tenant hands its instance to, for the reset: the engine's running layer
 * (`RunEngine#endTenant`), named by what this file needs of it so that the two do not import
 * each other.
 */
export interface TenantHost {
  /** Gives back `tenant`'s slot; resets its instance for the next tenant, or destroys it. */
  endTenant(tenant: Tenant): void;
}

/** One tenant of a warm instance: what its dispose ends. */
export class Tenant implements Owner, Finalizable {
  /** The engine. */
  readonly engine: EngineState;
  /** The engine's running layer. */
  readonly run: TenantHost;
  /** The instance it holds. */
  readonly warm: WarmInstance;
  /** The pool slot it counts against. */
  readonly ticket: number;
  /** Whether it is over. */
  dead = false;
  /** The alias boxes of its guarded memories. */
  readonly boxes: AliasBox[] = [];
  /** Memories the user passed in: none (a recyclable module imports none). */
  readonly userMemories: Set<WebAssembly.Memory> | null = null;
  /** Calls into its instance in flight, through its wrappers. */
  depth = 0;
  /** Whether it ended during a call: the instance is recycled when the call returns. */
  endPending = false;
  /** Whether the finalizer registered it. */
  finalizing = false;
  /** Its place among the values waiting for the finalizer's registration, or -1. */
  pending = -1;

  /** A tenant of `warm`, counted against the pool by `ticket`. */
  constructor(engine: EngineState, run: TenantHost, warm: WarmInstance, ticket: number) {
    this.engine = engine;
    this.run = run;
    this.warm = warm;
    this.ticket = ticket;
  }

  /** Whether it is over, for the finalizer. */
  get released(): boolean {
    return this.dead;
  }
}

/**
 * The import functions of a tenant, in order, and the values of its imported globals; null
 * when this tenant needs an instance of its own because it passes a wasm function (which the
 * runtime must link, checking its type, as it would for a new instance). A warm instance
 * serves it only if it was made with the same globals ({@linkcode sameGlobals}).
 */
export function tenantImports(
  plan: RunPlan,
  imports: ImportObject | undefined,
): { fns: Fn[]; globals: unknown[] } | null {
  const fns: Fn[] = [];
  const values: unknown[] = [];
  const declared = plan.imports;
  const given = importValues(declared, imports);
  for (let i = 0; i < declared.length; i++) {
    const d = declared[i];
    const value = given[i];
    if (d.kind === "function") {
      if (typeof value !== "function") {
        throw new LinkError(
          `import ${JSON.stringify(d.module)}.${JSON.stringify(d.name)} must be a function`,
        );
      }
      if (isWasmFunction(value)) return null;
      fns.push(value as Fn);
    } else {
      // An immutable global: compared by value (a Global object's, or the number itself).
      values.push(value instanceof WebAssembly.Global ? value.value : value);
    }
  }
  return { fns, globals: values };
}

/** Whether two lists of imported global values are the same, value for value. */
export function sameGlobals(a: readonly unknown[], b: readonly unknown[]): boolean {
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return false;
  return true;
}

// The runtime names the functions it makes for wasm code by their function index.
function isWasmFunction(f: CallableFunction): boolean {
  const name = f.name;
  return name.length > 0 && name.charCodeAt(0) >= 48 && name.charCodeAt(0) <= 57;
}

// Takes the lease so that every wrapper refers to it: the lease lives as long as a wrapper.
/**
 * Runs the module's start function for `tenant`, counted as a call into the instance (through
 * `control`, with interruption or fuel on).
 */
export function startTenant(tenant: Tenant, control: CallControl | null = null): void {
  const start = tenant.warm.start;
  if (start === null) return;
  tenant.depth++;
  try {
    if (control !== null) control.call(start as Fn, []);
    else start();
  } finally {
    if (--tenant.depth === 0 && tenant.endPending) finishTenancy(tenant);
  }
}

/**
 * Ends `tenant`: what it handed out stops working; its instance is reset for the next tenant
 * (or destroyed), at once, or when the call it was ended from returns. Only the first call
 * counts.
 */
export function endTenancy(tenant: Tenant): void {
  if (tenant.dead) return;
  tenant.dead = true;
  for (const box of tenant.boxes) dropBox(box);
  if (tenant.depth > 0) {
    // Code of this tenant is still running: it stops at its next check, and the instance is
    // recycled once the outermost call has returned.
    tenant.endPending = true;
    if (!tenant.engine.closed) {
      tenant.warm.kill(1);
      tenant.warm.killed = true;
    }
    return;
  }
  finishTenancy(tenant);
}

/** @internal Ends `tenant` now that no call of it is in flight: its instance goes to the reset. */
export function finishTenancy(tenant: Tenant): void {
  tenant.endPending = false;
  const { run, warm } = tenant;
  if (warm.fns.length !== 0) warm.fns.fill(noTenant);
  run.endTenant(tenant);
}
