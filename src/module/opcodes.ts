/**
 * The instruction set the function-body decoder knows: every opcode's number, text-format name
 * and the shape of its immediates.
 *
 * The set is exactly what Deno 2.9.6 (V8) and Bun 1.4.5 (JavaScriptCore) accept by default:
 * WebAssembly 3.0 (MVP, sign extension, non-trapping float-to-int, bulk memory, reference types,
 * multi-value, SIMD and relaxed SIMD, tail calls, exception handling with `try_table` and the
 * legacy `try`/`catch`/`delegate`, typed function references, GC, multi-memory, memory64),
 * threads (`0xFE`), and wide arithmetic (`0xFC 19..22`, which Bun accepts and Deno does not).
 *
 * An opcode is one number: a single-byte opcode is its byte (`0x00..0xFA`); a prefixed one is
 * `prefix << 12 | sub`, so `memory.init` (`0xFC 8`) is `0xfc008` and `i32x4.relaxed_dot_i8x16_i7x16_add_s`
 * (`0xFD 0x113`) is `0xfd113`. Sub-opcodes are u32 LEB128 in the binary; every known one is
 * below `0x1000`, so the encoding is one-to-one.
 *
 * Invariant: every opcode in {@linkcode OPCODE_NAMES} has an immediate kind other than
 * {@linkcode Imm.unknown} in the lookup tables, and no other opcode does.
 *
 * @module
 */

/** The shape of an instruction's immediates (and, for the structured ones, its role in nesting). */
export const Imm = {
  /** Not an opcode. */
  unknown: 0,
  /** No immediates. */
  none: 1,
  /** A block type; opens a frame (`block`, `loop`, `if`, `try`). */
  block: 2,
  /** `else`: no immediates; separates the arms of an `if`. */
  else: 3,
  /** `end`: closes a frame, or the function. */
  end: 4,
  /** Legacy `catch`: a tag index; starts a handler of a `try`. */
  catch: 5,
  /** Legacy `catch_all`: starts the catch-all handler of a `try`. */
  catchAll: 6,
  /** Legacy `delegate`: a label; closes a `try`. */
  delegate: 7,
  /** `try_table`: a block type and a vector of catch clauses; opens a frame. */
  tryTable: 8,
  /** A label (`br`, `br_if`, `br_on_null`, `br_on_non_null`, `rethrow`). */
  label: 9,
  /** A vector of labels and a default label. */
  brTable: 10,
  /** A function index (`call`, `return_call`, `ref.func`). */
  func: 11,
  /** A type index, then a table index (`call_indirect`, `return_call_indirect`). */
  callIndirect: 12,
  /** A type index. */
  type: 13,
  /** A type index and a field index (`struct.get*`, `struct.set`). */
  typeField: 14,
  /** Two type indices (`array.copy`). */
  typeType: 15,
  /** A type index and an element count (`array.new_fixed`). */
  typeCount: 16,
  /** A type index and a data or element segment index. */
  typeSegment: 17,
  /** A tag index (`throw`). */
  tag: 18,
  /** A local index. */
  local: 19,
  /** A global index. */
  global: 20,
  /** A table index. */
  table: 21,
  /** Two table indices, destination first (`table.copy`). */
  tableTable: 22,
  /** An element segment index, then a table index (`table.init`). */
  segmentTable: 23,
  /** A data or element segment index (`data.drop`, `elem.drop`). */
  segment: 24,
  /** A data segment index, then a memory index (`memory.init`). */
  segmentMemory: 25,
  /** A memory index (`memory.size`, `memory.grow`, `memory.fill`). */
  memory: 26,
  /** Two memory indices, destination first (`memory.copy`). */
  memoryMemory: 27,
  /** A memarg: alignment flags, an optional memory index, a u64 offset. */
  memarg: 28,
  /** A memarg, then a lane index byte. */
  memargLane: 29,
  /** A lane index byte. */
  lane: 30,
  /** An s32. */
  i32: 31,
  /** An s64. */
  i64: 32,
  /** 4 bytes. */
  f32: 33,
  /** 8 bytes. */
  f64: 34,
  /** 16 bytes (`v128.const`). */
  v128: 35,
  /** 16 lane index bytes (`i8x16.shuffle`). */
  shuffle: 36,
  /** A vector of value types (`select t*`). */
  selectT: 37,
  /** A heap type (`ref.null`, `ref.test`, `ref.cast`). */
  heap: 38,
  /** Cast flags, a label and two heap types (`br_on_cast`, `br_on_cast_fail`). */
  brOnCast: 39,
  /** One reserved zero byte (`atomic.fence`). */
  zeroByte: 40,
} as const;

