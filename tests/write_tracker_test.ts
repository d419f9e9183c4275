// Page-write tracking (userfaultfd async write protection + PAGEMAP_SCAN) on real
// WebAssembly.Memory buffers: the pages a tiny module's stores and a JS view write are exactly
// the pages a scan reports, once; a grown (in Bun, maybe moved) memory's new range registers
// and its old one unregisters; restore copies back exactly the written pages.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { native } from "../src/ffi/load.ts";
import type { NativePointer } from "../src/ffi/symbols.ts";
import { memoryAccessInstance } from "./fixtures/memory_access_module.ts";
import { prng } from "./fixtures/prng.ts";
import { sameBytes } from "./fixtures/same_bytes.ts";

const HOST_PAGE = 4096;
const WASM_PAGE = 65536;
const RUNS_CAPACITY = 64;

/** Reasons a tracker cannot be had, as write_tracker.zig's `Reason` numbers them. */
const REASONS = ["available", "kernel_too_old", "permission", "feature_missing", "other"];

const lib = native();
const reason = new Int32Array(2);
const probe = lib.writeTrackerCreate(reason);
if (probe !== null) lib.writeTrackerDestroy(probe);
// Only a kernel or a process that cannot track writes skips these tests; any other failure fails.
const unavailable = probe === null && reason[0] !== 4
  ? `write tracking unavailable: ${REASONS[reason[0]]} (errno ${reason[1]})`
  : false;

/** A tracker for one test; destroyed by `using`. */
interface Tracker extends Disposable {
  readonly pointer: NativePointer;
}

function tracker(): Tracker {
  const out = new Int32Array(2);
  const made = lib.writeTrackerCreate(out);
  assert.ok(made !== null, `write tracker: ${REASONS[out[0]]}, errno ${out[1]}`);
  return { pointer: made, [Symbol.dispose]: () => lib.writeTrackerDestroy(made) };
}

function pointerOf(memory: WebAssembly.Memory): NativePointer {
  const pointer = lib.pointerOf(memory.buffer);
  assert.ok(pointer !== null);
  return pointer;
}

function hostPages(memory: WebAssembly.Memory): number {
  return memory.buffer.byteLength / HOST_PAGE;
}

/** One complete scan of `memory`, as [first page, page count] pairs. */
function scan(t: Tracker, address: NativePointer, pages: number): [number, number][] {
  const runs = new Uint32Array(2 * RUNS_CAPACITY);
  const end = new Uint32Array(1);
  const count = lib.writeTrackerScan(t.pointer, address, pages, runs, RUNS_CAPACITY, end);
  assert.ok(count >= 0, `scan failed: errno ${-count}`);
  assert.equal(end[0], pages, "the scan walked the whole range");
  const out: [number, number][] = [];
  for (let i = 0; i < count; i++) out.push([runs[2 * i], runs[2 * i + 1]]);
  return out;
}

/** Memories made before the one under test, kept alive: JavaScriptCore makes its first few
 * memories with a fixed reservation and every later one in its heap, where they move. */
const crowd: WebAssembly.Memory[] = [];
function memoryAfter(others: number, initial: number, maximum: number): WebAssembly.Memory {
  while (crowd.length < others) crowd.push(new WebAssembly.Memory({ initial: 1, maximum: 1 }));
  return new WebAssembly.Memory({ initial, maximum });
}

