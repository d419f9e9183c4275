/**
 * Snapshots at run time (issue 17), in one run per runtime, with tiktoken's cl100k encoder:
 *
 * - to an encoder ready to encode: building it in a fresh instance, against a tenant of the
 *   snapshot (instantiate, `__wbg_set_wasm`, `Tiktoken.__wrap`; then `__destroy_into_raw`, which
 *   takes the object off the glue's finalizer without freeing into the memory the reset
 *   restores anyway, and dispose, so that the cycle repeats), against a recycled cycle of the
 *   small module (the baseline);
 * - taking the snapshot of the 18 MiB instance, against copying its non-zero pages once (the
 *   baseline: into a new buffer, as any copy that is kept must; and into one reused, which
 *   takes no page fault);
 * - the private memory of 100 live tenants of the snapshot, each having encoded a short text
 *   (`/proc/self/smaps_rollup`, Private_Clean + Private_Dirty, after a collection), written to
 *   `bench/results/snapshot-memory-<runtime>.json`.
 *
 * Prints mitata's table and writes `bench/results/snapshot-<runtime>.json`.
 *
 * @module
 */

import { readFileSync, writeFileSync } from "node:fs";
import { bench, group, run, summary } from "../.tools/node_modules/mitata/src/main.mjs";
import { RUNTIME, writeResults } from "./mitata_results.ts";
import { Config, Engine, type Instance, InstanceAllocationStrategy, Module } from "../mod.ts";
import { GlueCopies } from "../tests/fixtures/glue_copies.ts";
import { readRealModule } from "../tests/fixtures/npm_modules.ts";
import { collectWhereExposed } from "../tests/fixtures/gc.ts";
import { cl100k } from "../tests/fixtures/snapshot_modules.ts";
import {
  TIKTOKEN,
  TIKTOKEN_GLUE_PATH,
  type TiktokenGlue,
} from "../tests/fixtures/tiktoken_glue.ts";
import { smallModuleBytes } from "./small_module.ts";

type Encoder = InstanceType<TiktokenGlue["Tiktoken"]> & {
  __wbg_ptr: number;
  __destroy_into_raw(): number;
};
type Glue = TiktokenGlue & { Tiktoken: { __wrap(ptr: number): Encoder } };

const LIVE_TENANTS = 100;
const SHORT_TEXT = "Snapshots at run time, in a JavaScript host: hello world!";
const PAGE_BYTES = 4096;

const engine = new Engine(new Config().withAllocationStrategy(
  InstanceAllocationStrategy.pooling({
    instanceLimits: { count: LIVE_TENANTS + 16 },
    moduleLimits: { memoryPages: 1024 },
  }),
));
// A glue caches views of the last instance's memory until they detach, which a live instance's
// never do: each instance that stays live (the original, each of the live tenants) gets a copy
// of the glue file of its own, and the cycles below share the first.
const glueFiles = new GlueCopies("snapshot-glue");
function glueCopy(): Promise<Glue> {
  return glueFiles.import<Glue>(TIKTOKEN_GLUE_PATH);
}
function importsOf(glue: Glue): Record<string, Record<string, unknown>> {
  return { "./tiktoken_bg.js": glue as unknown as Record<string, unknown> };
}
const glue = await glueCopy();
const imports = importsOf(glue);
const originalGlue = await glueCopy();
const ranks = cl100k();
const tiktoken = new Module(engine, readRealModule(TIKTOKEN));
const small = new Module(engine, smallModuleBytes());

const original = engine.instantiate(tiktoken, importsOf(originalGlue));
originalGlue.__wbg_set_wasm(original.exports);
const built = new originalGlue.Tiktoken(
  ranks.bpe_ranks,
  ranks.special_tokens,
  ranks.pat_str,
) as Encoder;
built.encode(SHORT_TEXT, "all");
const ptr = built.__wbg_ptr;
const snapshot = original.snapshot();
const memory = new Uint8Array((original.exports.memory as WebAssembly.Memory).buffer);
const nonZeroPages: number[] = [];
for (let p = 0; p < memory.byteLength; p += PAGE_BYTES) {
  if (memory.subarray(p, p + PAGE_BYTES).some((b) => b !== 0)) nonZeroPages.push(p);
}
const copy = new Uint8Array(nonZeroPages.length * PAGE_BYTES);
console.log(JSON.stringify({
  runtime: RUNTIME,
  memoryMiB: memory.byteLength / 2 ** 20,
  nonZeroMiB: copy.byteLength / 2 ** 20,
  snapshotBytes: snapshot.toBytes().byteLength,
}));

