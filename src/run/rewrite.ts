/**
 * The binary rewrite every running module goes through. It adds, and changes, only this:
 *
 * - With pooling, defined memories become imports from {@linkcode MEMORY_IMPORT_MODULE},
 *   appended after the module's own imports so that every memory index is unchanged; active
 *   data segments whose bytes a memory image already provides are emptied (their place, and
 *   their offset, which is a constant inside the initial size, are kept).
 * - For a reservation (`Engine#reserve`, see reservation.ts), the module's own memory imports
 *   are renamed in place to wasmpool's first memories (`memory0`, ...; the defined ones then
 *   follow them), so that the pooled memory the reservation handed out is what the runtime
 *   links, whatever the user's import object carries under the declared name.
 * - A guard: a mutable i32 global (`dead`, appended after the module's globals; not exported,
 *   which would make every read of it indirect), a function that sets it (appended after the
 *   module's functions), a funcref table of one entry (appended after the module's tables)
 *   that wasmpool fills with its hook, and a type `[i32] -> []` (appended after
 *   the module's types). Every
 *   function that can be reached from outside (exported, in an element segment, referenced by
 *   a global) starts with `if (dead) hook(disposed)`, which throws
 *   DisposedError; see instrument.ts for the code changes.
 * - The start function is no longer started by the runtime: it is exported, and wasmpool calls
 *   it once the hooks are in place (the runtime would have run it last too).
 * - The guard's function and table, and the start function, are exported under names starting
 *   with NUL, which no user export collides with (they are filtered out of `exports`).
 *
 * - The snapshot accessors (snapshot_accessors.ts): a type, a function, a table and a passive
 *   element segment after the reset's, and exports of every defined memory and table.
 *
 * - With interruption or fuel on (`checks`), the pieces interrupt.ts describes: the epoch
 *   memory's import, types, the fuel counter, functions and their exports, and the checks in
 *   the code. Without them, none of this is written.
 *
 * - With `logicalMemory` (`PoolingOptions.recycleGrownMemoryPages` > 0), for a recycled module
 *   whose code grows its defined memory 0: the logical size logical_memory.ts describes, its
 *   global, type, functions and export after every other, `memory.size 0` and `memory.grow 0`
 *   replaced in the code. Without it, none of this is written.
 *
 * Everything else is copied byte for byte, custom sections included. Indices of types,
 * functions, tables, memories and globals are all unchanged: only appended to.
 *
 * @module
 */

import { ByteReader } from "../module/reader.ts";
import type { ParsedModule } from "../module/types.ts";
import { BinaryWriter } from "./binary_writer.ts";
import { type CodeFacts, type GuardIndices, instrumentCode } from "./instrument.ts";
import {
  addedExports,
  addedFunctionTypes,
  addedGlobals,
  addedTypes,
  type CheckLayout,
  checkLayout,
  EPOCH_IMPORT,
  NO_CHECKS,
  PAD_IMPORT,
  type RunChecks,
  writeEpochImportType,
  writePadImportType,
} from "./interrupt.ts";
import { passiveCopies, resetBody } from "./reset_function.ts";
import {
  GROW_EXPORT,
  growSnippet,
  logicalBodies,
  logicalCandidate,
  type LogicalLayout,
  sizeSnippet,
  SYNC_EXPORT,
  writeLogicalGlobal,
} from "./logical_memory.ts";
import {
  memoryExport,
  OWN_TABLE_EXPORT,
  SNAPSHOT_EXPORT,
  snapshotAccess,
  snapshotBody,
  tableExport,
  writeOwnSegment,
  writeOwnTable,
  writeSnapshotType,
} from "./snapshot_accessors.ts";

/** The import module name of the memories the rewrite turns into imports. */
export const MEMORY_IMPORT_MODULE = "\u0000wasmpool";

/** The import field name of defined memory `index` (counting defined memories only). */
export function memoryImportName(index: number): string {
  return `memory${index}`;
}

/** Export name of the function that sets the guard's `dead` global. */
export const KILL_EXPORT = "\u0000wasmpool.kill";
/** Export name of the guard's hook table. */
export const HOOKS_EXPORT = "\u0000wasmpool.hooks";
/** Export name of the function that resets a recycled instance's tables and globals. */
export const RESET_EXPORT = "\u0000wasmpool.reset";
/** Export name of the module's start function, when it has one. */
export const START_EXPORT = "\u0000wasmpool.start";

