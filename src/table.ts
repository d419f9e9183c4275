/**
 * A table of function references living in a pool slot (or its own mapping, on demand).
 *
 * @module
 */

import { ArgumentError, LimitError, WasmpoolError } from "./errors.ts";
import type { NativeRef, Slot, View } from "./internal.ts";
import { Code } from "./native_errors.ts";

const MAX_FUNCTION_INDEX = 0xffff_fffe;

// Reads a table's slot and index for imports; set in the class's static block.
let tableRef: (table: Table) => NativeRef;

/**
 * A table. Entries are function indices (in the defining module's function index space) or
 * `null`. Wasmpool does not run code, so a table holds indices, not callable functions.
 */
export class Table {
  #slot: Slot;
  #index: number;
  #address: number;
  #size: number;
  #maxSize: number;
  #view: View | null = null;
  readonly #element: "funcref" | "externref";
  // Keeps the instance's lease (and so its slot) alive as long as this table is reachable.
  readonly #lease: object;

  /** @internal Made by the engine at instantiation; not constructed by users. */
  constructor(
    slot: Slot,
    lease: object,
    index: number,
    address: number,
    size: number,
    maxSize: number,
    element: "funcref" | "externref",
  ) {
    this.#slot = slot;
    this.#lease = lease;
    this.#index = index;
    this.#address = address;
    this.#size = size;
    this.#maxSize = maxSize;
    this.#element = element;
  }

  /** The number of elements. */
  get size(): number {
    this.#slot.check("a table");
    return this.#size;
  }

  /** The largest size `grow` can reach: the module's maximum within the limits. */
  get maxSize(): number {
    this.#slot.check("a table");
    return this.#maxSize;
  }

  /** The element type. */
  get element(): "funcref" | "externref" {
    return this.#element;
  }

  #entries(): Uint32Array {
    const view = this.#view ??= this.#slot.newView();
    if (view.words === null) {
      view.buffer = this.#slot.arrayBuffer(this.#address, this.#size * 4);
      view.words = new Uint32Array(view.buffer);
    }
    return view.words;
  }

  #checkIndex(index: number): void {
    if (!Number.isInteger(index) || index < 0 || index >= this.#size) {
      throw new ArgumentError(
        `table index ${index} is out of bounds for a table of ${this.#size} elements`,
      );
    }
  }

  /** The function index at `index`, or `null`. */
  get(index: number): number | null {
    this.#slot.check("a table");
    this.#checkIndex(index);
    const entry = this.#entries()[index];
    return entry === 0 ? null : entry - 1;
  }

  /** Sets the entry at `index` to a function index or `null`. */
  set(index: number, value: number | null): void {
    this.#slot.check("a table");
    this.#checkIndex(index);
    this.#entries()[index] = encode(value);
  }

  /**
   * Grows the table by `delta` elements set to `init` (default `null`) and returns the previous
   * size. Throws {@linkcode LimitError} past the maximum.
   */
  grow(delta: number, init: number | null = null): number {
    this.#slot.check("a table");
    if (!Number.isInteger(delta) || delta < 0 || delta > 0xffff_ffff) {
      throw new LimitError(`table grow delta must be a whole number, got ${delta}`);
    }
    const entry = encode(init);
    const engine = this.#slot.engine;
    const scratch = engine.scratch;
    const result = engine.lib.tableGrow(
      engine.pointer,
      this.#slot.id,
      this.#index,
      delta,
      scratch.pointer,
      scratch.bytes,
    );
    if (result === Code.growPastMaximum) {
      throw new LimitError(
        `table grow by ${delta} elements from ${this.#size} elements exceeds the limit of ` +
          `${this.#maxSize} elements`,
        { limit: "maxSize", value: this.#size + delta, maximum: this.#maxSize },
      );
    }
    if (result < 0) throw new WasmpoolError(`table grow failed with native code ${result}`);
    this.#view?.detach();
    this.#size = result + delta;
    if (entry !== 0) this.#entries().fill(entry, result);
    return result;
  }

  static {
    tableRef = (table) => {
      table.#slot.check("a table");
      return { slot: table.#slot, index: table.#index };
    };
  }
}

/** The slot and index of `table`, for imports; throws DisposedError once it is released. */
export function refOfTable(table: Table): NativeRef {
  return tableRef(table);
}

function encode(value: number | null): number {
  if (value === null) return 0;
  if (!Number.isInteger(value) || value < 0 || value > MAX_FUNCTION_INDEX) {
    throw new ArgumentError(
      `a table entry must be a function index from 0 to ${MAX_FUNCTION_INDEX} or null, ` +
        `got ${String(value)}`,
    );
  }
  return value + 1;
}
