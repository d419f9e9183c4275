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
 * On an engine with interruption or fuel on (see interrupt.ts and fuel.ts), also: the epoch
 * check at every loop header, after every call that can reach the host, and at the entry of
 * every function that calls anything; and fuel's charges, at the start of every region, with
 * the check at function entries and loop headers. Without them, nothing of these is inserted.
 *
 * The same pass records what the code does that a reset could not undo (for recycling).
 *
 * @module
 */

import { type FunctionBody, InstructionReader, moduleFunctionBodies, Op } from "../module/code.ts";
import type { ParsedModule } from "../module/types.ts";
import { BinaryWriter } from "./binary_writer.ts";
import { fuelCharge, FuelRegions } from "./fuel.ts";
import { addedBodies, type CheckLayout, interruptCheck } from "./interrupt.ts";

/** Where the rewrite put the guard's pieces: all appended, so existing indices stay put. */
export interface GuardIndices {
  /** The type `[] -> []` of the hooks. */
  readonly type: number;
  /** The hook table. */
  readonly table: number;
  /** The `dead` global. */
  readonly global: number;
  /** Imported functions: defined function `i` has index `importedFunctions + i`. */
  readonly importedFunctions: number;
}

/** Hook numbers: entries of the hook table. */
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
}

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
}

const FUEL_KINDS: readonly [number, number] = [Insert.FuelCharge, Insert.FuelCheck];

/** `if (dead) call_indirect hooks[hook]`, or `if (dead) unreachable`. */
function checkDead(guard: GuardIndices, trap: boolean): Uint8Array {
  const w = new BinaryWriter(16).u8(0x23).u32(guard.global).u8(0x04).u8(0x40);
  if (trap) w.u8(0x00);
  else w.u8(0x41).u32(Hook.disposed).u8(0x11).u32(guard.type).u32(guard.table);
  return w.u8(0x0b).finish().slice();
}

/** `call_indirect hooks[grew]`. */
function callGrew(guard: GuardIndices): Uint8Array {
  return new BinaryWriter(16).u8(0x41).u32(Hook.grew).u8(0x11).u32(guard.type).u32(guard.table)
    .finish().slice();
}

/** The body of the guard's `kill` function: `dead = 1`, with its size. */
function killBody(guard: GuardIndices): Uint8Array {
  const code = new BinaryWriter(16).u8(0).u8(0x41).u8(1).u8(0x24).u32(guard.global).u8(0x0b);
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
}

/**
 * Decodes every body of `parsed`'s code section, finds where checks go, and returns the new
 * code section (with the guard's `kill` function appended, then the functions `checks` adds)
 * and what the code does. Without `checks`, the section is what it was before interruption and
 * fuel existed, byte for byte.
 */
export function instrumentCode(
  bytes: Uint8Array,
  parsed: ParsedModule,
  guard: GuardIndices,
  escapes: (functionIndex: number) => boolean,
  checks: CheckLayout | null = null,
): { section: BinaryWriter; facts: CodeFacts } {
  const bodies = moduleFunctionBodies(bytes, parsed);
  const facts: Facts = {
    memoryGrows: 0,
    tableGrows: 0,
    dataDrops: 0,
    elemDrops: 0,
    catches: false,
  };
  const insertions: Insertions[] = bodies.map((body) =>
    findInsertions(bytes, body, guard, escapes(guard.importedFunctions + body.index), facts, checks)
  );
  // By Insert kind; what a check after a call does depends on the whole module (catches).
  const fixed = [
    checkDead(guard, false),
    checkDead(guard, facts.catches),
    callGrew(guard),
    checks !== null && checks.epochMemory >= 0 ? interruptCheck(checks) : new Uint8Array(0),
  ];
  const fuelSnippets = new Map<number, Uint8Array>();
  const snippet = (kind: number, argument: number): Uint8Array => {
    if (kind < fixed.length) return fixed[kind];
    if (kind === Insert.None) return NOTHING;
    const key = argument * 2 + (kind === Insert.FuelCheck ? 1 : 0);
    let bytes = fuelSnippets.get(key);
    if (bytes === undefined) {
      bytes = fuelCharge(checks!, argument, kind === Insert.FuelCheck);
      fuelSnippets.set(key, bytes);
    }
    return bytes;
  };
  const kill = killBody(guard);
  const added = checks === null ? [] : addedBodies(checks);
  const section = new BinaryWriter(bytes.length / 8 + 64).u32(bodies.length + 1 + added.length);
  for (let i = 0; i < bodies.length; i++) {
    const body = bodies[i];
    const points = insertions[i];
    if (points.length === 0) {
      section.bytes(bytes.subarray(body.sizeAt, body.end));
      continue;
    }
    let size = body.end - body.start;
    for (let p = 0; p < points.length; p += 3) size += snippet(points[p + 1], points[p + 2]).length;
    section.u32(size);
    let at = body.start;
    for (let p = 0; p < points.length; p += 3) {
      section.bytes(bytes.subarray(at, points[p]));
      section.bytes(snippet(points[p + 1], points[p + 2]));
      at = points[p];
    }
    section.bytes(bytes.subarray(at, body.end));
  }
  section.bytes(kill);
  for (const b of added) section.bytes(b);
  return { section, facts };
}

const NOTHING = new Uint8Array(0);

function findInsertions(
  bytes: Uint8Array,
  body: FunctionBody,
  guard: GuardIndices,
  escapes: boolean,
  facts: Facts,
  checks: CheckLayout | null,
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
  let interruptEntry = -1;
  if (interrupt) {
    points.push(body.localsEnd, Insert.Interrupt, 0);
    interruptEntry = points.length - 2;
  }
  let calls = false;
  const reader = new InstructionReader(bytes, body);
  for (let ins = reader.next(); ins !== null; ins = reader.next()) {
    fuel?.instruction(ins);
    switch (ins.opcode) {
      case Op.call:
        calls = true;
        if (ins.funcIndex < guard.importedFunctions) afterCall(points, ins.end, interrupt);
        break;
      case Op.call_indirect:
      case Op.call_ref:
        calls = true;
        afterCall(points, ins.end, interrupt);
        break;
      case Op.return_call:
      case Op.return_call_indirect:
      case Op.return_call_ref:
        calls = true;
        break;
      case Op.loop:
        if (interrupt) points.push(ins.end, Insert.Interrupt, 0);
        break;
      case Op.memory_grow:
        facts.memoryGrows++;
        points.push(ins.end, Insert.AfterGrow, 0);
        break;
      case Op.table_grow:
        facts.tableGrows++;
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
  // A function that calls nothing runs to its end or to a loop header: no check at its entry.
  if (!calls) {
    if (interruptEntry >= 0) points[interruptEntry] = Insert.None;
    if (fuel !== null) fuel.functionIsLeaf(fuelEntry);
  }
  return points;
}

function afterCall(points: Insertions, at: number, interrupt: boolean): void {
  points.push(at, Insert.AfterCall, 0);
  if (interrupt) points.push(at, Insert.Interrupt, 0);
}