/** How a defined memory is imported after the rewrite: sizes in pages. */
export interface ImportedMemoryType {
  /** Initial pages: the module's own minimum. */
  readonly min: number;
  /** Maximum pages: the module's maximum within the engine's limits; null for none. */
  readonly max: number | null;
}

/** What the rewrite changes. */
export interface RewriteOptions {
  /** Pooling: the types the defined memories are imported with, in order; null on demand. */
  readonly memories: readonly ImportedMemoryType[] | null;
  /**
   * A reservation's variant: the types the module's imported memories are renamed to, one per
   * imported memory, in order (see this file's documentation). Default: none, the imports stay.
   */
  readonly importedMemories?: readonly ImportedMemoryType[];
  /** Whether data segment `index` (among all data segments) is emptied. */
  readonly emptyData: (index: number) => boolean;
  /** Whether instances are recycled: then a `reset` function is added (reset_function.ts). */
  readonly recycle?: boolean;
  /**
   * The checks to compile in (interruption needs `memories`: the epoch memory is imported
   * after them). Default: none.
   */
  readonly checks?: RunChecks;
  /**
   * Whether memory 0 gets a logical size (logical_memory.ts), when the module is recycled, its
   * memory 0 defined and not shared, and its code grows it. Default: false.
   */
  readonly logicalMemory?: boolean;
}

const Section = {
  custom: 0,
  type: 1,
  import: 2,
  function: 3,
  table: 4,
  memory: 5,
  global: 6,
  export: 7,
  start: 8,
  element: 9,
  code: 10,
  data: 11,
  dataCount: 12,
} as const;

/** Non-custom sections in the order the binary format requires. */
const ORDER: readonly number[] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 10, 11];

const HEADER_BYTES = 8;
const OP_END = 0x0b;
const OP_I32_CONST = 0x41;
const OP_GLOBAL_GET = 0x23;
const FUNCREF = 0x70;
const I32 = 0x7f;

/**
 * Functions that code outside the module can reach: exported, in element segments, in table
 * initializers, in globals.
 */
export function escapingFunctions(parsed: ParsedModule): Set<number> {
  const escaping = new Set<number>();
  for (const e of parsed.exports) if (e.kind === "function") escaping.add(e.index);
  for (const segment of parsed.elements) {
    for (const f of segment.elements) if (f !== null) escaping.add(f);
  }
  for (const init of parsed.tableInits) if (init?.kind === "ref.func") escaping.add(init.index);
  for (const g of parsed.globals) if (g.init.kind === "ref.func") escaping.add(g.init.index);
  if (parsed.start !== null) escaping.add(parsed.start);
  return escaping;
}

/** A rewritten module, and what its code does. */
export interface Rewritten {
  /** The rewritten binary. */
  readonly bytes: Uint8Array<ArrayBuffer>;
  /** What the module's code does (found while instrumenting it). */
  readonly facts: CodeFacts;
  /** Whether the added `reset` function resets anything (else it need not be called). */
  readonly resets: boolean;
  /** Whether memory 0 got a logical size (logical_memory.ts). */
  readonly logical: boolean;
}

/**
 * Rewrites `bytes` (a module `parsed` was parsed from; the parser has checked it) as described
 * in this file's documentation. Throws MalformedModuleError or UnsupportedFeatureError for
 * function bodies that do not decode.
 */
