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
 * Also `uffd` (a uffd engine), a tenant count, and `smaps` (prints the mappings holding the most
 * resident memory at the end). Measured here (shared 2-core VM), resident MiB after 400 / 800 /
 * 1,200 tenants with `grow`: before the fix Deno 2,415 / 4,738 / 7,042 (each dropped memory's
 * copy-on-write image mapping stayed mapped: its `WebAssembly.Memory` was still reachable), Bun
 * 2,414 / 4,749 / 1,114; after it, Deno 217 / 378 / 378 (up to 50 memories await each full
 * collection), Bun 93 / 88 / 88.
 *
 * @module
 */

import process from "node:process";
import { Config, Engine, InstanceAllocationStrategy, Module } from "../../mod.ts";
import { readRealModule, realModules } from "../../tests/fixtures/npm_modules.ts";

const TENANTS = Number(process.argv.find((a) => /^\d+$/.test(a)) ?? 1200);
const grow = process.argv.includes("grow");
const uffd = process.argv.includes("uffd");
const engine = new Engine(new Config().withAllocationStrategy(
  InstanceAllocationStrategy.pooling({
    instanceLimits: { count: 8, memoryReservationSize: 256 * 65536 },
    moduleLimits: { memoryPages: 256, tableElements: 1000, functions: 2000, globals: 20 },
    uffd,
  }),
));
const tiktoken = realModules().find((m) => m.name === "tiktoken")!;
const module = new Module(engine, readRealModule(tiktoken));
// The module's imports are never called here.
const imports: Record<string, Record<string, () => number>> = {};
for (const i of module.imports) (imports[i.module] ??= {})[i.name] = () => 0;
const g = globalThis as { gc?: () => void; Bun?: { gc(force: boolean): void } };

for (let i = 0; i < TENANTS; i++) {
  const instance = engine.instantiate(module, imports);
  const memory = instance.exports.memory as { grow(pages: number): number; buffer: ArrayBuffer };
  if (grow) memory.grow(1);
  const bytes = new Uint8Array(memory.buffer);
  for (let page = 0; page < bytes.length; page += 4096) bytes[page] = 1;
  instance.dispose();
  if (i % 50 === 0) {
    if (g.gc !== undefined) g.gc();
    else g.Bun?.gc(true);
  }
  if (i % 400 === 399 || i === TENANTS - 1) {
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
if (process.argv.includes("smaps")) {
  // Which mappings hold the resident pages.
  const text = await (await import("node:fs")).promises.readFile("/proc/self/smaps", "utf8");
  const rows: { head: string; rssKiB: number }[] = [];
  let head = "";
  for (const line of text.split("\n")) {
    if (/^[0-9a-f]+-[0-9a-f]+ /.test(line)) head = line;
    else if (line.startsWith("Rss:")) rows.push({ head, rssKiB: Number(line.split(/\s+/)[1]) });
  }
  rows.sort((a, b) => b.rssKiB - a.rssKiB);
  for (const r of rows.slice(0, 8)) console.log(r.rssKiB, r.head);
}