describe("write tracker on host memories", { skip: unavailable }, () => {
  for (const others of [0, 16]) {
    const where = others === 0 ? "a memory" : `a memory made after ${others} others`;

    it(`${where}: wasm and JS writes are exactly the pages scanned, once`, () => {
      using t = tracker();
      const memory = memoryAfter(others, 2, 160);
      const wasm = memoryAccessInstance(memory, 160);
      const view = new Uint8Array(memory.buffer);
      const plain = new Uint8Array(memory.buffer.byteLength);
      const address = pointerOf(memory);
      const pages = hostPages(memory);
      assert.equal(lib.writeTrackerRegister(t.pointer, address, pages), 0);
      assert.deepEqual(scan(t, address, pages), []);

      wasm.store(5 * HOST_PAGE + 1, 1);
      wasm.store(6 * HOST_PAGE, 2);
      view[20 * HOST_PAGE + 9] = 3;
      wasm.fill(28 * HOST_PAGE + 100, 7, 2 * HOST_PAGE); // pages 28, 29, 30
      plain[5 * HOST_PAGE + 1] = 1;
      plain[6 * HOST_PAGE] = 2;
      plain[20 * HOST_PAGE + 9] = 3;
      plain.fill(7, 28 * HOST_PAGE + 100, 30 * HOST_PAGE + 100);
      // Reads of pages written or not are not writes.
      assert.equal(wasm.load(10 * HOST_PAGE), 0);
      assert.equal(view[29 * HOST_PAGE], 7);
      assert.deepEqual(scan(t, address, pages), [[5, 2], [20, 1], [28, 3]]);
      assert.deepEqual(scan(t, address, pages), []);
      // Tracking changes no byte: the memory holds what a plain buffer given the same writes does.
      assert.deepEqual(new Uint8Array(memory.buffer), plain);

      view[0] = 9;
      wasm.store(2 * WASM_PAGE - 1, 9);
      assert.deepEqual(scan(t, address, pages), [[0, 1], [pages - 1, 1]]);
      assert.equal(lib.writeTrackerUnregister(t.pointer, address, pages), 0);
    });

    it(`${where}: after grow, the new range registers and the old one unregisters`, () => {
      using t = tracker();
      const memory = memoryAfter(others, 2, 160);
      const wasm = memoryAccessInstance(memory, 160);
      const oldAddress = pointerOf(memory);
      const oldPages = hostPages(memory);
      const oldValue = lib.address(oldAddress);
      const reservedInPlace = lib.memoryPlacement(
        oldAddress,
        2,
        160,
        lib.runtime === "bun" ? 65536 : 0,
        new Uint32Array(1),
      ) === 1;
      assert.equal(lib.writeTrackerRegister(t.pointer, oldAddress, oldPages), 0);
      wasm.store(3 * HOST_PAGE, 1);
      assert.equal(memory.grow(1), 2);
      const newAddress = pointerOf(memory);
      const newPages = hostPages(memory);
      const moved = lib.address(newAddress) !== oldValue;
      // V8 grows every memory in place; JavaScriptCore moves the ones in its heap: all but its
      // first few live memories (so surely one made after 16 live others; the first memory made
      // here is one of the few only if the process holds fewer, which earlier tests in the same
      // process decide: an engine with interruption holds one for good). What the maps said of
      // the memory before it grew decides.
      assert.equal(moved, !reservedInPlace);
      if (lib.runtime === "deno" || others > 0) assert.equal(moved, lib.runtime === "bun");
      assert.equal(lib.writeTrackerUnregister(t.pointer, oldAddress, oldPages), 0);
      assert.equal(lib.writeTrackerRegister(t.pointer, newAddress, newPages), 0);
      assert.deepEqual(scan(t, newAddress, newPages), []);
      wasm.store(2 * WASM_PAGE + 5, 1); // the new wasm page
      wasm.store(3 * HOST_PAGE + 1, 2);
      assert.equal(wasm.load(3 * HOST_PAGE), 1, "the bytes written before grow are kept");
      assert.deepEqual(scan(t, newAddress, newPages), [[3, 1], [32, 1]]);
      assert.equal(lib.writeTrackerUnregister(t.pointer, newAddress, newPages), 0);
    });

    it(`${where}: restore copies back exactly the written pages`, () => {
      using t = tracker();
      const memory = memoryAfter(others, 2, 2);
      const wasm = memoryAccessInstance(memory, 2);
      const view = new Uint8Array(memory.buffer);
      for (let page = 0; page < hostPages(memory); page++) {
        view.fill(1 + page, page * HOST_PAGE, (page + 1) * HOST_PAGE);
      }
      const image = view.slice();
      const address = pointerOf(memory);
      const pages = hostPages(memory);
      assert.equal(lib.writeTrackerRegister(t.pointer, address, pages), 0);
      wasm.fill(4 * HOST_PAGE, 0xee, 3 * HOST_PAGE);
      view[17 * HOST_PAGE] = 0xdd;
      const restored = lib.writeTrackerRestore(t.pointer, address, pages, lib.pointerOf(image)!);
      assert.equal(restored, 4);
      assert.deepEqual(new Uint8Array(memory.buffer), image);
      assert.deepEqual(scan(t, address, pages), []);
      wasm.store(0, 5);
      assert.deepEqual(scan(t, address, pages), [[0, 1]]);
    });
  }

  for (const others of [0, 16]) {
    it(`1,000 seeded tenants of ${others === 0 ? "a memory" : `a memory made after ${others} others`}: restore gives back the image, page for page`, () => {
      using t = tracker();
      const memory = memoryAfter(others, 2, 2);
      const wasm = memoryAccessInstance(memory, 2);
      const view = new Uint8Array(memory.buffer);
      const pages = hostPages(memory);
      for (let page = 0; page < pages; page++) {
        view.fill(page * 7 + 1, page * HOST_PAGE, (page + 1) * HOST_PAGE);
      }
      const image = view.slice();
      const imagePointer = lib.pointerOf(image)!;
      const address = pointerOf(memory);
      assert.equal(lib.writeTrackerRegister(t.pointer, address, pages), 0);
      const random = prng(0x5eed + others);
      for (let cycle = 0; cycle < 1000; cycle++) {
        const written = new Set<number>();
        const writes = Math.floor(random() * 10);
        for (let i = 0; i < writes; i++) {
          const at = Math.floor(random() * view.length);
          const value = 1 + Math.floor(random() * 255);
          if (random() < 0.5) wasm.store(at, value);
          else view[at] = value;
          written.add(Math.floor(at / HOST_PAGE));
        }
        if (random() < 0.1) {
          // A tenant that fills a span: whole pages and the edges of two.
          const at = Math.floor(random() * (view.length - 3 * HOST_PAGE));
          wasm.fill(at, 0, 2 * HOST_PAGE);
          for (
            let page = Math.floor(at / HOST_PAGE);
            page * HOST_PAGE < at + 2 * HOST_PAGE;
            page++
          ) {
            written.add(page);
          }
        }
        const restored = lib.writeTrackerRestore(t.pointer, address, pages, imagePointer);
        assert.equal(restored, written.size, `cycle ${cycle}: pages restored`);
        assert.ok(sameBytes(new Uint8Array(memory.buffer), image), `cycle ${cycle}: bytes`);
      }
    });
  }

  it("refuses a range that is not tracked with -EPERM, and bad arguments with -EINVAL", () => {
    using t = tracker();
    const memory = new WebAssembly.Memory({ initial: 1, maximum: 1 });
    const address = pointerOf(memory);
    const runs = new Uint32Array(2);
    const end = new Uint32Array(1);
    const EPERM = 1;
    const EINVAL = 22;
    assert.equal(lib.writeTrackerScan(t.pointer, address, 16, runs, 1, end), -EPERM);
    assert.equal(lib.writeTrackerRegister(t.pointer, address, 0), -EINVAL);
    assert.equal(lib.writeTrackerScan(t.pointer, address, 16, runs, 0, end), -EINVAL);
    const view = new Uint8Array(memory.buffer, 1);
    assert.equal(lib.writeTrackerRegister(t.pointer, lib.pointerOf(view)!, 1), -EINVAL);
  });
});
