/**
 * The benches' small module: one page (maximum one), a 1 KiB data segment of
 * {@linkcode SMALL_MODULE_DATA_BYTE} at offset 0, a 10-entry table with one element segment,
 * and one exported function, `read()`, which returns the i32 at offset 0 (the call the running
 * benches make).
 *
 * @module
 */

import { buildModule } from "../tests/fixtures/wasm_builder.ts";

/** The byte the small module's data segment is filled with. */
export const SMALL_MODULE_DATA_BYTE = 7;

/** The small module's binary. */
export function smallModuleBytes(): Uint8Array<ArrayBuffer> {
  return buildModule({
    types: [{ params: [], results: ["i32"] }],
    functions: [0],
    exports: [{ name: "read", kind: "function", index: 0 }],
    bodies: [{ code: [0x41, 0x00, 0x28, 0x02, 0x00] }], // i32.const 0; i32.load
    memories: [{ min: 1, max: 1, shared: false }],
    tables: [{ element: "funcref", min: 10, max: 10 }],
    data: [{
      mode: "active",
      offset: { kind: "i32.const", value: 0 },
      data: new Uint8Array(1024).fill(SMALL_MODULE_DATA_BYTE),
    }],
    elements: [{ mode: "active", offset: { kind: "i32.const", value: 0 }, elements: [0] }],
  });
}