summary(() => {
  group("tiktoken cl100k: to an encoder ready to encode", () => {
    bench("build the encoder in a fresh instance", () => {
      const instance = engine.instantiate(tiktoken, imports);
      glue.__wbg_set_wasm(instance.exports);
      new glue.Tiktoken(ranks.bpe_ranks, ranks.special_tokens, ranks.pat_str).free();
      instance.dispose();
    });
    bench("instantiate(snapshot) + __wrap (+ __destroy_into_raw, dispose)", () => {
      const instance = engine.instantiate(snapshot, imports);
      glue.__wbg_set_wasm(instance.exports);
      glue.Tiktoken.__wrap(ptr).__destroy_into_raw();
      instance.dispose();
    });
    bench("recycled cycle, small module", () => {
      const instance = engine.instantiate(small);
      (instance.exports.read as () => number)();
      instance.dispose();
    }).baseline(true);
  });
  group("taking a snapshot of the 18 MiB instance", () => {
    bench("copy its non-zero pages once, into a new buffer", () => {
      const fresh = new Uint8Array(nonZeroPages.length * PAGE_BYTES);
      for (let k = 0; k < nonZeroPages.length; k++) {
        const p = nonZeroPages[k];
        fresh.set(memory.subarray(p, p + PAGE_BYTES), k * PAGE_BYTES);
      }
      return fresh;
    }).baseline(true);
    bench("copy its non-zero pages once, into a reused buffer", () => {
      for (let k = 0; k < nonZeroPages.length; k++) {
        const p = nonZeroPages[k];
        copy.set(memory.subarray(p, p + PAGE_BYTES), k * PAGE_BYTES);
      }
    });
    bench("instance.snapshot()", () => original.snapshot());
  });
});

writeResults(`snapshot-${RUNTIME}`, await run({ format: "mitata" }));

function privateKiB(): number {
  const text = readFileSync("/proc/self/smaps_rollup", "utf8");
  let total = 0;
  for (const name of ["Private_Clean", "Private_Dirty"]) {
    total += Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(text)![1]);
  }
  return total;
}

const glues: Glue[] = [];
for (let i = 0; i < LIVE_TENANTS; i++) glues.push(await glueCopy());
const warm = engine.instantiate(snapshot, imports); // the first tenant's one-time costs
warm.dispose();
collectWhereExposed();
const before = privateKiB();
const live: Instance[] = [];
const encoders: Encoder[] = [];
for (let i = 0; i < LIVE_TENANTS; i++) {
  const tenant = engine.instantiate(snapshot, importsOf(glues[i]));
  glues[i].__wbg_set_wasm(tenant.exports);
  const encoder = glues[i].Tiktoken.__wrap(ptr);
  encoder.encode(SHORT_TEXT, "all");
  live.push(tenant);
  encoders.push(encoder);
}
collectWhereExposed();
const after = privateKiB();
const perTenantKiB = (after - before) / LIVE_TENANTS;
const result = {
  runtime: RUNTIME,
  liveTenants: LIVE_TENANTS,
  privateKiBPerTenant: Math.round(perTenantKiB),
  goalKiBPerTenant: 1024,
  pass: perTenantKiB < 1024,
  snapshotMiB: memory.byteLength / 2 ** 20,
};
console.log(JSON.stringify(result));
writeFileSync(
  new URL(`./results/snapshot-memory-${RUNTIME}.json`, import.meta.url),
  JSON.stringify(result, null, 2),
);
encoders.forEach((e, i) => {
  e.__destroy_into_raw();
  live[i].dispose();
});
glueFiles.remove();
built.free();
original.dispose();
engine.close();
