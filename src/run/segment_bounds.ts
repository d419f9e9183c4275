/**
 * Segments that do not fit, found again after the runtime refused them. The runtime's
 * `new WebAssembly.Instance` throws a bare `WebAssembly.RuntimeError` for an active data or
 * element segment past the end of its memory or table; `Engine#allocate` throws
 * OutOfBoundsError for the same module. {@linkcode segmentError} finds the segment the runtime
 * tripped on (elements before data, each in order, as the spec applies them) and gives the
 * allocator's error, with the runtime's as its `cause`.
 *
 * Only a segment that provably does not fit becomes OutOfBoundsError: wasmpool's rewrite
 * exports the start function instead of declaring it, so nothing else the constructor runs can
 * trap, and any other error is passed on as it is (a start function's trap included, which
 * wasmpool calls later).
 *
 * @module
 */

import type { OutOfBoundsError } from "../errors.ts";
import type { ConstExpr, ParsedModule } from "../module/types.ts";
import { dataOutOfBounds, elementsOutOfBounds } from "../native_errors.ts";
import { unguard } from "./exports.ts";
import { type ImportObject, importValues } from "./import_values.ts";
import type { RunPlan } from "./plan.ts";

const PAGE_BYTES = 65536;
/** How deep a segment offset may follow immutable globals (as translate.ts resolves them). */
const MAX_GLOBAL_DEPTH = 2;

/**
 * `error`, thrown by the runtime's `new WebAssembly.Instance` of `parsed`'s module (planned as
 * `plan`) with `imports`: an OutOfBoundsError naming the first active segment that does not
 * fit, caused by `error`, when `error` is a RuntimeError and such a segment exists; else
 * `error` itself.
 */
export function segmentError(
  error: unknown,
  parsed: ParsedModule,
  plan: RunPlan,
  imports: ImportObject | undefined,
): unknown {
  if (!(error instanceof WebAssembly.RuntimeError)) return error;
  let values: unknown[];
  try {
    values = importValues(plan.imports, imports);
  } catch {
    return error; // the runtime linked these imports: this cannot fail, but never mask `error`
  }
  return outOfBounds(parsed, new Sizes(parsed, values), { cause: error }) ?? error;
}

/** What the module's segments are checked against: its memories, tables and global values. */
class Sizes {
  readonly #parsed: ParsedModule;
  readonly #memories: unknown[] = [];
  readonly #tables: unknown[] = [];
  readonly #globals: unknown[] = [];

  constructor(parsed: ParsedModule, values: readonly unknown[]) {
    this.#parsed = parsed;
    parsed.imports.forEach((i, n) => {
      const value = unguard(values[n])?.raw ?? values[n];
      if (i.desc.kind === "memory") this.#memories.push(value);
      else if (i.desc.kind === "table") this.#tables.push(value);
      else if (i.desc.kind === "global") this.#globals.push(value);
    });
  }

  /** Bytes of memory `index` (imports first) as instantiation found it; NaN when unknown. */
  memoryBytes(index: number): number {
    const imported = this.#memories.length;
    if (index >= imported) {
      return (this.#parsed.memories[index - imported]?.min ?? NaN) * PAGE_BYTES;
    }
    const memory = this.#memories[index];
    return memory instanceof WebAssembly.Memory ? memory.buffer.byteLength : NaN;
  }

  /** Elements of table `index` (imports first) as instantiation found it; NaN when unknown. */
  tableElements(index: number): number {
    const imported = this.#tables.length;
    if (index >= imported) return this.#parsed.tables[index - imported]?.min ?? NaN;
    const table = this.#tables[index];
    return table instanceof WebAssembly.Table ? table.length : NaN;
  }

  /** The unsigned 32-bit value of a segment offset; NaN when it cannot be known. */
  offset(expr: ConstExpr | null, depth = 0): number {
    if (expr === null) return NaN;
    if (expr.kind === "i32.const") return expr.value >>> 0;
    if (expr.kind !== "global.get" || depth > MAX_GLOBAL_DEPTH) return NaN;
    const imported = this.#globals.length;
    if (expr.index >= imported) {
      return this.offset(this.#parsed.globals[expr.index - imported]?.init ?? null, depth + 1);
    }
    const global = this.#globals[expr.index];
    const value = global instanceof WebAssembly.Global ? global.value : global;
    return typeof value === "number" ? value >>> 0 : NaN;
  }
}

/** The error for the first active segment of `parsed` that does not fit; null when all do. */
function outOfBounds(
  parsed: ParsedModule,
  sizes: Sizes,
  options: ErrorOptions,
): OutOfBoundsError | null {
  const elements = parsed.elements;
  for (let s = 0; s < elements.length; s++) {
    const segment = elements[s];
    if (segment.mode !== "active") continue;
    const offset = sizes.offset(segment.offset);
    const size = sizes.tableElements(segment.table);
    const count = segment.elements.length;
    // Past the end even when empty: the spec's table.init traps for offset + 0 > size.
    if (offset + count > size) {
      return elementsOutOfBounds(s, count, offset, segment.table, size, options);
    }
  }
  const data = parsed.data;
  for (let s = 0; s < data.length; s++) {
    const segment = data[s];
    if (segment.mode !== "active") continue;
    const offset = sizes.offset(segment.offset);
    const size = sizes.memoryBytes(segment.memory);
    const bytes = segment.data.length;
    if (offset + bytes > size) {
      return dataOutOfBounds(s, bytes, offset, segment.memory, size, options);
    }
  }
  return null;
}
