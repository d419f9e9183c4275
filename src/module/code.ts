/**
 * Decodes function bodies: where each body of the code section lies, its local declarations,
 * and its instructions one by one with their offsets, nesting depth and immediates. It decodes;
 * it does not validate types (the runtime's compiler does), but it checks the structure an
 * instrumenter relies on: every immediate is well formed, `else`, `catch`, `catch_all` and
 * `delegate` sit in the construct they belong to, and the body ends exactly at its final `end`.
 *
 * Total and bounded: for any input every function here returns or throws a
 * {@linkcode MalformedModuleError} or {@linkcode UnsupportedFeatureError} whose `offset` is an
 * absolute byte offset into the module. Each instruction consumes at least one byte, every count
 * read from the binary is checked against the bytes left before anything is read or stored by it
 * (a `br_table` of 2^32 labels in 10 bytes is an error, not a loop), and the nesting stack grows
 * only as blocks are read, so time and memory are linear in the body's size.
 *
 * @example
 * ```ts
 * import { parseModule } from "./parse.ts";
 * import { InstructionReader, moduleFunctionBodies, Op } from "./code.ts";
 *
 * const bytes = await Deno.readFile("module.wasm");
 * const parsed = parseModule(bytes);
 * for (const body of moduleFunctionBodies(bytes, parsed)) {
 *   const reader = new InstructionReader(bytes, body);
 *   for (let ins = reader.next(); ins !== null; ins = reader.next()) {
 *     if (ins.opcode === Op.loop) console.log(`loop at ${ins.start}, depth ${ins.depth}`);
 *     if (ins.opcode === Op.memory_grow) console.log(`memory.grow of memory ${ins.memoryIndex}`);
 *   }
 * }
 * ```
 *
 * @module
 */

import { ArgumentError, MalformedModuleError, UnsupportedFeatureError } from "../errors.ts";
import { hex } from "./const_expr.ts";
import { ByteReader } from "./reader.ts";
import { readCount } from "./sections.ts";
import type { CodeSectionExtent, ParsedModule } from "./types.ts";
export type { CodeSectionExtent } from "./types.ts";
export { CatchKind, HeapType, Op, opcodeName, ValType } from "./opcodes.ts";
import {
  ABSTRACT_HEAP_TYPE_MAX,
  ABSTRACT_HEAP_TYPE_MIN,
  Imm,
  isShorthandValueType,
  prefixed,
  prefixedImmediate,
  SINGLE_BYTE_IMMEDIATES,
  SUB_OPCODE_LIMIT,
  unsupportedFeature,
  ValType,
} from "./opcodes.ts";

/**
 * The most locals a function may have, its parameters included: the limit of V8
 * (`kV8MaxWasmFunctionLocals`) and JavaScriptCore (`maxFunctionLocals`), both 50,000, checked
 * against Deno 2.9.6 and Bun 1.4.5.
 */
export const MAX_FUNCTION_LOCALS = 50_000;

/** A value type as the binary encodes it (in local declarations, `select` and block types). */
export interface EncodedValueType {
  /**
   * The type's byte: a number type or `v128` (`0x7f` i32 ... `0x7b` v128, see `ValType`), an
   * abstract reference type (`0x69`..`0x74`: `0x70` funcref, `0x6f` externref, ...), or `0x63`
   * (`ref null ht`) / `0x64` (`ref ht`), which carry a heap type.
   */
  readonly code: number;
  /**
   * The heap type of `0x63`/`0x64`: a type index (zero or more) or an abstract heap type (one of
   * the negative `HeapType` values); `null` for the other codes.
   */
  readonly heapType: number | null;
}

/** A run of locals of one type, as declared at the start of a function body. */
export interface LocalGroup {
  /** How many locals the group declares (may be 0). */
  readonly count: number;
  /** Their type. */
  readonly type: EncodedValueType;
}

/** Where one function body lies, and its local declarations. All offsets are absolute. */
export interface FunctionBody {
  /** Which body this is in the code section (0 for the first; imported functions have none). */
  readonly index: number;
  /** The offset of the body's size (a u32), which precedes the body. */
  readonly sizeAt: number;
  /** The offset of the body's first byte: the local declaration count. */
  readonly start: number;
  /** The offset one past the local declarations: the first instruction. */
  readonly localsEnd: number;
  /** The offset one past the body's last byte, its final `end`. */
  readonly end: number;
  /** The local declarations, in order. */
  readonly locals: readonly LocalGroup[];
  /** The number of locals declared (the sum of the groups' counts; parameters not included). */
  readonly localCount: number;
}

