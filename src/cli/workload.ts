/**
 * What the demo does with a module in each cycle, worked out once before measuring: the
 * imports it passes (function stubs that throw), the exported function a running cycle calls
 * (the first that takes no arguments, or the one `--call` names, or none), the exported
 * memories whose wasm pages a cycle reads, and what the call returns on the runtime's own
 * instance (every measured call must return the same).
 *
 * @module
 */

import type { Imports } from "../imports.ts";
import type { ParsedModule } from "../module/types.ts";
import { DemoExit } from "./exit.ts";

/** What the demo knows about the module it runs. */
export interface ModuleSummary {
  /** `"embedded"` or the path given. */
  readonly source: string;
  /** Size of the binary. */
  readonly bytes: number;
  /** Initial and maximum pages of each defined memory. */
  readonly memories: readonly { readonly min: number; readonly max: number | null }[];
  /** Initial and maximum elements of each defined table. */
  readonly tables: readonly { readonly min: number; readonly max: number | null }[];
  /** Active and passive data segments. */
  readonly dataSegments: number;
  /** Bytes in all data segments. */
  readonly dataBytes: number;
  /** Imports by kind. */
  readonly imports: Readonly<Record<"function" | "table" | "memory" | "global", number>>;
  /** Whether the module has a start function (it runs at every instantiation). */
  readonly start: boolean;
}

/** The function a running cycle calls, or why there is none. */
export interface CallReport {
  /** The export's name, or `null` when the cycles call nothing. */
  readonly name: string | null;
  /** What the call returned on the runtime's own instance, in words; `null` without a call. */
  readonly result: string | null;
  /** Why the cycles call nothing; `null` when they call `name`. */
  readonly none: string | null;
}

/** What a cycle does with the module, and what the demo reports about it. */
export interface Workload {
  /** The import object: a stub that throws for each imported function. */
  readonly imports: Imports;
  /** The call of a running cycle. */
  readonly call: CallReport;
  /** What the call returned on the runtime's own instance; compared with every call. */
  readonly expected: unknown;
  /** Exported memories, one name each, whose wasm pages a running cycle reads. */
  readonly memoryExports: readonly string[];
  /**
   * Why running instances cannot be measured (the runtime's own instantiation threw, e.g. in
   * the start function), or `null`.
   */
  readonly unrunnable: string | null;
  /** The module compiled by the runtime, for the baseline; `null` when unrunnable. */
  readonly compiled: WebAssembly.Module | null;
}

/** The module in numbers, for the report. */
export function summarize(source: string, bytes: Uint8Array, parsed: ParsedModule): ModuleSummary {
  const imports = { function: 0, table: 0, memory: 0, global: 0 };
  for (const i of parsed.imports) imports[i.desc.kind]++;
  return {
    source,
    bytes: bytes.byteLength,
    memories: parsed.memories.map((m) => ({ min: m.min, max: m.max })),
    tables: parsed.tables.map((t) => ({ min: t.min, max: t.max })),
    dataSegments: parsed.data.length,
    dataBytes: parsed.data.reduce((sum, d) => sum + d.data.byteLength, 0),
    imports,
    start: parsed.start !== null,
  };
}

/** The error a stub import throws when the module calls it. */
export class StubCalled extends Error {}

/** Function imports get stubs that throw; any other import ends the demo (exit 2). */
export function stubImports(parsed: ParsedModule): Imports {
  const others = parsed.imports.filter((i) => i.desc.kind !== "function");
  if (others.length > 0) {
    const list = others.map((i) =>
      `  ${i.desc.kind} ${JSON.stringify(i.module)}.${JSON.stringify(i.name)}`
    );
    throw new DemoExit(
      `the module imports ${others.length} item(s) the demo cannot provide: it stubs ` +
        "functions (stubs that throw),\nbut memories, tables and globals must come from the " +
        `embedder:\n${list.join("\n")}`,
      2,
    );
  }
  const imports: Record<string, Record<string, () => never>> = {};
  for (const i of parsed.imports) {
    const name = `${i.module}.${i.name}`;
    imports[i.module] ??= {};
    imports[i.module][i.name] = (): never => {
      throw new StubCalled(`${name} is a stub of the wasmpool demo`);
    };
  }
  return imports;
}