export function rewriteModule(
  bytes: Uint8Array,
  parsed: ParsedModule,
  options: RewriteOptions,
): Rewritten {
  const memories = options.memories ?? [];
  if (options.memories !== null && memories.length !== parsed.memories.length) {
    throw new RangeError(
      `rewrite: ${memories.length} memory types for ${parsed.memories.length} memories`,
    );
  }
  const counts = { table: 0, global: 0, function: 0, memory: 0 };
  for (const i of parsed.imports) {
    if (i.desc.kind === "table") counts.table++;
    if (i.desc.kind === "global") counts.global++;
    if (i.desc.kind === "function") counts.function++;
    if (i.desc.kind === "memory") counts.memory++;
  }
  const guard: GuardIndices = {
    type: parsed.types.length,
    table: counts.table + parsed.tables.length,
    global: counts.global + parsed.globals.length,
    importedFunctions: counts.function,
  };
  const kill = counts.function + parsed.functions.length;
  const recycle = options.recycle === true;
  const copies = recycle ? passiveCopies(parsed) : [];
  const checks = options.checks ?? NO_CHECKS;
  const renamed = options.importedMemories ?? [];
  if (renamed.length !== 0 && renamed.length !== counts.memory) {
    throw new RangeError(`rewrite: ${renamed.length} renamed of ${counts.memory} memory imports`);
  }
  if (checks.interruption && options.memories === null) {
    throw new RangeError("rewrite: interruption needs the defined memories imported");
  }
  const escaping = escapingFunctions(parsed);
  const access = snapshotAccess(parsed, escaping);
  const snapshotType = guard.type + (recycle ? 2 : 1);
  const snapshotFunction = kill + (recycle ? 2 : 1);
  const ownTable = guard.table + 1;
  const ownSegment = parsed.elements.length + copies.length;
  // After the guard's hook type and `kill`, the recycling `reset`'s type and function, and the
  // snapshot accessor's.
  const layout: CheckLayout | null = checks.interruption || checks.fuel
    ? checkLayout(checks, {
      types: snapshotType + 1,
      memories: counts.memory + parsed.memories.length,
      pad: counts.memory + parsed.memories.length === 0,
      globals: guard.global + 1,
      functions: snapshotFunction + 1,
      dead: guard.global,
    })
    : null;
  const types = layout === null ? [] : addedTypes(layout);
  const globals = layout === null ? [] : addedGlobals(layout);
  const functionTypes = layout === null ? [] : addedFunctionTypes(layout);
  // The logical size's pieces, after everything else: kept only if the code grows memory 0.
  const logicalLayout: LogicalLayout | null =
    recycle && options.logicalMemory === true && options.memories !== null &&
      logicalCandidate(parsed)
      ? {
        global: guard.global + 1 + globals.length,
        type: snapshotType + 1 + types.length,
        grow: snapshotFunction + 1 + functionTypes.length,
        initialPages: memories[0].min,
      }
      : null;
  let resets = false;
  const snapshot = snapshotBody(access, counts.global, ownTable, ownSegment);
  const code = instrumentCode(
    bytes,
    parsed,
    guard,
    (f) => escaping.has(f),
    (facts) => {
      if (!recycle) return [snapshot];
      const reset = resetBody(parsed, parsed.elements.length, facts, logicalLayout);
      resets = reset.resets;
      return [reset.body, snapshot];
    },
    layout,
    logicalLayout === null ? null : {
      size: sizeSnippet(logicalLayout),
      grow: growSnippet(logicalLayout),
      bodies: logicalBodies(logicalLayout, guard),
    },
  );
  const logical = code.facts.logical ? logicalLayout : null;
  // The snapshot accessors' exports: the function, the own table, every defined memory and
  // table.
  const accessorExports: [string, number, number][] = [
    [SNAPSHOT_EXPORT, 0x00, snapshotFunction],
    [OWN_TABLE_EXPORT, 0x01, ownTable],
  ];
  parsed.memories.forEach((_, m) =>
    accessorExports.push([memoryExport(m), 0x02, counts.memory + m])
  );
  parsed.tables.forEach((_, t) => accessorExports.push([tableExport(t), 0x01, counts.table + t]));
  // The epoch memory, after a memory that is never used when it would be memory 0.
  const epochImports = layout === null || layout.epochMemory < 0 ? 0 : layout.epochMemory + 1 -
    (counts.memory + parsed.memories.length);
  const exports = layout === null ? [] : addedExports(layout);

  // What each section becomes: a writer of its new contents, or null to drop it.
  const rewrite = new Map<number, (body: ByteReader | null) => BinaryWriter | null>([
    [
      Section.type,
      (body) =>
        append(body, (recycle ? 3 : 2) + types.length + (logical === null ? 0 : 1), (w) => {
          w.u8(0x60).u8(1).u8(I32).u8(0);
          if (recycle) w.u8(0x60).u8(0).u8(1).u8(I32); // reset: [] -> [i32]
          writeSnapshotType(w, parsed, access);
          for (const type of types) type(w);
          if (logical !== null) w.u8(0x60).u8(1).u8(I32).u8(1).u8(I32); // [i32] -> [i32]
        }),
    ],
    [
      Section.function,
      (body) =>
        append(body, (recycle ? 3 : 2) + functionTypes.length + (logical === null ? 0 : 2), (w) => {
          w.u32(guard.type);
          // With a logical size, reset takes where it starts (logical_memory.ts).
          if (recycle) w.u32(logical === null ? guard.type + 1 : logical.type);
          w.u32(snapshotType);
          for (const type of functionTypes) w.u32(type);
          if (logical !== null) w.u32(logical.type).u32(logical.type); // grow, sync
        }),
    ],
    [
      Section.element,
      (body) =>
        append(body, copies.length + 1, (w) => {
          for (const c of copies) w.bytes(c.finish());
          writeOwnSegment(w, access);
        }),
    ],
    [
      Section.import,
      (body) =>
        memories.length + epochImports + renamed.length === 0 ? (body && copy(body)) : append(
          body && renameMemoryImports(bytes, body, renamed),
          memories.length + epochImports,
          (w) => {
            memories.forEach((type, index) => {
              w.name(MEMORY_IMPORT_MODULE).name(memoryImportName(renamed.length + index));
              if (type.max === null) w.u8(0x02).u8(0x00).u32(type.min);
              else w.u8(0x02).u8(0x01).u32(type.min).u32(type.max);
            });
            if (epochImports === 2) {
              w.name(MEMORY_IMPORT_MODULE).name(PAD_IMPORT);
              writePadImportType(w);
            }
            if (epochImports > 0) {
              w.name(MEMORY_IMPORT_MODULE).name(EPOCH_IMPORT);
              writeEpochImportType(w);
            }
          },
        ),
    ],
    [
      Section.table,
      (body) =>
        append(body, 2, (w) => {
          w.u8(FUNCREF).u8(0x01).u32(1).u32(1);
          writeOwnTable(w);
        }),
    ],
    [Section.memory, (body) => options.memories === null ? body && copy(body) : null],
    [
      Section.global,
      (body) =>
        append(body, 1 + globals.length + (logical === null ? 0 : 1), (w) => {
          w.u8(I32).u8(0x01).u8(OP_I32_CONST).u8(0).u8(OP_END);
          for (const global of globals) global(w);
          if (logical !== null) writeLogicalGlobal(w, logical);
        }),
    ],
    [
      Section.export,
      (body) =>
        append(
          body,
          2 + (parsed.start === null ? 0 : 1) + (recycle ? 1 : 0) + exports.length +
            accessorExports.length + (logical === null ? 0 : 2),
          (w) => {
            w.name(KILL_EXPORT).u8(0x00).u32(kill);
            w.name(HOOKS_EXPORT).u8(0x01).u32(guard.table);
            if (parsed.start !== null) w.name(START_EXPORT).u8(0x00).u32(parsed.start);
            if (recycle) w.name(RESET_EXPORT).u8(0x00).u32(kill + 1);
            for (const [name, index] of exports) w.name(name).u8(0x00).u32(index);
            for (const [name, kind, index] of accessorExports) w.name(name).u8(kind).u32(index);
            if (logical !== null) {
              w.name(GROW_EXPORT).u8(0x00).u32(logical.grow);
              w.name(SYNC_EXPORT).u8(0x00).u32(logical.grow + 1);
            }
          },
        ),
    ],
    [Section.start, () => null],
    [Section.code, () => code.section],
    [Section.data, (body) => body && rewriteData(bytes, body, options.emptyData)],
  ]);

  const out = new BinaryWriter(bytes.length + 256);
  out.bytes(bytes.subarray(0, HEADER_BYTES));
  let next = 0; // Index in ORDER of the next section a missing one would come before.
  const emitMissingBefore = (id: number): void => {
    const until = id === -1 ? ORDER.length : ORDER.indexOf(id);
    for (; next < until; next++) {
      const missing = ORDER[next];
      const make = rewrite.get(missing);
      const written = make && !present.has(missing) ? make(null) : null;
      if (written !== null) out.section(missing, written);
    }
  };
  const present = new Set<number>();
  const r = new ByteReader(bytes, HEADER_BYTES);
  const sections: { id: number; start: number; body: ByteReader }[] = [];
  while (!r.atEnd()) {
    const start = r.offset;
    const id = r.u8();
    const body = r.sub(r.u32());
    sections.push({ id, start, body });
    present.add(id);
  }
  for (const { id, start, body } of sections) {
    if (id === Section.custom) {
      out.bytes(bytes.subarray(start, body.end));
      continue;
    }
    emitMissingBefore(id);
    next = ORDER.indexOf(id) + 1;
    const make = rewrite.get(id);
    if (make === undefined) {
      out.bytes(bytes.subarray(start, body.end));
      continue;
    }
    const written = make(body);
    if (written !== null) out.section(id, written);
  }
  emitMissingBefore(-1);
  return { bytes: out.finish().slice(), facts: code.facts, resets, logical: logical !== null };
}

