/**
 * What running a module needs, worked out once per module and kept with it: the rewritten
 * binary compiled by the runtime (pooling), or the original one (on demand), the shape of each
 * pooled memory, and how each export and import is wrapped.
 *
 * @module
 */

import { MalformedModuleError, WasmpoolError } from "../errors.ts";
import type { Translation } from "../module/translate.ts";
import type { ExternKind, FuncType, ValueType } from "../module/types.ts";
import { rewriteModule } from "./rewrite.ts";

/** The shape of a pooled memory: a memory is reused only for exactly this shape. */
export interface MemoryShape {
  /** Initial pages. */
  readonly min: number;
  /** Maximum pages. */
  readonly max: number;
  /** `min:max`, the pool's key. */
  readonly key: string;
}

/** One export as the guarded exports object makes it. */
export interface ExportPlan {
  /** The export name. */
  readonly name: string;
  /** What kind of item it is. */
  readonly kind: ExternKind;
  /** Its index in the module's index space of that kind. */
  readonly index: number;
  /** For a function: its signature. */
  readonly type: FuncType | null;
  /** For a table or a global: the type of what it holds. */
  readonly valueType: ValueType | null;
}

/** One imported function, for wrapping host functions. */
export interface FunctionImportPlan {
  /** The import's module name. */
  readonly module: string;
  /** The import's field name. */
  readonly name: string;
  /** The declared signature. */
  readonly type: FuncType;
}

/** One import, in order. */
export interface ImportPlan {
  /** The import's module name. */
  readonly module: string;
  /** The import's field name. */
  readonly name: string;
  /** What kind of item it is. */
  readonly kind: ExternKind;
}

/** What running a module needs, per strategy. */
export interface RunPlan {
  /** Every import, in order. */
  readonly imports: readonly ImportPlan[];
  /** The compiled binary: rewritten (pooling) or original (on demand). */
  readonly compiled: WebAssembly.Module;
  /** The pooled memories, by defined memory index; empty on demand. */
  readonly memories: readonly MemoryShape[];
  /** The exports, in order. */
  readonly exports: readonly ExportPlan[];
  /** The function imports, in order. */
  readonly functionImports: readonly FunctionImportPlan[];
  /** Whether the module imports anything but functions (tables, memories, globals). */
  readonly importsOtherThanFunctions: boolean;
  /** Whether any export or import signature carries a `funcref` (wrapped both ways). */
  readonly funcrefSignatures: boolean;
}

/** The two variants a module may be run as. */
export type RunVariant = "pooled" | "plain";

function compile(
  bytes: Uint8Array<ArrayBuffer>,
  original: Uint8Array<ArrayBuffer>,
): WebAssembly.Module {
  try {
    return new WebAssembly.Module(bytes);
  } catch (error) {
    if (!(error instanceof WebAssembly.CompileError)) throw error;
    if (bytes === original) throw new MalformedModuleError(error.message, 0);
    // Report what the runtime says of the module as given, not of the rewrite.
    try {
      new WebAssembly.Module(original);
    } catch (originalError) {
      if (originalError instanceof WebAssembly.CompileError) {
        throw new MalformedModuleError(originalError.message, 0);
      }
      throw originalError;
    }
    throw new WasmpoolError(
      `the runtime refused wasmpool's rewrite of a module it accepts: ${error.message}`,
      { cause: error },
    );
  }
}

function hasFuncref(type: FuncType): boolean {
  return type.params.includes("funcref") || type.results.includes("funcref");
}

/**
 * Plans running `translation`'s module from its `bytes` (wasmpool's own copy, which the
 * translation's views point into), as `variant`. Throws MalformedModuleError when the runtime
 * refuses to compile the module.
 */
export function planRun(
  bytes: Uint8Array<ArrayBuffer>,
  translation: Translation,
  variant: RunVariant,
): RunPlan {
  const parsed = translation.parsed;
  const memories = translation.memories.map((m) => ({
    min: m.min,
    max: m.max,
    key: `${m.min}:${m.max}`,
  }));
  const binary = variant === "plain" ? bytes : rewriteModule(bytes, parsed, {
    memories,
    emptyData: () => false,
  });
  const compiled = compile(binary, bytes);

  const importedFunctions = translation.importCounts.function;
  const functionType = (index: number): FuncType =>
    index < importedFunctions
      ? parsed.types[functionImportTypes(translation)[index]]
      : parsed.types[parsed.functions[index - importedFunctions]];
  const tableTypes: ValueType[] = [];
  for (const i of parsed.imports) if (i.desc.kind === "table") tableTypes.push(i.desc.type.element);
  for (const t of parsed.tables) tableTypes.push(t.element);
  const exports = parsed.exports.map((e) => ({
    name: e.name,
    kind: e.kind,
    index: e.index,
    type: e.kind === "function" ? functionType(e.index) : null,
    valueType: e.kind === "table"
      ? tableTypes[e.index]
      : e.kind === "global"
      ? translation.globalTypes[e.index].type
      : null,
  }));
  const functionImports: FunctionImportPlan[] = [];
  let importsOtherThanFunctions = false;
  for (const i of parsed.imports) {
    if (i.desc.kind === "function") {
      functionImports.push({ module: i.module, name: i.name, type: parsed.types[i.desc.type] });
    } else importsOtherThanFunctions = true;
  }
  const funcrefSignatures = exports.some((e) => e.type !== null && hasFuncref(e.type)) ||
    functionImports.some((f) => hasFuncref(f.type));
  return {
    imports: parsed.imports.map((i) => ({ module: i.module, name: i.name, kind: i.desc.kind })),
    compiled,
    memories: variant === "plain" ? [] : memories,
    exports,
    functionImports,
    importsOtherThanFunctions,
    funcrefSignatures,
  };
}

function functionImportTypes(translation: Translation): number[] {
  const types: number[] = [];
  for (const i of translation.parsed.imports) {
    if (i.desc.kind === "function") types.push(i.desc.type);
  }
  return types;
}
