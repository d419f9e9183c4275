/**
 * What running a module needs, worked out once per module and kept with it: the rewritten
 * binary (see rewrite.ts) compiled by the runtime, the shape of each pooled memory, and the
 * imports and exports in order.
 *
 * @module
 */

import { MalformedModuleError, WasmpoolError } from "../errors.ts";
import type { Translation } from "../module/translate.ts";
import type { ExternKind } from "../module/types.ts";
import { type FuncRefPlan, funcRefPlan } from "./func_ref_plan.ts";
import type { CodeFacts } from "./instrument.ts";
import { NO_CHECKS, type RunChecks } from "./interrupt.ts";
import { codeObstacle, declaredObstacle } from "./recyclability.ts";
import { rewriteModule } from "./rewrite.ts";
import type { LogicalState } from "./logical_memory.ts";

/** The shape of a pooled memory: a memory is reused only for exactly this shape. */
export interface MemoryShape {
  /** Initial pages. */
  readonly min: number;
  /** Maximum pages; null only on demand, for a module that declares none. */
  readonly max: number | null;
  /** `min:max`, the pool's key. */
  readonly key: string;
}

/** One import or export, in order. */
export interface ItemPlan {
  /** The import's module name; empty for an export. */
  readonly module: string;
  /** The import's field name, or the export's name. */
  readonly name: string;
  /** What kind of item it is. */
  readonly kind: ExternKind;
}

/** What running a module needs. */
export interface RunPlan {
  /** The compiled rewrite. */
  readonly compiled: WebAssembly.Module;
  /** What the module's code does. */
  readonly facts: CodeFacts;
  /** Whether the module has a start function (exported by the rewrite, called by wasmpool). */
  readonly start: boolean;
  /**
   * The memories wasmpool passes in, by defined memory index: pooled ones (pooling), or fresh
   * ones (on demand with interruption, whose epoch memory must come after them); else empty.
   */
  readonly memories: readonly MemoryShape[];
  /** The checks compiled in. */
  readonly checks: RunChecks;
  /** Every import, in order. */
  readonly imports: readonly ItemPlan[];
  /** Every export, in order. */
  readonly exports: readonly ItemPlan[];
  /**
   * Whether a recycled instance's tables, globals or logical size need resetting (its `reset`
   * export).
   */
  readonly resets: boolean;
  /**
   * Memory 0's logical size (logical_memory.ts): whether the module was grown from JavaScript,
   * shared by its instances; null when it has none.
   */
  readonly logical: LogicalState | null;
  /** Why instances cannot be recycled (recyclability.ts); null when they can. */
  readonly notRecyclable: string | null;
  /** The declared arity of each function import, in order (for recycled instances). */
  readonly importArities: readonly number[];
  /**
   * A reservation's variant: how many of `memories`, first, are the module's imported
   * memories, passed by wasmpool (`imports` then lists no memory); 0 otherwise.
   */
  readonly imported: number;
  /**
   * Where function references cross the module's boundary, bound to a recycled instance's
   * tenant there (func_refs.ts); null when nowhere.
   */
  readonly funcRefs: FuncRefPlan | null;
}

/** An imported memory as a reservation's variant passes it: pooled, holding its image. */
export interface ImportedMemoryPlan {
  /** The pooled memory's shape. */
  readonly shape: MemoryShape;
  /** Whether the memory's image holds every active data segment into it. */
  readonly imaged: boolean;
}

/**
 * The ways a module runs: its memories pooled, or made by the runtime (on demand), or for a
 * reservation (its imported memories pooled too: see reservation.ts).
 */
export type RunVariant = "pooled" | "plain" | "reserved";

/**
 * Throws MalformedModuleError, with the runtime's own message, unless the runtime accepts
 * `original`. The rewrite only appends to index spaces, so a reference one past the end (an
 * invalid module) could become valid: the module as given is what must validate, before it is
 * planned.
 */