/**
 * The import section `body` with its memory imports renamed to wasmpool's memories `0..` and
 * given `types`, every other import copied byte for byte (the parser has checked them).
 */
function renameMemoryImports(
  bytes: Uint8Array,
  body: ByteReader,
  types: readonly ImportedMemoryType[],
): ByteReader {
  if (types.length === 0) return body;
  const start = body.offset;
  const count = body.u32();
  const w = new BinaryWriter(body.remaining + 32 * types.length).u32(count);
  let memory = 0;
  for (let i = 0; i < count; i++) {
    const entry = body.offset;
    body.name();
    body.name();
    const kind = body.u8();
    if (kind === 0x02) {
      skipLimits(body);
      const type = types[memory];
      w.name(MEMORY_IMPORT_MODULE).name(memoryImportName(memory++));
      if (type.max === null) w.u8(0x02).u8(0x00).u32(type.min);
      else w.u8(0x02).u8(0x01).u32(type.min).u32(type.max);
      continue;
    }
    if (kind === 0x00) body.u32();
    else if (kind === 0x01) (body.u8(), skipLimits(body));
    else if (kind === 0x03) (body.u8(), body.u8());
    else throw new RangeError(`rewrite: unexpected import kind ${kind} at ${entry - start}`);
    w.bytes(bytes.subarray(entry, body.offset));
  }
  const out = w.finish().slice();
  return new ByteReader(out, 0);
}