/** One of the {@linkcode Imm} values. */
export type ImmediateKind = (typeof Imm)[keyof typeof Imm];

/** The prefix bytes of multi-byte opcodes. */
export const Prefix = { gc: 0xfb, misc: 0xfc, simd: 0xfd, atomic: 0xfe } as const;

/** The largest sub-opcode, plus one, that the opcode encoding can hold. */
export const SUB_OPCODE_LIMIT = 0x1000;

/**
 * The opcode number of a prefixed instruction.
 *
 * @param prefix The prefix byte (`0xFB`..`0xFE`).
 * @param sub The sub-opcode, below {@linkcode SUB_OPCODE_LIMIT}.
 */
export function prefixed(prefix: number, sub: number): number {
  return prefix * SUB_OPCODE_LIMIT + sub;
}

/**
 * Opcodes of the instructions an instrumenter looks for, by text-format name (dots and the
 * like written as `_`). {@linkcode opcodeName} names every other opcode.
 */
export const Op = {
  unreachable: 0x00,
  nop: 0x01,
  block: 0x02,
  loop: 0x03,
  if: 0x04,
  else: 0x05,
  try: 0x06,
  catch: 0x07,
  throw: 0x08,
  rethrow: 0x09,
  throw_ref: 0x0a,
  end: 0x0b,
  br: 0x0c,
  br_if: 0x0d,
  br_table: 0x0e,
  return: 0x0f,
  call: 0x10,
  call_indirect: 0x11,
  return_call: 0x12,
  return_call_indirect: 0x13,
  call_ref: 0x14,
  return_call_ref: 0x15,
  delegate: 0x18,
  catch_all: 0x19,
  try_table: 0x1f,
  memory_size: 0x3f,
  memory_grow: 0x40,
  ref_func: 0xd2,
  br_on_null: 0xd5,
  br_on_non_null: 0xd6,
  br_on_cast: 0xfb018,
  br_on_cast_fail: 0xfb019,
  memory_init: 0xfc008,
  data_drop: 0xfc009,
  memory_copy: 0xfc00a,
  memory_fill: 0xfc00b,
  table_init: 0xfc00c,
  elem_drop: 0xfc00d,
  table_copy: 0xfc00e,
  table_grow: 0xfc00f,
  atomic_fence: 0xfe003,
} as const;

/** Catch clause kinds of `try_table`. */
export const CatchKind = { catch: 0, catchRef: 1, catchAll: 2, catchAllRef: 3 } as const;

/**
 * Abstract heap types, as the negative s33 values their one-byte encodings read as (a heap type
 * that is zero or more is a type index). `func` is `0x70`, which as an s33 is `-16`.
 */
export const HeapType = {
  exn: -23,
  array: -22,
  struct: -21,
  i31: -20,
  eq: -19,
  any: -18,
  extern: -17,
  func: -16,
  none: -15,
  noextern: -14,
  nofunc: -13,
  noexn: -12,
} as const;

/** The smallest and largest abstract heap type (as s33), inclusive. */
export const ABSTRACT_HEAP_TYPE_MIN = -23;
export const ABSTRACT_HEAP_TYPE_MAX = -12;

/** Value type codes (the type's byte); `ref` and `refNull` are followed by a heap type. */
export const ValType = {
  i32: 0x7f,
  i64: 0x7e,
  f32: 0x7d,
  f64: 0x7c,
  v128: 0x7b,
  refNull: 0x63,
  ref: 0x64,
} as const;

/** Whether `byte` is a one-byte value type: a number type, `v128` or an abstract reference type. */
export function isShorthandValueType(byte: number): boolean {
  return (byte >= 0x7b && byte <= 0x7f) || (byte >= 0x69 && byte <= 0x74);
}

