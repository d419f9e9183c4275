/**
 * The fit report: whether a module fits `DEFAULT_MODULE_LIMITS`, which limits it breaks, and
 * how far the demo raises them for its pooling engines (just enough, only those).
 *
 * @module
 */

import {
  Config,
  DEFAULT_MODULE_LIMITS,
  InstanceAllocationStrategy,
  type ModuleLimits,
} from "../config.ts";
import { Engine } from "../engine.ts";
import { LimitError } from "../errors.ts";
import { Module } from "../module.ts";
import { parseModule } from "../module/parse.ts";
import type { ParsedModule } from "../module/types.ts";
import { DemoExit } from "./exit.ts";

/** One module limit the module breaks: what it needs against the default. */
export interface BrokenLimit {
  /** The `ModuleLimits` field. */
  readonly limit: keyof ModuleLimits;
  /** The module's own count (for `memoryPages`/`tableElements`: its largest minimum). */
  readonly needed: number;
  /** The value in `DEFAULT_MODULE_LIMITS`. */
  readonly default: number;
}

/** Whether the module fits `DEFAULT_MODULE_LIMITS`, and what the demo raised if not. */
export interface FitReport {
  /** True when `new Module` accepted it under the default limits. */
  readonly fits: boolean;
  /** The `LimitError` message (names the first limit broken and the value), or `null`. */
  readonly message: string | null;
  /** Every limit the module breaks, from its own counts. */
  readonly broken: readonly BrokenLimit[];
  /** The module limits the demo's pooling engines use: only the broken ones, raised. */
  readonly raised: Partial<ModuleLimits>;
}

const LIMIT_ORDER: readonly (keyof ModuleLimits)[] = [
  "importedFunctions",
  "importedTables",
  "importedMemories",
  "importedGlobals",
  "types",
  "functions",
  "tables",
  "memories",
  "globals",
  "tableElements",
  "memoryPages",
];

/** The value of each module limit this module needs, from its own counts. */
function moduleNeeds(parsed: ParsedModule): Record<keyof ModuleLimits, number> {
  const imported = (kind: string): number =>
    parsed.imports.filter((i) => i.desc.kind === kind).length;
  return {
    importedFunctions: imported("function"),
    importedTables: imported("table"),
    importedMemories: imported("memory"),
    importedGlobals: imported("global"),
    types: parsed.types.length,
    functions: parsed.functions.length,
    tables: parsed.tables.length,
    memories: parsed.memories.length,
    globals: parsed.globals.length,
    tableElements: Math.max(0, ...parsed.tables.map((t) => t.min)),
    memoryPages: Math.max(0, ...parsed.memories.map((m) => m.min)),
  };
}

/**
 * Translates the module for a pooling engine with the default module limits. Malformed or
 * unsupported input throws its WasmpoolError (exit 1); a `LimitError` is reported and the
 * limits raised.
 */
export function checkFit(bytes: Uint8Array): { fit: FitReport; parsed: ParsedModule } {
  let message: string | null = null;
  {
    using engine = new Engine(
      new Config().withAllocationStrategy(
        InstanceAllocationStrategy.pooling({ instanceLimits: { count: 1 } }),
      ),
    );
    try {
      new Module(engine, bytes);
    } catch (error) {
      if (!(error instanceof LimitError)) throw error;
      message = error.message;
    }
  }
  // The module parsed (a LimitError comes after parsing), so this does not throw.
  const parsed = parseModule(bytes);
  const needs = moduleNeeds(parsed);
  const broken: BrokenLimit[] = [];
  const raised: Partial<Record<keyof ModuleLimits, number>> = {};
  for (const limit of LIMIT_ORDER) {
    if (needs[limit] > DEFAULT_MODULE_LIMITS[limit]) {
      broken.push({ limit, needed: needs[limit], default: DEFAULT_MODULE_LIMITS[limit] });
      raised[limit] = needs[limit];
    }
  }
  if (message !== null && broken.length === 0) {
    throw new DemoExit(`the module breaks a limit the demo cannot raise: ${message}`, 1);
  }
  return { fit: { fits: message === null, message, broken, raised }, parsed };
}
