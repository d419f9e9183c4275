/**
 * What page-write tracking costs on a 5 MiB host memory (`new WebAssembly.Memory({initial: 80,
 * maximum: 96})`; in Bun one made after 16 others, so that it lives in JavaScriptCore's heap):
 * PAGEMAP_SCAN with 0, 1, 16 and 80 written 4 KiB pages; register (which protects every page)
 * plus the first scan; restoring k written pages from a source buffer (natively: scan, memcpy,
 * protect again); a reset followed by the next tenant's first touches, by restore against an
 * image mapped copy-on-write and reset by madvise(DONTNEED), and both together; and, for
 * scale, the first write to a protected page against one to a page that is not tracked. Each sample times only its operation (mitata's manual timing), the
 * writes that set it up are not counted. Prints mitata's table and writes
 * `bench/results/write-tracker-<runtime>.json`.
 *
 *   deno run --allow-all bench/write_tracker_bench.ts
 *   bun bench/write_tracker_bench.ts
 *
 * @module
 */

import { bench, group, run, summary } from "../.tools/node_modules/mitata/src/main.mjs";
import { RUNTIME, writeResults } from "./mitata_results.ts";
import { native } from "../src/ffi/load.ts";
import {
  libc,
  MADV_DONTNEED,
  MAP_FIXED,
  MAP_PRIVATE,
  MFD_CLOEXEC,
  PROT_READ,
  PROT_WRITE,
} from "./probes/libc.ts";

const HOST_PAGE = 4096;
const WASM_PAGE = 65536;
const MEMORY_PAGES = 80;
const HOST_PAGES = MEMORY_PAGES * WASM_PAGE / HOST_PAGE; // 1280: 5 MiB
const RUNS_CAPACITY = 128;

const bun = (globalThis as { Bun?: { nanoseconds(): number } }).Bun;
const now: () => number = bun ? () => bun.nanoseconds() : () => performance.now() * 1e6;

const lib = native();
const reason = new Int32Array(2);
const tracker = lib.writeTrackerCreate(reason);
if (tracker === null) {
  throw new Error(`write tracking unavailable: reason ${reason[0]}, errno ${reason[1]}`);
}

function check(rc: number, what: string): number {
  if (rc < 0) throw new Error(`${what} failed: errno ${-rc}`);
  return rc;
}

// The image alternative: a memfd mapped copy-on-write over a memory reserved in place (made
// first: JavaScriptCore reserves only its first few memories), reset by madvise(DONTNEED).
const cowMemory = new WebAssembly.Memory({ initial: MEMORY_PAGES, maximum: 96 });
const cowAddress = lib.address(lib.pointerOf(cowMemory.buffer)!);
const cowView = new Uint8Array(cowMemory.buffer);
const reservedPages = new Uint32Array(1);
const minimumReservedPages = RUNTIME === "bun" ? 65536 : 0;
const cowInPlace = lib.memoryPlacement(
  lib.pointerOf(cowMemory.buffer)!,
  MEMORY_PAGES,
  96,
  minimumReservedPages,
  reservedPages,
) === 1;
if (cowInPlace) {
  const fd = libc.memfdCreate("wasmpool-bench-image", MFD_CLOEXEC);
  const image = new Uint8Array(MEMORY_PAGES * WASM_PAGE).fill(1);
  if (libc.ftruncate(fd, image.length) !== 0 || libc.pwrite(fd, image, 0) !== image.length) {
    throw new Error("memfd image not written");
  }
  const mapped = libc.mmap(
    cowAddress,
    image.length,
    PROT_READ | PROT_WRITE,
    MAP_PRIVATE | MAP_FIXED,
    fd,
  );
  if (mapped !== cowAddress) throw new Error(`image not mapped: ${mapped}`);
  libc.close(fd); // the mapping holds the file
}

const cowPointer = cowInPlace ? lib.pointerOf(cowMemory.buffer) : null;
if (cowPointer !== null) {
  check(lib.writeTrackerRegister(tracker, cowPointer, HOST_PAGES), "register");
}

// JavaScriptCore keeps its first few memories in fixed reservations: make them go first.
const crowd = Array.from({ length: 16 }, () => new WebAssembly.Memory({ initial: 1, maximum: 1 }));
const memory = new WebAssembly.Memory({ initial: MEMORY_PAGES, maximum: 96 });
const untracked = new WebAssembly.Memory({ initial: MEMORY_PAGES, maximum: 96 });
const view = new Uint8Array(memory.buffer);
const untrackedView = new Uint8Array(untracked.buffer);
const address = lib.pointerOf(memory.buffer)!;
view.fill(1); // every page populated, as a tenant's memory would be
untrackedView.fill(1);
const source = view.slice();
const sourcePointer = lib.pointerOf(source)!;
const runs = new Uint32Array(2 * RUNS_CAPACITY);
const end = new Uint32Array(1);

check(lib.writeTrackerRegister(tracker, address, HOST_PAGES), "register");

/** Writes one byte into each of `k` pages spread over the memory. */
function writePages(bytes: Uint8Array, k: number, value: number): void {
  const stride = k === 0 ? 0 : Math.floor(HOST_PAGES / k);
  for (let i = 0; i < k; i++) bytes[i * stride * HOST_PAGE + 7] = value;
}

function scan(): number {
  return check(
    lib.writeTrackerScan(tracker!, address, HOST_PAGES, runs, RUNS_CAPACITY, end),
    "scan",
  );
}

