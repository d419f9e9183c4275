/**
 * Where the runtime puts a `new WebAssembly.Memory`: the mappings at and after its buffer's
 * address, by declared maximum, by how many memories were made before it, across `grow`, and
 * after the memory is collected. Prints one line per observation.
 *
 *   deno run --allow-all --v8-flags=--expose-gc bench/probes/placement_probe.ts
 *   bun bench/probes/placement_probe.ts
 *
 * @module
 */

import { collectRounds } from "../../tests/fixtures/gc.ts";
import { addressOf, describe, RUNTIME, vmasFrom } from "./host_memory.ts";

const SPAN = 16 * 2 ** 30;

function hex(address: number): string {
  return "0x" + address.toString(16);
}

function make(maximum: number | undefined, initial = 1): WebAssembly.Memory {
  return new WebAssembly.Memory(maximum === undefined ? { initial } : { initial, maximum });
}

function growAndReport(label: string, memory: WebAssembly.Memory, deltas: number[]): void {
  let before = addressOf(memory.buffer);
  for (const delta of deltas) {
    const old = memory.grow(delta);
    const after = addressOf(memory.buffer);
    console.log(
      `${label}: grow(${delta}) from ${old} pages: ${hex(before)} -> ${hex(after)}` +
        `${before === after ? " (same)" : " (MOVED)"} ${describe(after, SPAN)}`,
    );
    before = after;
  }
}

/** Whether the mappings at `address` are unchanged since `before` was read. */
function unchanged(address: number, before: ReturnType<typeof vmasFrom>): string {
  const now = vmasFrom(address, SPAN);
  const same = now.length > 0 && before.length > 0 && now[0].start === before[0].start &&
    now[0].end === before[0].end && now[0].perms === before[0].perms;
  return same ? "(unchanged)" : "(changed)";
}

console.log(`== ${RUNTIME}: by declared maximum (initial 1 page), the first memories made`);
const byMaximum: [string, WebAssembly.Memory][] = [];
for (const maximum of [undefined, 1, 96, 160, 65536]) {
  const memory = make(maximum);
  byMaximum.push([`maximum ${maximum ?? "absent"}`, memory]);
  const address = addressOf(memory.buffer);
  console.log(`maximum ${maximum ?? "absent"}: ${hex(address)} ${describe(address, SPAN)}`);
}

console.log(`== ${RUNTIME}: grow of those first memories`);
growAndReport("first, maximum absent", byMaximum[0][1], [1, 15, 64]);
growAndReport("first, maximum 160", byMaximum[3][1], [1, 15, 64, 79]);

console.log(`== ${RUNTIME}: GC of one of the first memories (maximum 96, 1 page written)`);
{
  const memory = byMaximum[2][1];
  const address = addressOf(memory.buffer);
  new Uint8Array(memory.buffer).fill(1);
  const before = vmasFrom(address, SPAN);
  console.log(`before: ${hex(address)} ${describe(address, SPAN)}`);
  byMaximum.splice(2, 1);
  await collectRounds(5, 20);
  console.log(`after gc: ${describe(address, SPAN)} ${unchanged(address, before)}`);
  const next = make(96);
  const nextAddress = addressOf(next.buffer);
  console.log(
    `next memory (maximum 96): ${hex(nextAddress)}${
      nextAddress === address ? " (same slot)" : ""
    }` +
      ` ${describe(nextAddress, SPAN)}`,
  );
  byMaximum.push(["next", next]);
}

console.log(`== ${RUNTIME}: the n-th memory made (initial 1; all kept alive)`);
const keep: WebAssembly.Memory[] = [];
for (const maximum of [160, undefined]) {
  for (let n = 1; n <= 1000; n++) {
    const memory = make(maximum);
    keep.push(memory);
    if (n <= 10 || n === 100 || n === 1000) {
      const address = addressOf(memory.buffer);
      console.log(
        `maximum ${maximum ?? "absent"} #${n}: ${hex(address)} ${describe(address, SPAN)}`,
      );
    }
  }
}

console.log(`== ${RUNTIME}: grow of memories made after 2000 others`);
growAndReport("late, maximum 160", make(160), [1, 2, 12, 64, 79]);
growAndReport("late, maximum absent", make(undefined), [1, 2, 12, 64, 79]);
growAndReport("late, maximum 160, initial 80", make(160, 80), [0, 1, 16]);

console.log(`== ${RUNTIME}: GC of a memory made after 2000 others`);
{
  let memory: WebAssembly.Memory | null = make(160, 2);
  new Uint8Array(memory.buffer).fill(1);
  const address = addressOf(memory.buffer);
  const before = vmasFrom(address, SPAN);
  console.log(`before: ${hex(address)} ${describe(address, SPAN)}`);
  memory = null;
  await collectRounds(5, 20);
  console.log(`after gc: ${describe(address, SPAN)} ${unchanged(address, before)}`);
}
console.log(`kept ${keep.length + byMaximum.length} memories`);
