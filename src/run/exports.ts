/**
 * The exports of a running instance: the runtime's own exports, each behind a guard. Functions
 * are guarded wrappers (see guard.ts); memories, tables and globals are the objects below,
 * which behave like `WebAssembly.Memory`, `WebAssembly.Table` and `WebAssembly.Global` and throw
 * DisposedError once their instance is disposed. A memory's `buffer` is an alias of its bytes
 * that wasmpool detaches at disposal and whenever the memory grows.
 *
 * @module
 */

import { DisposedError } from "../errors.ts";
import type { ValueType } from "../module/types.ts";
import { guardExport, type Lease, unwrapFunction, wrapFuncref } from "./guard.ts";
import { type AliasBox, type MemoryRecord, recordOf, syncRecords } from "./memory_record.ts";
import type { RunPlan } from "./plan.ts";
import { watchRecord } from "./tenancy.ts";

function check(lease: Lease, what: string): void {
  if (lease.state.dead) {
    throw new DisposedError(`${what} was used after its instance was disposed`);
  }
}

// The raw object behind each guarded memory, table and global, for imports; set in the
// classes' static blocks.
let rawMemory: (memory: GuardedMemory) => { memory: WebAssembly.Memory; lease: Lease };
let rawTable: (table: GuardedTable) => { table: WebAssembly.Table; lease: Lease };
let rawGlobal: (global: GuardedGlobal) => { global: WebAssembly.Global; lease: Lease };

/** A memory exported by a running instance: `WebAssembly.Memory`'s `buffer` and `grow`. */
export class GuardedMemory {
  readonly #record: MemoryRecord;
  readonly #lease: Lease;
  readonly #box: AliasBox;

