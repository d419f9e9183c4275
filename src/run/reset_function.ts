/**
 * What the rewrite adds to a module whose instances are recycled (see recycle.ts): a `reset`
 * function that returns an instance's tables and globals to the state instantiation gave them,
 * and the passive copies of the active element segments it re-applies (instantiation drops the
 * active segments themselves). Memories are reset natively, from the module's images.
 *
 * `reset` (`[] -> [i32]`) first checks that every defined table has its initial size: if a
 * tenant grew one, it returns 1 and changes nothing (a table cannot shrink: the instance is not
 * recycled). Otherwise it mirrors instantiation, in its order: every mutable defined global is
 * set to its initializer; every defined table is filled with its initial value (null, or its
 * initializer), then each active element segment is applied from its copy, in module order;
 * and it returns 0.
 *
 * With a logical size for memory 0 (logical_memory.ts), `reset` is `[i32] -> [i32]` and also
 * sets it where the next tenant starts: the initial pages, or (argument 1, a module grown from
 * JavaScript) the physical size.
 *
 * @module
 */

import type { ElementSegment, ParsedModule } from "../module/types.ts";
import { BinaryWriter, REF_TYPE, sleb, writeConst } from "./binary_writer.ts";
import type { CodeFacts } from "./instrument.ts";
import { type LogicalLayout, writeLogicalReset } from "./logical_memory.ts";

const OP = {
  end: 0x0b,
  i32Const: 0x41,
  globalSet: 0x24,
  refNull: 0xd0,
  refFunc: 0xd2,
  prefix: 0xfc,
  tableInit: 12,
  tableSize: 16,
  tableFill: 17,
  i32Ne: 0x47,
  if: 0x04,
  blockEmpty: 0x40,
  return: 0x0f,
} as const;

/** The active element segments, in module order. */
function activeSegments(parsed: ParsedModule): ElementSegment[] {
  return parsed.elements.filter((e) => e.mode === "active");
}

/**
 * The element section entries `reset` needs, appended after the module's own: the passive
 * copies of the active element segments (flags 5: passive, expressions), in module order, so
 * that element index `firstCopy + k` is the copy of the `k`-th active segment; then, when a
 * table or global initializer is a `ref.func`, a declarative segment (flags 3) of those
 * functions, which `reset`'s own `ref.func` needs: JavaScriptCore accepts a `ref.func` in code
 * only for a function an element segment declares (V8 counts initializers too).
 */
export function passiveCopies(parsed: ParsedModule): BinaryWriter[] {
  const copies = activeSegments(parsed).map((segment) => {
    const w = new BinaryWriter(8 + 4 * segment.elements.length).u32(5);
    w.u8(REF_TYPE[segment.type]).u32(segment.elements.length);
    for (const f of segment.elements) {
      if (f === null) w.u8(OP.refNull).u8(REF_TYPE[segment.type]);
      else w.u8(OP.refFunc).u32(f);
      w.u8(OP.end);
    }
    return w;
  });
  const referenced = new Set<number>();
  for (const init of parsed.tableInits) if (init?.kind === "ref.func") referenced.add(init.index);
  for (const g of parsed.globals) if (g.init.kind === "ref.func") referenced.add(g.init.index);
  if (referenced.size === 0) return copies;
  const declared = new BinaryWriter(8 + 5 * referenced.size).u32(3).u8(0x00).u32(referenced.size);
  for (const f of referenced) declared.u32(f);
  return [...copies, declared];
}

/**
 * The body (with its size) of `reset`; `firstCopy` is the element index of the first copy.
 * Only what a tenant can change is reset: the tables when code writes one or one is exported,
 * each mutable global that code sets or that is exported, and the logical size of memory 0
 * (`logical`, when the code's were replaced). `resets` says whether anything is.
 */
export function resetBody(
  parsed: ParsedModule,
  firstCopy: number,
  facts: CodeFacts,
  logical: LogicalLayout | null = null,
): { body: Uint8Array; resets: boolean } {
  const code = new BinaryWriter(64).u32(0); // no locals
  let importedGlobals = 0;
  let importedTables = 0;
  for (const i of parsed.imports) {
    if (i.desc.kind === "global") importedGlobals++;
    if (i.desc.kind === "table") importedTables++;
  }
  const exported = (kind: string, index: number): boolean =>
    parsed.exports.some((e) => e.kind === kind && e.index === index);
  const tablesChange = facts.tableWrites > 0 ||
    parsed.tables.some((_, t) => exported("table", importedTables + t));
  const globalChanges = (g: number): boolean =>
    parsed.globals[g].type.mutable &&
    (facts.globalsSet.has(importedGlobals + g) || exported("global", importedGlobals + g));
  const tables = tablesChange ? parsed.tables : [];
  tables.forEach((table, t) => {
    code.u8(OP.prefix).u32(OP.tableSize).u32(importedTables + t);
    code.u8(OP.i32Const).bytes(sleb(BigInt(table.min))).u8(OP.i32Ne);
    code.u8(OP.if).u8(OP.blockEmpty).u8(OP.i32Const).u8(1).u8(OP.return).u8(OP.end);
  });
  parsed.globals.forEach((global, g) => {
    if (!globalChanges(g)) return;
    writeConst(code, global.init);
    code.u8(OP.globalSet).u32(importedGlobals + g);
  });
  const logicalResets = logical !== null && facts.logical;
  if (logicalResets) writeLogicalReset(code, logical);
  tables.forEach((table, t) => {
    if (table.min === 0) return;
    const init = parsed.tableInits[t] ?? { kind: "ref.null", type: table.element };
    code.u8(OP.i32Const).bytes(sleb(0n));
    writeConst(code, init);
    code.u8(OP.i32Const).bytes(sleb(BigInt(table.min)));
    code.u8(OP.prefix).u32(OP.tableFill).u32(importedTables + t);
  });
  (tablesChange ? activeSegments(parsed) : []).forEach((segment, k) => {
    writeConst(code, segment.offset!);
    code.u8(OP.i32Const).bytes(sleb(0n));
    code.u8(OP.i32Const).bytes(sleb(BigInt(segment.elements.length)));
    code.u8(OP.prefix).u32(OP.tableInit).u32(firstCopy + k).u32(segment.table);
  });
  code.u8(OP.i32Const).u8(0).u8(OP.end);
  const body = new BinaryWriter(code.length + 5).u32(code.length).bytes(code.finish()).finish()
    .slice();
  return {
    body,
    resets: tablesChange || logicalResets || parsed.globals.some((_, g) => globalChanges(g)),
  };
}
