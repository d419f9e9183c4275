/**
 * A bounds-checked byte reader for WebAssembly module binaries.
 *
 * Every read checks its bounds first and throws {@linkcode MalformedModuleError}
 * with the absolute byte offset at which the failed read started; nothing else is
 * ever thrown. Readers for a part of a module (a section) share the module's buffer
 * and keep absolute offsets, so errors always point into the whole module.
 *
 * @module
 */

import { MalformedModuleError } from "../errors.ts";

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** Reads LEB128 integers, floats, names and byte ranges from a `Uint8Array`. */
export class ByteReader {
  readonly #buf: Uint8Array;
  readonly #end: number;
  #pos: number;
  #view: DataView | null = null;

  /**
   * Creates a reader over `buf[start, end)`. Offsets stay relative to `buf`.
   *
   * @param buf The bytes to read.
   * @param start The offset of the first byte to read.
   * @param end The offset one past the last byte the reader may read.
   */
  constructor(buf: Uint8Array, start = 0, end: number = buf.length) {
    if (!(0 <= start && start <= end && end <= buf.length)) {
      throw new MalformedModuleError("reader range out of bounds", start);
    }
    this.#buf = buf;
    this.#pos = start;
    this.#end = end;
  }

  /** The absolute offset of the next byte to read. */
  get offset(): number {
    return this.#pos;
  }

  /** The offset one past the last readable byte. */
  get end(): number {
    return this.#end;
  }

  /** How many bytes are left before {@linkcode ByteReader.end}. */
  get remaining(): number {
    return this.#end - this.#pos;
  }

  /** Whether every byte has been read. */
  atEnd(): boolean {
    return this.#pos >= this.#end;
  }

