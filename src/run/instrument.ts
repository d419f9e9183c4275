/**
 * The code half of the rewrite (see rewrite.ts): the function bodies, with checks inserted.
 * Whole instructions are inserted between instructions, which keeps every branch valid (wasm
 * branches are by relative depth, and an inserted `if ... end` is self-contained), so bodies
 * are copied and only grow. Inserted:
 *
 * - at the entry of every function code outside the module can reach (exported, in an element
 *   segment, referenced by a global): `if (dead) hook disposed`, which throws DisposedError;
 * - after every call that can reach the host (a call of an imported function, `call_indirect`,
 *   `call_ref`): the same check, so that code whose instance the host disposed during the call
 *   stops there instead of running on a memory that may be given to another tenant. In a module
 *   that can catch exceptions (`try`, `try_table`) the check traps (`unreachable`) instead:
 *   a trap cannot be caught;
 * - after every `memory.grow`: `hook grew`, which detaches the aliases the host holds of a
 *   memory that grew, before any host code can read through them.
 *
 * With a logical size for memory 0 (logical_memory.ts), `memory.size 0` and `memory.grow 0` are
 * replaced (the only instructions that are): by the read of its global, and by the call of its
 * `grow` (which calls `hook grew` itself, when the real memory grows), when the code has a
 * `memory.grow 0`; else nothing is replaced.
 *
 * On an engine with interruption or fuel on (see interrupt.ts and fuel.ts), also: the epoch
 * check at every loop header, after every call of an imported function, and at the entry of
 * the functions call_graph.ts picks; and fuel's charges, at the start of every region, with the
 * check at loop headers and those entries. Without them, nothing of these is inserted. Loops
 * compare the epoch with the deadline in a local added to their function, loaded at its entry.
 *
 * The same pass records what the code does that a reset could not undo (for recycling).
 *
 * @module
 */

import { type FunctionBody, InstructionReader, moduleFunctionBodies, Op } from "../module/code.ts";
import type { ParsedModule } from "../module/types.ts";
import { BinaryWriter } from "./binary_writer.ts";
import { ByteReader } from "../module/reader.ts";
import { checkedAtEntry, type FunctionCalls } from "./call_graph.ts";
import { fuelCharge, FuelRegions } from "./fuel.ts";
import {
  addedBodies,
  type CheckLayout,
  interruptCheck,
  interruptCheckLocal,
  loadDeadline,
} from "./interrupt.ts";
import { MAX_FUNCTION_LOCALS } from "../module/code.ts";

/** Where the rewrite put the guard's pieces: all appended, so existing indices stay put. */
export interface GuardIndices {
  /** The type `[i32] -> []` of the hook (and of the guard's `kill`, which ignores it). */
  readonly type: number;
  /** The hook table. */
  readonly table: number;
  /** The `dead` global. */
  readonly global: number;
  /** Imported functions: defined function `i` has index `importedFunctions + i`. */
  readonly importedFunctions: number;
}

/** What the hook is asked to do: its argument. */
export const Hook = { disposed: 0, grew: 1 } as const;

/** What a module's code does, as far as recycling its instances is concerned. */
export interface CodeFacts {
  /** Calls of `memory.grow`. */
  readonly memoryGrows: number;
  /** Calls of `table.grow`. */
  readonly tableGrows: number;
  /** `data.drop` instructions. */
  readonly dataDrops: number;
  /** `elem.drop` instructions. */
  readonly elemDrops: number;
  /** Whether the code can catch exceptions (`try`, `try_table`). */
  readonly catches: boolean;
  /** Whether memory 0's `memory.size` and `memory.grow` were replaced (a logical size). */
  readonly logical: boolean;
  /** Instructions that change a table (`table.set`, `.fill`, `.copy`, `.init`, `.grow`). */
  readonly tableWrites: number;
  /** The globals the code sets (`global.set`), by index. */
  readonly globalsSet: ReadonlySet<number>;
}

const TABLE_SET = 0x26;
const TABLE_FILL = 0xfc011;
const GLOBAL_SET = 0x24;

const enum Insert {
  Entry = 0,
  AfterCall = 1,
  AfterGrow = 2,
  /** The epoch check (interruption). */
  Interrupt = 3,
  /** Fuel: charge the argument (the region's cost). */
  FuelCharge = 4,
  /** Fuel: charge the argument, then check. */
  FuelCheck = 5,
  /** Nothing (a check found unneeded after it was placed). */
  None = 6,
  /** The running call's deadline into the argument (a local added to the function). */
  LoadDeadline = 7,
  /** The epoch check against the deadline in the argument (that local). */
  InterruptLocal = 8,
  /** Replaces `memory.size 0` (argument: its length in bytes) with the logical size's read. */
  LogicalSize = 9,
  /** Replaces `memory.grow 0` (argument: its length in bytes) with the logical `grow`. */
  LogicalGrow = 10,
}