// ---- The table -----------------------------------------------------------------------------

const names = new Map<number, string>();
const single = new Uint8Array(256);
const subTables = new Map<number, Uint8Array>([
  [Prefix.gc, new Uint8Array(0x1f)],
  [Prefix.misc, new Uint8Array(0x17)],
  [Prefix.simd, new Uint8Array(0x114)],
  [Prefix.atomic, new Uint8Array(0x4f)],
]);

function define(opcode: number, name: string, imm: ImmediateKind): void {
  if (names.has(opcode)) throw new Error(`opcode 0x${opcode.toString(16)} defined twice`);
  names.set(opcode, name);
  if (opcode < 0x100) {
    single[opcode] = imm;
  } else {
    const table = subTables.get(Math.floor(opcode / SUB_OPCODE_LIMIT));
    const sub = opcode % SUB_OPCODE_LIMIT;
    if (table === undefined || sub >= table.length) throw new Error(`no room for ${name}`);
    table[sub] = imm;
  }
}

/** Defines `list[i]` as opcode `first + i` (skipping empty names, which are gaps). */
function run(first: number, imm: ImmediateKind, list: readonly string[]): void {
  list.forEach((name, i) => {
    if (name !== "") define(first + i, name, imm);
  });
}

/** Names `<type>.<op>` for each op, in order. */
function ops(type: string, list: readonly string[]): string[] {
  return list.map((op) => (op === "" ? "" : `${type}.${op}`));
}

// Control.
define(0x00, "unreachable", Imm.none);
define(0x01, "nop", Imm.none);
run(0x02, Imm.block, ["block", "loop", "if"]);
define(0x05, "else", Imm.else);
define(0x06, "try", Imm.block);
define(0x07, "catch", Imm.catch);
define(0x08, "throw", Imm.tag);
define(0x09, "rethrow", Imm.label);
define(0x0a, "throw_ref", Imm.none);
define(0x0b, "end", Imm.end);
run(0x0c, Imm.label, ["br", "br_if"]);
define(0x0e, "br_table", Imm.brTable);
define(0x0f, "return", Imm.none);
define(0x10, "call", Imm.func);
define(0x11, "call_indirect", Imm.callIndirect);
define(0x12, "return_call", Imm.func);
define(0x13, "return_call_indirect", Imm.callIndirect);
run(0x14, Imm.type, ["call_ref", "return_call_ref"]);
define(0x18, "delegate", Imm.delegate);
define(0x19, "catch_all", Imm.catchAll);
run(0x1a, Imm.none, ["drop", "select"]);
define(0x1c, "select", Imm.selectT);
define(0x1f, "try_table", Imm.tryTable);

// Variables and tables.
run(0x20, Imm.local, ["local.get", "local.set", "local.tee"]);
run(0x23, Imm.global, ["global.get", "global.set"]);
run(0x25, Imm.table, ["table.get", "table.set"]);

// Memory.
run(0x28, Imm.memarg, [
  ...ops("i32", ["load"]),
  ...ops("i64", ["load"]),
  ...ops("f32", ["load"]),
  ...ops("f64", ["load"]),
  ...ops("i32", ["load8_s", "load8_u", "load16_s", "load16_u"]),
  ...ops("i64", ["load8_s", "load8_u", "load16_s", "load16_u", "load32_s", "load32_u"]),
  ...ops("i32", ["store"]),
  ...ops("i64", ["store"]),
  ...ops("f32", ["store"]),
  ...ops("f64", ["store"]),
  ...ops("i32", ["store8", "store16"]),
  ...ops("i64", ["store8", "store16", "store32"]),
]);
run(0x3f, Imm.memory, ["memory.size", "memory.grow"]);

// Constants.
define(0x41, "i32.const", Imm.i32);
define(0x42, "i64.const", Imm.i64);
define(0x43, "f32.const", Imm.f32);
define(0x44, "f64.const", Imm.f64);

