/**
 * The binary rewrite that lets a module run on a pooled memory: its defined memories become
 * imports (appended after its own imports, so every memory index is unchanged), and the active
 * data segments whose bytes a memory image already provides are emptied. Everything else is
 * copied byte for byte, custom sections included.
 *
 * Emptying a segment keeps its place (data indices, the data count) and its offset; a segment
 * is only emptied when its offset is a constant inside the memory's initial size, so the empty
 * segment passes the same bounds check the full one would have.
 *
 * @module
 */

import { ByteReader } from "../module/reader.ts";
import type { ParsedModule } from "../module/types.ts";
import { BinaryWriter } from "./binary_writer.ts";

/** The import module name of the memories the rewrite turns into imports. */
export const MEMORY_IMPORT_MODULE = "\u0000wasmpool";

/** The import field name of defined memory `index` (counting defined memories only). */
export function memoryImportName(index: number): string {
  return `memory${index}`;
}

/** How a defined memory is imported after the rewrite: sizes in pages. */
export interface ImportedMemoryType {
  /** Initial pages: the module's own minimum. */
  readonly min: number;
  /** Maximum pages: the module's maximum within the engine's limits. */
  readonly max: number;
}

/** What the rewrite changes. */
export interface RewriteOptions {
  /** The types the defined memories are imported with, in order. */
  readonly memories: readonly ImportedMemoryType[];
  /** Whether data segment `index` (among all data segments) is emptied. */
  readonly emptyData: (index: number) => boolean;
}

const SECTION_TYPE = 1;
const SECTION_IMPORT = 2;
const SECTION_MEMORY = 5;
const SECTION_DATA = 11;
const HEADER_BYTES = 8;
const OP_END = 0x0b;
const OP_I32_CONST = 0x41;
const OP_GLOBAL_GET = 0x23;

/**
 * Rewrites `bytes` (a module `parsed` was parsed from; the parser has checked it) so that its
 * defined memories are imported from {@linkcode MEMORY_IMPORT_MODULE}.
 */
export function rewriteModule(
  bytes: Uint8Array,
  parsed: ParsedModule,
  options: RewriteOptions,
): Uint8Array<ArrayBuffer> {
  if (options.memories.length !== parsed.memories.length) {
    throw new RangeError(
      `rewrite: ${options.memories.length} memory types for ${parsed.memories.length} memories`,
    );
  }
  const out = new BinaryWriter(bytes.length + 64);
  out.bytes(bytes.subarray(0, HEADER_BYTES));
  const r = new ByteReader(bytes, HEADER_BYTES);
  const added = options.memories.length;
  let importsWritten = added === 0;
  while (!r.atEnd()) {
    const start = r.offset;
    const id = r.u8();
    const size = r.u32();
    const body = r.sub(size);
    const end = body.end;
    // A module without an import section gets one before its first section after `type`.
    if (!importsWritten && id !== 0 && id !== SECTION_TYPE && id !== SECTION_IMPORT) {
      out.section(SECTION_IMPORT, memoryImports(new BinaryWriter().u32(added), options));
      importsWritten = true;
    }
    switch (id) {
      case SECTION_IMPORT: {
        const count = body.u32();
        const entries = new BinaryWriter(size + 32).u32(count + added);
        entries.bytes(bytes.subarray(body.offset, end));
        out.section(SECTION_IMPORT, memoryImports(entries, options));
        importsWritten = true;
        break;
      }
      case SECTION_MEMORY:
        break; // Every defined memory is now imported.
      case SECTION_DATA:
        out.section(SECTION_DATA, rewriteData(bytes, body, options.emptyData));
        break;
      default:
        out.bytes(bytes.subarray(start, end));
    }
  }
  if (!importsWritten) {
    out.section(SECTION_IMPORT, memoryImports(new BinaryWriter().u32(added), options));
  }
  return out.finish().slice();
}

function memoryImports(entries: BinaryWriter, options: RewriteOptions): BinaryWriter {
  options.memories.forEach((type, index) => {
    entries.name(MEMORY_IMPORT_MODULE).name(memoryImportName(index));
    entries.u8(0x02).u8(0x01).u32(type.min).u32(type.max);
  });
  return entries;
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

/** Skips `i32.const n end` or `global.get g end`, the offsets the parser accepts. */
function skipOffsetExpression(r: ByteReader): void {
  const op = r.u8();
  if (op === OP_I32_CONST) r.s32();
  else if (op === OP_GLOBAL_GET) r.u32();
  else throw new RangeError(`rewrite: unexpected offset expression opcode ${op}`);
  if (r.u8() !== OP_END) throw new RangeError("rewrite: offset expression without end");
}
