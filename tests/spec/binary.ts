/**
 * The little of the WebAssembly binary format the harness needs: reading which modules a
 * binary imports from, and writing the small modules it builds itself (the `spectest`
 * functions and the v128 adapters).
 *
 * Every read is bounds-checked: a binary that ends early or runs past a section is a
 * `RangeError`, never a wrong answer.
 *
 * @module
 */

/** Value type bytes of the binary format. */
export const VALUE_TYPE: Readonly<Record<string, number>> = {
  i32: 0x7f,
  i64: 0x7e,
  f32: 0x7d,
  f64: 0x7c,
  v128: 0x7b,
  funcref: 0x70,
  externref: 0x6f,
};

/** The module header: `\0asm`, version 1. */
const HEADER = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];

/** A bounds-checked cursor over a binary. */
class Reader {
  #bytes: Uint8Array;
  #at: number;
  #end: number;

  constructor(bytes: Uint8Array, at: number, end: number) {
    if (end > bytes.length || at > end) throw new RangeError("section runs past the binary");
    this.#bytes = bytes;
    this.#at = at;
    this.#end = end;
  }

  get at(): number {
    return this.#at;
  }

  skip(count: number): void {
    if (this.#at + count > this.#end) throw new RangeError("section runs past the binary");
    this.#at += count;
  }

  byte(): number {
    if (this.#at >= this.#end) throw new RangeError(`binary ends early at byte ${this.#at}`);
    return this.#bytes[this.#at++];
  }

  /** An unsigned or signed LEB128 of at most 10 bytes, skipped or read as unsigned. */
  leb(): number {
    let result = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      const b = this.byte();
      result += (b & 0x7f) * scale;
      scale *= 128;
      if ((b & 0x80) === 0) return result;
    }
    throw new RangeError(`LEB128 longer than 10 bytes at byte ${this.#at}`);
  }

  name(): string {
    const length = this.leb();
    const start = this.#at;
    if (start + length > this.#end) throw new RangeError("name runs past its section");
    this.#at += length;
    return new TextDecoder().decode(this.#bytes.subarray(start, this.#at));
  }

  /** A value or reference type: one byte, or `ref`/`ref null` and a heap type. */
  valueType(): void {
    const b = this.byte();
    if (b === 0x63 || b === 0x64) this.leb();
  }

  /** Limits: flags, minimum, maximum when flagged, page size when flagged. */
  limits(): void {
    const flags = this.byte();
    this.leb();
    if (flags & 0x01) this.leb();
    if (flags & 0x08) this.leb();
  }
}

/**
 * The names of the modules a binary imports from, each once, in order of first use.
 *
 * @param bytes A binary that compiles (so its import section is well-formed).
 * @throws RangeError when the import section cannot be read, including an import kind
 *   this reader does not know.
 */
export function importModuleNames(bytes: Uint8Array): string[] {
  for (let i = 0; i < HEADER.length; i++) {
    if (bytes[i] !== HEADER[i]) throw new RangeError("not a WebAssembly module binary");
  }
  const names: string[] = [];
  const file = new Reader(bytes, HEADER.length, bytes.length);
  while (file.at < bytes.length) {
    const id = file.byte();
    const size = file.leb();
    const start = file.at;
    if (id === 2) {
      const section = new Reader(bytes, start, start + size);
      const count = section.leb();
      for (let i = 0; i < count; i++) {
        const module = section.name();
        section.name();
        const kind = section.byte();
        if (kind === 0x00) section.leb();
        else if (kind === 0x01) (section.valueType(), section.limits());
        else if (kind === 0x02) section.limits();
        else if (kind === 0x03) (section.valueType(), section.byte());
        else if (kind === 0x04) (section.byte(), section.leb());
        else throw new RangeError(`import kind 0x${kind.toString(16)} is not understood`);
        if (!names.includes(module)) names.push(module);
      }
      return names;
    }
    file.skip(size);
  }
  return names;
}

/**
 * Encodes an unsigned LEB128.
 *
 * @param value A non-negative integer below 2^32.
 */
export function u32(value: number): number[] {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
    throw new RangeError(`u32 out of range: ${value}`);
  }
  const out: number[] = [];
  let v = value;
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  out.push(v);
  return out;
}

// A signed LEB128 and a name (UTF-8 length, then bytes): the test modules' builder's own.
export { name, sleb } from "../fixtures/wasm_builder.ts";

/**
 * Encodes a vector: its length, then its items.
 *
 * @param items The encoded items.
 */
export function vec(items: readonly (readonly number[])[]): number[] {
  return [...u32(items.length), ...items.flat()];
}

/**
 * Joins sections into a module binary. Sections must be given in the order the format wants.
 *
 * @param sections Each section's id and contents.
 */
export function assemble(
  sections: readonly { id: number; payload: readonly number[] }[],
): Uint8Array<ArrayBuffer> {
  const out = [...HEADER];
  for (const { id, payload } of sections) out.push(id, ...u32(payload.length), ...payload);
  return Uint8Array.from(out);
}

/**
 * Encodes a function type.
 *
 * @param params Parameter type names.
 * @param results Result type names.
 */
export function funcType(params: readonly string[], results: readonly string[]): number[] {
  return [
    0x60,
    ...vec(params.map((t) => [valueType(t)])),
    ...vec(results.map((t) => [valueType(t)])),
  ];
}

/**
 * The byte of a value type.
 *
 * @param type `i32`, `i64`, `f32`, `f64`, `v128`, `funcref` or `externref`.
 */
export function valueType(type: string): number {
  const byte = VALUE_TYPE[type];
  if (byte === undefined) throw new TypeError(`no binary encoding for value type ${type}`);
  return byte;
}
