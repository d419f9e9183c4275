/**
 * Readers for the contents of each non-custom section of a WebAssembly 2.0 module
 * binary. Each reader appends what it reads to a {@linkcode ParseState} and checks
 * indices against the index spaces built by the sections before it.
 *
 * @module
 */

import { MalformedModuleError, UnsupportedFeatureError } from "../errors.ts";
import type {
  CodeSectionExtent,
  ConstExpr,
  DataSegment,
  ElementSegment,
  Export,
  ExternKind,
  FuncType,
  GlobalDef,
  GlobalType,
  Import,
  ImportDesc,
  MemoryType,
  TableType,
  ValueType,
} from "./types.ts";
import type { ByteReader } from "./reader.ts";
import {
  type ConstExprContext,
  hex,
  readConstExpr,
  readIndex,
  readRefType,
  readValueType,
  type RefType,
} from "./const_expr.ts";

/** The largest memory size, in 64 KiB pages, a 32-bit memory can declare. */
export const MAX_MEMORY_PAGES = 65536;

/** What has been read so far, plus the index spaces later sections check against. */
export interface ParseState {
  /** The type section. */
  readonly types: FuncType[];
  /** The import section. */
  readonly imports: Import[];
  /** Type indices of the defined functions. */
  readonly functions: number[];
  /** Defined tables. */
  readonly tables: TableType[];
  /** The initializer of each defined table (`null`: the default, `ref.null`). */
  readonly tableInits: (ConstExpr | null)[];
  /** Defined memories. */
  readonly memories: MemoryType[];
  /** Defined globals. */
  readonly globals: GlobalDef[];
  /** The export section. */
  readonly exports: Export[];
  /** The start function, or `null`. */
  start: number | null;
  /** Element segments. */
  readonly elements: ElementSegment[];
  /** Data segments. */
  readonly data: DataSegment[];
  /** The data count section's value, or `null`. */
  dataCount: number | null;
  /** The code section's function count, or `null` when the section is absent. */
  codeCount: number | null;
  /** Where the code section's contents lie, or `null` when the section is absent. */
  code: CodeSectionExtent | null;
  /** Type index of every function in the function index space (imports first). */
  readonly funcTypes: number[];
  /** Element type of every table in the table index space (imports first). */
  readonly tableTypes: RefType[];
  /** Type of every global in the global index space (imports first). */
  readonly globalTypes: GlobalType[];
  /** Size of the memory index space (imports plus defined). */
  memoryCount: number;
}

/** Creates the state of a module with no sections read yet. */
export function emptyState(): ParseState {
  return {
    types: [],
    imports: [],
    functions: [],
    tables: [],
    tableInits: [],
    memories: [],
    globals: [],
    exports: [],
    start: null,
    elements: [],
    data: [],
    dataCount: null,
    codeCount: null,
    code: null,
    funcTypes: [],
    tableTypes: [],
    globalTypes: [],
    memoryCount: 0,
  };
}

/**
 * Reads a vector length and checks it is no larger than the bytes left in `r`
 * (every item takes at least one byte), so no count from the binary can make the
 * parser loop or allocate beyond the input's size.
 *
 * @param r The reader positioned at the length.
 * @param what What the vector holds, for the error message.
 */
export function readCount(r: ByteReader, what: string): number {
  const at = r.offset;
  const count = r.u32();
  if (count > r.remaining) {
    throw new MalformedModuleError(
      `${what} count ${count} exceeds the ${r.remaining} bytes remaining`,
      at,
    );
  }
  return count;
}

/** Reads the type section (1). */
export function readTypeSection(r: ByteReader, s: ParseState): void {
  const count = readCount(r, "type");
  for (let i = 0; i < count; i++) s.types.push(readFuncType(r));
}

function readFuncType(r: ByteReader): FuncType {
  const at = r.offset;
  const form = r.u8();
  if (form !== 0x60) {
    if (form === 0x4e || form === 0x4f || form === 0x50 || form === 0x5e || form === 0x5f) {
      throw new UnsupportedFeatureError(`type form ${hex(form)} (GC)`, at);
    }
    throw new MalformedModuleError(`malformed type form ${hex(form)}`, at);
  }
  const params = readValueTypes(r);
  const results = readValueTypes(r);
  return { params, results };
}

