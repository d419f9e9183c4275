/**
 * Function body decoding throughput on a large real module: esbuild-wasm's code section (10 MB,
 * 5,307 bodies, 4.7 million instructions), listed and decoded instruction by instruction by
 * `src/module/code.ts`, against a bare loop over the same bytes (the floor: one load and add per
 * byte) and the runtime's own `WebAssembly.validate` of the whole module (a reference, not a like
 * for like: it validates types too, and the data segments). Prints MB/s of code section per
 * iteration's median and writes `bench/results/decode-<runtime>.json`.
 *
 * @module
 */

import { bench, group, run, summary } from "../.tools/node_modules/mitata/src/main.mjs";
import { RUNTIME, writeResults } from "./mitata_results.ts";
import { InstructionReader, readFunctionBodies } from "../src/module/code.ts";
import { parseModule } from "../src/module/parse.ts";
import { readRealModule, realModules } from "../tests/fixtures/npm_modules.ts";

const esbuild = realModules().find((m) => m.name === "esbuild")!;
const bytes = readRealModule(esbuild);
const code = parseModule(bytes).code!;
const codeBytes = code.end - code.start;

/** Lists the bodies and decodes every instruction; returns the instruction count. */
function decodeAll(): number {
  let count = 0;
  for (const body of readFunctionBodies(bytes, code)) {
    const reader = new InstructionReader(bytes, body);
    while (reader.next() !== null) count++;
  }
  return count;
}

/** The floor: touches every byte of the code section once. */
function sumBytes(): number {
  let sum = 0;
  for (let i = code.start; i < code.end; i++) sum += bytes[i];
  return sum;
}

const title = `esbuild code section (${(codeBytes / 1e6).toFixed(1)} MB, ` +
  `${decodeAll()} instructions)`;
summary(() => {
  group(title, () => {
    bench("sum of the bytes (floor)", () => sumBytes()).baseline(true);
    bench("decode every instruction", () => decodeAll());
    bench("WebAssembly.validate (whole module)", () => WebAssembly.validate(bytes));
  });
});

const result = await run({ format: "mitata" });
writeResults(`decode-${RUNTIME}`, result);
for (const b of result.benchmarks) {
  const p50 = b.runs[0]?.stats?.p50;
  if (p50 === undefined) continue;
  const mbPerS = codeBytes / 1e6 / (p50 / 1e9);
  console.log(`${RUNTIME} ${b.alias}: ${(p50 / 1e6).toFixed(1)} ms, ${mbPerS.toFixed(0)} MB/s`);
}