// Numeric.
const INT_COMPARE = ["eq", "ne", "lt_s", "lt_u", "gt_s", "gt_u", "le_s", "le_u", "ge_s", "ge_u"];
const FLOAT_COMPARE = ["eq", "ne", "lt", "gt", "le", "ge"];
const INT_UNARY = ["clz", "ctz", "popcnt"];
const INT_BINARY = [
  ...["add", "sub", "mul", "div_s", "div_u", "rem_s", "rem_u"],
  ...["and", "or", "xor", "shl", "shr_s", "shr_u", "rotl", "rotr"],
];
const FLOAT_ARITH = [
  ...["abs", "neg", "ceil", "floor", "trunc", "nearest", "sqrt"],
  ...["add", "sub", "mul", "div", "min", "max", "copysign"],
];
run(0x45, Imm.none, [
  "i32.eqz",
  ...ops("i32", INT_COMPARE),
  "i64.eqz",
  ...ops("i64", INT_COMPARE),
  ...ops("f32", FLOAT_COMPARE),
  ...ops("f64", FLOAT_COMPARE),
  ...ops("i32", [...INT_UNARY, ...INT_BINARY]),
  ...ops("i64", [...INT_UNARY, ...INT_BINARY]),
  ...ops("f32", FLOAT_ARITH),
  ...ops("f64", FLOAT_ARITH),
  "i32.wrap_i64",
  ...ops("i32", ["trunc_f32_s", "trunc_f32_u", "trunc_f64_s", "trunc_f64_u"]),
  ...ops("i64", ["extend_i32_s", "extend_i32_u"]),
  ...ops("i64", ["trunc_f32_s", "trunc_f32_u", "trunc_f64_s", "trunc_f64_u"]),
  ...ops("f32", ["convert_i32_s", "convert_i32_u", "convert_i64_s", "convert_i64_u"]),
  "f32.demote_f64",
  ...ops("f64", ["convert_i32_s", "convert_i32_u", "convert_i64_s", "convert_i64_u"]),
  "f64.promote_f32",
  "i32.reinterpret_f32",
  "i64.reinterpret_f64",
  "f32.reinterpret_i32",
  "f64.reinterpret_i64",
  // Sign extension.
  ...ops("i32", ["extend8_s", "extend16_s"]),
  ...ops("i64", ["extend8_s", "extend16_s", "extend32_s"]),
]);

// References.
define(0xd0, "ref.null", Imm.heap);
define(0xd1, "ref.is_null", Imm.none);
define(0xd2, "ref.func", Imm.func);
run(0xd3, Imm.none, ["ref.eq", "ref.as_non_null"]);
run(0xd5, Imm.label, ["br_on_null", "br_on_non_null"]);

// 0xFB: GC.
const gc = (sub: number): number => prefixed(Prefix.gc, sub);
run(gc(0x00), Imm.type, ["struct.new", "struct.new_default"]);
run(gc(0x02), Imm.typeField, ["struct.get", "struct.get_s", "struct.get_u", "struct.set"]);
run(gc(0x06), Imm.type, ["array.new", "array.new_default"]);
define(gc(0x08), "array.new_fixed", Imm.typeCount);
run(gc(0x09), Imm.typeSegment, ["array.new_data", "array.new_elem"]);
run(gc(0x0b), Imm.type, ["array.get", "array.get_s", "array.get_u", "array.set"]);
define(gc(0x0f), "array.len", Imm.none);
define(gc(0x10), "array.fill", Imm.type);
define(gc(0x11), "array.copy", Imm.typeType);
run(gc(0x12), Imm.typeSegment, ["array.init_data", "array.init_elem"]);
run(gc(0x14), Imm.heap, ["ref.test", "ref.test", "ref.cast", "ref.cast"]);
run(gc(0x18), Imm.brOnCast, ["br_on_cast", "br_on_cast_fail"]);
run(gc(0x1a), Imm.none, [
  "any.convert_extern",
  "extern.convert_any",
  "ref.i31",
  "i31.get_s",
  "i31.get_u",
]);