function readValueTypes(r: ByteReader): ValueType[] {
  const count = readCount(r, "value type");
  const types: ValueType[] = [];
  for (let i = 0; i < count; i++) types.push(readValueType(r));
  return types;
}

/** Reads the import section (2). */
export function readImportSection(r: ByteReader, s: ParseState): void {
  const count = readCount(r, "import");
  for (let i = 0; i < count; i++) {
    const module = r.name();
    const name = r.name();
    const desc = readImportDesc(r, s);
    s.imports.push({ module, name, desc });
  }
}

function readImportDesc(r: ByteReader, s: ParseState): ImportDesc {
  const at = r.offset;
  const kind = r.u8();
  switch (kind) {
    case 0x00: {
      const type = readIndex(r, s.types.length, "type");
      s.funcTypes.push(type);
      return { kind: "function", type };
    }
    case 0x01: {
      const type = readTableType(r);
      s.tableTypes.push(type.element);
      return { kind: "table", type };
    }
    case 0x02:
      s.memoryCount++;
      return { kind: "memory", type: readMemoryType(r) };
    case 0x03: {
      const type = readGlobalType(r);
      s.globalTypes.push(type);
      return { kind: "global", type };
    }
    case 0x04:
      throw new UnsupportedFeatureError("tag import (exception handling)", at);
    default:
      throw new MalformedModuleError(`malformed import kind ${hex(kind)}`, at);
  }
}

/** Reads the function section (3). */
export function readFunctionSection(r: ByteReader, s: ParseState): void {
  const count = readCount(r, "function");
  for (let i = 0; i < count; i++) {
    const type = readIndex(r, s.types.length, "type");
    s.functions.push(type);
    s.funcTypes.push(type);
  }
}

/** Reads the table section (4). */
export function readTableSection(r: ByteReader, s: ParseState): void {
  const count = readCount(r, "table");
  for (let i = 0; i < count; i++) {
    // 0x40 0x00: a table with an initializer (WebAssembly 3.0), else a plain table type.
    const withInit = r.peek() === 0x40;
    if (withInit) {
      r.u8();
      const at = r.offset;
      const reserved = r.u8();
      if (reserved !== 0) throw new MalformedModuleError(`malformed table ${hex(reserved)}`, at);
    }
    const type = readTableType(r);
    const init = withInit ? readConstExpr(r, type.element, context(s, s.globalTypes.length)) : null;
    s.tables.push(type);
    s.tableInits.push(init);
    s.tableTypes.push(type.element);
  }
}

/** Reads the memory section (5). */
export function readMemorySection(r: ByteReader, s: ParseState): void {
  const count = readCount(r, "memory");
  for (let i = 0; i < count; i++) {
    s.memories.push(readMemoryType(r));
    s.memoryCount++;
  }
}

/** Reads the global section (6). */
export function readGlobalSection(r: ByteReader, s: ParseState): void {
  const count = readCount(r, "global");
  for (let i = 0; i < count; i++) {
    const type = readGlobalType(r);
    // An initializer may refer to imported globals and to globals defined before it.
    const init = readConstExpr(r, type.type, context(s, s.globalTypes.length));
    s.globals.push({ type, init });
    s.globalTypes.push(type);
  }
}

/** Reads the export section (7). */
export function readExportSection(r: ByteReader, s: ParseState): void {
  const count = readCount(r, "export");
  const names = new Set<string>();
  for (let i = 0; i < count; i++) {
    const nameAt = r.offset;
    const name = r.name();
    if (names.has(name)) throw new MalformedModuleError(`duplicate export name "${name}"`, nameAt);
    names.add(name);
    const kindAt = r.offset;
    const kind = readExternKind(r.u8(), kindAt);
    const index = readIndex(r, indexSpaceSize(s, kind), kind);
    s.exports.push({ name, kind, index });
  }
}