/** Options of {@linkcode readFunctionBodies}. */
export interface FunctionBodiesOptions {
  /**
   * The parameter count of each body's function, in code section order. The runtimes count
   * parameters against {@linkcode MAX_FUNCTION_LOCALS}; without this, only declared locals are.
   */
  readonly paramCounts?: readonly number[];
}

/**
 * Lists the function bodies of a code section and reads their local declarations.
 *
 * @param bytes The whole module binary.
 * @param code Where the code section's contents lie (`ParsedModule.code`).
 * @param options Parameter counts, for the locals limit.
 * @returns One entry per body, in order.
 * @throws {MalformedModuleError} When a body's size overruns the section, the bodies do not fill
 *   the section exactly, a local type is unknown, or a function has more than
 *   {@linkcode MAX_FUNCTION_LOCALS} locals.
 * @throws {UnsupportedFeatureError} For a local of a shared reference type.
 */
export function readFunctionBodies(
  bytes: Uint8Array,
  code: CodeSectionExtent,
  options: FunctionBodiesOptions = {},
): FunctionBody[] {
  const r = new ByteReader(bytes, code.start, code.end);
  const count = readCount(r, "function body");
  const bodies: FunctionBody[] = [];
  for (let index = 0; index < count; index++) {
    const sizeAt = r.offset;
    const size = r.u32();
    if (size > r.remaining) {
      throw new MalformedModuleError(
        `function body size ${size} exceeds the ${r.remaining} bytes remaining`,
        sizeAt,
      );
    }
    const body = r.sub(size);
    const params = options.paramCounts?.[index] ?? 0;
    bodies.push(readBody(body, index, sizeAt, params));
  }
  if (!r.atEnd()) throw new MalformedModuleError("section size mismatch", r.offset);
  return bodies;
}

/**
 * Lists the function bodies of a parsed module, counting each function's parameters against
 * {@linkcode MAX_FUNCTION_LOCALS}.
 *
 * @param bytes The module binary `parsed` was parsed from.
 * @param parsed The parsed module.
 * @returns One entry per defined function, in order; none when the module has no code section.
 */
export function moduleFunctionBodies(bytes: Uint8Array, parsed: ParsedModule): FunctionBody[] {
  if (parsed.code === null) return [];
  const paramCounts = parsed.functions.map((type) => parsed.types[type].params.length);
  return readFunctionBodies(bytes, parsed.code, { paramCounts });
}

function readBody(r: ByteReader, index: number, sizeAt: number, params: number): FunctionBody {
  const start = r.offset;
  const groupCount = readCount(r, "local declaration");
  const locals: LocalGroup[] = [];
  let localCount = 0;
  for (let i = 0; i < groupCount; i++) {
    const countAt = r.offset;
    const count = r.u32();
    localCount += count;
    if (params + localCount > MAX_FUNCTION_LOCALS) {
      throw new MalformedModuleError(
        `function body ${index} declares ${localCount} locals, which with its ${params} ` +
          `parameters exceeds the limit of ${MAX_FUNCTION_LOCALS}`,
        countAt,
      );
    }
    locals.push({ count, type: readValueType(r) });
  }
  return { index, sizeAt, start, localsEnd: r.offset, end: r.end, locals, localCount };
}

/** Reads a one-byte value type, or `0x63`/`0x64` and a heap type. */
function readValueType(r: ByteReader): EncodedValueType {
  const at = r.offset;
  const code = r.u8();
  if (isShorthandValueType(code)) return { code, heapType: null };
  if (code === ValType.ref || code === ValType.refNull) return { code, heapType: readHeapType(r) };
  if (code === SHARED_PREFIX) throw new UnsupportedFeatureError("shared-everything threads", at);
  throw new MalformedModuleError(`invalid value type 0x${code.toString(16)}`, at);
}

