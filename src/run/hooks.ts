/**
 * The hooks rewritten code calls through its hook table (see rewrite.ts): wasm functions (so
 * that a funcref table can hold them) made once per isolate from a tiny module that imports
 * the JavaScript behind them and exports it again.
 *
 * - `disposed` throws DisposedError: code of a disposed instance was entered.
 * - `grew` brings every memory alias up to date: code grew a memory, so the runtime detached
 *   that memory's own buffer, and (in Bun) may have moved its bytes.
 *
 * @module
 */

import { DisposedError } from "../errors.ts";
import { BinaryWriter } from "./binary_writer.ts";
import { giveUpGrown } from "./host_memory_pool.ts";
import { syncAliased } from "./memory_record.ts";
import { HOOKS_EXPORT } from "./rewrite.ts";
import { Hook } from "./instrument.ts";

/** Code grew a memory: aliases of it go, and a pooled memory that grew is given up at once. */
export function grew(): void {
  syncAliased();
  giveUpGrown();
}

function disposed(): never {
  throw new DisposedError("an export of an instance was called after the instance was disposed");
}

/** The hooks module: imports `hooks.disposed` and `hooks.grew`, exports them as wasm functions. */
function hooksModuleBytes(): Uint8Array<ArrayBuffer> {
  const w = new BinaryWriter(128).bytes(Uint8Array.of(0x00, 0x61, 0x73, 0x6d, 1, 0, 0, 0));
  w.section(1, new BinaryWriter().u32(1).u8(0x60).u8(0).u8(0));
  const imports = new BinaryWriter().u32(2);
  imports.name("hooks").name("disposed").u8(0x00).u32(0);
  imports.name("hooks").name("grew").u8(0x00).u32(0);
  w.section(2, imports);
  const exports = new BinaryWriter().u32(2);
  exports.name("disposed").u8(0x00).u32(0);
  exports.name("grew").u8(0x00).u32(1);
  w.section(7, exports);
  return w.finish().slice();
}

let hooks: { disposed: unknown; grew: unknown } | null = null;

function hookFunctions(): { disposed: unknown; grew: unknown } {
  if (hooks !== null) return hooks;
  const instance = new WebAssembly.Instance(new WebAssembly.Module(hooksModuleBytes()), {
    hooks: { disposed, grew },
  });
  hooks = { disposed: instance.exports.disposed, grew: instance.exports.grew };
  return hooks;
}

/** Fills the hook table of `raw`, an instance of a rewritten module. */
export function installHooks(raw: WebAssembly.Instance): void {
  const table = raw.exports[HOOKS_EXPORT] as unknown as {
    set(index: number, value: unknown): void;
  };
  const functions = hookFunctions();
  table.set(Hook.disposed, functions.disposed);
  table.set(Hook.grew, functions.grew);
}
