/**
 * Snapshots at run time: `Instance#snapshot()` captures a running instance's memories, mutable
 * globals and tables into a new module of the same engine (its binary is snapshot_bytes.ts's),
 * so that its instances start in that state, with nothing run. The new module goes through
 * `new Module` like any other: it gets memory images, recycling and the engine's limits.
 *
 * Refused with {@linkcode SnapshotError}, before anything is read or changed, when the state
 * cannot be captured:
 * - the instance is in a call (a tenant of a recycled instance, whose calls wasmpool counts; a
 *   dedicated instance's exports are the runtime's functions, or wrappers that count nothing,
 *   so it cannot tell: see the README);
 * - it was stopped by a deadline or fuel (poisoned);
 * - the module imports a memory or a table (their contents are the host's), or a mutable
 *   global;
 * - a mutable global is a v128 (it cannot be read from JavaScript) or holds a reference that
 *   is not null nor one of the instance's own functions;
 * - a table holds a host function, another instance's function or a non-null externref.
 *
 * @module
 */

import { DisposedError, SnapshotError } from "../errors.ts";
import { WASM_PAGE_BYTES } from "../memory.ts";
import { adoptModule, type Module, moduleState } from "../module.ts";
import { type CapturedState, snapshotBytes } from "../module/snapshot_bytes.ts";
import type { ConstExpr, ParsedModule } from "../module/types.ts";
import { escapingFunctions } from "./rewrite.ts";
import { GROW_EXPORT } from "./logical_memory.ts";
import {
  MAX_SNAPSHOT_GLOBALS,
  memoryExport,
  OWN_TABLE_EXPORT,
  SNAPSHOT_EXPORT,
  type SnapshotAccess,
  snapshotAccess,
  tableExport,
} from "./snapshot_accessors.ts";

/** What a snapshot is taken from. */
export interface SnapshotSource {
  /** The runtime's instance. */
  readonly raw: WebAssembly.Instance;
  /** Whether the instance is disposed. */
  readonly dead: boolean;
  /** Whether a deadline or fuel stopped it. */
  readonly poisoned: boolean;
  /** Whether one of its calls is in progress, as far as wasmpool counts them. */
  readonly inCall: boolean;
}

// The accessors' layout, worked out once per module.
const accessOf = new WeakMap<Module, SnapshotAccess>();

/** Why `parsed` can never be snapshotted, or null. */
function declaredRefusal(parsed: ParsedModule): string | null {
  for (const i of parsed.imports) {
    const what = `${i.module}.${i.name}`;
    if (i.desc.kind === "memory") {
      return `the module imports memory ${what}, whose contents are the host's`;
    }
    if (i.desc.kind === "table") {
      return `the module imports table ${what}, whose entries are the host's`;
    }
    if (i.desc.kind === "global" && i.desc.type.mutable) {
      return `the module imports mutable global ${what}, whose value is the host's`;
    }
  }
  let mutable = 0;
  for (let g = 0; g < parsed.globals.length; g++) {
    const type = parsed.globals[g].type;
    if (!type.mutable) continue;
    if (type.type === "v128") return `mutable global ${g} is a v128, which cannot be read`;
    mutable++;
  }
  if (mutable > MAX_SNAPSHOT_GLOBALS) {
    return `the module has ${mutable} mutable globals, more than the limit of ${MAX_SNAPSHOT_GLOBALS}`;
  }
  return null;
}

/**
 * A new module of `module`'s engine whose instances start in the state `source` (an instance
 * of `module`) is in now. Throws DisposedError, or SnapshotError with nothing changed.
 */
