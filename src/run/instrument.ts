/**
 * The code half of the rewrite (see rewrite.ts): the function bodies, with checks inserted.
 * Inserting whole instructions between instructions keeps every branch valid (wasm branches
 * are by relative depth, and an inserted `if ... end` is self-contained), so bodies are copied
 * and only grow.
 *
 * Inserted today: at the entry of every function that can be reached from outside,
 * `global.get dead; if; i32.const 0; call_indirect (type hook) hooks; end` (the hook throws
 * DisposedError).
 *
 * @module
 */

import type { ByteReader } from "../module/reader.ts";
import { BinaryWriter } from "./binary_writer.ts";

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

/** `if (dead) call_indirect hooks[hook]`. */
function checkDead(guard: GuardIndices, hook: number): BinaryWriter {
  return new BinaryWriter(16)
    .u8(0x23).u32(guard.global) // global.get dead
    .u8(0x04).u8(0x40) // if (no result)
    .u8(0x41).u32(hook) // i32.const hook
    .u8(0x11).u32(guard.type).u32(guard.table) // call_indirect
    .u8(0x0b); // end
}

/** The body of the guard's `kill` function: `dead = 1`. */
function killBody(guard: GuardIndices): Uint8Array {
  const code = new BinaryWriter(16)
    .u8(0) // no locals
    .u8(0x41).u8(1) // i32.const 1
    .u8(0x24).u32(guard.global) // global.set dead
    .u8(0x0b);
  return new BinaryWriter(16).u32(code.length).bytes(code.finish()).finish().slice();
}

/**
 * Copies the code section `body` (null when the module has none), instrumenting the bodies of
 * the functions `escapes` names, and appends the body of the guard's `kill` function.
 */
export function instrumentCode(
  bytes: Uint8Array,
  body: ByteReader | null,
  guard: GuardIndices,
  escapes: (functionIndex: number) => boolean,
): BinaryWriter {
  const entry = checkDead(guard, Hook.disposed).finish().slice();
  const kill = killBody(guard);
  if (body === null) return new BinaryWriter(32).u32(1).bytes(kill);
  const count = body.u32();
  const out = new BinaryWriter(body.remaining + count * entry.length + 32).u32(count + 1);
  for (let i = 0; i < count; i++) {
    const size = body.u32();
    const code = body.sub(size);
    if (!escapes(guard.importedFunctions + i)) {
      out.u32(size).bytes(bytes.subarray(code.offset, code.end));
      continue;
    }
    const localsStart = code.offset;
    skipLocals(code);
    const instructions = code.offset;
    out.u32(size + entry.length);
    out.bytes(bytes.subarray(localsStart, instructions));
    out.bytes(entry);
    out.bytes(bytes.subarray(instructions, code.end));
  }
  return out.bytes(kill);
}

/** Skips a body's local declarations: a vector of (count, value type). */
function skipLocals(r: ByteReader): void {
  const runs = r.u32();
  for (let i = 0; i < runs; i++) {
    r.u32();
    const type = r.u8();
    // (ref null ht) / (ref ht): a heap type follows, as a signed LEB128 (s33).
    if (type === 0x63 || type === 0x64) r.s64();
  }
}
