// Where the runtime placed a WebAssembly.Memory, as wasmpool_memory_placement reads it from
// /proc/self/maps, against what the memory then does: one said to be reserved in place keeps
// its address through grow; V8 reserves every memory in place; JavaScriptCore keeps most in
// its heap, where they move.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { native } from "../src/ffi/load.ts";

const WASM_PAGE = 65536;
/** JavaScriptCore reserves 4 GiB (+ 8 MiB) for each memory it reserves at all. */
const MINIMUM_RESERVED_PAGES = native().runtime === "bun" ? 65536 : 0;

interface Placed {
  readonly memory: WebAssembly.Memory;
  readonly maximum: number;
  readonly inPlace: number;
  readonly reservedPages: number;
}

function place(memory: WebAssembly.Memory, maximum: number, minimum: number): Placed {
  const lib = native();
  const reserved = new Uint32Array(1);
  const inPlace = lib.memoryPlacement(
    lib.pointerOf(memory.buffer)!,
    memory.buffer.byteLength / WASM_PAGE,
    maximum,
    minimum,
    reserved,
  );
  return { memory, maximum, inPlace, reservedPages: reserved[0] };
}

describe("memory placement", () => {
  it("a memory reserved in place keeps its address through grow; V8's all are", () => {
    const lib = native();
    const placed: Placed[] = [];
    for (let i = 0; i < 24; i++) {
      const maximum = [1, 2, 96, 160][i % 4];
      const memory = new WebAssembly.Memory({ initial: 1, maximum });
      placed.push(place(memory, maximum, MINIMUM_RESERVED_PAGES));
    }
    let movedNotReserved = 0;
    for (const p of placed) {
      assert.ok(p.inPlace === 0 || p.inPlace === 1, `placement answered ${p.inPlace}`);
      if (p.inPlace === 1) {
        assert.ok(p.reservedPages >= Math.max(p.maximum, MINIMUM_RESERVED_PAGES));
      }
      if (p.maximum === 1) continue;
      const before = lib.address(lib.pointerOf(p.memory.buffer)!);
      p.memory.grow(1);
      const after = lib.address(lib.pointerOf(p.memory.buffer)!);
      if (p.inPlace === 1) assert.equal(after, before, "a memory reserved in place moved");
      else if (after !== before) movedNotReserved++;
      // After the grow, still in place (or still not).
      assert.equal(place(p.memory, p.maximum, MINIMUM_RESERVED_PAGES).inPlace, p.inPlace);
    }
    const notReserved = placed.filter((p) => p.inPlace === 0);
    if (lib.runtime === "deno") {
      assert.equal(notReserved.length, 0, "V8 reserves every memory for its maximum");
    } else {
      // At most 8 memories live at once get JavaScriptCore's reservation: 16 at least do not.
      assert.ok(notReserved.length >= 16, `${notReserved.length} not reserved`);
      // And those move when they grow: the reason never to map an image over them.
      assert.ok(movedNotReserved > 0, "no memory outside a reservation moved on grow");
    }
  });

  it("a memory whose bytes are not its own anonymous memory is not in place", () => {
    const lib = native();
    const memory = new WebAssembly.Memory({ initial: 2, maximum: 4 });
    const reserved = new Uint32Array(1);
    const address = lib.pointerOf(memory.buffer)!;
    // More accessible pages than the memory has: the third page is PROT_NONE or someone else's.
    assert.notEqual(lib.memoryPlacement(address, 3, 4, 0, reserved), 1);
    // Fewer accessible pages than are read-write: read-write past them is no reservation.
    assert.equal(lib.memoryPlacement(address, 1, 4, 0, reserved), 0);
    // Accessible beyond the maximum: invalid.
    assert.equal(lib.memoryPlacement(address, 5, 4, 0, reserved), -4);
  });
});
