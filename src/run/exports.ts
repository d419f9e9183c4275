/**
 * The exports of a running instance. Functions are the runtime's own: each checks on entry
 * that its instance is not disposed (the rewrite put that check there), so calling one costs
 * what calling a plain instance's costs. Memories, tables and globals are the objects below,
 * which behave like `WebAssembly.Memory`, `WebAssembly.Table` and `WebAssembly.Global` and throw
 * DisposedError once their instance is disposed. A memory's `buffer` is an alias of its bytes
 * that wasmpool detaches at disposal and whenever the memory grows.
 *
 * Each object keeps the runtime's instance alive (the finalizer's target), as the runtime's own
 * exported functions do: an instance is collected only when nothing it handed out is reachable.
 *
 * @module
 */

import { DisposedError } from "../errors.ts";
import { type FuncRefs, refIn } from "./func_refs.ts";
import { type AliasBox, type MemoryRecord, recordOf } from "./memory_record.ts";
import type { RunPlan } from "./plan.ts";
import { grew } from "./hooks.ts";
import type { Owner, RunState } from "./tenancy.ts";
import { SYNC_EXPORT } from "./logical_memory.ts";
import { memoryExport } from "./snapshot_accessors.ts";

function check(owner: Owner, what: string): void {
  if (owner.dead) {
    throw new DisposedError(`${what} was used after its instance was disposed`);
  }
}

/** What a guarded object stands for, for imports into another instance. */
export interface Unguarded {
  /** The runtime's object. */
  readonly raw: WebAssembly.Memory | WebAssembly.Table | WebAssembly.Global;
  /** Who handed it out (its disposal ends the object). */
  readonly owner: Owner;
  /** The state of the instance it belongs to. */
  readonly state: RunState;
}

// The runtime's object behind each guarded one; set in the classes' static blocks.
let unguardMemory: (memory: GuardedMemory) => Unguarded;
let unguardTable: (table: GuardedTable) => Unguarded;
let unguardGlobal: (global: GuardedGlobal) => Unguarded;

/** A memory exported by a running instance: `WebAssembly.Memory`'s `buffer` and `grow`. */
export class GuardedMemory {
  readonly #record: MemoryRecord;
  readonly #owner: Owner;
  readonly #state: RunState;
  readonly #box: AliasBox | null;
  // What must live as long as this object: the runtime's instance, or a tenant's lease.
  readonly #keepAlive: object;
  // After a grow: sets memory 0's logical size to the physical one (logical_memory.ts).
  readonly #grewFromJs: (() => void) | null;