/** The byte that marks a shared heap type (shared-everything threads). */
const SHARED_PREFIX = 0x65;
/** `0x65` read as an s33. */
const SHARED_PREFIX_S33 = SHARED_PREFIX - 0x80;
/** The empty block type, `0x40`, as an s33. */
const EMPTY_BLOCK_S33 = -64;

/**
 * Reads a signed LEB128 of at most 33 bits (5 bytes): a block type or heap type. The result is
 * exact in a double: `[-2^32, 2^32)`.
 */
function readS33(r: ByteReader): number {
  const at = r.offset;
  let result = 0;
  let scale = 1;
  for (let i = 0; i < 4; i++) {
    const byte = r.u8();
    result += (byte & 0x7f) * scale;
    scale *= 128;
    if (byte < 0x80) return byte & 0x40 ? result - scale : result;
  }
  const byte = r.u8();
  if (byte & 0x80) throw new MalformedModuleError("integer representation too long", at);
  // Bit 4 of the fifth byte is bit 32, the sign; bits 5 and 6 lie beyond and must repeat it.
  const high = byte & 0x70;
  if (high !== 0 && high !== 0x70) throw new MalformedModuleError("integer too large", at);
  result += (byte & 0x0f) * scale;
  return high === 0 ? result : result - 2 ** 32;
}

/** Reads a heap type: a type index (zero or more) or an abstract heap type (negative). */
function readHeapType(r: ByteReader): number {
  const at = r.offset;
  const type = readS33(r);
  if (type >= 0 || (type >= ABSTRACT_HEAP_TYPE_MIN && type <= ABSTRACT_HEAP_TYPE_MAX)) return type;
  if (type === SHARED_PREFIX_S33) {
    throw new UnsupportedFeatureError("shared-everything threads", at);
  }
  throw new MalformedModuleError(`invalid heap type ${type}`, at);
}

/** What a frame on the nesting stack is: the construct, and which part of it is being read. */
export type FrameKind =
  | "block"
  | "loop"
  | "if"
  | "else"
  | "try"
  | "catch"
  | "catch_all"
  | "try_table"
  | "function";

const FRAME_BLOCK = 0;
const FRAME_LOOP = 1;
const FRAME_IF = 2;
const FRAME_ELSE = 3;
const FRAME_TRY = 4;
const FRAME_CATCH = 5;
const FRAME_CATCH_ALL = 6;
const FRAME_TRY_TABLE = 7;
const FRAME_NAMES: readonly FrameKind[] = [
  "block",
  "loop",
  "if",
  "else",
  "try",
  "catch",
  "catch_all",
  "try_table",
];
/** The frame each block-opening single-byte opcode pushes. */
const OPENED_FRAME: Readonly<Record<number, number>> = {
  0x02: FRAME_BLOCK,
  0x03: FRAME_LOOP,
  0x04: FRAME_IF,
  0x06: FRAME_TRY,
};

/** One `try_table` catch clause. */
export interface CatchClause {
  /** `CatchKind`: 0 `catch`, 1 `catch_ref`, 2 `catch_all`, 3 `catch_all_ref`. */
  readonly kind: number;
  /** The tag index of `catch` and `catch_ref`; -1 for the `catch_all` kinds. */
  readonly tag: number;
  /** The label the clause branches to. */
  readonly label: number;
}

/**
 * One decoded instruction. The reader reuses one object for every instruction, so read what you
 * need before calling `next()` again. An immediate field is meaningful only for the opcodes its
 * documentation lists; for any other opcode it holds a stale value.
 */
export interface Instruction {
  /** The opcode: its byte, or `prefix << 12 | sub` for `0xFB`..`0xFE` (see `opcodes.ts`). */
  readonly opcode: number;
  /** The absolute offset of the instruction's first byte. */
  readonly start: number;
  /** The absolute offset one past its last immediate. */
  readonly end: number;
  /**
   * How many constructs (`block`, `loop`, `if`, `try`, `try_table`) enclose the instruction; an
   * instruction that opens, continues (`else`, `catch`, `catch_all`) or closes (`end`,
   * `delegate`) a construct is counted outside it. The function's final `end` has depth 0.
   */
  readonly depth: number;
  /** Whether this is the function's final `end`; `next()` returns `null` after it. */
  readonly final: boolean;
  /** The offset of the first immediate byte (after the opcode and any sub-opcode). */
  readonly immediates: number;