/** The parameter count of each function, imports first. */
function parameterCounts(parsed: ParsedModule): number[] {
  const counts: number[] = [];
  for (const i of parsed.imports) {
    if (i.desc.kind === "function") counts.push(parsed.types[i.desc.type].params.length);
  }
  for (const type of parsed.functions) counts.push(parsed.types[type].params.length);
  return counts;
}

/**
 * The export a running cycle calls: `choice` (which must be a function that takes no
 * arguments: exit 2 otherwise), or with `null` the first exported function that takes none;
 * with `false`, none.
 */
function chooseCall(parsed: ParsedModule, choice: string | null | false): CallReport {
  if (choice === false) return { name: null, result: null, none: "--no-call" };
  const params = parameterCounts(parsed);
  const functions = parsed.exports.filter((e) => e.kind === "function");
  if (choice !== null) {
    const named = functions.find((e) => e.name === choice);
    if (named === undefined) {
      throw new DemoExit(`--call ${choice}: the module exports no function of that name`, 2);
    }
    if (params[named.index] !== 0) {
      throw new DemoExit(
        `--call ${choice}: the function takes ${params[named.index]} arguments; the demo ` +
          "calls only functions that take none",
        2,
      );
    }
    return { name: choice, result: null, none: null };
  }
  const first = functions.find((e) => params[e.index] === 0);
  if (first !== undefined) return { name: first.name, result: null, none: null };
  return {
    name: null,
    result: null,
    none: functions.length === 0
      ? "the module exports no function"
      : "every exported function takes arguments",
  };
}

/** A value a call returned, in words (JSON has no BigInt). */
export function describeValue(value: unknown): string {
  if (value === undefined) return "nothing";
  if (typeof value === "bigint") return `${value}n`;
  if (typeof value === "number") return Object.is(value, -0) ? "-0" : String(value);
  if (Array.isArray(value)) return `[${value.map(describeValue).join(", ")}]`;
  if (value === null) return "null";
  return typeof value;
}

/** Whether two call results are the same (NaN equals NaN, as a result cannot tell them apart). */
export function sameResult(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (typeof a === "number" && typeof b === "number") return Number.isNaN(a) && Number.isNaN(b);
  if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
  return a.every((v, i) => sameResult(v, b[i]));
}

/** One name for each exported memory. */
function memoryExports(parsed: ParsedModule): string[] {
  const seen = new Set<number>();
  const names: string[] = [];
  for (const e of parsed.exports) {
    if (e.kind !== "memory" || seen.has(e.index)) continue;
    seen.add(e.index);
    names.push(e.name);
  }
  return names;
}

function describeError(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

/**
 * Works out a cycle for the module: stubs its imports, chooses the call, and instantiates it
 * once with the runtime's own `new WebAssembly.Instance` to see what the call returns. A call
 * that throws there (a trap, a stub) is dropped, with the reason; an instantiation that throws
 * there makes running instances unmeasurable (the allocator rows still run).
 */
export function planWorkload(
  bytes: Uint8Array<ArrayBuffer>,
  parsed: ParsedModule,
  choice: string | null | false,
): Workload {
  const imports = stubImports(parsed);
  let call = chooseCall(parsed, choice);
  const memories = memoryExports(parsed);
  const compiled = new WebAssembly.Module(bytes);
  let instance: WebAssembly.Instance;
  try {
    instance = new WebAssembly.Instance(compiled, imports as WebAssembly.Imports);
  } catch (error) {
    const unrunnable = `new WebAssembly.Instance threw ${describeError(error)}`;
    return {
      imports,
      call: { name: null, result: null, none: unrunnable },
      expected: undefined,
      memoryExports: memories,
      unrunnable,
      compiled: null,
    };
  }
  let expected: unknown = undefined;
  if (call.name !== null) {
    try {
      expected = (instance.exports[call.name] as () => unknown)();
      call = { ...call, result: describeValue(expected) };
    } catch (error) {
      if (choice !== null && choice !== false) {
        throw new DemoExit(`--call ${choice}: the call threw ${describeError(error)}`, 1);
      }
      call = {
        name: null,
        result: null,
        none: `${call.name}() threw ${describeError(error)} on the runtime's own instance`,
      };
    }
  }
  return { imports, call, expected, memoryExports: memories, unrunnable: null, compiled };
}