export function validateForRuntime(original: Uint8Array<ArrayBuffer>): void {
  if (WebAssembly.validate(original)) return;
  try {
    new WebAssembly.Module(original);
  } catch (error) {
    if (error instanceof WebAssembly.CompileError) throw new MalformedModuleError(error.message, 0);
    throw error;
  }
  throw new MalformedModuleError("the runtime does not validate the module", 0);
}

function compile(bytes: Uint8Array<ArrayBuffer>): WebAssembly.Module {
  try {
    return new WebAssembly.Module(bytes);
  } catch (error) {
    if (!(error instanceof WebAssembly.CompileError)) throw error;
    throw new WasmpoolError(
      `the runtime refused wasmpool's rewrite of a module it accepts: ${error.message}`,
      { cause: error },
    );
  }
}

/**
 * Plans running `translation`'s module from its `bytes` (wasmpool's own copy, which the
 * translation's views point into, validated by {@linkcode validateForRuntime}), as `variant`;
 * `imaged` when every data segment is in the module's memory images, which the pool puts in
 * place (then the rewrite empties every active segment into a defined memory); with `checks`
 * compiled in. A reservation's variant passes `reserved`, one per imported memory: the rewrite
 * renames those imports to wasmpool's, and empties the segments of each one `imaged`. With
 * `logicalMemory` (`recycleGrownMemoryPages` > 0), memory 0 may get a logical size.
 */
export function planRun(
  bytes: Uint8Array<ArrayBuffer>,
  translation: Translation,
  variant: RunVariant,
  imaged: boolean,
  checks: RunChecks = NO_CHECKS,
  reserved: readonly ImportedMemoryPlan[] = [],
  logicalMemory = false,
): RunPlan {
  const parsed = translation.parsed;
  const pooled = variant !== "plain";
  if (variant === "reserved" && reserved.length !== translation.importCounts.memory) {
    throw new RangeError(`plan: ${reserved.length} reserved of ${translation.importCounts.memory}`);
  }
  // On demand, memories stay the module's own, unless the epoch memory must follow them.
  const defined: MemoryShape[] | null = pooled
    ? translation.memories.map((m) => ({ min: m.min, max: m.max, key: `${m.min}:${m.max}` }))
    : checks.interruption
    ? parsed.memories.map((m) => ({ min: m.min, max: m.max, key: `${m.min}:${m.max}` }))
    : null;
  const memories = defined === null ? null : [...reserved.map((r) => r.shape), ...defined];
  const imports = reserved.length === 0
    ? parsed.imports
    : parsed.imports.filter((i) => i.desc.kind !== "memory");
  // Segment `i` is emptied when an image holds it: a defined memory's, or a reserved one's.
  const emptied = (i: number): boolean => {
    const segment = parsed.data[i];
    if (!pooled || segment.mode !== "active") return false;
    return segment.memory < reserved.length ? reserved[segment.memory].imaged : imaged;
  };
  const allImaged = parsed.data.every((_, i) => parsed.data[i].mode !== "active" || emptied(i));
  const declared = declaredObstacle(parsed, pooled, allImaged, reserved.length);
  const rewritten = rewriteModule(bytes, parsed, {
    memories: defined,
    importedMemories: reserved.map((r) => r.shape),
    emptyData: emptied,
    recycle: declared === null,
    checks,
    logicalMemory,
  });
  return {
    compiled: compile(rewritten.bytes),
    facts: rewritten.facts,
    checks,
    resets: rewritten.resets,
    logical: rewritten.logical ? { grownFromJs: false } : null,
    notRecyclable: declared ?? codeObstacle(rewritten.facts),
    importArities: parsed.imports.flatMap((i) =>
      i.desc.kind === "function" ? [parsed.types[i.desc.type].params.length] : []
    ),
    funcRefs: funcRefPlan(parsed),
    start: parsed.start !== null,
    memories: memories ?? [],
    imported: reserved.length,
    imports: imports.map((i) => ({ module: i.module, name: i.name, kind: i.desc.kind })),
    exports: parsed.exports.map((e) => ({ module: "", name: e.name, kind: e.kind })),
  };
}