  /**
   * The block type of `block`, `loop`, `if`, `try`, `try_table`, read as an s33: `-64` (`0x40`)
   * for no results, a type index (zero or more) for a function type, or otherwise a value type
   * byte minus 128 (`-1` for i32, ..., `-16` for funcref; `-29`/`-28` for `ref null`/`ref`, whose
   * heap type is in `heapType`).
   */
  readonly blockType: number;
  /**
   * The heap type of `ref.null`, `ref.test`, `ref.cast`, of a `ref`/`ref null` block type, or the
   * source type of `br_on_cast`/`br_on_cast_fail`: a type index, or a negative `HeapType`.
   */
  readonly heapType: number;
  /** The target heap type of `br_on_cast` and `br_on_cast_fail`. */
  readonly heapType2: number;
  /** The cast flags of `br_on_cast`/`br_on_cast_fail` (bit 0: source nullable; bit 1: target). */
  readonly castFlags: number;
  /**
   * The label (relative depth) of `br`, `br_if`, `br_on_null`, `br_on_non_null`, `br_on_cast`,
   * `br_on_cast_fail`, `rethrow` and `delegate`; the default label of `br_table`.
   */
  readonly label: number;
  /** The labels of `br_table`, without the default. Reused: copy it to keep it. */
  readonly labels: readonly number[];
  /** The catch clauses of `try_table`. */
  readonly catches: readonly CatchClause[];
  /** The function index of `call`, `return_call` and `ref.func`. */
  readonly funcIndex: number;
  /**
   * The type index of `call_indirect`, `return_call_indirect`, `call_ref`, `return_call_ref` and
   * the `struct.*` and `array.*` instructions (the destination type of `array.copy`).
   */
  readonly typeIndex: number;
  /** The source type index of `array.copy`. */
  readonly typeIndex2: number;
  /**
   * The table index of `call_indirect`, `return_call_indirect`, `table.get`, `table.set`,
   * `table.grow`, `table.size`, `table.fill`, `table.init`; the destination of `table.copy`.
   */
  readonly tableIndex: number;
  /** The source table index of `table.copy`. */
  readonly tableIndex2: number;
  /**
   * The memory index of every load, store and atomic (from the memarg), `memory.size`,
   * `memory.grow`, `memory.fill`, `memory.init`; the destination of `memory.copy`.
   */
  readonly memoryIndex: number;
  /** The source memory index of `memory.copy`. */
  readonly memoryIndex2: number;
  /** The alignment exponent (log2 of bytes) of a memarg. */
  readonly align: number;
  /**
   * The offset of a memarg (a u64): exact up to 2^53, rounded beyond; `memargOffset()` is exact.
   */
  readonly offset: number;
  /**
   * The data segment index of `memory.init`, `data.drop`, `array.new_data`, `array.init_data`;
   * the element segment index of `table.init`, `elem.drop`, `array.new_elem`, `array.init_elem`.
   */
  readonly segmentIndex: number;
  /** The local index of `local.get`, `local.set`, `local.tee`. */
  readonly localIndex: number;
  /** The global index of `global.get`, `global.set`. */
  readonly globalIndex: number;
  /** The tag index of `throw` and legacy `catch`. */
  readonly tagIndex: number;
  /** The field index of `struct.get`, `struct.get_s`, `struct.get_u`, `struct.set`. */
  readonly fieldIndex: number;
  /** The lane index of `extract_lane`, `replace_lane`, `load*_lane`, `store*_lane`. */
  readonly lane: number;
  /** The element count of `array.new_fixed`. */
  readonly count: number;
  /** The value of `i32.const`. */
  readonly i32Value: number;
  /** The type of `select t` (0x1C). */
  readonly selectType: EncodedValueType | null;