// 0xFC: saturating truncation, bulk memory, tables, wide arithmetic.
const misc = (sub: number): number => prefixed(Prefix.misc, sub);
run(misc(0x00), Imm.none, [
  ...ops("i32", ["trunc_sat_f32_s", "trunc_sat_f32_u", "trunc_sat_f64_s", "trunc_sat_f64_u"]),
  ...ops("i64", ["trunc_sat_f32_s", "trunc_sat_f32_u", "trunc_sat_f64_s", "trunc_sat_f64_u"]),
]);
define(misc(0x08), "memory.init", Imm.segmentMemory);
define(misc(0x09), "data.drop", Imm.segment);
define(misc(0x0a), "memory.copy", Imm.memoryMemory);
define(misc(0x0b), "memory.fill", Imm.memory);
define(misc(0x0c), "table.init", Imm.segmentTable);
define(misc(0x0d), "elem.drop", Imm.segment);
define(misc(0x0e), "table.copy", Imm.tableTable);
run(misc(0x0f), Imm.table, ["table.grow", "table.size", "table.fill"]);
run(misc(0x13), Imm.none, ops("i64", ["add128", "sub128", "mul_wide_s", "mul_wide_u"]));

// 0xFD: SIMD and relaxed SIMD. Gaps are opcodes the proposal left unassigned.
const simd = (sub: number): number => prefixed(Prefix.simd, sub);
run(simd(0x00), Imm.memarg, [
  "v128.load",
  ...ops("v128", ["load8x8_s", "load8x8_u", "load16x4_s", "load16x4_u", "load32x2_s"]),
  ...ops("v128", ["load32x2_u", "load8_splat", "load16_splat", "load32_splat", "load64_splat"]),
  "v128.store",
]);
define(simd(0x0c), "v128.const", Imm.v128);
define(simd(0x0d), "i8x16.shuffle", Imm.shuffle);
define(simd(0x0e), "i8x16.swizzle", Imm.none);
run(
  simd(0x0f),
  Imm.none,
  ["i8x16", "i16x8", "i32x4", "i64x2", "f32x4", "f64x2"].map((s) => `${s}.splat`),
);
run(simd(0x15), Imm.lane, [
  ...ops("i8x16", ["extract_lane_s", "extract_lane_u", "replace_lane"]),
  ...ops("i16x8", ["extract_lane_s", "extract_lane_u", "replace_lane"]),
  ...ops("i32x4", ["extract_lane", "replace_lane"]),
  ...ops("i64x2", ["extract_lane", "replace_lane"]),
  ...ops("f32x4", ["extract_lane", "replace_lane"]),
  ...ops("f64x2", ["extract_lane", "replace_lane"]),
]);
run(simd(0x23), Imm.none, [
  ...ops("i8x16", INT_COMPARE),
  ...ops("i16x8", INT_COMPARE),
  ...ops("i32x4", INT_COMPARE),
  ...ops("f32x4", FLOAT_COMPARE),
  ...ops("f64x2", FLOAT_COMPARE),
  ...ops("v128", ["not", "and", "andnot", "or", "xor", "bitselect", "any_true"]),
]);
run(simd(0x54), Imm.memargLane, [
  ...ops("v128", ["load8_lane", "load16_lane", "load32_lane", "load64_lane"]),
  ...ops("v128", ["store8_lane", "store16_lane", "store32_lane", "store64_lane"]),
]);
run(simd(0x5c), Imm.memarg, ["v128.load32_zero", "v128.load64_zero"]);
run(simd(0x5e), Imm.none, [
  "f32x4.demote_f64x2_zero",
  "f64x2.promote_low_f32x4",
  // 0x60
  ...ops("i8x16", ["abs", "neg", "popcnt", "all_true", "bitmask"]),
  ...ops("i8x16", ["narrow_i16x8_s", "narrow_i16x8_u"]),
  ...ops("f32x4", ["ceil", "floor", "trunc", "nearest"]),
  ...ops("i8x16", ["shl", "shr_s", "shr_u", "add", "add_sat_s", "add_sat_u"]),
  ...ops("i8x16", ["sub", "sub_sat_s", "sub_sat_u"]),
  ...ops("f64x2", ["ceil", "floor"]),
  ...ops("i8x16", ["min_s", "min_u", "max_s", "max_u"]),
  "f64x2.trunc",
  "i8x16.avgr_u",
  ...ops("i16x8", ["extadd_pairwise_i8x16_s", "extadd_pairwise_i8x16_u"]),
  ...ops("i32x4", ["extadd_pairwise_i16x8_s", "extadd_pairwise_i16x8_u"]),
  // 0x80
  ...ops("i16x8", ["abs", "neg", "q15mulr_sat_s", "all_true", "bitmask"]),
  ...ops("i16x8", ["narrow_i32x4_s", "narrow_i32x4_u"]),
  ...ops("i16x8", ["extend_low_i8x16_s", "extend_high_i8x16_s"]),
  ...ops("i16x8", ["extend_low_i8x16_u", "extend_high_i8x16_u"]),
  ...ops("i16x8", ["shl", "shr_s", "shr_u", "add", "add_sat_s", "add_sat_u"]),
  ...ops("i16x8", ["sub", "sub_sat_s", "sub_sat_u"]),
  "f64x2.nearest",
  ...ops("i16x8", ["mul", "min_s", "min_u", "max_s", "max_u", "", "avgr_u"]),
  ...ops("i16x8", ["extmul_low_i8x16_s", "extmul_high_i8x16_s"]),
  ...ops("i16x8", ["extmul_low_i8x16_u", "extmul_high_i8x16_u"]),
  // 0xA0
  ...ops("i32x4", ["abs", "neg", "", "all_true", "bitmask", "", ""]),
  ...ops("i32x4", ["extend_low_i16x8_s", "extend_high_i16x8_s"]),
  ...ops("i32x4", ["extend_low_i16x8_u", "extend_high_i16x8_u"]),
  ...ops("i32x4", ["shl", "shr_s", "shr_u", "add", "", "", "sub", "", "", ""]),
  ...ops("i32x4", ["mul", "min_s", "min_u", "max_s", "max_u", "dot_i16x8_s", ""]),
  ...ops("i32x4", ["extmul_low_i16x8_s", "extmul_high_i16x8_s"]),
  ...ops("i32x4", ["extmul_low_i16x8_u", "extmul_high_i16x8_u"]),
  // 0xC0
  ...ops("i64x2", ["abs", "neg", "", "all_true", "bitmask", "", ""]),
  ...ops("i64x2", ["extend_low_i32x4_s", "extend_high_i32x4_s"]),
  ...ops("i64x2", ["extend_low_i32x4_u", "extend_high_i32x4_u"]),
  ...ops("i64x2", ["shl", "shr_s", "shr_u", "add", "", "", "sub", "", "", ""]),
  ...ops("i64x2", ["mul", "eq", "ne", "lt_s", "gt_s", "le_s", "ge_s"]),
  ...ops("i64x2", ["extmul_low_i32x4_s", "extmul_high_i32x4_s"]),
  ...ops("i64x2", ["extmul_low_i32x4_u", "extmul_high_i32x4_u"]),
  // 0xE0
  ...ops("f32x4", ["abs", "neg", "", "sqrt", "add", "sub", "mul", "div"]),
  ...ops("f32x4", ["min", "max", "pmin", "pmax"]),
  ...ops("f64x2", ["abs", "neg", "", "sqrt", "add", "sub", "mul", "div"]),
  ...ops("f64x2", ["min", "max", "pmin", "pmax"]),
  ...ops("i32x4", ["trunc_sat_f32x4_s", "trunc_sat_f32x4_u"]),
  ...ops("f32x4", ["convert_i32x4_s", "convert_i32x4_u"]),
  ...ops("i32x4", ["trunc_sat_f64x2_s_zero", "trunc_sat_f64x2_u_zero"]),
  ...ops("f64x2", ["convert_low_i32x4_s", "convert_low_i32x4_u"]),
  // 0x100: relaxed SIMD.
  "i8x16.relaxed_swizzle",
  ...ops("i32x4", ["relaxed_trunc_f32x4_s", "relaxed_trunc_f32x4_u"]),
  ...ops("i32x4", ["relaxed_trunc_f64x2_s_zero", "relaxed_trunc_f64x2_u_zero"]),
  ...ops("f32x4", ["relaxed_madd", "relaxed_nmadd"]),
  ...ops("f64x2", ["relaxed_madd", "relaxed_nmadd"]),
  ...["i8x16", "i16x8", "i32x4", "i64x2"].map((s) => `${s}.relaxed_laneselect`),
  ...ops("f32x4", ["relaxed_min", "relaxed_max"]),
  ...ops("f64x2", ["relaxed_min", "relaxed_max"]),
  "i16x8.relaxed_q15mulr_s",
  "i16x8.relaxed_dot_i8x16_i7x16_s",
  "i32x4.relaxed_dot_i8x16_i7x16_add_s",
]);

