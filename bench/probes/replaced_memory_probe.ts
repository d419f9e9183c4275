/**
 * Whether the pages a tenant wrote into a memory that wasmpool then replaces (the tenant grew
 * it, so the instance is destroyed instead of recycled) are given back: instantiates
 * tiktoken's module (91 pages, a 4.9 MB image) 1,200 times on a pooling engine, each tenant
 * writing one byte per 4 KiB page, with `grow` (every instance replaced) or without (every
 * instance recycled), and prints the process's resident memory every 400 tenants, a full
 * collection every 50.
 *
 *   deno run --allow-all --v8-flags=--expose-gc bench/probes/replaced_memory_probe.ts grow
 *   bun bench/probes/replaced_memory_probe.ts grow
 *
 * Measured here (Deno 2.9.6): with `grow`, resident memory rises by ~5.8 MiB per tenant and
 * stays (7 GiB after 1,200; full collections do not help); without, it stays at ~100 MiB. Bun
 * reaches 4.7 GiB, then gives it back at a collection.
 *
 * @module
 */

import process from "node:process";
import { Module } from "../../mod.ts";
import { moduleBytes, realSetEngine } from "../../tests/fixtures/real_set/mod.ts";
import { TiktokenDriver } from "../../tests/fixtures/real_set/tiktoken.ts";

const TENANTS = 1200;
const grow = process.argv.includes("grow");
const engine = realSetEngine();
const module = new Module(engine, moduleBytes(new TiktokenDriver()));
// The module's imports are never called here.
const stub = new Proxy({}, { get: () => () => 0 });
const g = globalThis as { gc?: () => void; Bun?: { gc(force: boolean): void } };

for (let i = 0; i < TENANTS; i++) {
  const instance = engine.instantiate(module, { "./tiktoken_bg.js": stub });
  const memory = instance.exports.memory as { grow(pages: number): number; buffer: ArrayBuffer };
  if (grow) memory.grow(1);
  const bytes = new Uint8Array(memory.buffer);
  for (let page = 0; page < bytes.length; page += 4096) bytes[page] = 1;
  instance.dispose();
  if (i % 50 === 0) {
    if (g.gc !== undefined) g.gc();
    else g.Bun?.gc(true);
  }
  if (i % 400 === 399) {
    const stats = engine.stats();
    console.log(JSON.stringify({
      tenants: i + 1,
      rssMiB: Math.round(process.memoryUsage().rss / 2 ** 20),
      warmHits: stats.warmHits,
      hostMemoriesReplaced: stats.hostMemoriesReplaced,
    }));
  }
}
engine.close();