function readExternKind(byte: number, at: number): ExternKind {
  switch (byte) {
    case 0x00:
      return "function";
    case 0x01:
      return "table";
    case 0x02:
      return "memory";
    case 0x03:
      return "global";
    case 0x04:
      throw new UnsupportedFeatureError("tag export (exception handling)", at);
    default:
      throw new MalformedModuleError(`malformed export kind ${hex(byte)}`, at);
  }
}

function indexSpaceSize(s: ParseState, kind: ExternKind): number {
  switch (kind) {
    case "function":
      return s.funcTypes.length;
    case "table":
      return s.tableTypes.length;
    case "memory":
      return s.memoryCount;
    case "global":
      return s.globalTypes.length;
  }
}

/** Reads the start section (8): a function of type `[] -> []`. */
export function readStartSection(r: ByteReader, s: ParseState): void {
  const at = r.offset;
  const index = readIndex(r, s.funcTypes.length, "function");
  const type = s.types[s.funcTypes[index]];
  if (type.params.length !== 0 || type.results.length !== 0) {
    throw new MalformedModuleError("start function must have type [] -> []", at);
  }
  s.start = index;
}

/** Reads the element section (9): all eight segment encodings. */
export function readElementSection(r: ByteReader, s: ParseState): void {
  const count = readCount(r, "element segment");
  for (let i = 0; i < count; i++) s.elements.push(readElementSegment(r, s));
}

function readElementSegment(r: ByteReader, s: ParseState): ElementSegment {
  const at = r.offset;
  const flags = r.u32();
  if (flags > 7) throw new MalformedModuleError(`malformed element segment flags ${flags}`, at);
  // Bit 0: passive or declarative; bit 1: explicit table index (active) or declarative;
  // bit 2: elements are expressions rather than function indices.
  const active = (flags & 1) === 0;
  const mode = active ? "active" : flags & 2 ? "declarative" : "passive";
  const tableAt = active && flags & 2 ? r.offset : at;
  const table = active && flags & 2 ? r.u32() : 0;
  const offset = active ? readConstExpr(r, "i32", context(s, s.globalTypes.length)) : null;
  const usesExprs = (flags & 4) !== 0;
  // Forms 0 and 4 imply funcref; the others say so with an element kind or reference type.
  let type: RefType = "funcref";
  if (flags !== 0 && flags !== 4) type = usesExprs ? readRefType(r) : readElementKind(r);
  if (active) checkElementTable(s, table, type, tableAt);
  const elements = usesExprs ? readElementExprs(r, s, type) : readFunctionIndices(r, s);
  return { mode, table, offset, type, elements };
}

function readElementKind(r: ByteReader): RefType {
  const at = r.offset;
  const kind = r.u8();
  if (kind !== 0x00) throw new MalformedModuleError(`malformed element kind ${hex(kind)}`, at);
  return "funcref";
}

function checkElementTable(s: ParseState, table: number, type: RefType, at: number): void {
  if (table >= s.tableTypes.length) throw new MalformedModuleError(`unknown table ${table}`, at);
  const tableType = s.tableTypes[table];
  if (tableType !== type) {
    throw new MalformedModuleError(
      `type mismatch: ${type} element segment for a ${tableType} table`,
      at,
    );
  }
}

function readFunctionIndices(r: ByteReader, s: ParseState): number[] {
  const count = readCount(r, "element");
  const functionCount = s.funcTypes.length;
  const elements: number[] = [];
  for (let i = 0; i < count; i++) elements.push(readIndex(r, functionCount, "function"));
  return elements;
}

function readElementExprs(r: ByteReader, s: ParseState, type: RefType): (number | null)[] {
  const count = readCount(r, "element");
  const ctx = context(s, s.globalTypes.length);
  const elements: (number | null)[] = [];
  for (let i = 0; i < count; i++) {
    const at = r.offset;
    elements.push(elementOf(readConstExpr(r, type, ctx), at));
  }
  return elements;
}

function elementOf(expr: ConstExpr, at: number): number | null {
  switch (expr.kind) {
    case "ref.func":
      return expr.index;
    case "ref.null":
      return null;
    default:
      throw new UnsupportedFeatureError(`${expr.kind} in an element expression`, at);
  }
}