  /**
   * Returns a reader over the next `length` bytes and skips them in this reader.
   *
   * @param length The number of bytes the new reader covers.
   * @returns A reader sharing this reader's buffer and absolute offsets.
   */
  sub(length: number): ByteReader {
    const start = this.#pos;
    this.#need(length, start);
    this.#pos = start + length;
    return new ByteReader(this.#buf, start, start + length);
  }

  /**
   * Moves the reader to `offset`, which must lie within its range. Lets a caller that reads the
   * common cases from the buffer itself hand the rest to the reader.
   *
   * @param offset The absolute offset of the next byte to read.
   */
  seek(offset: number): void {
    if (!(offset >= 0 && offset <= this.#end)) {
      throw new MalformedModuleError("reader offset out of bounds", offset);
    }
    this.#pos = offset;
  }

  /** Reads one byte. */
  u8(): number {
    const at = this.#pos;
    if (at >= this.#end) throw eof(at);
    this.#pos = at + 1;
    return this.#buf[at];
  }

  /** Returns the next byte without consuming it. */
  peek(): number {
    const at = this.#pos;
    if (at >= this.#end) throw eof(at);
    return this.#buf[at];
  }

  /** Reads an unsigned 32-bit LEB128 integer (at most 5 bytes). */
  u32(): number {
    const start = this.#pos;
    const buf = this.#buf;
    const end = this.#end;
    let pos = start;
    if (pos >= end) throw eof(start);
    let byte = buf[pos++];
    if (byte < 0x80) {
      this.#pos = pos;
      return byte;
    }
    let result = byte & 0x7f;
    for (let shift = 7; shift < 28; shift += 7) {
      if (pos >= end) throw eof(start);
      byte = buf[pos++];
      result |= (byte & 0x7f) << shift;
      if (byte < 0x80) {
        this.#pos = pos;
        return result >>> 0;
      }
    }
    if (pos >= end) throw eof(start);
    byte = buf[pos++];
    if (byte & 0x80) throw new MalformedModuleError("integer representation too long", start);
    if (byte & 0x70) throw new MalformedModuleError("integer too large", start);
    this.#pos = pos;
    return (result | (byte << 28)) >>> 0;
  }

  /** Reads a signed 32-bit LEB128 integer (at most 5 bytes). */
  s32(): number {
    const start = this.#pos;
    const buf = this.#buf;
    const end = this.#end;
    let pos = start;
    let result = 0;
    for (let shift = 0; shift < 28; shift += 7) {
      if (pos >= end) throw eof(start);
      const byte = buf[pos++];
      result |= (byte & 0x7f) << shift;
      if (byte < 0x80) {
        this.#pos = pos;
        const unused = 32 - (shift + 7);
        return (result << unused) >> unused;
      }
    }
    if (pos >= end) throw eof(start);
    const byte = buf[pos++];
    if (byte & 0x80) throw new MalformedModuleError("integer representation too long", start);
    // Bits 4..6 of the last byte lie beyond bit 31 and must repeat the sign bit (bit 3).
    const high = byte & 0x78;
    if (high !== 0 && high !== 0x78) throw new MalformedModuleError("integer too large", start);
    this.#pos = pos;
    return result | (byte << 28);
  }

  /** Reads a signed 64-bit LEB128 integer (at most 10 bytes). */
  s64(): bigint {
    const start = this.#pos;
    const buf = this.#buf;
    const end = this.#end;
    let pos = start;
    // Up to 7 bytes (49 bits) are accumulated exactly in a double.
    let small = 0;
    let scale = 1;
    for (let i = 0; i < 7; i++) {
      if (pos >= end) throw eof(start);
      const byte = buf[pos++];
      small += (byte & 0x7f) * scale;
      scale *= 128;
      if (byte < 0x80) {
        this.#pos = pos;
        return BigInt(byte & 0x40 ? small - scale : small);
      }
    }
    let result = BigInt(small);
    let shift = 49n;
    for (let i = 7; i < 9; i++) {
      if (pos >= end) throw eof(start);
      const byte = buf[pos++];
      result |= BigInt(byte & 0x7f) << shift;
      shift += 7n;
      if (byte < 0x80) {
        this.#pos = pos;
        return BigInt.asIntN(Number(shift), result);
      }
    }
    if (pos >= end) throw eof(start);
    const byte = buf[pos++];
    if (byte & 0x80) throw new MalformedModuleError("integer representation too long", start);
    // Only bit 0 of the tenth byte is value (bit 63); bits 1..6 must repeat it.
    const high = byte & 0x7f;
    if (high !== 0 && high !== 0x7f) throw new MalformedModuleError("integer too large", start);
    this.#pos = pos;
    return BigInt.asIntN(64, result | (BigInt(byte & 1) << 63n));
  }

  /**
   * Skips a signed 64-bit LEB128 integer (at most 10 bytes), checking it as {@linkcode s64}
   * would, without computing its value.
   */
  skipS64(): void {
    const start = this.#pos;
    const buf = this.#buf;
    const end = this.#end;
    let pos = start;
    for (let i = 0; i < 9; i++) {
      if (pos >= end) throw eof(start);
      if (buf[pos++] < 0x80) {
        this.#pos = pos;
        return;
      }
    }
    if (pos >= end) throw eof(start);
    const byte = buf[pos++];
    if (byte & 0x80) throw new MalformedModuleError("integer representation too long", start);
    const high = byte & 0x7f;
    if (high !== 0 && high !== 0x7f) throw new MalformedModuleError("integer too large", start);
    this.#pos = pos;
  }

  /** Reads a little-endian IEEE 754 single-precision float. */
  f32(): number {
    const at = this.#pos;
    this.#need(4, at);
    this.#pos = at + 4;
    return this.#dataView().getFloat32(at, true);
  }

  /** Reads a little-endian IEEE 754 double-precision float. */
  f64(): number {
    const at = this.#pos;
    this.#need(8, at);
    this.#pos = at + 8;
    return this.#dataView().getFloat64(at, true);
  }

  /**
   * Returns a view (not a copy) of the next `length` bytes.
   *
   * @param length The number of bytes to read.
   */
  bytes(length: number): Uint8Array {
    const at = this.#pos;
    this.#need(length, at);
    this.#pos = at + length;
    return this.#buf.subarray(at, at + length);
  }

  /**
   * Skips `length` bytes.
   *
   * @param length The number of bytes to skip.
   */
  skip(length: number): void {
    const at = this.#pos;
    this.#need(length, at);
    this.#pos = at + length;
  }

  /** Reads a name: a u32 byte length followed by that many bytes of valid UTF-8. */
  name(): string {
    const start = this.#pos;
    const length = this.u32();
    const at = this.#pos;
    this.#need(length, start);
    this.#pos = at + length;
    const buf = this.#buf;
    let ascii = length <= 32;
    for (let i = at; ascii && i < at + length; i++) ascii = buf[i] < 0x80;
    if (ascii) return String.fromCharCode(...buf.subarray(at, at + length));
    try {
      return utf8.decode(buf.subarray(at, at + length));
    } catch {
      throw new MalformedModuleError("malformed UTF-8 encoding", at);
    }
  }

  #need(length: number, at: number): void {
    if (!(length >= 0 && length <= this.#end - at)) throw eof(at);
  }

  #dataView(): DataView {
    this.#view ??= new DataView(this.#buf.buffer, this.#buf.byteOffset, this.#buf.byteLength);
    return this.#view;
  }
}

function eof(offset: number): MalformedModuleError {
  return new MalformedModuleError("unexpected end", offset);
}
