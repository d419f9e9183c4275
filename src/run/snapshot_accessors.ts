/**
 * What the rewrite adds so that a running instance's state can be read for a snapshot
 * (snapshot.ts), without moving any index: one type, one function, one table, one passive
 * element segment and a few exports, each appended after the rewrite's other pieces.
 *
 * - `SNAPSHOT_EXPORT` (`[] -> [t...]`) returns the current value of every mutable defined
 *   global whose type can cross to JavaScript (not v128), in index order; on its first call it
 *   also fills the **own table** (grown from 0) with the instance's own defined functions that
 *   can escape it, from the passive segment. A table entry is this instance's function exactly
 *   when it is one of the own table's entries: both runtimes hand out one object per function of
 *   an instance, and a function of another instance of the same module has the same index.
 * - Every defined memory and table is exported under `memoryExport(i)` / `tableExport(i)`:
 *   exporting changes no access in the code (mutable globals are not exported, since that makes
 *   every access to them indirect in JavaScriptCore).
 *
 * Nothing of this runs at instantiation: the own table starts empty and a passive segment is
 * not applied.
 *
 * @module
 */

import type { ParsedModule } from "../module/types.ts";
import { BinaryWriter, VALUE_TYPE } from "./binary_writer.ts";

/** Export name of the function that returns the mutable globals and fills the own table. */
export const SNAPSHOT_EXPORT = "\u0000wasmpool.snapshot";
/** Export name of the own table. */
export const OWN_TABLE_EXPORT = "\u0000wasmpool.own";

/** Export name of defined memory `index` (counting defined memories only). */
export function memoryExport(index: number): string {
  return `\u0000wasmpool.memory${index}`;
}

/** Export name of defined table `index` (counting defined tables only). */
export function tableExport(index: number): string {
  return `\u0000wasmpool.table${index}`;
}

/**
 * The most globals `SNAPSHOT_EXPORT` returns: V8 refuses a function with more than 1,000
 * results. A module with more mutable globals cannot be snapshotted.
 */
export const MAX_SNAPSHOT_GLOBALS = 1000;

/** What snapshot.ts needs to know of a module's accessors. */
export interface SnapshotAccess {
  /** The defined globals (by defined index) that `SNAPSHOT_EXPORT` returns, in order. */
  readonly globals: readonly number[];
  /** The defined functions (index among all functions) in the own table, in order. */
  readonly own: readonly number[];
}

/** What `parsed`'s accessors read: the globals returned and the own table's functions. */
export function snapshotAccess(parsed: ParsedModule, escaping: Set<number>): SnapshotAccess {
  const globals: number[] = [];
  parsed.globals.forEach((g, i) => {
    if (g.type.mutable && g.type.type !== "v128") globals.push(i);
  });
  let importedFunctions = 0;
  for (const i of parsed.imports) if (i.desc.kind === "function") importedFunctions++;
  const own = [...escaping].filter((f) => f >= importedFunctions).sort((a, b) => a - b);
  return { globals: globals.length > MAX_SNAPSHOT_GLOBALS ? [] : globals, own };
}

/** Writes the accessor function's type, `[] -> [t...]`. */
export function writeSnapshotType(
  w: BinaryWriter,
  parsed: ParsedModule,
  access: SnapshotAccess,
): void {
  w.u8(0x60).u8(0).u32(access.globals.length);
  for (const g of access.globals) w.u8(VALUE_TYPE[parsed.globals[g].type.type]);
}

/** Writes the own table's type: funcref, 0 entries, no maximum. */
export function writeOwnTable(w: BinaryWriter): void {
  w.u8(0x70).u8(0x00).u32(0);
}

/** Writes the own passive segment (flags 1: passive, function indices). */
export function writeOwnSegment(w: BinaryWriter, access: SnapshotAccess): void {
  w.u32(1).u8(0x00).u32(access.own.length);
  for (const f of access.own) w.u32(f);
}

/**
 * The accessor's body with its size: fill the own table once (`ownTable`, from element segment
 * `ownSegment`), then push each global.
 */
export function snapshotBody(
  access: SnapshotAccess,
  importedGlobals: number,
  ownTable: number,
  ownSegment: number,
): Uint8Array {
  const n = access.own.length;
  const code = new BinaryWriter(32 + 3 * access.globals.length).u32(0); // no locals
  // if (table.size own == 0) { table.grow own (ref.null, n); drop; table.init own seg 0 0 n }
  code.u8(0xfc).u32(16).u32(ownTable).u8(0x45).u8(0x04).u8(0x40);
  code.u8(0xd0).u8(0x70).u8(0x41).bytes(slebU32(n)).u8(0xfc).u32(15).u32(ownTable).u8(0x1a);
  code.u8(0x41).u8(0).u8(0x41).u8(0).u8(0x41).bytes(slebU32(n));
  code.u8(0xfc).u32(12).u32(ownSegment).u32(ownTable).u8(0x0b);
  for (const g of access.globals) code.u8(0x23).u32(importedGlobals + g);
  code.u8(0x0b);
  return new BinaryWriter(code.length + 5).u32(code.length).bytes(code.finish()).finish().slice();
}

/** A signed LEB128 of a value in [0, 2^31). */
function slebU32(value: number): Uint8Array {
  const out: number[] = [];
  let v = value;
  for (;;) {
    const byte = v & 0x7f;
    v >>>= 7;
    const done = v === 0 && (byte & 0x40) === 0;
    out.push(done ? byte : byte | 0x80);
    if (done) return Uint8Array.from(out);
  }
}
