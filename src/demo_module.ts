/**
 * The demo's embedded default module, built from source by a minimal self-contained encoder
 * (no dependency on the test fixtures, so it ships with the package): one memory of 1 page
 * (maximum 2) holding a 1 KiB data segment at offset 1024, a 10-entry funcref table whose
 * first three entries an element segment fills with the module's three functions, and the
 * memory exported as `"memory"`.
 *
 * @module
 */

/** What {@linkcode demoModuleBytes} builds, in words. */
export const DEMO_MODULE_DESCRIPTION =
  "1-page memory (max 2) with a 1 KiB data segment, 10-entry table with an element segment";

/** Byte offset of the demo module's data segment in its memory. */
export const DEMO_DATA_OFFSET = 1024;

/** Length in bytes of the demo module's data segment. */
export const DEMO_DATA_BYTES = 1024;

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
 * ```
 *
 * @returns A fresh copy of the binary.
 */
export function demoModuleBytes(): Uint8Array<ArrayBuffer> {
  const functions = 3;
  const data = Array.from({ length: DEMO_DATA_BYTES }, (_, i) => (i * 7) & 0xff);
  const bytes = [
    0x00,
    0x61,
    0x73,
    0x6d,
    0x01,
    0x00,
    0x00,
    0x00, // "\0asm", version 1
    ...section(1, vec([[0x60, 0x00, 0x00]])), // type 0: [] -> []
    ...section(3, vec(Array.from({ length: functions }, () => [0x00]))), // functions of type 0
    ...section(4, vec([[0x70, 0x01, ...leb(10), ...leb(10)]])), // funcref table, min 10 max 10
    ...section(5, vec([[0x01, ...leb(1), ...leb(2)]])), // memory, min 1 max 2
    ...section(7, vec([[...leb(6), ...new TextEncoder().encode("memory"), 0x02, 0x00]])),
    // Element segment (flags 0: active, table 0) at offset 0: functions 0, 1, 2.
    ...section(9, vec([[0x00, ...i32Const(0), ...vec([[0], [1], [2]])]])),
    // Code: each body is empty (no locals, `end`).
    ...section(10, vec(Array.from({ length: functions }, () => [0x02, 0x00, 0x0b]))),
    // Data segment (flags 0: active, memory 0) at DEMO_DATA_OFFSET.
    ...section(11, vec([[0x00, ...i32Const(DEMO_DATA_OFFSET), ...leb(data.length), ...data]])),
  ];
  return Uint8Array.from(bytes);
}
