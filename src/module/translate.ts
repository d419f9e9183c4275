/**
 * Translation: from a parsed module to what instantiation needs, including the blob the
 * native side boxes once per module (layout in `zig/src/module.zig`).
 *
 * @module
 */

import { LinkError, UnsupportedFeatureError } from "../errors.ts";
import type {
  ConstExpr,
  ElementSegment,
  ExternKind,
  GlobalType,
  Import,
  MemoryType,
  ParsedModule,
  TableType,
} from "./types.ts";

const MAGIC = 0x424d5057;
const VERSION = 1;
const HEADER_BYTES = 64;
const SEGMENT_DESC_BYTES = 24;
const SCRATCH_DETAIL_BYTES = 32;
const U32_MAX = 0xffff_ffff;

/** Where a segment's offset comes from. */
export type OffsetPlan =
  | { readonly kind: "constant"; readonly value: number }
  | { readonly kind: "imported-global"; readonly index: number };

/** A defined memory as this engine instantiates it: sizes in pages, maximum within limits. */
export interface MemoryPlan {
  /** Initial pages. */
  readonly min: number;
  /** Pages it may grow to. */
  readonly max: number;
}

/** A defined table as this engine instantiates it. */
export interface TablePlan {
  /** Initial elements. */
  readonly min: number;
  /** Elements it may grow to. */
  readonly max: number;
  /** The element type. */
  readonly element: "funcref" | "externref";
}

/** An import, with its index in the import space of its kind. */
export interface ImportPlan {
  /** The import as declared. */
  readonly import: Import;
  /** Index among the imports of the same kind. */
  readonly kindIndex: number;
}

/** Everything an instantiation needs, computed once per module. */
export interface Translation {
  /** The parsed module. */
  readonly parsed: ParsedModule;
  /** The imports in order, with their per-kind indices. */
  readonly imports: readonly ImportPlan[];
  /** How many imports of each kind. */
  readonly importCounts: Readonly<Record<ExternKind, number>>;
  /** Defined memories. */
  readonly memories: readonly MemoryPlan[];
  /** Defined tables. */
  readonly tables: readonly TablePlan[];
  /** Types of all globals, imports first. */
  readonly globalTypes: readonly GlobalType[];
  /** The blob for `wasmpool_module_create`. */
  readonly blob: Uint8Array;
  /** Bytes of scratch area one instantiation uses. */
  readonly scratchBytes: number;
  /** Whether any imported global feeds a segment offset (then its value goes to the scratch). */
  readonly offsetGlobals: boolean;
}

/** The largest memory and table each defined one may grow to, for this engine. */
export interface TranslationLimits {
  /** Pages any memory may have. */
  readonly memoryPages: number;
  /** Elements any table may have. */
  readonly tableElements: number;
}

function memoryPlan(type: MemoryType, limits: TranslationLimits, offset: number): MemoryPlan {
  if (type.shared) throw new UnsupportedFeatureError("shared memory (threads)", offset);
  return { min: type.min, max: Math.min(type.max ?? 65536, limits.memoryPages) };
}

function tablePlan(type: TableType, limits: TranslationLimits): TablePlan {
  return {
    min: type.min,
    max: Math.min(type.max ?? U32_MAX, limits.tableElements),
    element: type.element,
  };
}

function kindOf(i: Import): ExternKind {
  return i.desc.kind;
}

/**
 * Translates `parsed` for an engine with `limits`. The module's minimums must already have
 * been checked against the limits.
 */
export function translate(parsed: ParsedModule, limits: TranslationLimits): Translation {
  const importCounts: Record<ExternKind, number> = {
    function: 0,
    table: 0,
    memory: 0,
    global: 0,
  };
  const imports: ImportPlan[] = [];
  const globalTypes: GlobalType[] = [];
  for (const i of parsed.imports) {
    const kind = kindOf(i);
    if (i.desc.kind === "memory" && i.desc.type.shared) {
      throw new UnsupportedFeatureError(`shared memory import ${i.module}.${i.name} (threads)`, 0);
    }
    imports.push({ import: i, kindIndex: importCounts[kind]++ });
    if (i.desc.kind === "global") globalTypes.push(i.desc.type);
  }
  for (const g of parsed.globals) globalTypes.push(g.type);

  const memories = parsed.memories.map((m) => memoryPlan(m, limits, 0));
  const tables = parsed.tables.map((t) => tablePlan(t, limits));
  const resolveOffset = offsetResolver(parsed, importCounts.global);
  const { blob, offsetGlobals } = buildBlob(parsed, importCounts, memories, tables, resolveOffset);
  const slots = memories.length + tables.length + importCounts.memory + importCounts.table +
    importCounts.global;
  return {
    parsed,
    imports,
    importCounts,
    memories,
    tables,
    globalTypes,
    blob,
    scratchBytes: SCRATCH_DETAIL_BYTES + 8 * slots,
    offsetGlobals,
  };
}

/** Reduces a segment offset to a constant or an imported global, following defined globals. */
function offsetResolver(
  parsed: ParsedModule,
  importedGlobals: number,
): (expr: ConstExpr) => OffsetPlan {
  const resolve = (expr: ConstExpr, depth: number): OffsetPlan => {
    if (expr.kind === "i32.const") return { kind: "constant", value: expr.value >>> 0 };
    if (expr.kind === "global.get" && depth < 2) {
      if (expr.index < importedGlobals) return { kind: "imported-global", index: expr.index };
      const defined = parsed.globals[expr.index - importedGlobals];
      if (defined && !defined.type.mutable) return resolve(defined.init, depth + 1);
    }
    throw new UnsupportedFeatureError(`segment offset expression ${expr.kind}`, 0);
  };
  return (expr) => resolve(expr, 0);
}

