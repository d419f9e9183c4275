/**
 * Fuel, as Wasmtime's `consume_fuel` counts it: where the rewrite charges a module's code for
 * the instructions it runs, and the bytes of the charge. Deterministic by construction: what an
 * execution is charged depends only on the code and the path it takes, never on time or the
 * runtime, so the same program with the same fuel stops at the same point everywhere.
 *
 * Code is cut into regions, each charged once, on entry, for every instruction in it (nop,
 * drop and the structure markers cost nothing, the rest 1):
 *
 * - the function body, charged at its entry;
 * - each loop body, charged at the loop header, on every iteration;
 * - each arm of an `if` (then, else) and each legacy `catch`/`catch_all` handler, charged
 *   where it starts.
 *
 * A `block`, `try` or `try_table` body runs at most once per run of what encloses it, so it
 * belongs to the enclosing region: charged up front with it. A branch out of a region early
 * leaves what was charged for its rest spent (as a trap does): over-charging is bounded by the
 * region, and the same on every run. The counter is checked (`fuel < 0` trips, see
 * interrupt.ts) after the charge at function entries and loop headers, which every unbounded
 * execution passes; a function that calls nothing and has no loop is only charged.
 *
 * @module
 */

import { type Instruction, Op } from "../module/code.ts";
import { BinaryWriter } from "./binary_writer.ts";
import { type CheckLayout, Dead, writeTrip } from "./interrupt.ts";

const OP_DROP = 0x1a;

/** Whether an instruction costs nothing: nop, drop, and the markers of structure. */
function free(opcode: number): boolean {
  switch (opcode) {
    case Op.nop:
    case OP_DROP:
    case Op.block:
    case Op.loop:
    case Op.end:
    case Op.else:
    case Op.try:
    case Op.try_table:
    case Op.catch:
    case Op.catch_all:
    case Op.delegate:
      return true;
    default:
      return false;
  }
}

/** What a region's charge does at its start: charge only, or charge and check. */
export const enum Charge {
  Only = 0,
  AndCheck = 1,
}

/**
 * Cuts one function body into regions as its instructions are read, in order. Each region's
 * charge is an insertion `(offset, kind, cost)` in the caller's insertion list; its cost is
 * filled in when the region ends.
 */
export class FuelRegions {
  readonly #points: number[];
  readonly #kinds: readonly [number, number];
  /** Per open construct: whether it opened a region (loop, if, else, catch) or not. */
  readonly #opened: boolean[] = [];
  /** Slots (indices into the insertion list) of the open regions' costs; the current last. */
  readonly #regions: number[] = [];

  /**
   * Regions write into `points` (triples of offset, kind, argument), with `kinds[Charge.Only]`
   * and `kinds[Charge.AndCheck]` as their kinds.
   */
  constructor(points: number[], kinds: readonly [number, number]) {
    this.#points = points;
    this.#kinds = kinds;
  }

  /** Opens the function's region at `at` (after the locals). */
  enterFunction(at: number): void {
    this.#open(at, Charge.AndCheck);
  }

  /**
   * Counts `ins` (the next instruction of the body) in the current region, and opens or closes
   * regions at the structure it marks. Call it before anything else is inserted after `ins`.
   */
  instruction(ins: Instruction): void {
    const opcode = ins.opcode;
    if (!free(opcode)) this.#points[this.#regions[this.#regions.length - 1]] += 1;
    switch (opcode) {
      case Op.block:
      case Op.try:
      case Op.try_table:
        this.#opened.push(false);
        break;
      case Op.loop:
        this.#opened.push(true);
        this.#open(ins.end, Charge.AndCheck);
        break;
      case Op.if:
        this.#opened.push(true);
        this.#open(ins.end, Charge.Only);
        break;
      case Op.else:
      case Op.catch:
      case Op.catch_all:
        if (this.#opened[this.#opened.length - 1]) this.#regions.pop();
        this.#opened[this.#opened.length - 1] = true;
        this.#open(ins.end, Charge.Only);
        break;
      case Op.end:
      case Op.delegate:
        if (ins.final) {
          this.#regions.pop();
          break;
        }
        if (this.#opened.pop()) this.#regions.pop();
        break;
    }
  }

  /** The slot of the cost of the region opened last (the function's, right after entering). */
  get lastSlot(): number {
    return this.#points.length - 1;
  }

  #open(at: number, charge: Charge): void {
    this.#points.push(at, this.#kinds[charge], 0);
    this.#regions.push(this.#points.length - 1);
  }
}

/**
 * `fuel -= cost`, then with `check` `if (fuel < 0) trip(fuel)`; nothing for a cost of 0 (such a
 * region cannot loop).
 */
export function fuelCharge(layout: CheckLayout, cost: number, check: boolean): Uint8Array {
  if (cost === 0) return new Uint8Array(0);
  const g = layout.fuelGlobal;
  const w = new BinaryWriter(48);
  // global.get fuel; i64.const cost; i64.sub; global.set fuel
  w.u8(0x23).u32(g).u8(0x42);
  sleb64(w, cost);
  w.u8(0x7d).u8(0x24).u32(g);
  if (check) {
    // global.get fuel; i64.const 0; i64.lt_s; if trip end
    w.u8(0x23).u32(g).u8(0x42).u8(0).u8(0x53).u8(0x04).u8(0x40);
    writeTrip(w, layout, Dead.fuel);
    w.u8(0x0b);
  }
  return w.finish().slice();
}

/** A non-negative integer below 2^31 as a signed LEB128. */
function sleb64(w: BinaryWriter, value: number): void {
  let v = value;
  while (true) {
    const byte = v & 0x7f;
    v = Math.floor(v / 128);
    if (v === 0 && (byte & 0x40) === 0) {
      w.u8(byte);
      return;
    }
    w.u8(byte | 0x80);
  }
}