  /** The value of `i64.const`. */
  i64Value(): bigint;
  /** The value of `f32.const`. */
  f32Value(): number;
  /** The value of `f64.const`. */
  f64Value(): number;
  /** The 16 immediate bytes of `v128.const` or `i8x16.shuffle` (a view into the module). */
  v128Bytes(): Uint8Array;
  /** The exact memarg offset. */
  memargOffset(): bigint;
  /**
   * What a label of the current instruction refers to: the kind of the frame `label` levels
   * out from the instruction (`"loop"` means a branch to it goes back to the loop's start), or
   * `"function"` for the function's own label.
   *
   * @param label A relative depth, as in `br`.
   * @throws {ArgumentError} When `label` is not an integer from 0 to the function's label.
   */
  frameKind(label: number): FrameKind;
}

/**
 * Decodes the instructions of one function body, from its first instruction to its final `end`.
 *
 * `next()` returns the reader itself, seen as an {@linkcode Instruction}, or `null` after the
 * final `end`; it throws {@linkcode MalformedModuleError} (or {@linkcode UnsupportedFeatureError}
 * for an opcode of a proposal the runtimes gate behind a flag) at the first byte that cannot be
 * decoded, with that byte's absolute offset.
 */
export class InstructionReader implements Instruction {
  opcode = 0;
  start = 0;
  end = 0;
  depth = 0;
  final = false;
  immediates = 0;
  blockType = 0;
  heapType = 0;
  heapType2 = 0;
  castFlags = 0;
  label = 0;
  readonly labels: number[] = [];
  catches: readonly CatchClause[] = [];
  funcIndex = 0;
  typeIndex = 0;
  typeIndex2 = 0;
  tableIndex = 0;
  tableIndex2 = 0;
  memoryIndex = 0;
  memoryIndex2 = 0;
  align = 0;
  offset = 0;
  segmentIndex = 0;
  localIndex = 0;
  globalIndex = 0;
  tagIndex = 0;
  fieldIndex = 0;
  lane = 0;
  count = 0;
  i32Value = 0;
  selectType: EncodedValueType | null = null;

  readonly #bytes: Uint8Array;
  readonly #end: number;
  /** The offset of the next byte to decode. */
  #pos: number;
  /**
   * Reads what the fast paths below do not (multi-byte LEB128s, types, vectors): positioned at
   * `#pos` by {@linkcode InstructionReader.#reader} before each use, and read back after.
   */
  readonly #r: ByteReader;
  /** Frame kinds of the open constructs, innermost last; `#frameCount` of them are valid. */
  #frames = new Uint8Array(16);
  #frameCount = 0;
  /** Depth of the open frames before the current instruction changed them. */
  #labelBase = 0;
  /** The exact memarg offset's halves. */
  #offsetLow = 0;
  #offsetHigh = 0;
  #done = false;

  /**
   * Creates a reader positioned at a body's first instruction.
   *
   * @param bytes The whole module binary.
   * @param body The body, as listed by {@linkcode readFunctionBodies}.
   */
  constructor(bytes: Uint8Array, body: Pick<FunctionBody, "localsEnd" | "end">) {
    this.#bytes = bytes;
    this.#r = new ByteReader(bytes, body.localsEnd, body.end);
    this.#pos = body.localsEnd;
    this.#end = body.end;
  }

