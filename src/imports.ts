/**
 * Import resolution: finding each declared import in the caller's import object, checking it
 * against the declared type, and writing what the native side needs into the scratch area.
 *
 * @module
 */

import { LinkError } from "./errors.ts";
import { Global, trustedGlobal } from "./global.ts";
import type { EngineState, NativeRef, Slot } from "./internal.ts";
import { Memory, refOfMemory } from "./memory.ts";
import type { Translation } from "./module/translate.ts";
import type { FuncType, Import } from "./module/types.ts";
import { refOfTable, Table } from "./table.ts";

/** A function exported by an instance. Wasmpool does not run code; this names the function. */
export class FunctionExport {
  /** The function's index in its module's function index space. */
  readonly index: number;
  /** Its signature. */
  readonly type: FuncType;

  /** @internal Made by an instance's `exports`. */
  constructor(index: number, type: FuncType) {
    this.index = index;
    this.type = type;
    Object.freeze(this);
  }
}

/** A host function or a function exported by another instance. */
export type ImportedFunction = ((...args: never[]) => unknown) | FunctionExport;

/** What can be passed for one import. */
export type ImportValue = Memory | Table | Global | number | bigint | ImportedFunction;

/** The import object: `{ [module]: { [name]: value } }`. */
export type Imports = Readonly<Record<string, Readonly<Record<string, ImportValue>>>>;

/** The items a module imports, by kind, in index order, and the slots they keep alive. */
export interface ResolvedImports {
  /** Imported functions. */
  readonly functions: ImportedFunction[];
  /** Imported memories. */
  readonly memories: Memory[];
  /** Imported tables. */
  readonly tables: Table[];
  /** Imported globals. */
  readonly globals: Global[];
  /** Slots of other instances that this instance will hold. */
  readonly slots: Slot[];
}

function name(i: Import): string {
  return `${JSON.stringify(i.module)}.${JSON.stringify(i.name)}`;
}

function lookup(imports: Imports, i: Import): ImportValue {
  const namespace = Object.hasOwn(imports, i.module) ? imports[i.module] : undefined;
  const value = namespace && Object.hasOwn(namespace, i.name) ? namespace[i.name] : undefined;
  if (value === undefined) throw new LinkError(`unknown import: ${name(i)} has not been defined`);
  return value;
}

function limitsMatch(
  what: string,
  i: Import,
  actual: { min: number; max: number },
  declared: { min: number; max: number | null },
): void {
  if (actual.min < declared.min) {
    throw new LinkError(
      `incompatible import type for ${name(i)}: ${what} of ${actual.min} is smaller than the ` +
        `declared minimum of ${declared.min}`,
    );
  }
  if (declared.max !== null && actual.max > declared.max) {
    throw new LinkError(
      `incompatible import type for ${name(i)}: ${what} maximum of ${actual.max} exceeds the ` +
        `declared maximum of ${declared.max}`,
    );
  }
}

/**
 * Resolves every import of `translation` and writes memory and table references and
 * offset-feeding global values into the scratch words. Throws LinkError on a mismatch.
 */
export function resolveImports(
  engine: EngineState,
  translation: Translation,
  imports: Imports,
): ResolvedImports {
  const resolved: ResolvedImports = {
    functions: [],
    memories: [],
    tables: [],
    globals: [],
    slots: [],
  };
  const words = engine.scratch.words;
  const counts = translation.importCounts;
  const firstMemorySlot = translation.memories.length + translation.tables.length;
  const firstTableSlot = firstMemorySlot + counts.memory;
  const firstGlobalSlot = firstTableSlot + counts.table;
  const writeSlot = (slot: number, low: number, high: number): void => {
    words[8 + 2 * slot] = low;
    words[9 + 2 * slot] = high;
  };
  // An imported memory or table: its defining instance's slot is held, and the native side is
  // told where it lives.
  const holdRef = (i: Import, ref: NativeRef, scratchSlot: number): void => {
    if (ref.slot.engine !== engine) {
      throw new LinkError(`import ${name(i)} belongs to another engine`);
    }
    resolved.slots.push(ref.slot);
    writeSlot(scratchSlot, ref.slot.id, ref.index);
  };
  for (const { import: i, kindIndex } of translation.imports) {
    const value = lookup(imports, i);
    switch (i.desc.kind) {
      case "function":
        if (typeof value !== "function" && !(value instanceof FunctionExport)) {
          throw new LinkError(`incompatible import type for ${name(i)}: expected a function`);
        }
        resolved.functions.push(value);
        break;
      case "memory": {
        if (!(value instanceof Memory)) {
          throw new LinkError(`incompatible import type for ${name(i)}: expected a Memory`);
        }
        holdRef(i, refOfMemory(value), firstMemorySlot + kindIndex);
        limitsMatch("memory size", i, { min: value.pages, max: value.maxPages }, i.desc.type);
        resolved.memories.push(value);
        break;
      }
      case "table": {
        if (!(value instanceof Table) || value.element !== i.desc.type.element) {
          throw new LinkError(
            `incompatible import type for ${name(i)}: expected a ${i.desc.type.element} Table`,
          );
        }
        holdRef(i, refOfTable(value), firstTableSlot + kindIndex);
        limitsMatch("table size", i, { min: value.size, max: value.maxSize }, i.desc.type);
        resolved.tables.push(value);
        break;
      }
      case "global": {
        const global = toGlobal(i, value);
        resolved.globals.push(global);
        if (translation.offsetGlobals) {
          const v = global.value;
          if (typeof v === "number") writeSlot(firstGlobalSlot + kindIndex, v >>> 0, 0);
          else if (typeof v === "bigint") {
            writeSlot(
              firstGlobalSlot + kindIndex,
              Number(BigInt.asUintN(32, v)),
              Number(BigInt.asUintN(32, v >> 32n)),
            );
          }
        }
        break;
      }
    }
  }
  return resolved;
}

function toGlobal(i: Import, value: ImportValue): Global {
  if (i.desc.kind !== "global") throw new Error("unreachable");
  const type = i.desc.type;
  if (value instanceof Global) {
    if (value.type !== type.type || value.mutable !== type.mutable) {
      throw new LinkError(
        `incompatible import type for ${name(i)}: expected ${type.mutable ? "mutable " : ""}` +
          `${type.type}, got ${value.mutable ? "mutable " : ""}${value.type}`,
      );
    }
    return value;
  }
  if (type.mutable) {
    throw new LinkError(
      `incompatible import type for ${name(i)}: a mutable global must be imported as a Global`,
    );
  }
  try {
    return trustedGlobal({ type: type.type }, value);
  } catch (cause) {
    throw new LinkError(`incompatible import type for ${name(i)}: ${(cause as Error).message}`);
  }
}