/** Reads the data count section (12). */
export function readDataCountSection(r: ByteReader, s: ParseState): void {
  s.dataCount = r.u32();
}

/**
 * Reads the code section (10): its function count, then each body's size, skipping the
 * bodies themselves (they are neither decoded nor validated).
 */
export function readCodeSection(r: ByteReader, s: ParseState): void {
  s.code = { start: r.offset, end: r.end };
  const count = readCount(r, "function body");
  for (let i = 0; i < count; i++) {
    const at = r.offset;
    const size = r.u32();
    if (size > r.remaining) {
      throw new MalformedModuleError(
        `function body size ${size} exceeds the ${r.remaining} bytes remaining`,
        at,
      );
    }
    r.skip(size);
  }
  s.codeCount = count;
}

/** Reads the data section (11). */
export function readDataSection(r: ByteReader, s: ParseState): void {
  const count = readCount(r, "data segment");
  for (let i = 0; i < count; i++) s.data.push(readDataSegment(r, s));
}

function readDataSegment(r: ByteReader, s: ParseState): DataSegment {
  const at = r.offset;
  const flags = r.u32();
  if (flags > 2) throw new MalformedModuleError(`malformed data segment flags ${flags}`, at);
  if (flags === 1) return { mode: "passive", memory: 0, offset: null, data: readData(r) };
  const memoryAt = flags === 2 ? r.offset : at;
  const memory = flags === 2 ? r.u32() : 0;
  if (memory >= s.memoryCount) throw new MalformedModuleError(`unknown memory ${memory}`, memoryAt);
  const offset = readConstExpr(r, "i32", context(s, s.globalTypes.length));
  return { mode: "active", memory, offset, data: readData(r) };
}

function readData(r: ByteReader): Uint8Array {
  const at = r.offset;
  const length = r.u32();
  if (length > r.remaining) {
    throw new MalformedModuleError(
      `data segment length ${length} exceeds the ${r.remaining} bytes remaining`,
      at,
    );
  }
  return r.bytes(length);
}

function context(s: ParseState, visibleGlobals: number): ConstExprContext {
  return { globals: s.globalTypes, visibleGlobals, functionCount: s.funcTypes.length };
}

function readGlobalType(r: ByteReader): GlobalType {
  const type = readValueType(r);
  const at = r.offset;
  const mut = r.u8();
  if (mut > 1) throw new MalformedModuleError(`malformed mutability ${hex(mut)}`, at);
  return { type, mutable: mut === 1 };
}

function readTableType(r: ByteReader): TableType {
  const element = readRefType(r);
  const at = r.offset;
  const flags = r.u8();
  if (flags === 0x04 || flags === 0x05) throw new UnsupportedFeatureError("table64", at);
  if (flags > 1) throw new MalformedModuleError(`malformed table limits flags ${hex(flags)}`, at);
  const { min, max } = readLimits(r, flags === 1, at);
  return { element, min, max };
}

function readMemoryType(r: ByteReader): MemoryType {
  const at = r.offset;
  const flags = r.u8();
  if (flags >= 0x04 && flags <= 0x07) throw new UnsupportedFeatureError("memory64", at);
  if (flags === 0x02) throw new MalformedModuleError("shared memory must have maximum", at);
  if (flags > 3) throw new MalformedModuleError(`malformed memory limits flags ${hex(flags)}`, at);
  const minAt = r.offset;
  const { min, max } = readLimits(r, (flags & 1) === 1, at);
  if (min > MAX_MEMORY_PAGES || (max !== null && max > MAX_MEMORY_PAGES)) {
    throw new MalformedModuleError(
      `memory size must be at most ${MAX_MEMORY_PAGES} pages (4GiB)`,
      minAt,
    );
  }
  return { min, max, shared: flags === 3 };
}

function readLimits(
  r: ByteReader,
  hasMax: boolean,
  at: number,
): { min: number; max: number | null } {
  const min = r.u32();
  const max = hasMax ? r.u32() : null;
  if (max !== null && min > max) {
    throw new MalformedModuleError("size minimum must not be greater than maximum", at);
  }
  return { min, max };
}
