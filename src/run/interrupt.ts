/**
 * What the rewrite compiles into a module for epoch interruption and fuel, beyond the guard of
 * rewrite.ts (only on engines that turn them on: without them, the rewrite is byte for byte
 * what it was). The code changes are made by instrument.ts at the points it finds; this file
 * owns the layout of the added pieces and the bytes of the interruption check:
 *
 * - **The epoch memory**: one more imported memory, `"\0wasmpool" "epoch"` (shared, 2 pages,
 *   maximum 65536), appended after every other memory import, so that no memory index moves
 *   (and never memory 0: see {@linkcode PAD_IMPORT}). Defined memories are imported too (see
 *   plan.ts). The check reads it with plain loads: an atomic load costs 7 ns in
 *   JavaScriptCore, a plain one sees the ticker's store at the next check in both runtimes
 *   (bench/deadline_bench.ts). Its layout:
 *
 *       offset 0        the epoch: CLOCK_MONOTONIC in µs (u64), stored every tick by the ticker
 *                       thread (zig/src/ticker.zig) into the one page every isolate maps here
 *       offset 65536    the deadline of the call running now in this isolate (u64 µs; all ones:
 *                       none), written by the call wrapper (calls.ts)
 *       offset 65544    why the last check tripped (u32: 0 none, 2 deadline, 3 fuel), written by
 *                       the check, read by the wrapper of an instance whose callee tripped
 *
 *   The first host page is shared by the whole process; from offset 65536 on, the memory is
 *   the isolate's own (a thread runs one call stack at a time, so one deadline word serves
 *   every instance in the isolate).
 * - **The check** at every loop header, after every call of an imported function, and at the
 *   entry of the functions call_graph.ts picks: `if (epoch >= deadline) trip(2)`; in a
 *   function with loops against the deadline loaded into a local at its entry.
 * - **Tripping**: `dead = reason`, the reason into the epoch memory, then `unreachable`: a trap
 *   no wasm code can catch (a module that catches exceptions must not swallow an
 *   interruption), and from then on every entry of the instance finds it dead. The wrapper
 *   reads the reason (the `why` function) and throws DeadlineExceededError or
 *   FuelExhaustedError instead of the trap.
 * - **Functions**, appended after the guard's `kill`: `why` (`[] -> i32`, the `dead` global),
 *   and with fuel `setFuel` (`[f64] -> []`) and `fuel` (`[] -> f64`, what is left), exported
 *   under NUL-prefixed names; and with fuel the counter, an i64 global after `dead`.
 *
 * @module
 */

import { BinaryWriter } from "./binary_writer.ts";

/** Which checks the rewrite compiles into a module's code: an engine's choice. */
export interface RunChecks {
  /** Epoch interruption: deadlines. */
  readonly interruption: boolean;
  /** Fuel: counting instructions. */
  readonly fuel: boolean;
}

/** No checks: the rewrite of an engine without interruption or fuel. */
export const NO_CHECKS: RunChecks = Object.freeze({ interruption: false, fuel: false });

/** Whether `checks` asks for anything. */
export function anyChecks(checks: RunChecks): boolean {
  return checks.interruption || checks.fuel;
}

/** The import field name of the epoch memory (module `"\0wasmpool"`). */
export const EPOCH_IMPORT = "epoch";
/** The epoch memory's initial (and accessible) size in pages. */
export const EPOCH_PAGES = 2;
/**
 * Its declared maximum: a shared memory with this maximum gets a reservation of its own in
 * both runtimes (V8 and JavaScriptCore unmap it whole when it is collected), which the ticker's
 * page can be mapped into soundly.
 */
export const EPOCH_MAX_PAGES = 65536;
/** Byte offset of the epoch (u64 µs). */
export const EPOCH_OFFSET = 0;
/** Byte offset of the running call's deadline (u64 µs; all ones for none). */
export const DEADLINE_OFFSET = 65536;
/** Byte offset of the last trip's reason (u32). */
export const TRIPPED_OFFSET = 65544;

/** Values of the `dead` global (and of the tripped word): why an instance cannot be entered. */
export const Dead = { alive: 0, disposed: 1, deadline: 2, fuel: 3 } as const;

