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

function atMost(what: string, limit: keyof ModuleLimits, count: number, max: number): void {
  if (count > max) {
    throw new LimitError(`${what} of ${count} exceeds the limit of ${max}`, {
      limit,
      value: count,
      maximum: max,
    });
  }
}

/** Throws {@linkcode LimitError} with Wasmtime's message for the first limit `parsed` breaks. */
export function validateModuleLimits(parsed: ParsedModule, limits: ModuleLimits): void {
  const counts: [string, keyof ModuleLimits, number][] = [
    ["imported function count", "importedFunctions", importCount(parsed, "function")],
    ["imported tables count", "importedTables", importCount(parsed, "table")],
    ["imported memories count", "importedMemories", importCount(parsed, "memory")],
    ["imported globals count", "importedGlobals", importCount(parsed, "global")],
    ["defined types count", "types", parsed.types.length],
    ["defined functions count", "functions", parsed.functions.length],
    ["defined tables count", "tables", parsed.tables.length],
    ["defined memories count", "memories", parsed.memories.length],
    ["defined globals count", "globals", parsed.globals.length],
  ];
  for (const [what, limit, count] of counts) atMost(what, limit, count, limits[limit]);
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
        { limit: "tableElements", value: table.min, maximum: tableElements },
      );
    }
  });
  const memoryBase = importCount(parsed, "memory");
  parsed.memories.forEach((memory, i) => {
    if (memory.min > memoryPages) {
      throw new LimitError(
        `memory index ${memoryBase + i} has a minimum page size of ${memory.min} ` +
          `which exceeds the limit of ${memoryPages}`,
        { limit: "memoryPages", value: memory.min, maximum: memoryPages },
      );
    }
  });
}