let value = 0;
summary(() => {
  group("PAGEMAP_SCAN of 5 MiB (find written pages, protect them again)", () => {
    for (const k of [0, 1, 16, 80]) {
      const b = bench(`scan, ${k} pages written`, function* () {
        yield {
          manual(): number {
            writePages(view, k, ++value & 0xff);
            const t0 = now();
            scan();
            return now() - t0;
          },
        };
      });
      if (k === 0) b.baseline(true);
    }
  });
});

summary(() => {
  group("register 5 MiB (protect every page) + first scan", () => {
    bench("register + first scan, every page populated", function* () {
      yield {
        manual(): number {
          check(lib.writeTrackerUnregister(tracker, address, HOST_PAGES), "unregister");
          const t0 = now();
          check(lib.writeTrackerRegister(tracker, address, HOST_PAGES), "register");
          scan();
          return now() - t0;
        },
      };
    }).baseline(true);
  });
});

summary(() => {
  group("restore k written pages from a source buffer (scan, memcpy, protect)", () => {
    for (const k of [0, 1, 16, 80]) {
      const b = bench(`restore, ${k} pages written`, function* () {
        yield {
          manual(): number {
            writePages(view, k, ++value & 0xff);
            const t0 = now();
            const restored = check(
              lib.writeTrackerRestore(tracker, address, HOST_PAGES, sourcePointer),
              "restore",
            );
            const t1 = now();
            if (restored !== k) throw new Error(`restored ${restored} pages, not ${k}`);
            return t1 - t0;
          },
        };
      });
      if (k === 0) b.baseline(true);
    }
    // The same by hand: a protecting scan, then a copy per run from JS (each page copied takes
    // a write-protect fault, since the scan protected it again).
    bench("scan + copy from JS, 16 pages written", function* () {
      yield {
        manual(): number {
          writePages(view, 16, ++value & 0xff);
          const t0 = now();
          const count = scan();
          for (let i = 0; i < count; i++) {
            const from = runs[2 * i] * HOST_PAGE;
            const to = from + runs[2 * i + 1] * HOST_PAGE;
            view.set(source.subarray(from, to), from);
          }
          const t1 = now();
          scan(); // the copy's own writes, untimed
          return t1 - t0;
        },
      };
    });
  });
});

summary(() => {
  group("first write to 16 pages", () => {
    bench("16 pages, tracked (write-protect fault, resolved in the kernel)", function* () {
      yield {
        manual(): number {
          scan();
          const t0 = now();
          writePages(view, 16, ++value & 0xff);
          return now() - t0;
        },
      };
    });
    bench("16 pages, not tracked (already writable)", function* () {
      yield {
        manual(): number {
          const t0 = now();
          writePages(untrackedView, 16, ++value & 0xff);
          return now() - t0;
        },
      };
    }).baseline(true);
  });
});

/** Reads one byte of each of `k` pages spread over the memory. */
function readPages(bytes: Uint8Array, k: number): number {
  const stride = k === 0 ? 0 : Math.floor(HOST_PAGES / k);
  let sum = 0;
  for (let i = 0; i < k; i++) sum += bytes[i * stride * HOST_PAGE + 7];
  return sum;
}

let sink = 0;
for (const [touch, k] of [["write", 1], ["write", 16], ["write", 80], ["read", 16]] as const) {
  summary(() => {
    group(`reset 5 MiB, then the next tenant's first ${touch} of ${k} pages`, () => {
      const b = bench(`tracked: restore, then ${k} ${touch}s`, function* () {
        yield {
          manual(): number {
            writePages(view, k, ++value & 0xff); // the previous tenant
            const t0 = now();
            check(lib.writeTrackerRestore(tracker, address, HOST_PAGES, sourcePointer), "restore");
            if (touch === "write") writePages(view, k, ++value & 0xff);
            else sink += readPages(view, k);
            const t1 = now();
            scan(); // the next reset's work, untimed
            check(lib.writeTrackerRestore(tracker, address, HOST_PAGES, sourcePointer), "restore");
            return t1 - t0;
          },
        };
      });
      b.baseline(true);
      if (!cowInPlace) return;
      // Both: the image mapped copy-on-write, its written pages restored by copy.
      bench(`image + tracked: restore, then ${k} ${touch}s`, function* () {
        yield {
          manual(): number {
            writePages(cowView, k, ++value & 0xff); // the previous tenant
            const t0 = now();
            check(
              lib.writeTrackerRestore(tracker, cowPointer!, HOST_PAGES, sourcePointer),
              "restore",
            );
            if (touch === "write") writePages(cowView, k, ++value & 0xff);
            else sink += readPages(cowView, k);
            const t1 = now();
            check(
              lib.writeTrackerRestore(tracker, cowPointer!, HOST_PAGES, sourcePointer),
              "restore",
            );
            return t1 - t0;
          },
        };
      });
      bench(`image: madvise(DONTNEED), then ${k} ${touch}s`, function* () {
        yield {
          manual(): number {
            writePages(cowView, k, ++value & 0xff); // the previous tenant
            const t0 = now();
            if (libc.madvise(cowAddress, HOST_PAGES * HOST_PAGE, MADV_DONTNEED) !== 0) {
              throw new Error("madvise failed");
            }
            if (touch === "write") writePages(cowView, k, ++value & 0xff);
            else sink += readPages(cowView, k);
            return now() - t0;
          },
        };
      });
    });
  });
}

if (!cowInPlace) console.log("the image rows are left out: no memory reserved in place");
const result = await run();
void sink;
lib.writeTrackerDestroy(tracker);
void crowd;
writeResults(`write-tracker-${RUNTIME}`, result);