// 0xFE: threads.
const atomic = (sub: number): number => prefixed(Prefix.atomic, sub);
run(atomic(0x00), Imm.memarg, [
  "memory.atomic.notify",
  "memory.atomic.wait32",
  "memory.atomic.wait64",
]);
define(atomic(0x03), "atomic.fence", Imm.zeroByte);
const RMW = ["add", "sub", "and", "or", "xor", "xchg", "cmpxchg"];
run(atomic(0x10), Imm.memarg, [
  ...["i32.atomic.load", "i64.atomic.load", "i32.atomic.load8_u", "i32.atomic.load16_u"],
  ...["i64.atomic.load8_u", "i64.atomic.load16_u", "i64.atomic.load32_u"],
  ...["i32.atomic.store", "i64.atomic.store", "i32.atomic.store8", "i32.atomic.store16"],
  ...["i64.atomic.store8", "i64.atomic.store16", "i64.atomic.store32"],
  ...RMW.flatMap((op) => [
    `i32.atomic.rmw.${op}`,
    `i64.atomic.rmw.${op}`,
    `i32.atomic.rmw8.${op}_u`,
    `i32.atomic.rmw16.${op}_u`,
    `i64.atomic.rmw8.${op}_u`,
    `i64.atomic.rmw16.${op}_u`,
    `i64.atomic.rmw32.${op}_u`,
  ]),
]);

