/**
 * A growable byte buffer with the WebAssembly binary encodings the rewrite needs: LEB128
 * integers, names, vectors and sections.
 *
 * @module
 */

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
