/**
 * A tenant's memory size, starting where a fresh instance's does: what the rewrite adds to a
 * recycled module's memory 0 when `PoolingOptions.recycleGrownMemoryPages` keeps grown memories
 * (see rewrite.ts, instrument.ts, reset_function.ts). It owns the invariant
 *
 *     initial pages <= L <= physical pages (memory.size as the runtime and JavaScript see it)
 *
 * where `L`, the tenant's logical size in pages, is what the module's code sees. A recycled
 * instance whose memory grew keeps it at its grown (physical) size, reset to the image with
 * zeros beyond it; without `L`, the next tenant's `memory.grow` would return pages past it,
 * and the allocators that keep their heap in memory (Rust's `dlmalloc`, wasi-libc's `sbrk`),
 * which the reset returns to "no heap", would leave the pages between the initial and the
 * grown size unused: the memory would creep up by one tenant's growth per tenant.
 *
 * Added, only for a module whose memory 0 is defined (not imported), not shared, and grown by
 * its code (a `memory.grow 0` somewhere), all appended so that no index moves:
 *
 * - the global `L` (mutable i32, after every other global), initialized to the memory's
 *   initial pages (a snapshot module's: its snapshot size);
 * - a type `[i32] -> [i32]` (after every other type), of the two functions below and of the
 *   `reset` function, whose argument says where `L` starts for the next tenant;
 * - `grow(n)` (after every other function): `old = L; new = old + n` (unsigned; an overflow
 *   returns -1); when `new` fits in the physical size, `L = new`; else the real memory grows
 *   by `new - physical` (-1, `L` unchanged, if it cannot) and the host's `grew` hook runs;
 *   then `L = new` and it returns `old`. `grow(0)` returns `L`;
 * - `sync()`, exported as {@linkcode SYNC_EXPORT}: `L = physical`, for a memory grown from
 *   JavaScript (`GuardedMemory.grow`). `grow` is exported too ({@linkcode GROW_EXPORT}): a
 *   snapshot (snapshot.ts) reads `L` with `grow(0)` and captures memory 0's first `L` pages,
 *   the size the tenant saw, so that the snapshot module starts there.
 *
 * In the code, every `memory.size 0` becomes `global.get L` and every `memory.grow 0` a call of
 * `grow` (which runs the `grew` hook itself, only when the real memory grew). Other memories
 * and every other instruction are untouched; memory accesses are not checked against `L`: the
 * pages between `L` and the physical size are zeros, reset after every tenant.
 *
 * **Grown from JavaScript.** Emscripten's glue grows the memory from JavaScript
 * (`emscripten_resize_heap`: `memory.grow(n)` with `n` computed from `buffer.byteLength`, the
 * physical size) when its `sbrk`, which compares its break with `memory.size`, runs out. With a
 * smaller logical size, every tenant would grow the physical memory again, relative to its
 * length. So a module grown from JavaScript is marked (`RunPlan.logical.grownFromJs`) and from
 * then on its tenants start with `L` = the physical size: what they saw before `L` existed.
 *
 * @module
 */

import type { ParsedModule } from "../module/types.ts";
import { BinaryWriter, sleb } from "./binary_writer.ts";
import { type GuardIndices, Hook } from "./instrument.ts";

/** Export name of `sync` (`L = physical`). */
export const SYNC_EXPORT = "\u0000wasmpool.syncSize";
/** Export name of `grow`: `grow(0)` reads `L` (for a snapshot, which captures `L` pages). */
export const GROW_EXPORT = "\u0000wasmpool.logicalGrow";

/** Where the logical size's pieces went. */
export interface LogicalLayout {
  /** The global `L`. */
  readonly global: number;
  /** The type `[i32] -> [i32]`. */
  readonly type: number;
  /** `grow`; `sync` follows it. */
  readonly grow: number;
  /** Memory 0's initial pages: `L`'s initial value, and where a tenant starts. */
  readonly initialPages: number;
}

/** What a module's plan keeps of its logical size: shared by its instances. */
export interface LogicalState {
  /** Whether a tenant grew memory 0 from JavaScript: then tenants start at the physical size. */
  grownFromJs: boolean;
}

