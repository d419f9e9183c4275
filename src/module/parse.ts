/**
 * Parses a WebAssembly 2.0 module binary (multi-value, reference types, bulk memory)
 * into a {@linkcode ParsedModule}. Function bodies are skipped, not validated.
 *
 * The parser is total: for any input it returns a module or throws a
 * {@linkcode MalformedModuleError} or an {@linkcode UnsupportedFeatureError}, whose
 * `offset` is an absolute byte offset into the input. It never allocates by a count
 * read from the binary and runs in time linear in the input's size.
 *
 * @module
 */

import { MalformedModuleError, UnsupportedFeatureError } from "../errors.ts";
import type { ParsedModule } from "./types.ts";
import { ByteReader } from "./reader.ts";
import {
  emptyState,
  type ParseState,
  readCodeSection,
  readDataCountSection,
  readDataSection,
  readElementSection,
  readExportSection,
  readFunctionSection,
  readGlobalSection,
  readImportSection,
  readMemorySection,
  readStartSection,
  readTableSection,
  readTypeSection,
} from "./sections.ts";

/** Reads the contents of one section into the state. */
type SectionReader = (r: ByteReader, s: ParseState) => void;

interface SectionInfo {
  /** Position in the order the spec requires of non-custom sections. */
  readonly rank: number;
  readonly name: string;
  readonly read: SectionReader;
}

/** Non-custom sections by id. The data count section (12) sits between element and code. */
const SECTIONS: ReadonlyMap<number, SectionInfo> = new Map([
  [1, { rank: 1, name: "type", read: readTypeSection }],
  [2, { rank: 2, name: "import", read: readImportSection }],
  [3, { rank: 3, name: "function", read: readFunctionSection }],
  [4, { rank: 4, name: "table", read: readTableSection }],
  [5, { rank: 5, name: "memory", read: readMemorySection }],
  [6, { rank: 6, name: "global", read: readGlobalSection }],
  [7, { rank: 7, name: "export", read: readExportSection }],
  [8, { rank: 8, name: "start", read: readStartSection }],
  [9, { rank: 9, name: "element", read: readElementSection }],
  [12, { rank: 10, name: "data count", read: readDataCountSection }],
  [10, { rank: 11, name: "code", read: readCodeSection }],
  [11, { rank: 12, name: "data", read: readDataSection }],
]);

const MAGIC = [0x00, 0x61, 0x73, 0x6d];
const VERSION = [0x01, 0x00, 0x00, 0x00];
const TAG_SECTION_ID = 13;

/**
 * Parses a module binary.
 *
 * @example
 * ```ts
 * const module = parseModule(new Uint8Array(await Deno.readFile("add.wasm")));
 * console.log(module.exports.map((e) => e.name));
 * ```
 *
 * @param bytes The module binary. Segment data in the result are views into it, not copies.
 * @returns The module's types, imports, definitions, exports and segments.
 * @throws {MalformedModuleError} When the binary is not a well-formed, valid module
 *   (outside function bodies, which are not checked).
 * @throws {UnsupportedFeatureError} When the module uses a feature beyond WebAssembly 2.0
 *   that wasmpool does not support (memory64, GC types, tags, extended constants, ...).
 */
export function parseModule(bytes: Uint8Array): ParsedModule {
  const r = new ByteReader(bytes);
  readHeader(r);
  const s = emptyState();
  // Offset of each non-custom section's id byte, by id.
  const seen = new Map<number, number>();
  let lastRank = 0;
  while (!r.atEnd()) {
    const idAt = r.offset;
    const id = r.u8();
    const body = readSectionBody(r);
    if (id === 0) {
      body.name();
    } else {
      const info = sectionInfo(id, idAt);
      if (seen.has(id)) throw new MalformedModuleError(`duplicate ${info.name} section`, idAt);
      if (info.rank < lastRank) {
        throw new MalformedModuleError(`${info.name} section out of order`, idAt);
      }
      seen.set(id, idAt);
      lastRank = info.rank;
      info.read(body, s);
      if (!body.atEnd()) throw new MalformedModuleError("section size mismatch", body.offset);
    }
  }
  checkCounts(s, (id) => seen.get(id) ?? bytes.length);
  return toParsedModule(s);
}

function readHeader(r: ByteReader): void {
  for (let i = 0; i < 4; i++) {
    if (r.atEnd() || r.u8() !== MAGIC[i]) {
      throw new MalformedModuleError("magic header not detected", 0);
    }
  }
  for (let i = 0; i < 4; i++) {
    if (r.atEnd() || r.u8() !== VERSION[i]) {
      throw new MalformedModuleError("unknown binary version", 4);
    }
  }
}

/** Reads a section's size and returns a reader over exactly its contents. */
function readSectionBody(r: ByteReader): ByteReader {
  const sizeAt = r.offset;
  const size = r.u32();
  if (size > r.remaining) {
    throw new MalformedModuleError(
      `section size ${size} exceeds the ${r.remaining} bytes remaining`,
      sizeAt,
    );
  }
  return r.sub(size);
}

function sectionInfo(id: number, at: number): SectionInfo {
  const info = SECTIONS.get(id);
  if (info !== undefined) return info;
  if (id === TAG_SECTION_ID) {
    throw new UnsupportedFeatureError("tag section (exception handling)", at);
  }
  throw new MalformedModuleError(`malformed section id ${id}`, at);
}

/**
 * Cross-section checks that can only be made once every section has been read. Errors
 * point at the later of the two sections involved, or the end of the module when it is
 * absent.
 */
function checkCounts(s: ParseState, sectionAt: (id: number) => number): void {
  const codeCount = s.codeCount ?? 0;
  if (codeCount !== s.functions.length) {
    throw new MalformedModuleError(
      `function and code section have inconsistent lengths (${s.functions.length} and ${codeCount})`,
      sectionAt(10),
    );
  }
  if (s.dataCount !== null && s.dataCount !== s.data.length) {
    throw new MalformedModuleError(
      `data count and data section have inconsistent lengths (${s.dataCount} and ${s.data.length})`,
      sectionAt(11),
    );
  }
}

function toParsedModule(s: ParseState): ParsedModule {
  return {
    types: s.types,
    imports: s.imports,
    functions: s.functions,
    tables: s.tables,
    tableInits: s.tableInits,
    memories: s.memories,
    globals: s.globals,
    exports: s.exports,
    start: s.start,
    elements: s.elements,
    data: s.data,
    dataCount: s.dataCount,
    code: s.code,
  };
}