/** A vector section's entries copied, with `added` more written by `more` after them. */
function append(
  body: ByteReader | null,
  added: number,
  more: (w: BinaryWriter) => void,
): BinaryWriter {
  const count = body === null ? 0 : body.u32();
  const w = new BinaryWriter((body?.remaining ?? 0) + 64).u32(count + added);
  if (body !== null) w.bytes(body.bytes(body.remaining));
  more(w);
  return w;
}

function copy(body: ByteReader): BinaryWriter {
  return new BinaryWriter(body.remaining).bytes(body.bytes(body.remaining));
}

/** Copies the data section, emptying the payload of each segment `emptyData` names. */
function rewriteData(
  bytes: Uint8Array,
  body: ByteReader,
  emptyData: (index: number) => boolean,
): BinaryWriter {
  const out = new BinaryWriter(body.remaining);
  const count = body.u32();
  out.u32(count);
  for (let i = 0; i < count; i++) {
    const start = body.offset;
    const flags = body.u32();
    if (flags === 2) body.u32(); // memory index
    if (flags !== 1) skipOffsetExpression(body);
    const headerEnd = body.offset;
    const length = body.u32();
    const payloadStart = body.offset;
    body.skip(length);
    const empty = flags !== 1 && emptyData(i);
    out.bytes(bytes.subarray(start, empty ? headerEnd : payloadStart));
    if (empty) out.u32(0);
    else out.bytes(bytes.subarray(payloadStart, body.offset));
  }
  return out;
}

/** Skips a table's or memory's limits (flags 0 or 1: the parser refused the others). */
function skipLimits(r: ByteReader): void {
  const flags = r.u8();
  r.u32();
  if ((flags & 1) === 1) r.u32();
}

/** Skips `i32.const n end` or `global.get g end`, the offsets the parser accepts. */
function skipOffsetExpression(r: ByteReader): void {
  const op = r.u8();
  if (op === OP_I32_CONST) r.s32();
  else if (op === OP_GLOBAL_GET) r.u32();
  else throw new RangeError(`rewrite: unexpected offset expression opcode ${op}`);
  if (r.u8() !== OP_END) throw new RangeError("rewrite: offset expression without end");
}