export function takeSnapshot(module: Module, source: SnapshotSource): Module {
  if (source.dead) throw new DisposedError("an instance was used after it was disposed");
  const state = moduleState(module);
  const parsed = state.translation.parsed;
  const refusal = declaredRefusal(parsed);
  if (refusal !== null) throw new SnapshotError(`cannot snapshot this instance: ${refusal}`);
  if (source.poisoned) {
    throw new SnapshotError(
      "cannot snapshot this instance: a deadline or fuel stopped it in a call, its state is torn",
    );
  }
  if (source.inCall) {
    throw new SnapshotError(
      "cannot snapshot this instance during one of its calls (from a host import): take it " +
        "after the outermost call returns",
    );
  }
  let access = accessOf.get(module);
  if (access === undefined) {
    access = snapshotAccess(parsed, escapingFunctions(parsed));
    accessOf.set(module, access);
  }
  const exports = source.raw.exports;
  const values = readGlobals(exports[SNAPSHOT_EXPORT] as () => unknown, access.globals.length);
  const ownTable = exports[OWN_TABLE_EXPORT] as WebAssembly.Table;
  const own = new Map<unknown, number>();
  for (let k = 0; k < access.own.length; k++) own.set(ownTable.get(k), access.own[k]);

  const globals = new Map<number, ConstExpr>();
  access.globals.forEach((g, k) => {
    globals.set(g, constant(parsed.globals[g].type.type, values[k], own, g));
  });
  const tables = parsed.tables.map((type, t) => {
    const table = exports[tableExport(t)] as WebAssembly.Table;
    const entries: (number | null)[] = new Array(table.length);
    for (let i = 0; i < entries.length; i++) {
      const value: unknown = table.get(i);
      if (value === null || value === undefined) {
        entries[i] = null;
        continue;
      }
      const index = type.element === "funcref" ? own.get(value) : undefined;
      if (index === undefined) {
        throw new SnapshotError(
          `cannot snapshot this instance: entry ${i} of table ${t} holds ${
            type.element === "funcref"
              ? "a host function or another instance's function"
              : "a non-null externref"
          }, which a binary cannot hold`,
        );
      }
      entries[i] = index;
    }
    return entries;
  });
  // Memory 0 with a logical size (logical_memory.ts): the pages the tenant's code saw, so that
  // the snapshot module starts at that size (past it, a recycled memory holds only zeros, unless
  // code wrote where a fresh instance would have trapped).
  const logicalGrow = exports[GROW_EXPORT] as ((pages: number) => number) | undefined;
  const memories = parsed.memories.map((_, m) => {
    const bytes = new Uint8Array((exports[memoryExport(m)] as WebAssembly.Memory).buffer);
    if (m !== 0 || logicalGrow === undefined) return bytes;
    return bytes.subarray(0, logicalGrow(0) * WASM_PAGE_BYTES);
  });
  const captured: CapturedState = { memories, globals, tables };
  return adoptModule(module.engine, snapshotBytes(state.bytes, parsed, captured));
}

/** The accessor's results as an array (the runtimes return a bare value for one result). */
function readGlobals(accessor: () => unknown, count: number): unknown[] {
  const result = accessor();
  if (count === 0) return [];
  if (count === 1) return [result];
  return result as unknown[];
}

/** The constant expression of global `g`'s current `value`, of `type`. */
function constant(
  type: string,
  value: unknown,
  own: ReadonlyMap<unknown, number>,
  g: number,
): ConstExpr {
  switch (type) {
    case "i32":
      return { kind: "i32.const", value: value as number };
    case "i64":
      return { kind: "i64.const", value: value as bigint };
    case "f32":
      return { kind: "f32.const", value: value as number };
    case "f64":
      return { kind: "f64.const", value: value as number };
  }
  const ref = type as "funcref" | "externref";
  if (value === null || value === undefined) return { kind: "ref.null", type: ref };
  const index = ref === "funcref" ? own.get(value) : undefined;
  if (index === undefined) {
    throw new SnapshotError(
      `cannot snapshot this instance: mutable global ${g} holds ${
        ref === "funcref"
          ? "a host function or another instance's function"
          : "a non-null externref"
      }, which a binary cannot hold`,
    );
  }
  return { kind: "ref.func", index };
}
