/**
 * A linear memory living in a pool slot (or its own mapping, on demand).
 *
 * @module
 */

import { LimitError, ResourceError, WasmpoolError } from "./errors.ts";
import type { NativeRef, Slot, View } from "./internal.ts";
import { Code, describeErrno } from "./native_errors.ts";

/** Bytes in a WebAssembly page. */
export const WASM_PAGE_BYTES = 65536;

// Reads a memory's slot and index for imports; set in the class's static block.
let memoryRef: (memory: Memory) => NativeRef;

/**
 * A linear memory. Its `buffer` covers exactly the accessible bytes: past them lies the guard
 * region, where an access by native code traps. Like `WebAssembly.Memory`, growing (and
 * disposal) detaches the previous buffer.
 */
export class Memory {
  #slot: Slot;
  #index: number;
  #address: number;
  #pages: number;
  #maxPages: number;
  #view: View | null = null;
  // Keeps the instance's lease (and so its slot) alive as long as this memory is reachable.
  readonly #lease: object;

  /** @internal Made by the engine at instantiation; not constructed by users. */
  constructor(
    slot: Slot,
    lease: object,
    index: number,
    address: number,
    pages: number,
    maxPages: number,
  ) {
    this.#slot = slot;
    this.#lease = lease;
    this.#index = index;
    this.#address = address;
    this.#pages = pages;
    this.#maxPages = maxPages;
  }

  /** The current size in 64 KiB pages. */
  get pages(): number {
    this.#slot.check("a memory");
    return this.#pages;
  }

  /** The largest size `grow` can reach, in pages: the module's maximum within the limits. */
  get maxPages(): number {
    this.#slot.check("a memory");
    return this.#maxPages;
  }

  /** The current size in bytes. */
  get byteLength(): number {
    return this.pages * WASM_PAGE_BYTES;
  }

  /** The base address of the memory in this process. */
  get address(): bigint {
    this.#slot.check("a memory");
    return BigInt(this.#address);
  }

  /**
   * An ArrayBuffer over exactly the accessible bytes (no copy). The same buffer is returned
   * until the memory grows or is disposed, which detach it.
   */
  get buffer(): ArrayBuffer {
    this.#slot.check("a memory");
    const view = this.#view ??= this.#slot.newView();
    view.buffer ??= this.#slot.arrayBuffer(this.#address, this.#pages * WASM_PAGE_BYTES);
    return view.buffer;
  }

  /**
   * Grows the memory by `deltaPages` and returns its previous size in pages. Throws
   * {@linkcode LimitError} past the maximum; the old buffer is detached either way on success.
   */
  grow(deltaPages: number): number {
    this.#slot.check("a memory");
    if (!Number.isInteger(deltaPages) || deltaPages < 0 || deltaPages > 65536) {
      throw new LimitError(
        `memory grow delta must be a whole number of pages from 0 to 65536, got ${deltaPages}`,
      );
    }
    const engine = this.#slot.engine;
    const scratch = engine.scratch;
    const result = engine.lib.memoryGrow(
      engine.pointer,
      this.#slot.id,
      this.#index,
      deltaPages,
      scratch.pointer,
      scratch.bytes,
    );
    if (result === Code.growPastMaximum) {
      throw new LimitError(
        `memory grow by ${deltaPages} pages from ${this.#pages} pages exceeds the limit of ` +
          `${this.#maxPages} pages`,
        { limit: "maxPages", value: this.#pages + deltaPages, maximum: this.#maxPages },
      );
    }
    if (result === Code.resource) {
      throw new ResourceError(
        `memory grow by ${deltaPages} pages failed: ${describeErrno(scratch.words[0])}`,
      );
    }
    if (result < 0) throw new WasmpoolError(`memory grow failed with native code ${result}`);
    this.#view?.detach();
    this.#pages = result + deltaPages;
    return result;
  }

  static {
    memoryRef = (memory) => {
      memory.#slot.check("a memory");
      return { slot: memory.#slot, index: memory.#index };
    };
  }
}

/** The slot and index of `memory`, for imports; throws DisposedError once it is released. */
export function refOfMemory(memory: Memory): NativeRef {
  return memoryRef(memory);
}