/** Export names of the functions the checks add. */
export const WHY_EXPORT = "\u0000wasmpool.why";
export const SET_FUEL_EXPORT = "\u0000wasmpool.setFuel";
export const FUEL_EXPORT = "\u0000wasmpool.fuel";

const I32 = 0x7f;
const I64 = 0x7e;
const F64 = 0x7c;

/** Where the pieces the checks add went: all appended, so no existing index moves. */
export interface CheckLayout {
  /** What is on. */
  readonly checks: RunChecks;
  /** The `dead` global of the guard. */
  readonly deadGlobal: number;
  /** The epoch memory's index; -1 without interruption. */
  readonly epochMemory: number;
  /** The fuel counter's global; -1 without fuel. */
  readonly fuelGlobal: number;
  /** The first added type (`[] -> i32`, then `[f64] -> []`, `[] -> f64`). */
  readonly firstType: number;
  /** The first added function (`why`, then `setFuel`, `fuel`). */
  readonly firstFunction: number;
}

/**
 * Lays the added pieces out after the module's own and the guard's. With `pad`, the epoch
 * memory comes after one more memory (see {@linkcode PAD_IMPORT}).
 */
export function checkLayout(
  checks: RunChecks,
  at: {
    types: number;
    memories: number;
    pad: boolean;
    globals: number;
    functions: number;
    dead: number;
  },
): CheckLayout {
  return {
    checks,
    deadGlobal: at.dead,
    epochMemory: checks.interruption ? at.memories + (at.pad ? 1 : 0) : -1,
    fuelGlobal: checks.fuel ? at.globals : -1,
    firstType: at.types,
    firstFunction: at.functions,
  };
}

/** Types added: `[] -> i32` always; `[f64] -> []` and `[] -> f64` with fuel. */
export function addedTypes(layout: CheckLayout): ((w: BinaryWriter) => void)[] {
  const types = [(w: BinaryWriter) => void w.u8(0x60).u8(0).u8(1).u8(I32)];
  if (layout.checks.fuel) {
    types.push((w) => void w.u8(0x60).u8(1).u8(F64).u8(0));
    types.push((w) => void w.u8(0x60).u8(0).u8(1).u8(F64));
  }
  return types;
}

/**
 * The import field name of a memory of no pages imported before the epoch memory of a module
 * that has no memory, so that the epoch memory is never memory 0: JavaScriptCore hoists a
 * plain load from memory 0 out of a loop that stores nothing (measured with Bun 1.4.5: the loop
 * never sees the ticker again), and loads from other memories it does not. The module uses no
 * memory, so nothing reads the pad.
 */
export const PAD_IMPORT = "pad";

/** The pad memory's import entry: 0 pages, maximum 0. */
export function writePadImportType(w: BinaryWriter): void {
  w.u8(0x02).u8(0x01).u32(0).u32(0);
}

/** The epoch memory's import entry (the module name is written by the caller). */
export function writeEpochImportType(w: BinaryWriter): void {
  // Limits flag 3: a maximum, shared.
  w.u8(0x02).u8(0x03).u32(EPOCH_PAGES).u32(EPOCH_MAX_PAGES);
}

/** Globals added after `dead`: the fuel counter (i64, mutable), with fuel. */
export function addedGlobals(layout: CheckLayout): ((w: BinaryWriter) => void)[] {
  if (!layout.checks.fuel) return [];
  // i64.const 0: an instance has no fuel until wasmpool gives it some, before any code runs.
  return [(w) => void w.u8(I64).u8(0x01).u8(0x42).u8(0).u8(0x0b)];
}

/** The added functions' type indices, in order. */
export function addedFunctionTypes(layout: CheckLayout): number[] {
  const t = layout.firstType;
  return layout.checks.fuel ? [t, t + 1, t + 2] : [t];
}

/** The added exports: name and function index. */
export function addedExports(layout: CheckLayout): [string, number][] {
  const f = layout.firstFunction;
  const out: [string, number][] = [[WHY_EXPORT, f]];
  if (layout.checks.fuel) out.push([SET_FUEL_EXPORT, f + 1], [FUEL_EXPORT, f + 2]);
  return out;
}

