/**
 * A growable byte buffer with the WebAssembly binary encodings the rewrite needs: LEB128
 * integers, names, vectors and sections.
 *
 * @module
 */

import type { ConstExpr, ValueType } from "../module/types.ts";

const TEXT = new TextEncoder();

/** Appends WebAssembly binary encodings to a growing buffer. */
export class BinaryWriter {
  #bytes: Uint8Array<ArrayBuffer>;
  #length = 0;

  /** A writer whose buffer starts at `capacity` bytes (it grows as needed). */
  constructor(capacity = 256) {
    this.#bytes = new Uint8Array(Math.max(16, capacity));
  }

  /** Bytes written so far. */
  get length(): number {
    return this.#length;
  }

  #reserve(n: number): void {
    const needed = this.#length + n;
    if (needed <= this.#bytes.length) return;
    const grown = new Uint8Array(Math.max(needed, 2 * this.#bytes.length));
    grown.set(this.#bytes.subarray(0, this.#length));
    this.#bytes = grown;
  }

  /** One byte. */
  u8(value: number): this {
    this.#reserve(1);
    this.#bytes[this.#length++] = value & 0xff;
    return this;
  }

  /** An unsigned LEB128 of a value in [0, 2^32). */
  u32(value: number): this {
    if (!Number.isInteger(value) || value < 0 || value > 0xffff_ffff) {
      throw new RangeError(`u32 out of range: ${value}`);
    }
    let v = value;
    this.#reserve(5);
    while (v >= 0x80) {
      this.#bytes[this.#length++] = (v & 0x7f) | 0x80;
      v = Math.floor(v / 128);
    }
    this.#bytes[this.#length++] = v;
    return this;
  }

  /** Raw bytes, as they are. */
  bytes(bytes: Uint8Array): this {
    this.#reserve(bytes.length);
    this.#bytes.set(bytes, this.#length);
    this.#length += bytes.length;
    return this;
  }

  /** A name: its UTF-8 length, then its bytes. */
  name(text: string): this {
    const encoded = TEXT.encode(text);
    return this.u32(encoded.length).bytes(encoded);
  }

  /** A section: its id, the size of what `body` wrote, then those bytes. */
  section(id: number, body: BinaryWriter): this {
    return this.u8(id).u32(body.length).bytes(body.finish());
  }

  /** The bytes written, as a view of the buffer (valid until the next write). */
  finish(): Uint8Array<ArrayBuffer> {
    return this.#bytes.subarray(0, this.#length);
  }
}

/** The binary encoding of each reference type. */
export const REF_TYPE = { funcref: 0x70, externref: 0x6f } as const;

/** The binary encoding of each value type. */
export const VALUE_TYPE: Readonly<Record<ValueType, number>> = {
  i32: 0x7f,
  i64: 0x7e,
  f32: 0x7d,
  f64: 0x7c,
  v128: 0x7b,
  funcref: 0x70,
  externref: 0x6f,
};

/** Writes a constant expression's instruction (without its `end`). */
export function writeConst(w: BinaryWriter, expr: ConstExpr): void {
  switch (expr.kind) {
    case "i32.const":
      w.u8(0x41).bytes(sleb(BigInt(expr.value)));
      return;
    case "i64.const":
      w.u8(0x42).bytes(sleb(expr.value));
      return;
    case "f32.const": {
      const bytes = new Uint8Array(4);
      new DataView(bytes.buffer).setFloat32(0, expr.value, true);
      w.u8(0x43).bytes(bytes);
      return;
    }
    case "f64.const": {
      const bytes = new Uint8Array(8);
      new DataView(bytes.buffer).setFloat64(0, expr.value, true);
      w.u8(0x44).bytes(bytes);
      return;
    }
    case "v128.const":
      w.u8(0xfd).u32(12).bytes(expr.bytes);
      return;
    case "global.get":
      w.u8(0x23).u32(expr.index);
      return;
    case "ref.null":
      w.u8(0xd0).u8(REF_TYPE[expr.type]);
      return;
    case "ref.func":
      w.u8(0xd2).u32(expr.index);
      return;
  }
}

/** A signed LEB128 of a value that fits 64 bits. */
export function sleb(value: bigint): Uint8Array {
  const out: number[] = [];
  let v = BigInt.asIntN(64, value);
  for (;;) {
    const byte = Number(v & 0x7fn);
    v >>= 7n;
    const done = (v === 0n && (byte & 0x40) === 0) || (v === -1n && (byte & 0x40) !== 0);
    out.push(done ? byte : byte | 0x80);
    if (done) return Uint8Array.from(out);
  }
}
