// The real set (tests/fixtures/real_set/): tiktoken, sql.js, @swc/wasm, brotli-wasm and
// quickjs-emscripten, each driven by its own unchanged glue, compute on wasmpool's instances
// exactly what they compute on the runtime's own; and 10,000 tiktoken tenants in a row (in a
// process of their own), through its glue, never see the bytes of the tenant before them.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import process from "node:process";
import { spawnSync } from "node:child_process";
import { Module } from "../mod.ts";
import {
  moduleBytes,
  plainTenant,
  pooledTenant,
  realSetDrivers,
  realSetEngine,
} from "./fixtures/real_set/mod.ts";
import type { TiktokenTenantsResult } from "./fixtures/real_set/tiktoken_tenants.ts";

const SEEDS = [0, 1, 2, 7, 19];

describe("the real set through its own glue", () => {
  for (const driver of realSetDrivers()) {
    it(`${driver.name}: wasmpool tenants compute what plain instances compute`, async () => {
      await driver.load();
      const bytes = moduleBytes(driver);
      const compiled = new WebAssembly.Module(bytes);
      using engine = realSetEngine();
      const module = new Module(engine, bytes);
      // Twice over the seeds: the second round runs on instances a tenant already used
      // (recycled, or their memories reused) where wasmpool can.
      for (let round = 0; round < 2; round++) {
        for (const seed of SEEDS) {
          const expected = await plainTenant(driver, compiled, seed);
          const got = await pooledTenant(driver, engine, module, seed);
          assert.deepEqual(got, expected, `${driver.name}, round ${round}, seed ${seed}`);
        }
      }
      const stats = engine.stats();
      assert.equal(stats.instantiations, 2 * SEEDS.length);
      assert.equal(stats.liveInstances, 0);
    });
  }
});

// The count; REAL_SET_TENANTS sets another for a quick run.
const LEAK_TENANTS = Number(process.env.REAL_SET_TENANTS ?? 10_000);

describe("tiktoken tenants through its glue", () => {
  it(`${LEAK_TENANTS} tenants in a row: none finds the previous tenant's text in memory`, () => {
    // In a process of its own (see the child's header): 19 s there, 630 s inside `bun test`'s.
    const child = new URL("./fixtures/real_set/tiktoken_tenants.ts", import.meta.url).pathname;
    const deno = (globalThis as { Deno?: { execPath(): string } }).Deno;
    const [command, args] = deno !== undefined
      ? [deno.execPath(), ["run", "--allow-all", child, String(LEAK_TENANTS)]]
      : [process.execPath, [child, String(LEAK_TENANTS)]];
    // The timeout bounds a hang, not the time: a tenant takes 2 ms there.
    const run = spawnSync(command, args, { encoding: "utf8", timeout: 600_000 });
    assert.equal(run.error, undefined, `could not run ${command}: ${run.error}`);
    assert.equal(run.status, 0, `the tenants' process failed:\n${run.stderr}`);
    const result = JSON.parse(run.stdout.trim().split("\n").at(-1)!) as TiktokenTenantsResult;
    assert.equal(result.tenants, LEAK_TENANTS);
    assert.equal(result.ownFound, Math.ceil(LEAK_TENANTS / 100), "the scan finds a marker there");
    assert.ok(result.warmHits >= LEAK_TENANTS * 0.9, `recycled: ${result.warmHits}`);
    assert.equal(result.liveInstances, 0);
  });
});
