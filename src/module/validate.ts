/**
 * Validation of a translated module against a pooling engine's module limits, with Wasmtime's
 * messages, so that a module that cannot fit a slot is refused before any instantiation.
 *
 * @module
 */

import type { ModuleLimits } from "../config.ts";
import { LimitError } from "../errors.ts";
import type { ParsedModule } from "./types.ts";

function importCount(parsed: ParsedModule, kind: string): number {
  let count = 0;
  for (const i of parsed.imports) if (i.desc.kind === kind) count++;
  return count;
}

function atMost(what: string, count: number, max: number): void {
  if (count > max) throw new LimitError(`${what} of ${count} exceeds the limit of ${max}`);
}

/** Throws {@linkcode LimitError} with Wasmtime's message for the first limit `parsed` breaks. */
export function validateModuleLimits(parsed: ParsedModule, limits: ModuleLimits): void {
  atMost("imported function count", importCount(parsed, "function"), limits.importedFunctions);
  atMost("imported tables count", importCount(parsed, "table"), limits.importedTables);
  atMost("imported memories count", importCount(parsed, "memory"), limits.importedMemories);
  atMost("imported globals count", importCount(parsed, "global"), limits.importedGlobals);
  atMost("defined types count", parsed.types.length, limits.types);
  atMost("defined functions count", parsed.functions.length, limits.functions);
  atMost("defined tables count", parsed.tables.length, limits.tables);
  atMost("defined memories count", parsed.memories.length, limits.memories);
  atMost("defined globals count", parsed.globals.length, limits.globals);
  checkMinimums(parsed, limits.tableElements, limits.memoryPages);
}

/** Throws when a defined table or memory's minimum exceeds what one slot holds. */
export function checkMinimums(
  parsed: ParsedModule,
  tableElements: number,
  memoryPages: number,
): void {
  const tableBase = importCount(parsed, "table");
  parsed.tables.forEach((table, i) => {
    if (table.min > tableElements) {
      throw new LimitError(
        `table index ${tableBase + i} has a minimum element size of ${table.min} ` +
          `which exceeds the limit of ${tableElements}`,
      );
    }
  });
  const memoryBase = importCount(parsed, "memory");
  parsed.memories.forEach((memory, i) => {
    if (memory.min > memoryPages) {
      throw new LimitError(
        `memory index ${memoryBase + i} has a minimum page size of ${memory.min} ` +
          `which exceeds the limit of ${memoryPages}`,
      );
    }
  });
}