/**
 * A table with an initializer (WebAssembly 3.0) starts with every element set to it: for the
 * native tables, an element segment over the whole initial size, applied before the module's
 * own segments. `ref.null` is what a native table holds anyway.
 */
function tableInitSegments(
  parsed: ParsedModule,
  importCounts: Readonly<Record<ExternKind, number>>,
): ElementSegment[] {
  const segments: ElementSegment[] = [];
  parsed.tableInits.forEach((init, i) => {
    if (init === null || init.kind === "ref.null") return;
    if (init.kind !== "ref.func") {
      throw new UnsupportedFeatureError(`table initializer ${init.kind}`, 0);
    }
    segments.push({
      mode: "active",
      table: importCounts.table + i,
      offset: { kind: "i32.const", value: 0 },
      type: "funcref",
      elements: new Array(parsed.tables[i].min).fill(init.index),
    });
  });
  return segments;
}

interface Blob {
  readonly blob: Uint8Array;
  readonly offsetGlobals: boolean;
}

function buildBlob(
  parsed: ParsedModule,
  importCounts: Readonly<Record<ExternKind, number>>,
  memories: readonly MemoryPlan[],
  tables: readonly TablePlan[],
  resolveOffset: (expr: ConstExpr) => OffsetPlan,
): Blob {
  const data = parsed.data.filter((d) => d.mode === "active");
  const elems = [
    ...tableInitSegments(parsed, importCounts),
    ...parsed.elements.filter((e) => e.mode === "active"),
  ];
  const descBytes = HEADER_BYTES + 8 * (memories.length + tables.length) +
    SEGMENT_DESC_BYTES * (data.length + elems.length);
  let entriesBytes = 0;
  for (const e of elems) entriesBytes += 4 * e.elements.length;
  let dataBytes = 0;
  for (const d of data) dataBytes += d.data.length;
  const total = descBytes + entriesBytes + dataBytes;
  if (total > U32_MAX) {
    throw new LinkError(`module image of ${total} bytes exceeds the limit of ${U32_MAX} bytes`);
  }

  const blob = new Uint8Array(total);
  const view = new DataView(blob.buffer);
  const header = [
    MAGIC,
    VERSION,
    total,
    importCounts.memory,
    memories.length,
    importCounts.table,
    tables.length,
    importCounts.global,
    data.length,
    elems.length,
  ];
  header.forEach((word, i) => view.setUint32(4 * i, word, true));
  let at = HEADER_BYTES;
  const put = (word: number): void => {
    view.setUint32(at, word, true);
    at += 4;
  };
  for (const m of memories) (put(m.min), put(m.max));
  for (const t of tables) (put(t.min), put(t.max));

  let offsetGlobals = false;
  const putOffset = (expr: ConstExpr | null): void => {
    const plan = resolveOffset(expr!);
    if (plan.kind === "constant") (put(0), put(plan.value));
    else (put(1), put(plan.index), offsetGlobals = true);
  };
  // Payload: element entries first (4-byte aligned), then the data bytes.
  const entriesStart = descBytes;
  let dataCursor = entriesStart + entriesBytes;
  for (const d of data) {
    put(d.memory);
    putOffset(d.offset);
    put(dataCursor);
    put(d.data.length);
    put(0);
    dataCursor += d.data.length;
  }
  let entryAt = entriesStart;
  for (const e of elems) {
    put(e.table);
    putOffset(e.offset);
    put(entryAt);
    put(e.elements.length);
    put(0);
    for (const f of e.elements) {
      view.setUint32(entryAt, f === null ? 0 : f + 1, true);
      entryAt += 4;
    }
  }
  let dataAt = entriesStart + entriesBytes;
  for (const d of data) {
    blob.set(d.data, dataAt);
    dataAt += d.data.length;
  }
  return { blob, offsetGlobals };
}

/**
 * The blob of a module of one defined memory standing for `parsed`'s imported memory `memory`
 * (among imported memories): that memory's type within `limits`, and its active data segments
 * when every one has a constant offset (else none: instantiation applies them). The native
 * side builds that module's image as it would a defined memory's, for the pooled memory a
 * reservation hands out (see src/run/reservation.ts). Null when the memory's minimum is over
 * `limits.memoryPages`: no pooled memory can stand for it.
 */
export function importedMemoryBlob(
  parsed: ParsedModule,
  memory: number,
  limits: TranslationLimits,
): { readonly blob: Uint8Array; readonly plan: MemoryPlan; readonly data: boolean } | null {
  const imported = parsed.imports.filter((i) => i.desc.kind === "memory")[memory];
  if (imported?.desc.kind !== "memory") {
    throw new RangeError(`translate: no imported memory ${memory}`);
  }
  const plan = memoryPlan(imported.desc.type, limits, 0);
  if (plan.min > plan.max) return null;
  const importedGlobals = parsed.imports.filter((i) => i.desc.kind === "global").length;
  const resolve = offsetResolver(parsed, importedGlobals);
  const segments = parsed.data.filter((d) => d.mode === "active" && d.memory === memory);
  const constant = segments.every((d) => resolve(d.offset!).kind === "constant");
  const alone: ParsedModule = {
    ...parsed,
    data: constant ? segments.map((d) => ({ ...d, memory: 0 })) : [],
    elements: [],
    tableInits: [],
    tables: [],
  };
  const counts = { function: 0, table: 0, memory: 0, global: 0 };
  const { blob } = buildBlob(alone, counts, [plan], [], resolve);
  return { blob, plan, data: constant };
}
