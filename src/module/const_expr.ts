/**
 * Constant expressions (global initializers, segment offsets, element expressions) and the
 * value and reference type encodings they share with the rest of the binary format.
 *
 * @module
 */

import { MalformedModuleError, UnsupportedFeatureError } from "../errors.ts";
import type { ConstExpr, GlobalType, ValueType } from "./types.ts";
import type { ByteReader } from "./reader.ts";

/** The reference types wasmpool supports. */
export type RefType = "funcref" | "externref";

const VALUE_TYPES: ReadonlyMap<number, ValueType> = new Map<number, ValueType>([
  [0x7f, "i32"],
  [0x7e, "i64"],
  [0x7d, "f32"],
  [0x7c, "f64"],
  [0x7b, "v128"],
  [0x70, "funcref"],
  [0x6f, "externref"],
]);

/** Type bytes of the function-references, GC and exception-handling proposals. */
const PROPOSAL_TYPES: ReadonlyMap<number, string> = new Map([
  [0x63, "nullable typed reference (function references)"],
  [0x64, "typed reference (function references)"],
  [0x69, "exnref (exception handling)"],
  [0x6a, "arrayref (GC)"],
  [0x6b, "structref (GC)"],
  [0x6c, "i31ref (GC)"],
  [0x6d, "eqref (GC)"],
  [0x6e, "anyref (GC)"],
  [0x71, "nullref (GC)"],
  [0x72, "nullexternref (GC)"],
  [0x73, "nullfuncref (GC)"],
  [0x74, "nullexnref (exception handling)"],
]);

/** Opcodes whose only role in a constant expression is the extended-const proposal. */
const EXTENDED_CONST_OPS: ReadonlySet<number> = new Set([0x6a, 0x6b, 0x6c, 0x7c, 0x7d, 0x7e]);

const END = 0x0b;

/** What a constant expression may refer to. */
export interface ConstExprContext {
  /** Types of the globals in the module's global index space, imports first. */
  readonly globals: readonly GlobalType[];
  /** How many of `globals` (from index 0) the expression may refer to. */
  readonly visibleGlobals: number;
  /** The size of the function index space (imports plus defined functions). */
  readonly functionCount: number;
}

/**
 * Formats a byte as `0x`-prefixed, two-digit hexadecimal.
 *
 * @param byte The byte to format.
 */
export function hex(byte: number): string {
  return `0x${byte.toString(16).padStart(2, "0")}`;
}

/**
 * Reads a value type byte.
 *
 * @param r The reader positioned at the type byte.
 * @throws {UnsupportedFeatureError} For reference types of later proposals.
 * @throws {MalformedModuleError} For any other unknown byte.
 */
export function readValueType(r: ByteReader): ValueType {
  const at = r.offset;
  const byte = r.u8();
  const type = VALUE_TYPES.get(byte);
  if (type !== undefined) return type;
  throw unknownType(byte, at, "value type");
}

/**
 * Reads a reference type byte (`funcref` or `externref`).
 *
 * @param r The reader positioned at the type byte.
 */
export function readRefType(r: ByteReader): RefType {
  const at = r.offset;
  const byte = r.u8();
  if (byte === 0x70) return "funcref";
  if (byte === 0x6f) return "externref";
  throw unknownType(byte, at, "reference type");
}

/**
 * Reads the heap type of `ref.null`: `func` or `extern`. Heap types of later proposals,
 * including the type indices of typed function references (non-negative s33), are
 * unsupported.
 */
function readHeapType(r: ByteReader): RefType {
  const at = r.offset;
  const byte = r.peek();
  if (byte < 0x40 || byte >= 0x80) {
    throw new UnsupportedFeatureError("ref.null of a type index (typed function references)", at);
  }
  return readRefType(r);
}

function unknownType(byte: number, at: number, what: string): Error {
  const feature = PROPOSAL_TYPES.get(byte);
  if (feature !== undefined) return new UnsupportedFeatureError(feature, at);
  return new MalformedModuleError(`malformed ${what} ${hex(byte)}`, at);
}

/**
 * Reads a constant expression and checks it produces a value of type `expected`.
 *
 * Exactly one constant instruction followed by `end` is accepted: `i32.const`,
 * `i64.const`, `f32.const`, `f64.const`, `v128.const`, `global.get` (of an immutable,
 * visible global), `ref.null` and `ref.func`.
 *
 * @param r The reader positioned at the first instruction.
 * @param expected The type the expression must produce.
 * @param ctx The globals and functions the expression may refer to.
 * @throws {UnsupportedFeatureError} For extended-const arithmetic and any other opcode.
 * @throws {MalformedModuleError} For bad indices, type mismatches and truncation.
 */
