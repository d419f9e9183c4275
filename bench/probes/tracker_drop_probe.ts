/**
 * What a host memory dropped while registered leaves behind: 50 memories registered with one
 * tracker are collected, then 200 new memories are registered with a second tracker. Counts the
 * new memories placed at a dropped memory's address and the registrations refused (EBUSY: the
 * range is still registered with the first tracker), then the same after the first tracker is
 * destroyed.
 *
 *   deno run --allow-all --v8-flags=--expose-gc bench/probes/tracker_drop_probe.ts
 *   bun bench/probes/tracker_drop_probe.ts
 *
 * @module
 */

import { native } from "../../src/ffi/load.ts";
import { collectRounds } from "../../tests/fixtures/gc.ts";

const EBUSY = 16;
const lib = native();
const reason = new Int32Array(2);
const first = lib.writeTrackerCreate(reason);
const second = lib.writeTrackerCreate(reason);
if (first === null || second === null) throw new Error(`no tracker: reason ${reason[0]}`);

// JavaScriptCore's first memories have their own reservations: use them up.
const crowd = Array.from({ length: 16 }, () => new WebAssembly.Memory({ initial: 1, maximum: 1 }));
const dropped = new Set<number>();
(() => {
  for (let i = 0; i < 50; i++) {
    const memory = new WebAssembly.Memory({ initial: 2, maximum: 4 });
    const pointer = lib.pointerOf(memory.buffer)!;
    const rc = lib.writeTrackerRegister(first, pointer, 32);
    if (rc !== 0) console.log(`register failed: ${rc}`);
    dropped.add(lib.address(pointer));
    new Uint8Array(memory.buffer).fill(1);
  }
})();
await collectRounds(5, 20);

let reused = 0;
let busy = 0;
let registered = 0;
const kept: WebAssembly.Memory[] = [];
for (let i = 0; i < 200; i++) {
  const memory = new WebAssembly.Memory({ initial: 2, maximum: 4 });
  kept.push(memory);
  const pointer = lib.pointerOf(memory.buffer)!;
  if (dropped.has(lib.address(pointer))) reused++;
  const rc = lib.writeTrackerRegister(second, pointer, 32);
  if (rc === -EBUSY) busy++;
  else if (rc === 0) registered++;
  else console.log(`register: ${rc}`);
  new Uint8Array(memory.buffer)[5] = 1;
}
console.log(
  `${lib.runtime}: new memories at a dropped, still-registered address: ${reused}; ` +
    `registered by a second tracker: ${registered}, refused with EBUSY: ${busy}`,
);
lib.writeTrackerDestroy(first);
let after = 0;
for (const memory of kept) {
  if (lib.writeTrackerRegister(second, lib.pointerOf(memory.buffer)!, 32) === 0) after++;
}
console.log(`after the first tracker is destroyed: ${after}/${kept.length} register`);
lib.writeTrackerDestroy(second);
void crowd;