  /**
   * @internal Made by an instance's exports, for `owner` (whose disposal ends it), of the
   * instance whose state is `state`. The buffer of a memory an instance defines is an alias,
   * detached at disposal; a memory the user passed in is the user's: its own buffer.
   * `grewFromJs`, for memory 0 of a module with a logical size, runs after each grow.
   */
  constructor(
    record: MemoryRecord,
    owner: Owner,
    state: RunState,
    keepAlive: object,
    aliased: boolean,
    grewFromJs: (() => void) | null = null,
  ) {
    this.#grewFromJs = grewFromJs;
    this.#record = record;
    this.#owner = owner;
    this.#state = state;
    this.#keepAlive = keepAlive;
    this.#box = aliased ? { alias: null, record } : null;
    if (this.#box !== null) owner.boxes.push(this.#box);
  }

  /**
   * The memory's bytes, as an ArrayBuffer that stays the same until the memory grows or its
   * instance is disposed, which detach it (length 0), like a `WebAssembly.Memory`'s buffer.
   */
  get buffer(): ArrayBuffer {
    check(this.#owner, "a memory");
    const box = this.#box;
    if (box === null) return this.#record.memory.buffer as ArrayBuffer;
    return this.#record.aliasFor(box, this.#owner.engine.lib);
  }

  /**
   * Grows the memory by `delta` pages and returns its previous size in pages, or throws the
   * runtime's RangeError past the maximum. Every buffer handed out over it is detached.
   *
   * Memory 0 of a module with a logical size (logical_memory.ts): the physical memory grows, as
   * Emscripten's glue expects (it computes `delta` from `buffer.byteLength`), the code's
   * `memory.size` becomes the new physical size, and the module is marked grown from
   * JavaScript: its tenants start at the physical size from then on, so that Emscripten's
   * `sbrk` (which compares its break with `memory.size`) reuses the grown pages instead of
   * asking JavaScript to grow the memory again for every tenant.
   */
  grow(delta: number): number {
    check(this.#owner, "a memory");
    const old = this.#record.memory.grow(delta);
    grew();
    this.#grewFromJs?.();
    return old;
  }

  static {
    unguardMemory = (m) => ({ raw: m.#record.memory, owner: m.#owner, state: m.#state });
  }
}

// WebAssembly.Table as the JS API defines it (the lib types know only funcref tables).
interface RuntimeTable {
  readonly length: number;
  get(index: number): unknown;
  set(index: number, ...value: unknown[]): void;
  grow(delta: number, ...init: unknown[]): number;
}

/**
 * A table exported by a running instance: `WebAssembly.Table`'s `get`, `set`, `grow`, `length`.
 * A recycled instance's tenant gets its own wrappers of the functions in a funcref table
 * (func_refs.ts): they stop working when the tenant ends.
 */
export class GuardedTable {
  readonly #table: RuntimeTable;
  readonly #owner: Owner;
  readonly #state: RunState;
  readonly #keepAlive: object;
  // The tenant's function references, for a recycled instance's funcref table; else null.
  readonly #refs: FuncRefs | null;

  /**
   * @internal Made by an instance's exports (see {@linkcode GuardedMemory}); `refs` binds the
   * functions of a recycled instance's funcref table to its tenant.
   */
  constructor(
    table: WebAssembly.Table,
    owner: Owner,
    state: RunState,
    keepAlive: object,
    refs: FuncRefs | null = null,
  ) {
    this.#table = table as unknown as RuntimeTable;
    this.#owner = owner;
    this.#state = state;
    this.#keepAlive = keepAlive;
    this.#refs = refs;
  }

  /** The number of elements. */
  get length(): number {
    check(this.#owner, "a table");
    return this.#table.length;
  }

  /** Element `index`. */
  get(index: number): unknown {
    check(this.#owner, "a table");
    const refs = this.#refs;
    return refs === null ? this.#table.get(index) : refs.out(this.#table.get(index));
  }

  /** Sets element `index` to `value` (the element type's default when omitted). */
  set(index: number, ...value: unknown[]): void {
    check(this.#owner, "a table");
    const refs = this.#refs;
    this.#table.set(index, ...value.map((v) => refIn(v, refs)));
  }

  /** Grows by `delta` elements set to `init`; returns the previous length. */
  grow(delta: number, ...init: unknown[]): number {
    check(this.#owner, "a table");
    const refs = this.#refs;
    return this.#table.grow(delta, ...init.map((v) => refIn(v, refs)));
  }

  static {
    unguardTable = (t) => ({
      raw: t.#table as unknown as WebAssembly.Table,
      owner: t.#owner,
      state: t.#state,
    });
  }
}

/** A global exported by a running instance: `WebAssembly.Global`'s `value` and `valueOf`. */
export class GuardedGlobal {
  readonly #global: WebAssembly.Global;
  readonly #owner: Owner;
  readonly #state: RunState;
  readonly #keepAlive: object;
  // The tenant's function references, for a recycled instance's funcref global; else null.
  readonly #refs: FuncRefs | null;

  /** @internal Made by an instance's exports (see {@linkcode GuardedTable}). */
  constructor(
    global: WebAssembly.Global,
    owner: Owner,
    state: RunState,
    keepAlive: object,
    refs: FuncRefs | null = null,
  ) {
    this.#global = global;
    this.#owner = owner;
    this.#state = state;
    this.#keepAlive = keepAlive;
    this.#refs = refs;
  }

  /** The value. */
  get value(): unknown {
    check(this.#owner, "a global");
    const refs = this.#refs;
    return refs === null ? this.#global.value : refs.out(this.#global.value);
  }

  /** Sets the value; the runtime throws TypeError for an immutable global. */
  set value(value: unknown) {
    check(this.#owner, "a global");
    this.#global.value = refIn(value, this.#refs);
  }

  /** The value, like `WebAssembly.Global#valueOf`. */
  valueOf(): unknown {
    return this.value;
  }

  static {
    unguardGlobal = (g) => ({ raw: g.#global, owner: g.#owner, state: g.#state });
  }
}

/** What `value` stands for when it is a guarded memory, table or global; else null. */
export function unguard(value: unknown): Unguarded | null {
  if (value instanceof GuardedMemory) return unguardMemory(value);
  if (value instanceof GuardedTable) return unguardTable(value);
  if (value instanceof GuardedGlobal) return unguardGlobal(value);
  return null;
}

/**
 * The exports object of a running instance: null prototype, like the runtime's (an export may be
 * named `__proto__` or `toString`), but not frozen: freezing one costs about 160 ns in V8, a
 * tenth of a recycled instance's whole cycle. Its functions are the runtime's own, unless `wrap`
 * makes a guarded one of each (a recycled instance's tenant, whose functions must stop working
 * when it ends though the instance lives, or calls through a `CallControl`: interruption or
 * fuel on). `refs`, a recycled instance's tenant's function references, binds the functions
 * its funcref tables and globals hand out (func_refs.ts).
 */
export function guardExports(
  raw: WebAssembly.Instance,
  plan: RunPlan,
  owner: Owner,
  state: RunState,
  keepAlive: object,
  wrap: ((fn: CallableFunction, index: number) => CallableFunction) | null = null,
  refs: FuncRefs | null = null,
): Readonly<Record<string, unknown>> {
  const exports = raw.exports;
  const out: Record<string, unknown> = Object.create(null);
  // One guarded object per runtime object, as an item exported twice is one object.
  let objects: Map<unknown, unknown> | null = null;
  const refExports = refs === null ? null : plan.funcRefs?.exports ?? null;
  for (let k = 0; k < plan.exports.length; k++) {
    const e = plan.exports[k];
    const value = exports[e.name];
    if (e.kind === "function") {
      out[e.name] = wrap === null ? value : wrap(value as CallableFunction, k);
      continue;
    }
    const bound = refExports?.[k] === true ? refs : null;
    const known = objects?.get(value);
    if (known !== undefined) {
      out[e.name] = known;
      continue;
    }
    let guarded: unknown;
    if (e.kind === "memory") {
      const memory = value as WebAssembly.Memory;
      const aliased = !(owner.userMemories?.has(memory) ?? false);
      const logical = plan.logical;
      const sync = logical !== null && memory === exports[memoryExport(0)]
        ? exports[SYNC_EXPORT] as (ignored: number) => number
        : null;
      guarded = new GuardedMemory(
        recordOf(memory),
        owner,
        state,
        keepAlive,
        aliased,
        sync === null ? null : () => {
          sync(0);
          logical!.grownFromJs = true;
        },
      );
    } else if (e.kind === "table") {
      guarded = new GuardedTable(value as WebAssembly.Table, owner, state, keepAlive, bound);
    } else {
      guarded = new GuardedGlobal(value as WebAssembly.Global, owner, state, keepAlive, bound);
    }
    (objects ??= new Map()).set(value, guarded);
    out[e.name] = guarded;
  }
  return out;
}