const I32 = 0x7f;
const OP = {
  if: 0x04,
  else: 0x05,
  end: 0x0b,
  return: 0x0f,
  callIndirect: 0x11,
  localGet: 0x20,
  localTee: 0x22,
  globalGet: 0x23,
  globalSet: 0x24,
  memorySize: 0x3f,
  memoryGrow: 0x40,
  i32Const: 0x41,
  i32Eq: 0x46,
  i32LtU: 0x49,
  i32GtU: 0x4b,
  i32Sub: 0x6b,
  i32Add: 0x6a,
  blockEmpty: 0x40,
} as const;

/**
 * Whether memory 0 of `parsed` may get a logical size (its code is not looked at here): defined
 * (no memory imported), not shared.
 */
export function logicalCandidate(parsed: ParsedModule): boolean {
  if (parsed.imports.some((i) => i.desc.kind === "memory")) return false;
  return parsed.memories.length > 0 && !parsed.memories[0].shared;
}

/** `global.get L`: what `memory.size 0` becomes. */
export function sizeSnippet(layout: LogicalLayout): Uint8Array {
  return new BinaryWriter(8).u8(OP.globalGet).u32(layout.global).finish().slice();
}

/** `call grow`: what `memory.grow 0` becomes. */
export function growSnippet(layout: LogicalLayout): Uint8Array {
  return new BinaryWriter(8).u8(0x10).u32(layout.grow).finish().slice();
}

/** The bodies of `grow` and `sync`, each with its size, in order. */
export function logicalBodies(layout: LogicalLayout, guard: GuardIndices): Uint8Array[] {
  const L = layout.global;
  // grow(n): locals 1 (new) and 2 (physical), both i32.
  const g = new BinaryWriter(96).u32(1).u32(2).u8(I32);
  // new = L + n; if (new < L) return -1 (unsigned overflow)
  g.u8(OP.globalGet).u32(L).u8(OP.localGet).u8(0).u8(OP.i32Add).u8(OP.localTee).u8(1);
  g.u8(OP.globalGet).u32(L).u8(OP.i32LtU);
  g.u8(OP.if).u8(OP.blockEmpty).u8(OP.i32Const).u8(0x7f).u8(OP.return).u8(OP.end);
  // if (new > physical) { if (memory.grow(new - physical) == -1) return -1; hook(grew) }
  g.u8(OP.localGet).u8(1).u8(OP.memorySize).u8(0).u8(OP.localTee).u8(2).u8(OP.i32GtU);
  g.u8(OP.if).u8(OP.blockEmpty);
  g.u8(OP.localGet).u8(1).u8(OP.localGet).u8(2).u8(OP.i32Sub).u8(OP.memoryGrow).u8(0);
  g.u8(OP.i32Const).u8(0x7f).u8(OP.i32Eq);
  g.u8(OP.if).u8(OP.blockEmpty).u8(OP.i32Const).u8(0x7f).u8(OP.return).u8(OP.end);
  g.u8(OP.i32Const).u32(Hook.grew).u8(OP.i32Const).u8(0);
  g.u8(OP.callIndirect).u32(guard.type).u32(guard.table);
  g.u8(OP.end);
  // old = L; L = new; return old
  g.u8(OP.globalGet).u32(L).u8(OP.localGet).u8(1).u8(OP.globalSet).u32(L).u8(OP.end);
  // sync(_): L = physical; return L
  const s = new BinaryWriter(32).u32(0);
  s.u8(OP.memorySize).u8(0).u8(OP.globalSet).u32(L).u8(OP.globalGet).u32(L).u8(OP.end);
  return [g, s].map((w) =>
    new BinaryWriter(w.length + 5).u32(w.length).bytes(w.finish()).finish()
      .slice()
  );
}

/** `L`'s global entry: mutable i32, the initial pages. */
export function writeLogicalGlobal(w: BinaryWriter, layout: LogicalLayout): void {
  w.u8(I32).u8(0x01).u8(OP.i32Const).bytes(sleb(BigInt(layout.initialPages))).u8(OP.end);
}

/**
 * Writes, into `reset`'s code (whose argument, local 0, is 1 for a module grown from
 * JavaScript), `L = argument ? physical : initial pages`.
 */
export function writeLogicalReset(code: BinaryWriter, layout: LogicalLayout): void {
  code.u8(OP.localGet).u8(0).u8(OP.if).u8(I32).u8(OP.memorySize).u8(0).u8(OP.else);
  code.u8(OP.i32Const).bytes(sleb(BigInt(layout.initialPages))).u8(OP.end);
  code.u8(OP.globalSet).u32(layout.global);
}