  /**
   * Decodes the next instruction.
   *
   * @returns This reader, describing the instruction, or `null` once the final `end` was read.
   */
  next(): Instruction | null {
    if (this.#done) return null;
    const start = this.#pos;
    if (start >= this.#end) {
      throw new MalformedModuleError('function body must end with "end" opcode', start);
    }
    const byte = this.#bytes[start];
    this.#pos = start + 1;
    let opcode = byte;
    let imm: number = SINGLE_BYTE_IMMEDIATES[byte];
    if (imm === Imm.unknown) {
      if (byte >= 0xfb && byte <= 0xfe) {
        const sub = this.#u32();
        imm = prefixedImmediate(byte, sub);
        if (imm === Imm.unknown) throw unknownOpcode(byte, sub, start);
        opcode = prefixed(byte, sub);
      } else {
        throw unknownOpcode(byte, null, start);
      }
    }
    this.opcode = opcode;
    this.start = start;
    this.immediates = this.#pos;
    this.#labelBase = this.#frameCount;
    let depth = this.#frameCount;
    switch (imm) {
      case Imm.none:
        break;
      case Imm.local:
        this.localIndex = this.#u32();
        break;
      case Imm.memarg:
        this.#readMemarg();
        break;
      case Imm.i32:
        this.i32Value = this.#s32();
        break;
      case Imm.label:
        this.label = this.#u32();
        break;
      case Imm.global:
        this.globalIndex = this.#u32();
        break;
      case Imm.func:
        this.funcIndex = this.#u32();
        break;
      case Imm.block:
        this.#readBlockType();
        this.#push(OPENED_FRAME[byte]);
        break;
      case Imm.end:
        if (depth === 0) {
          this.final = true;
          this.#done = true;
          if (this.#pos !== this.#end) {
            throw new MalformedModuleError("operators remaining after end of function", this.#pos);
          }
        } else {
          depth = --this.#frameCount;
        }
        break;
      case Imm.i64: {
        const r = this.#reader();
        r.skipS64();
        this.#pos = r.offset;
        break;
      }
      case Imm.f32:
        this.#skip(4);
        break;
      case Imm.f64:
        this.#skip(8);
        break;
      case Imm.else:
        depth = this.#continueFrame(FRAME_IF, -1, FRAME_ELSE, "else does not match an if", start);
        break;
      case Imm.brTable:
        this.#readBrTable();
        break;
      case Imm.callIndirect:
        this.typeIndex = this.#u32();
        this.tableIndex = this.#u32();
        break;
      case Imm.type:
        this.typeIndex = this.#u32();
        break;
      case Imm.typeField:
        this.typeIndex = this.#u32();
        this.fieldIndex = this.#u32();
        break;
      case Imm.typeType:
        this.typeIndex = this.#u32();
        this.typeIndex2 = this.#u32();
        break;
      case Imm.typeCount:
        this.typeIndex = this.#u32();
        this.count = this.#u32();
        break;
      case Imm.typeSegment:
        this.typeIndex = this.#u32();
        this.segmentIndex = this.#u32();
        break;
      case Imm.tag:
        this.tagIndex = this.#u32();
        break;
      case Imm.table:
        this.tableIndex = this.#u32();
        break;
      case Imm.tableTable:
        this.tableIndex = this.#u32();
        this.tableIndex2 = this.#u32();
        break;
      case Imm.segmentTable:
        this.segmentIndex = this.#u32();
        this.tableIndex = this.#u32();
        break;
      case Imm.segment:
        this.segmentIndex = this.#u32();
        break;
      case Imm.segmentMemory:
        this.segmentIndex = this.#u32();
        this.memoryIndex = this.#u32();
        break;
      case Imm.memory:
        this.memoryIndex = this.#u32();
        break;
      case Imm.memoryMemory:
        this.memoryIndex = this.#u32();
        this.memoryIndex2 = this.#u32();
        break;
      case Imm.memargLane:
        this.#readMemarg();
        this.lane = this.#u8();
        break;
      case Imm.lane:
        this.lane = this.#u8();
        break;
      case Imm.v128:
      case Imm.shuffle:
        this.#skip(16);
        break;
      case Imm.selectT: {
        const r = this.#reader();
        const at = r.offset;
        const count = readCount(r, "select type");
        if (count !== 1) {
          throw new MalformedModuleError(`select must have exactly one type, not ${count}`, at);
        }
        this.selectType = readValueType(r);
        this.#pos = r.offset;
        break;
      }
      case Imm.heap: {
        const r = this.#reader();
        this.heapType = readHeapType(r);
        this.#pos = r.offset;
        break;
      }
      case Imm.brOnCast:
        this.#readBrOnCast();
        break;
      case Imm.zeroByte: {
        const at = this.#pos;
        if (this.#u8() !== 0) throw new MalformedModuleError("invalid atomic.fence operand", at);
        break;
      }
      case Imm.catch:
        this.tagIndex = this.#u32();
        depth = this.#continueFrame(
          FRAME_TRY,
          FRAME_CATCH,
          FRAME_CATCH,
          "catch does not match a try",
          start,
        );
        break;
      case Imm.catchAll:
        depth = this.#continueFrame(
          FRAME_TRY,
          FRAME_CATCH,
          FRAME_CATCH_ALL,
          "catch_all does not match a try",
          start,
        );
        break;
      case Imm.delegate:
        this.label = this.#u32();
        if (depth === 0 || this.#frames[depth - 1] !== FRAME_TRY) {
          throw new MalformedModuleError("delegate does not match a try", start);
        }
        depth = --this.#frameCount;
        // The label counts from the frame around the `try`.
        this.#labelBase = depth;
        break;
      case Imm.tryTable:
        this.#readBlockType();
        this.#readCatches();
        this.#push(FRAME_TRY_TABLE);
        break;
      default:
        throw new Error(`unreachable: immediate kind ${imm}`);
    }
    this.depth = depth;
    this.end = this.#pos;
    return this;
  }

  i64Value(): bigint {
    return new ByteReader(this.#bytes, this.immediates, this.end).s64();
  }

  f32Value(): number {
    return new ByteReader(this.#bytes, this.immediates, this.end).f32();
  }

  f64Value(): number {
    return new ByteReader(this.#bytes, this.immediates, this.end).f64();
  }

  v128Bytes(): Uint8Array {
    return this.#bytes.subarray(this.immediates, this.immediates + 16);
  }

  memargOffset(): bigint {
    return (BigInt(this.#offsetHigh) << 32n) | BigInt(this.#offsetLow);
  }

  frameKind(label: number): FrameKind {
    const base = this.#labelBase;
    if (!(Number.isInteger(label) && label >= 0 && label <= base)) {
      throw new ArgumentError(`label ${label} is outside the ${base + 1} labels in scope`);
    }
    return label === base ? "function" : FRAME_NAMES[this.#frames[base - 1 - label]];
  }

  #push(frame: number): void {
    if (this.#frameCount === this.#frames.length) {
      const grown = new Uint8Array(this.#frames.length * 2);
      grown.set(this.#frames);
      this.#frames = grown;
    }
    this.#frames[this.#frameCount++] = frame;
  }

  /**
   * Moves the innermost frame from one of the kinds `from`/`orFrom` to `to` (an `if` to its
   * `else`, a `try` to a handler), and returns the depth the instruction is reported at.
   */
  #continueFrame(from: number, orFrom: number, to: number, message: string, at: number): number {
    const top = this.#frameCount - 1;
    const frame = top >= 0 ? this.#frames[top] : -1;
    if (top < 0 || (frame !== from && frame !== orFrom)) {
      throw new MalformedModuleError(message, at);
    }
    this.#frames[top] = to;
    return top;
  }

  /** The byte reader, positioned at `#pos`; whoever uses it sets `#pos` to its offset after. */
  #reader(): ByteReader {
    this.#r.seek(this.#pos);
    return this.#r;
  }

  /** Reads a u32 LEB128: one-byte values here, the others by the byte reader. */
  #u32(): number {
    const pos = this.#pos;
    if (pos < this.#end) {
      const byte = this.#bytes[pos];
      if (byte < 0x80) {
        this.#pos = pos + 1;
        return byte;
      }
    }
    const r = this.#reader();
    const value = r.u32();
    this.#pos = r.offset;
    return value;
  }

  /** Reads an s32 LEB128: one-byte values here, the others by the byte reader. */
  #s32(): number {
    const pos = this.#pos;
    if (pos < this.#end) {
      const byte = this.#bytes[pos];
      if (byte < 0x80) {
        this.#pos = pos + 1;
        return (byte << 25) >> 25;
      }
    }
    const r = this.#reader();
    const value = r.s32();
    this.#pos = r.offset;
    return value;
  }

  #u8(): number {
    const pos = this.#pos;
    if (pos >= this.#end) return this.#reader().u8();
    this.#pos = pos + 1;
    return this.#bytes[pos];
  }

  #skip(length: number): void {
    if (length > this.#end - this.#pos) this.#reader().skip(length);
    this.#pos += length;
  }

  #readBlockType(): void {
    const pos = this.#pos;
    if (pos < this.#end) {
      // The common encodings: 0x40 (no result) and one-byte value types.
      const byte = this.#bytes[pos];
      if (byte === 0x40 || (byte >= 0x69 && byte < 0x80 && isShorthandValueType(byte))) {
        this.#pos = pos + 1;
        this.blockType = byte - 0x80;
        return;
      }
    }
    const r = this.#reader();
    const type = readS33(r);
    this.blockType = type;
    if (type < 0 && type !== EMPTY_BLOCK_S33) {
      const code = type + 0x80;
      if (code === ValType.ref || code === ValType.refNull) {
        this.heapType = readHeapType(r);
      } else if (!(type >= EMPTY_BLOCK_S33 && isShorthandValueType(code))) {
        throw new MalformedModuleError(`invalid block type ${type}`, pos);
      }
    }
    this.#pos = r.offset;
  }

  #readMemarg(): void {
    const at = this.#pos;
    const flags = this.#u32();
    if (flags >= 0x80) throw new MalformedModuleError(`malformed memarg flags ${flags}`, at);
    this.align = flags & 0x3f;
    this.memoryIndex = flags & 0x40 ? this.#u32() : 0;
    const pos = this.#pos;
    if (pos < this.#end && this.#bytes[pos] < 0x80) {
      this.offset = this.#offsetLow = this.#bytes[pos];
      this.#offsetHigh = 0;
      this.#pos = pos + 1;
      return;
    }
    const r = this.#reader();
    this.#readOffset(r);
    this.#pos = r.offset;
  }

  /** Reads a u64 LEB128 into `offset` (a double) and its exact 32-bit halves. */
  #readOffset(r: ByteReader): void {
    const at = r.offset;
    let byte = r.u8();
    let low = byte & 0x7f;
    let high = 0;
    let shift = 7;
    for (; byte >= 0x80 && shift < 63; shift += 7) {
      byte = r.u8();
      const bits = byte & 0x7f;
      if (shift < 28) {
        low |= bits << shift;
      } else if (shift === 28) {
        low |= (bits & 0x0f) << 28;
        high = bits >>> 4;
      } else {
        high |= bits << (shift - 32);
      }
    }
    if (byte >= 0x80) {
      // Nine bytes hold 63 bits; the tenth holds bit 63 only.
      byte = r.u8();
      if (byte & 0x80) throw new MalformedModuleError("integer representation too long", at);
      if (byte & 0x7e) throw new MalformedModuleError("integer too large", at);
      high |= byte << 31;
    }
    this.#offsetLow = low >>> 0;
    this.#offsetHigh = high >>> 0;
    this.offset = this.#offsetHigh * 2 ** 32 + this.#offsetLow;
  }

  #readBrTable(): void {
    const r = this.#reader();
    const count = readCount(r, "br_table label");
    const labels = this.labels;
    labels.length = 0;
    for (let i = 0; i < count; i++) labels.push(r.u32());
    this.label = r.u32();
    this.#pos = r.offset;
  }

