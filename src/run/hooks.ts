/**
 * The hook rewritten code calls through its hook table (see rewrite.ts): a wasm function (so
 * that a funcref table can hold it) made once per isolate from a tiny module that imports the
 * JavaScript behind it and exports it again. Its argument says what happened:
 *
 * - `Hook.disposed`: code of a disposed instance was entered: it throws DisposedError;
 * - `Hook.grew`: code grew a memory, so the runtime detached that memory's own buffer, and (in
 *   Bun) may have moved its bytes: every alias is brought up to date.
 *
 * @module
 */

import { DisposedError } from "../errors.ts";
import { BinaryWriter } from "./binary_writer.ts";
import { giveUpMoved } from "./host_memory_pool.ts";
import { syncAliased } from "./memory_record.ts";
import { HOOKS_EXPORT } from "./rewrite.ts";
import { Hook } from "./instrument.ts";

/** Code grew a memory: aliases of it go, and a pooled memory that moved is given up at once. */
export function grew(): void {
  syncAliased();
  giveUpMoved();
}

function hook(what: number): void {
  if (what === Hook.grew) return grew();
  throw new DisposedError("an export of an instance was called after the instance was disposed");
}

/** The hooks module: imports `hooks.hook` (`[i32] -> []`) and exports it as a wasm function. */
function hooksModuleBytes(): Uint8Array<ArrayBuffer> {
  const w = new BinaryWriter(128).bytes(Uint8Array.of(0x00, 0x61, 0x73, 0x6d, 1, 0, 0, 0));
  w.section(1, new BinaryWriter().u32(1).u8(0x60).u8(1).u8(0x7f).u8(0));
  w.section(2, new BinaryWriter().u32(1).name("hooks").name("hook").u8(0x00).u32(0));
  w.section(7, new BinaryWriter().u32(1).name("hook").u8(0x00).u32(0));
  return w.finish().slice();
}

let hookFunction: unknown = null;

/** Fills the hook table of `raw`, an instance of a rewritten module. */
export function installHooks(raw: WebAssembly.Instance): void {
  hookFunction ??= new WebAssembly.Instance(new WebAssembly.Module(hooksModuleBytes()), {
    hooks: { hook },
  }).exports.hook;
  (raw.exports[HOOKS_EXPORT] as unknown as { set(index: number, value: unknown): void })
    .set(0, hookFunction);
}
