/**
 * Whether a memfd mapped `MAP_PRIVATE|MAP_FIXED` over the accessible part of a
 * `WebAssembly.Memory` behaves as an image: wasm code and JS read the file's bytes, writes stay
 * private, `madvise(DONTNEED)` returns the file's bytes, `grow` still works, and the runtime
 * collects the memory without crashing (the mapping goes with it). Run on memories the runtime
 * reserved in place (V8's; JavaScriptCore's first, "fast" memories) and, in Bun, reports what
 * it would mean for a memory in JavaScriptCore's heap without mapping over it.
 *
 *   deno run --allow-all --v8-flags=--expose-gc bench/probes/cow_probe.ts
 *   bun bench/probes/cow_probe.ts
 *
 * @module
 */

import { readFileSync } from "node:fs";
import { addressOf, describe, RUNTIME } from "./host_memory.ts";
import {
  libc,
  MADV_DONTNEED,
  MAP_FIXED,
  MAP_PRIVATE,
  MFD_CLOEXEC,
  PROT_READ,
  PROT_WRITE,
} from "./libc.ts";
import { collectRounds } from "../../tests/fixtures/gc.ts";
import { memoryAccessInstance } from "../../tests/fixtures/memory_access_module.ts";

const PAGE = 65536;
const HOST_PAGE = 4096;

/** The image byte of host page `page`: never 0. */
function imageByte(page: number): number {
  return 1 + (page % 251);
}

function check(label: string, ok: boolean): void {
  console.log(`${ok ? "ok  " : "FAIL"} ${label}`);
  if (!ok) process.exitCode = 1;
}

function memfdMappings(): number {
  return readFileSync("/proc/self/maps", "utf8").split("\n").filter((l) =>
    l.includes("/memfd:wasmpool-probe")
  ).length;
}

/** Maps an image over `memory`'s accessible part and exercises it. Returns the fd. */
function exercise(label: string, memory: WebAssembly.Memory, maximumPages: number): number {
  const sizeBytes = memory.buffer.byteLength;
  const address = addressOf(memory.buffer);
  console.log(`-- ${label}: ${sizeBytes / PAGE} pages at 0x${address.toString(16)}`);
  const fd = libc.memfdCreate("wasmpool-probe", MFD_CLOEXEC);
  const image = new Uint8Array(sizeBytes);
  for (let page = 0; page < sizeBytes / HOST_PAGE; page++) {
    image.fill(imageByte(page), page * HOST_PAGE, (page + 1) * HOST_PAGE);
  }
  check(
    "memfd written",
    libc.ftruncate(fd, sizeBytes) === 0 && libc.pwrite(fd, image, 0) === sizeBytes,
  );
  const mapped = libc.mmap(address, sizeBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, fd);
  check(
    `mmap MAP_FIXED over the accessible part (${mapped === address ? "same address" : mapped})`,
    mapped === address,
  );
  console.log(`     maps: ${describe(address, maximumPages * PAGE + PAGE)}`);
  const wasm = memoryAccessInstance(memory, maximumPages);
  const view = new Uint8Array(memory.buffer);
  const pages = sizeBytes / HOST_PAGE;
  let seen = true;
  for (let page = 0; page < pages; page++) {
    const at = page * HOST_PAGE + 123;
    if (view[at] !== imageByte(page) || wasm.load(at) !== imageByte(page)) seen = false;
  }
  check("JS and wasm read the file's bytes", seen);
  wasm.store(5, 0xee);
  view[HOST_PAGE + 5] = 0xdd;
  const fileBytes = new Uint8Array(2 * HOST_PAGE);
  libc.pread(fd, fileBytes, 0);
  check(
    "writes are seen by both and stay private (the file keeps its bytes)",
    view[5] === 0xee && wasm.load(HOST_PAGE + 5) === 0xdd && fileBytes[5] === imageByte(0) &&
      fileBytes[HOST_PAGE + 5] === imageByte(1),
  );
  check("madvise(DONTNEED) succeeds", libc.madvise(address, sizeBytes, MADV_DONTNEED) === 0);
  check(
    "after DONTNEED both read the file's bytes again",
    view[5] === imageByte(0) && wasm.load(HOST_PAGE + 5) === imageByte(1),
  );
  if (maximumPages > sizeBytes / PAGE) {
    const old = memory.grow(1);
    const grownAddress = addressOf(memory.buffer);
    const grown = new Uint8Array(memory.buffer);
    grown[sizeBytes + 7] = 9;
    check(
      `grow(1) from ${old} pages: in place, new page zero then writable, image kept`,
      grownAddress === address && grown[sizeBytes] === 0 && wasm.load(sizeBytes + 7) === 9 &&
        wasm.load(123) === imageByte(0) && wasm.size() === old + 1,
    );
    check("wasm memory.grow(1) too", wasm.grow(1) === old + 1 && wasm.load(sizeBytes + PAGE) === 0);
    check(
      "madvise(DONTNEED) of the image part after grow",
      libc.madvise(address, sizeBytes, MADV_DONTNEED) === 0 && wasm.load(5) === imageByte(0),
    );
    console.log(`     maps: ${describe(address, maximumPages * PAGE + PAGE)}`);
  }
  return fd;
}

console.log(`== ${RUNTIME}`);

/** The first memories: V8 reserves every memory in place; JavaScriptCore its first ones. */
function exerciseFirstMemories(): number[] {
  const fds: number[] = [];
  const memories = [
    { memory: new WebAssembly.Memory({ initial: 2, maximum: 160 }), maximum: 160 },
    { memory: new WebAssembly.Memory({ initial: 80, maximum: 96 }), maximum: 96 },
    { memory: new WebAssembly.Memory({ initial: 1, maximum: 1 }), maximum: 1 },
  ];
  for (const { memory, maximum } of memories) {
    const label = `initial ${memory.buffer.byteLength / PAGE}, maximum ${maximum}`;
    fds.push(exercise(label, memory, maximum));
  }
  console.log(`memfd mappings before collection: ${memfdMappings()}`);
  return fds;
}

const fds = exerciseFirstMemories();
await collectRounds(5, 20);
const left = memfdMappings();
check(
  `the memories are collected and their image mappings go with them (left: ${left})`,
  left === 0,
);
for (const fd of fds) libc.close(fd);

// Reuse after collection: new memories at the freed addresses work as usual.
{
  const memory = new WebAssembly.Memory({ initial: 2, maximum: 160 });
  const wasm = memoryAccessInstance(memory, 160);
  wasm.fill(0, 3, 2 * PAGE);
  check("a new memory after collection works (zeros, writable)", wasm.load(PAGE) === 3);
}
console.log("done: no crash");