/** What `memory.size 0` and `memory.grow 0` become with a logical size (logical_memory.ts). */
export interface LogicalCode {
  /** The bytes replacing `memory.size 0`. */
  readonly size: Uint8Array;
  /** The bytes replacing `memory.grow 0`. */
  readonly grow: Uint8Array;
  /** The bodies appended last (after `checks`' functions) when the code was changed. */
  readonly bodies: readonly Uint8Array[];
}

const FUEL_KINDS: readonly [number, number] = [Insert.FuelCharge, Insert.FuelCheck];

/** `if (dead) hook(disposed)`, or `if (dead) unreachable`. */
function checkDead(guard: GuardIndices, trap: boolean): Uint8Array {
  const w = new BinaryWriter(16).u8(0x23).u32(guard.global).u8(0x04).u8(0x40);
  if (trap) w.u8(0x00);
  else w.u8(0x41).u32(Hook.disposed).u8(0x41).u32(0).u8(0x11).u32(guard.type).u32(guard.table);
  return w.u8(0x0b).finish().slice();
}

/** `hook(grew)`. */
function callGrew(guard: GuardIndices): Uint8Array {
  return new BinaryWriter(16).u8(0x41).u32(Hook.grew).u8(0x41).u32(0).u8(0x11).u32(guard.type)
    .u32(guard.table)
    .finish().slice();
}

/**
 * The body of the guard's `kill(dead)` function, with its size: `dead = argument` (1: entering
 * the instance's code throws; 0, for a recycled instance: it runs again).
 */
function killBody(guard: GuardIndices): Uint8Array {
  const code = new BinaryWriter(16).u8(0).u8(0x20).u8(0).u8(0x24).u32(guard.global).u8(0x0b);
  return new BinaryWriter(16).u32(code.length).bytes(code.finish()).finish().slice();
}

/** A body's insertions: triples of (offset, kind, argument), in offset order. */
type Insertions = number[];

/** What the code does: counted while finding insertions. */
interface Facts {
  memoryGrows: number;
  tableGrows: number;
  dataDrops: number;
  elemDrops: number;
  catches: boolean;
  logical: boolean;
  tableWrites: number;
  globalsSet: Set<number>;
}

/**
 * Decodes every body of `parsed`'s code section, finds where checks go, and returns the new
 * code section (with the guard's `kill` function appended, then the bodies `more` makes from
 * what the code does, each with its size, then the functions `checks` adds) and what the code
 * does. Without `checks`, the section is what it was before interruption and fuel existed, byte
 * for byte; without `logical`, what it was before logical sizes existed.
 */
