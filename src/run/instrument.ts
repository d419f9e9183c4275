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
 * The same pass records what the code does that a reset could not undo (for recycling).
 *
 * @module
 */

import { type FunctionBody, InstructionReader, moduleFunctionBodies, Op } from "../module/code.ts";
import type { ParsedModule } from "../module/types.ts";
import { BinaryWriter } from "./binary_writer.ts";

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
}

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

/** A body's insertions: pairs of (offset, kind), in offset order. */
type Insertions = number[];

/**
 * Decodes every body of `parsed`'s code section, finds where checks go, and returns the new
 * code section (with the guard's `kill` function appended, then the bodies `more` makes from
 * what the code does, each with its size) and what the code does.
 */
export function instrumentCode(
  bytes: Uint8Array,
  parsed: ParsedModule,
  guard: GuardIndices,
  escapes: (functionIndex: number) => boolean,
  more: (facts: CodeFacts) => readonly Uint8Array[] = () => [],
): { section: BinaryWriter; facts: CodeFacts } {
  const bodies = moduleFunctionBodies(bytes, parsed);
  const facts = {
    memoryGrows: 0,
    tableGrows: 0,
    dataDrops: 0,
    elemDrops: 0,
    catches: false,
    tableWrites: 0,
    globalsSet: new Set<number>(),
  };
  const insertions: Insertions[] = bodies.map((body) =>
    findInsertions(bytes, body, guard, escapes(guard.importedFunctions + body.index), facts)
  );
  // By Insert kind; what a check after a call does depends on the whole module (catches).
  const snippets = [checkDead(guard, false), checkDead(guard, facts.catches), callGrew(guard)];
  const kill = killBody(guard);
  const extra = more(facts);
  const section = new BinaryWriter(bytes.length / 8 + 64).u32(bodies.length + 1 + extra.length);
  for (let i = 0; i < bodies.length; i++) {
    const body = bodies[i];
    const points = insertions[i];
    if (points.length === 0) {
      section.bytes(bytes.subarray(body.sizeAt, body.end));
      continue;
    }
    let size = body.end - body.start;
    for (let p = 1; p < points.length; p += 2) size += snippets[points[p]].length;
    section.u32(size);
    let at = body.start;
    for (let p = 0; p < points.length; p += 2) {
      section.bytes(bytes.subarray(at, points[p]));
      section.bytes(snippets[points[p + 1]]);
      at = points[p];
    }
    section.bytes(bytes.subarray(at, body.end));
  }
  section.bytes(kill);
  for (const body of extra) section.bytes(body);
  return { section, facts };
}

function findInsertions(
  bytes: Uint8Array,
  body: FunctionBody,
  guard: GuardIndices,
  escapes: boolean,
  facts: {
    memoryGrows: number;
    tableGrows: number;
    dataDrops: number;
    elemDrops: number;
    catches: boolean;
    tableWrites: number;
    globalsSet: Set<number>;
  },
): Insertions {
  const points: Insertions = [];
  if (escapes) points.push(body.localsEnd, Insert.Entry);
  const reader = new InstructionReader(bytes, body);
  for (let ins = reader.next(); ins !== null; ins = reader.next()) {
    switch (ins.opcode) {
      case Op.call:
        if (ins.funcIndex < guard.importedFunctions) points.push(ins.end, Insert.AfterCall);
        break;
      case Op.call_indirect:
      case Op.call_ref:
        points.push(ins.end, Insert.AfterCall);
        break;
      case Op.memory_grow:
        facts.memoryGrows++;
        points.push(ins.end, Insert.AfterGrow);
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
  return points;
}