/** Every opcode the decoder knows, with its text-format name. */
export const OPCODE_NAMES: ReadonlyMap<number, string> = names;

/**
 * The text-format name of an opcode.
 *
 * @param opcode An opcode number (a byte, or `prefix << 12 | sub`).
 * @returns The name (`"i32.load"`, `"memory.init"`), or `undefined` for an unknown opcode.
 */
export function opcodeName(opcode: number): string | undefined {
  return names.get(opcode);
}

/** Immediate kinds of the single-byte opcodes, indexed by opcode; prefixes are `unknown`. */
export const SINGLE_BYTE_IMMEDIATES: Readonly<Uint8Array> = single;

/**
 * The immediate kind of a prefixed opcode.
 *
 * @param prefix The prefix byte.
 * @param sub The sub-opcode as read (any u32).
 */
export function prefixedImmediate(prefix: number, sub: number): ImmediateKind {
  const table = subTables.get(prefix);
  if (table === undefined || sub >= table.length) return Imm.unknown;
  return table[sub] as ImmediateKind;
}

/**
 * Proposals the runtimes know but do not accept by default, by the opcodes they use; an opcode in
 * one of these ranges is reported as an unsupported feature rather than as malformed. The ranges
 * are the opcodes V8 reports as needing an `--experimental-wasm-*` flag.
 */
const UNSUPPORTED: readonly { first: number; last: number; feature: string }[] = [
  { first: 0xe0, last: 0xe6, feature: "stack switching" },
  { first: gc(0x1f), last: gc(0x1f), feature: "shared-everything threads" },
  { first: gc(0x20), last: gc(0x26), feature: "custom descriptors" },
  { first: gc(0x80), last: gc(0xbf), feature: "stringref" },
  { first: misc(0x30), last: misc(0x31), feature: "half-precision floats" },
  { first: simd(0x120), last: simd(0x14f), feature: "half-precision floats" },
  { first: atomic(0x04), last: atomic(0x07), feature: "shared-everything threads" },
  { first: atomic(0x5c), last: atomic(0x71), feature: "shared-everything threads" },
];

/**
 * The proposal an unknown opcode belongs to, when it is one the runtimes gate behind a flag.
 *
 * @param opcode An opcode {@linkcode opcodeName} does not know.
 * @returns The proposal's name, or `null`.
 */
export function unsupportedFeature(opcode: number): string | null {
  for (const range of UNSUPPORTED) {
    if (opcode >= range.first && opcode <= range.last) return range.feature;
  }
  return null;
}