export function readConstExpr(
  r: ByteReader,
  expected: ValueType,
  ctx: ConstExprContext,
): ConstExpr {
  const at = r.offset;
  if (r.peek() === END) {
    throw new MalformedModuleError("type mismatch: empty constant expression", at);
  }
  const { expr, type } = readInstruction(r, ctx);
  if (r.peek() !== END) rejectTrailing(r);
  r.u8();
  if (type !== expected) {
    throw new MalformedModuleError(`type mismatch: expected ${expected}, found ${type}`, at);
  }
  return expr;
}

interface Typed {
  readonly expr: ConstExpr;
  readonly type: ValueType;
}

function readInstruction(r: ByteReader, ctx: ConstExprContext): Typed {
  const at = r.offset;
  const op = r.u8();
  switch (op) {
    case 0x41:
      return { expr: { kind: "i32.const", value: r.s32() }, type: "i32" };
    case 0x42:
      return { expr: { kind: "i64.const", value: r.s64() }, type: "i64" };
    case 0x43:
      return { expr: { kind: "f32.const", value: r.f32() }, type: "f32" };
    case 0x44:
      return { expr: { kind: "f64.const", value: r.f64() }, type: "f64" };
    case 0x23:
      return readGlobalGet(r, ctx);
    case 0xd0: {
      const type = readHeapType(r);
      return { expr: { kind: "ref.null", type }, type };
    }
    case 0xd2: {
      const index = readIndex(r, ctx.functionCount, "function");
      return { expr: { kind: "ref.func", index }, type: "funcref" };
    }
    case 0xfd:
      return readVectorConst(r, at);
    default:
      throw unsupportedOp(op, at);
  }
}

function readGlobalGet(r: ByteReader, ctx: ConstExprContext): Typed {
  const at = r.offset;
  const index = readIndex(r, ctx.visibleGlobals, "global");
  const global = ctx.globals[index];
  if (global.mutable) {
    throw new MalformedModuleError("constant expression required: global is mutable", at);
  }
  return { expr: { kind: "global.get", index }, type: global.type };
}

function readVectorConst(r: ByteReader, at: number): Typed {
  const sub = r.u32();
  if (sub !== 12) throw new UnsupportedFeatureError(`constant expression opcode 0xfd ${sub}`, at);
  return { expr: { kind: "v128.const", bytes: r.bytes(16) }, type: "v128" };
}

/**
 * Reads an index immediate and checks it is below `count`.
 *
 * @param r The reader positioned at the index.
 * @param count The size of the index space.
 * @param what The index space, for the error message.
 */
export function readIndex(r: ByteReader, count: number, what: string): number {
  const at = r.offset;
  const index = r.u32();
  if (index >= count) throw new MalformedModuleError(`unknown ${what} ${index}`, at);
  return index;
}

/**
 * Called when a constant instruction is not followed by `end`: reports the first
 * non-constant opcode as unsupported (extended-const arithmetic, or anything else), or a
 * type mismatch when the expression is merely a sequence of constants.
 */
function rejectTrailing(r: ByteReader): never {
  const at = r.offset;
  while (r.peek() !== END) skipConstInstruction(r);
  throw new MalformedModuleError(
    "type mismatch: constant expression leaves more than one value",
    at,
  );
}

/** Skips one constant instruction without checking its immediates. */
function skipConstInstruction(r: ByteReader): void {
  const at = r.offset;
  const op = r.u8();
  switch (op) {
    case 0x41:
      r.s32();
      return;
    case 0x42:
      r.s64();
      return;
    case 0x43:
      r.skip(4);
      return;
    case 0x44:
      r.skip(8);
      return;
    case 0x23:
    case 0xd2:
      r.u32();
      return;
    case 0xd0:
      readHeapType(r);
      return;
    case 0xfd:
      readVectorConst(r, at);
      return;
    default:
      throw unsupportedOp(op, at);
  }
}

function unsupportedOp(op: number, at: number): UnsupportedFeatureError {
  const why = EXTENDED_CONST_OPS.has(op) ? " (extended constant expressions)" : "";
  return new UnsupportedFeatureError(`constant expression opcode ${hex(op)}${why}`, at);
}