export function instrumentCode(
  bytes: Uint8Array,
  parsed: ParsedModule,
  guard: GuardIndices,
  escapes: (functionIndex: number) => boolean,
  more: (facts: CodeFacts) => readonly Uint8Array[] = () => [],
  checks: CheckLayout | null = null,
  logical: LogicalCode | null = null,
): { section: BinaryWriter; facts: CodeFacts } {
  const bodies = moduleFunctionBodies(bytes, parsed);
  const facts: Facts = {
    memoryGrows: 0,
    tableGrows: 0,
    dataDrops: 0,
    elemDrops: 0,
    catches: false,
    logical: false,
    tableWrites: 0,
    globalsSet: new Set<number>(),
  };
  const entries: EntryChecks[] = [];
  const insertions: Insertions[] = bodies.map((body) =>
    findInsertions(
      bytes,
      body,
      guard,
      escapes(guard.importedFunctions + body.index),
      facts,
      checks,
      entries,
      parsed.types[parsed.functions[body.index]].params.length,
      logical !== null,
    )
  );
  if (checks !== null) dropEntryChecks(insertions, entries);
  // A logical size only for code that grows memory 0: else every replacement is undone.
  if (logical !== null && !facts.logical) keepMemorySize(insertions);
  // By Insert kind; what a check after a call does depends on the whole module (catches).
  const fixed = [
    checkDead(guard, false),
    checkDead(guard, facts.catches),
    callGrew(guard),
    checks !== null && checks.epochMemory >= 0 ? interruptCheck(checks) : new Uint8Array(0),
  ];
  // Snippets with an argument, by kind and argument.
  const made = new Map<number, Uint8Array>();
  const snippet = (kind: number, argument: number): Uint8Array => {
    if (kind < fixed.length) return fixed[kind];
    if (kind === Insert.None) return NOTHING;
    if (kind === Insert.LogicalSize) return logical!.size;
    if (kind === Insert.LogicalGrow) return logical!.grow;
    const key = argument * 16 + kind;
    let bytes = made.get(key);
    if (bytes === undefined) {
      bytes = kind === Insert.LoadDeadline
        ? loadDeadline(checks!, argument)
        : kind === Insert.InterruptLocal
        ? interruptCheckLocal(checks!, argument)
        : fuelCharge(checks!, argument, kind === Insert.FuelCheck);
      made.set(key, bytes);
    }
    return bytes;
  };
  const kill = killBody(guard);
  const extra = more(facts);
  const added = checks === null ? [] : addedBodies(checks);
  if (facts.logical) added.push(...logical!.bodies);
  const section = new BinaryWriter(bytes.length / 8 + 64).u32(
    bodies.length + 1 + extra.length + added.length,
  );
  for (let i = 0; i < bodies.length; i++) {
    const body = bodies[i];
    const points = insertions[i];
    if (points.length === 0) {
      section.bytes(bytes.subarray(body.sizeAt, body.end));
      continue;
    }
    // A function whose loops check against a local: its local declarations, with it added.
    const locals = checks === null
      ? null
      : entries[i].deadlineLocal >= 0
      ? withLocal(bytes, body)
      : null;
    let size = body.end - body.start;
    if (locals !== null) size += locals.length - (body.localsEnd - body.start);
    for (let p = 0; p < points.length; p += 3) {
      size += snippet(points[p + 1], points[p + 2]).length - replaced(points, p);
    }
    section.u32(size);
    let at = body.start;
    if (locals !== null) {
      section.bytes(locals);
      at = body.localsEnd;
    }
    for (let p = 0; p < points.length; p += 3) {
      section.bytes(bytes.subarray(at, points[p]));
      section.bytes(snippet(points[p + 1], points[p + 2]));
      at = points[p] + replaced(points, p);
    }
    section.bytes(bytes.subarray(at, body.end));
  }
  section.bytes(kill);
  for (const body of extra) section.bytes(body);
  for (const body of added) section.bytes(body);
  return { section, facts };
}

const NOTHING = new Uint8Array(0);

/** The bytes of the original instruction the insertion at `p` replaces: none but for two kinds. */
function replaced(points: Insertions, p: number): number {
  const kind = points[p + 1];
  return kind === Insert.LogicalSize || kind === Insert.LogicalGrow ? points[p + 2] : 0;
}

/** Undoes the replacements of `memory.size 0` (a module that never grows memory 0). */
function keepMemorySize(insertions: Insertions[]): void {
  for (const points of insertions) {
    for (let p = 0; p < points.length; p += 3) {
      if (points[p + 1] === Insert.LogicalSize) points[p + 1] = Insert.None;
    }
  }
}

/** Where a body's entry checks went, and what decides whether they stay. */
interface EntryChecks extends FunctionCalls {
  /** The kind slot of the interruption check at entry, or -1. */
  readonly interrupt: number;
  /** The cost slot of fuel's charge at entry, or -1. */
  readonly fuel: number;
  /** The local added to hold the deadline (a function with loops), or -1. */
  readonly deadlineLocal: number;
}

/** A body's local declarations with one i64 local added after the others. */
function withLocal(bytes: Uint8Array, body: FunctionBody): Uint8Array {
  const w = new BinaryWriter(body.localsEnd - body.start + 8).u32(body.locals.length + 1);
  const groups = new ByteReader(bytes, body.start, body.localsEnd);
  groups.u32();
  w.bytes(groups.bytes(groups.remaining));
  return w.u8(1).u8(0x7e).finish().slice();
}

/**
 * Keeps the checks at entry only in the functions call_graph.ts says need them: the others'
 * interruption check becomes nothing, and their fuel charge is kept without its check.
 */
function dropEntryChecks(insertions: Insertions[], entries: readonly EntryChecks[]): void {
  const checked = checkedAtEntry(entries);
  for (let f = 0; f < entries.length; f++) {
    if (checked[f]) continue;
    const points = insertions[f];
    const entry = entries[f];
    if (entry.interrupt >= 0) points[entry.interrupt] = Insert.None;
    if (entry.fuel >= 0) points[entry.fuel - 1] = Insert.FuelCharge;
  }
}