  #readBrOnCast(): void {
    const r = this.#reader();
    const at = r.offset;
    const flags = r.u8();
    if (flags > 3) throw new MalformedModuleError(`invalid br_on_cast flags ${flags}`, at);
    this.castFlags = flags;
    this.label = r.u32();
    this.heapType = readHeapType(r);
    this.heapType2 = readHeapType(r);
    this.#pos = r.offset;
  }

  #readCatches(): void {
    const r = this.#reader();
    const count = readCount(r, "catch clause");
    const catches: CatchClause[] = [];
    for (let i = 0; i < count; i++) {
      const at = r.offset;
      const kind = r.u8();
      if (kind > 3) throw new MalformedModuleError(`invalid catch kind ${kind}`, at);
      const tag = kind < 2 ? r.u32() : -1;
      catches.push({ kind, tag, label: r.u32() });
    }
    this.catches = catches;
    this.#pos = r.offset;
  }
}

function unknownOpcode(byte: number, sub: number | null, at: number): Error {
  if (sub === null) {
    const feature = unsupportedFeature(byte);
    if (feature !== null) {
      return new UnsupportedFeatureError(`opcode ${hex(byte)} (${feature})`, at);
    }
    return new MalformedModuleError(`unknown opcode ${hex(byte)}`, at);
  }
  const name = `${hex(byte)} ${hex(sub)}`;
  const feature = sub < SUB_OPCODE_LIMIT ? unsupportedFeature(prefixed(byte, sub)) : null;
  if (feature !== null) return new UnsupportedFeatureError(`opcode ${name} (${feature})`, at);
  return new MalformedModuleError(`unknown opcode ${name}`, at);
}