/** The added functions' bodies, each with its size, in order. */
export function addedBodies(layout: CheckLayout): Uint8Array[] {
  const bodies = [body((w) => w.u8(0x23).u32(layout.deadGlobal))];
  if (layout.checks.fuel) {
    const g = layout.fuelGlobal;
    // local.get 0; i64.trunc_sat_f64_s; global.set fuel
    bodies.push(body((w) => w.u8(0x20).u8(0).u8(0xfc).u32(6).u8(0x24).u32(g)));
    // global.get fuel; f64.convert_i64_s
    bodies.push(body((w) => w.u8(0x23).u32(g).u8(0xb9)));
  }
  return bodies;
}

function body(code: (w: BinaryWriter) => void): Uint8Array {
  const w = new BinaryWriter(32).u8(0); // no locals
  code(w);
  w.u8(0x0b);
  return new BinaryWriter(40).u32(w.length).bytes(w.finish()).finish().slice();
}

/** Writes `i32.const reason; global.set dead; [reason into the epoch memory]; unreachable`. */
export function writeTrip(w: BinaryWriter, layout: CheckLayout, reason: number): void {
  w.u8(0x41).u32(reason).u8(0x24).u32(layout.deadGlobal);
  if (layout.epochMemory >= 0) {
    // i32.const 0; i32.const reason; i32.store (memory epoch) offset=TRIPPED_OFFSET
    w.u8(0x41).u8(0).u8(0x41).u32(reason).u8(0x36);
    memarg(w, 2, layout.epochMemory, TRIPPED_OFFSET);
  }
  w.u8(0x00);
}

/**
 * How the check reads the epoch: a plain `i64.load` (the choice: it sees the ticker's store at
 * the next check in both runtimes, and costs least), or `i64.atomic.load` (measured by
 * bench/deadline_bench.ts, and rejected: many times slower in JavaScriptCore).
 */
export type EpochLoad = "plain" | "atomic";
let epochLoad: EpochLoad = "plain";

/**
 * @internal For the benchmark that measures the choice: how modules compiled from now on read
 * the epoch. Returns the previous setting.
 */
export function setEpochLoad(load: EpochLoad): EpochLoad {
  const previous = epochLoad;
  epochLoad = load;
  return previous;
}

/** `if (epoch >= deadline) trip(deadline)`: the interruption check. */
export function interruptCheck(layout: CheckLayout): Uint8Array {
  const w = new BinaryWriter(48);
  // i32.const 0; i64.load epoch; i32.const 0; i64.load deadline; i64.ge_u; if
  w.u8(0x41).u8(0);
  if (epochLoad === "atomic") w.u8(0xfe).u32(0x11);
  else w.u8(0x29);
  memarg(w, 3, layout.epochMemory, EPOCH_OFFSET);
  w.u8(0x41).u8(0).u8(0x29);
  memarg(w, 3, layout.epochMemory, DEADLINE_OFFSET);
  w.u8(0x5a).u8(0x04).u8(0x40);
  writeTrip(w, layout, Dead.deadline);
  return w.u8(0x0b).finish().slice();
}

/** `local = deadline`: the running call's deadline, loaded once at a function's entry. */
export function loadDeadline(layout: CheckLayout, local: number): Uint8Array {
  const w = new BinaryWriter(16).u8(0x41).u8(0).u8(0x29);
  memarg(w, 3, layout.epochMemory, DEADLINE_OFFSET);
  return w.u8(0x21).u32(local).finish().slice();
}

/** `if (epoch >= local) trip(deadline)`: the check against the deadline in `local`. */
export function interruptCheckLocal(layout: CheckLayout, local: number): Uint8Array {
  const w = new BinaryWriter(40).u8(0x41).u8(0);
  if (epochLoad === "atomic") w.u8(0xfe).u32(0x11);
  else w.u8(0x29);
  memarg(w, 3, layout.epochMemory, EPOCH_OFFSET);
  w.u8(0x20).u32(local).u8(0x5a).u8(0x04).u8(0x40);
  writeTrip(w, layout, Dead.deadline);
  return w.u8(0x0b).finish().slice();
}

/** A memarg naming memory `memory` (multi-memory encoding: bit 6 of the alignment field). */
function memarg(w: BinaryWriter, align: number, memory: number, offset: number): void {
  if (memory === 0) w.u32(align);
  else w.u32(align | 0x40).u32(memory);
  w.u32(offset);
}