function findInsertions(
  bytes: Uint8Array,
  body: FunctionBody,
  guard: GuardIndices,
  escapes: boolean,
  facts: Facts,
  checks: CheckLayout | null,
  entries: EntryChecks[],
  params: number,
  logical: boolean,
): Insertions {
  const points: Insertions = [];
  if (escapes) points.push(body.localsEnd, Insert.Entry, 0);
  const interrupt = checks !== null && checks.epochMemory >= 0;
  const fuel = checks !== null && checks.fuelGlobal >= 0
    ? new FuelRegions(points, FUEL_KINDS)
    : null;
  let fuelEntry = -1;
  if (fuel !== null) {
    fuel.enterFunction(body.localsEnd);
    fuelEntry = fuel.lastSlot;
  }
  // Loops compare with the deadline held in a local, loaded once at entry: it cannot change
  // while the function runs (a call made meanwhile from the host puts it back as it was).
  const local = params + body.localCount;
  const canAddLocal = local + 1 <= MAX_FUNCTION_LOCALS;
  let loadEntry = -1;
  let interruptEntry = -1;
  if (interrupt) {
    if (canAddLocal) {
      points.push(body.localsEnd, Insert.LoadDeadline, local);
      loadEntry = points.length - 2;
    }
    points.push(body.localsEnd, Insert.Interrupt, 0);
    interruptEntry = points.length - 2;
  }
  // The kind slots of the checks that use the local when there is one.
  const viaLocal: number[] = [];
  let loops = false;
  const callees: number[] = [];
  let size = 0;
  let calls = false;
  let callsOut = false;
  const imported = guard.importedFunctions;
  const reader = new InstructionReader(bytes, body);
  for (let ins = reader.next(); ins !== null; ins = reader.next()) {
    fuel?.instruction(ins);
    size++;
    switch (ins.opcode) {
      case Op.call:
        calls = true;
        if (ins.funcIndex < imported) {
          callsOut = true;
          afterCall(points, ins.end, interrupt, viaLocal);
        } else {
          callees.push(ins.funcIndex - imported);
        }
        break;
      case Op.call_indirect:
      case Op.call_ref:
        // It may reach the host too, but it is as likely a call within the module (through a
        // function pointer): the next check, at a loop header or an entry, comes soon enough.
        calls = callsOut = true;
        afterCall(points, ins.end, false, viaLocal);
        break;
      case Op.loop:
        loops = true;
        if (interrupt) {
          points.push(ins.end, Insert.Interrupt, 0);
          viaLocal.push(points.length - 2);
        }
        break;
      case Op.return_call:
        calls = true;
        if (ins.funcIndex < imported) callsOut = true;
        else callees.push(ins.funcIndex - imported);
        break;
      case Op.return_call_indirect:
      case Op.return_call_ref:
        calls = callsOut = true;
        break;
      case Op.memory_size:
        if (logical && ins.memoryIndex === 0) {
          points.push(ins.start, Insert.LogicalSize, ins.end - ins.start);
        }
        break;
      case Op.memory_grow:
        facts.memoryGrows++;
        if (logical && ins.memoryIndex === 0) {
          // The logical grow calls the hook itself, only when the real memory grew.
          facts.logical = true;
          points.push(ins.start, Insert.LogicalGrow, ins.end - ins.start);
        } else {
          points.push(ins.end, Insert.AfterGrow, 0);
        }
        break;
      case Op.table_grow:
        facts.tableGrows++;
        facts.tableWrites++;
        break;
      case TABLE_SET:
      case TABLE_FILL:
      case Op.table_copy:
      case Op.table_init:
        facts.tableWrites++;
        break;
      case GLOBAL_SET:
        facts.globalsSet.add(ins.globalIndex);
        break;
      case Op.data_drop:
        facts.dataDrops++;
        break;
      case Op.elem_drop:
        facts.elemDrops++;
        break;
      case Op.try:
      case Op.try_table:
        facts.catches = true;
        break;
    }
  }
  let deadlineLocal = -1;
  if (interrupt && loops && canAddLocal) {
    deadlineLocal = local;
    viaLocal.push(interruptEntry);
    for (const slot of viaLocal) {
      points[slot] = Insert.InterruptLocal;
      points[slot + 1] = local;
    }
  } else if (loadEntry >= 0) {
    points[loadEntry] = Insert.None;
  }
  if (checks !== null) {
    entries.push({
      size,
      callees,
      calls,
      callsOut,
      interrupt: interruptEntry,
      fuel: fuelEntry,
      deadlineLocal,
    });
  }
  return points;
}

function afterCall(points: Insertions, at: number, interrupt: boolean, viaLocal: number[]): void {
  points.push(at, Insert.AfterCall, 0);
  if (!interrupt) return;
  points.push(at, Insert.Interrupt, 0);
  viaLocal.push(points.length - 2);
}
