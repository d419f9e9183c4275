/**
 * The demo's embedded default module, built from source by a minimal self-contained encoder
 * (no dependency on the test fixtures, so it ships with the package): one memory of 1 page
 * (maximum 2) holding a 1 KiB data segment at offset 1024, a 10-entry funcref table whose
 * first three entries an element segment fills with three empty functions, the memory
 * exported as `"memory"`, and code to run: `sum()` adds up the bytes of the data segment
 * (a loop of `i32.load8_u`) and returns {@linkcode DEMO_DATA_SUM}.
 *
 * @module
 */

/** What {@linkcode demoModuleBytes} builds, in words. */
export const DEMO_MODULE_DESCRIPTION =
  "1-page memory (max 2) with a 1 KiB data segment, 10-entry table with an element segment, " +
  "sum() adds up the data";

/** The name of the demo module's exported function: `() -> i32`, the sum of its data bytes. */
export const DEMO_CALL_EXPORT = "sum";

/** Byte offset of the demo module's data segment in its memory. */
export const DEMO_DATA_OFFSET = 1024;

/** Length in bytes of the demo module's data segment. */
export const DEMO_DATA_BYTES = 1024;

/** Byte `i` of the demo module's data segment. */
function dataByte(i: number): number {
  return (i * 7) & 0xff;
}

/** What `sum()` returns: the sum of the data segment's bytes. */
export const DEMO_DATA_SUM: number = Array.from({ length: DEMO_DATA_BYTES }, (_, i) => dataByte(i))
  .reduce((a, b) => a + b, 0);

/** Unsigned LEB128. */
function leb(value: number): number[] {
  const out: number[] = [];
  let v = value;
  while (v >= 0x80) {
    out.push((v & 0x7f) | 0x80);
    v >>>= 7;
  }
  out.push(v);
  return out;
}

/** Signed LEB128 of a 32-bit integer. */
function sleb(value: number): number[] {
  const out: number[] = [];
  let v = value | 0;
  for (;;) {
    const byte = v & 0x7f;
    v >>= 7;
    const done = (v === 0 && (byte & 0x40) === 0) || (v === -1 && (byte & 0x40) !== 0);
    out.push(done ? byte : byte | 0x80);
    if (done) return out;
  }
}

/** A vector: its length, then the items. */
function vec(items: readonly (readonly number[])[]): number[] {
  return [...leb(items.length), ...items.flat()];
}

/** A section: id, size, contents. */
function section(id: number, contents: readonly number[]): number[] {
  return [id, ...leb(contents.length), ...contents];
}

/** `i32.const value; end`. */
function i32Const(value: number): number[] {
  return [0x41, ...sleb(value), 0x0b];
}

/**
 * The demo module's binary: a valid WebAssembly 1.0 module that `new WebAssembly.Module`
 * accepts, and that fits `DEFAULT_MODULE_LIMITS`.
 *
 * @example
 * ```ts
 * const module = new Module(engine, demoModuleBytes());
 * using instance = engine.instantiate(module);
 * (instance.exports.sum as () => number)(); // DEMO_DATA_SUM
 * ```
 *
 * @returns A fresh copy of the binary.
 */
export function demoModuleBytes(): Uint8Array<ArrayBuffer> {
  const empty = 3;
  const data = Array.from({ length: DEMO_DATA_BYTES }, (_, i) => dataByte(i));
  const name = (text: string): number[] => {
    const utf8 = new TextEncoder().encode(text);
    return [...leb(utf8.length), ...utf8];
  };
  // sum(): $at = offset; loop { $acc += i32.load8_u($at); $at += 1; br_if ($at < end) }; $acc.
  const at = 0; // local 0
  const acc = 1; // local 1
  const sum = [
    ...[0x01, 0x02, 0x7f], // locals: one group of 2 × i32
    ...[0x41, ...sleb(DEMO_DATA_OFFSET), 0x21, at], // i32.const offset; local.set $at
    ...[0x03, 0x40], // loop (no result)
    ...[0x20, acc, 0x20, at, 0x2d, 0x00, 0x00], // local.get $acc; local.get $at; i32.load8_u
    ...[0x6a, 0x21, acc], // i32.add; local.set $acc
    ...[0x20, at, 0x41, 0x01, 0x6a, 0x22, at], // $at + 1; local.tee $at
    ...[0x41, ...sleb(DEMO_DATA_OFFSET + DEMO_DATA_BYTES), 0x49], // i32.const end; i32.lt_u
    ...[0x0d, 0x00, 0x0b], // br_if 0; end of the loop
    ...[0x20, acc, 0x0b], // local.get $acc; end of the body
  ];
  const bodies = [...Array.from({ length: empty }, () => [0x00, 0x0b]), sum];
  const bytes = [
    0x00,
    0x61,
    0x73,
    0x6d,
    0x01,
    0x00,
    0x00,
    0x00, // "\0asm", version 1
    // Type 0: [] -> []; type 1: [] -> [i32].
    ...section(1, vec([[0x60, 0x00, 0x00], [0x60, 0x00, 0x01, 0x7f]])),
    // Functions 0-2 of type 0 (empty), function 3 of type 1 (sum).
    ...section(3, vec([...Array.from({ length: empty }, () => [0x00]), [0x01]])),
    ...section(4, vec([[0x70, 0x01, ...leb(10), ...leb(10)]])), // funcref table, min 10 max 10
    ...section(5, vec([[0x01, ...leb(1), ...leb(2)]])), // memory, min 1 max 2
    ...section(7, vec([[...name("memory"), 0x02, 0x00], [...name(DEMO_CALL_EXPORT), 0x00, 3]])),
    // Element segment (flags 0: active, table 0) at offset 0: functions 0, 1, 2.
    ...section(9, vec([[0x00, ...i32Const(0), ...vec([[0], [1], [2]])]])),
    // Code: each body with its size; the empty ones have no locals and only `end`.
    ...section(10, vec(bodies.map((body) => [...leb(body.length), ...body]))),
    // Data segment (flags 0: active, memory 0) at DEMO_DATA_OFFSET.
    ...section(11, vec([[0x00, ...i32Const(DEMO_DATA_OFFSET), ...leb(data.length), ...data]])),
  ];
  return Uint8Array.from(bytes);
}