  /** @internal Made by an instance's exports. */
  constructor(record: MemoryRecord, lease: Lease) {
    this.#record = record;
    this.#lease = lease;
    this.#box = { alias: null, record };
    lease.state.boxes.push(this.#box);
    watchRecord(lease.state, record);
  }

  /**
   * The memory's bytes, as an ArrayBuffer that stays the same until the memory grows or its
   * instance is disposed, which detach it (length 0), like a `WebAssembly.Memory`'s buffer.
   */
  get buffer(): ArrayBuffer {
    check(this.#lease, "a memory");
    return this.#record.aliasFor(this.#box, this.#lease.state.engine.lib);
  }

  /**
   * Grows the memory by `delta` pages and returns its previous size in pages, or throws the
   * runtime's RangeError past the maximum. Every buffer handed out over it is detached.
   */
  grow(delta: number): number {
    check(this.#lease, "a memory");
    const old = this.#record.memory.grow(delta);
    this.#record.refresh();
    return old;
  }

  static {
    rawMemory = (m) => ({ memory: m.#record.memory, lease: m.#lease });
  }
}

// WebAssembly.Table as the JS API defines it (the lib types know only funcref tables).
interface RuntimeTable {
  readonly length: number;
  get(index: number): unknown;
  set(index: number, ...value: unknown[]): void;
  grow(delta: number, ...init: unknown[]): number;
}

/** A table exported by a running instance: `WebAssembly.Table`'s `get`, `set`, `grow`, `length`. */
export class GuardedTable {
  readonly #table: RuntimeTable;
  readonly #lease: Lease;
  readonly #funcref: boolean;

  /** @internal Made by an instance's exports. */
  constructor(table: WebAssembly.Table, lease: Lease, element: ValueType | null) {
    this.#table = table as unknown as RuntimeTable;
    this.#lease = lease;
    this.#funcref = element === "funcref";
  }

  /** The number of elements. */
  get length(): number {
    check(this.#lease, "a table");
    return this.#table.length;
  }

  /** Element `index` (a guarded function for a funcref table). */
  get(index: number): unknown {
    check(this.#lease, "a table");
    const value = this.#table.get(index);
    return this.#funcref ? wrapFuncref(value, this.#lease) : value;
  }

  /** Sets element `index` to `value` (the element type's default when omitted). */
  set(index: number, ...value: unknown[]): void {
    check(this.#lease, "a table");
    if (value.length === 0) return this.#table.set(index);
    this.#table.set(index, this.#in(value[0]));
  }

  /** Grows by `delta` elements set to `init`; returns the previous length. */
  grow(delta: number, ...init: unknown[]): number {
    check(this.#lease, "a table");
    if (init.length === 0) return this.#table.grow(delta);
    return this.#table.grow(delta, this.#in(init[0]));
  }

  #in(value: unknown): unknown {
    return this.#funcref ? unwrapFunction(value, this.#lease.state) : value;
  }

  static {
    rawTable = (t) => ({ table: t.#table as unknown as WebAssembly.Table, lease: t.#lease });
  }
}

/** A global exported by a running instance: `WebAssembly.Global`'s `value` and `valueOf`. */
export class GuardedGlobal {
  readonly #global: WebAssembly.Global;
  readonly #lease: Lease;
  readonly #funcref: boolean;

  /** @internal Made by an instance's exports. */
  constructor(global: WebAssembly.Global, lease: Lease, type: ValueType | null) {
    this.#global = global;
    this.#lease = lease;
    this.#funcref = type === "funcref";
  }

  /** The value (a guarded function for a funcref global). */
  get value(): unknown {
    check(this.#lease, "a global");
    const value = this.#global.value;
    return this.#funcref ? wrapFuncref(value, this.#lease) : value;
  }

  /** Sets the value; the runtime throws TypeError for an immutable global. */
  set value(value: unknown) {
    check(this.#lease, "a global");
    this.#global.value = this.#funcref ? unwrapFunction(value, this.#lease.state) : value;
  }

  /** The value, like `WebAssembly.Global#valueOf`. */
  valueOf(): unknown {
    return this.value;
  }

  static {
    rawGlobal = (g) => ({ global: g.#global, lease: g.#lease });
  }
}

/** What an export object of the runtime is behind a guarded one, or null if it is not one. */
export function unguard(
  value: unknown,
): { raw: WebAssembly.Memory | WebAssembly.Table | WebAssembly.Global; lease: Lease } | null {
  if (value instanceof GuardedMemory) {
    const { memory, lease } = rawMemory(value);
    return { raw: memory, lease };
  }
  if (value instanceof GuardedTable) {
    const { table, lease } = rawTable(value);
    return { raw: table, lease };
  }
  if (value instanceof GuardedGlobal) {
    const { global, lease } = rawGlobal(value);
    return { raw: global, lease };
  }
  return null;
}

/** The guarded exports object of a running instance: frozen, null prototype, like the runtime's. */
export function guardExports(
  raw: WebAssembly.Exports,
  plan: RunPlan,
  lease: Lease,
): Readonly<Record<string, unknown>> {
  const out: Record<string, unknown> = Object.create(null);
  // One guarded object per runtime object, as an item exported twice is one object.
  let objects: Map<object, unknown> | null = null;
  for (const e of plan.exports) {
    const value = raw[e.name];
    if (e.kind === "function") {
      out[e.name] = guardExport(value as CallableFunction, lease, e.type);
      continue;
    }
    const known = objects?.get(value);
    if (known !== undefined) {
      out[e.name] = known;
      continue;
    }
    const guarded = e.kind === "memory"
      ? new GuardedMemory(recordOf(value as WebAssembly.Memory), lease)
      : e.kind === "table"
      ? new GuardedTable(value as WebAssembly.Table, lease, e.valueType)
      : new GuardedGlobal(value as WebAssembly.Global, lease, e.valueType);
    (objects ??= new Map()).set(value, guarded);
    out[e.name] = guarded;
  }
  const records = lease.state.group.records;
  if (records.length !== 0) syncRecords(records);
  return Object.freeze(out);
}
