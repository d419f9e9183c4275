/**
 * userfaultfd mode against mprotect mode ("segmented": the name predates images, it is the
 * pooling engine without uffd): instantiate+dispose of a module whose data image is 64 KiB or
 * 64 MiB (both should be flat in image size), and the cost of a first touch per 64 KiB wasm
 * page (a uffd fill, or its working-set prefetch, against an ordinary anonymous page fault).
 * Prints mitata's table and writes `bench/results/uffd-<runtime>.json`.
 *
 * @module
 */

import { bench, group, run, summary } from "../.tools/node_modules/mitata/src/main.mjs";
import { RUNTIME, writeResults } from "./mitata_results.ts";
import { Config, Engine, InstanceAllocationStrategy, Module } from "../mod.ts";
import { buildModule } from "../tests/fixtures/wasm_builder.ts";

const PAGE = 65536;
const MEMORY_PAGES = 1100;

function imageModule(imageBytes: number): Uint8Array {
  // One segment per 64 KiB page, none of them zero: every page of the image is stored.
  const data = [];
  for (let offset = 0; offset < imageBytes; offset += PAGE) {
    data.push({
      mode: "active" as const,
      offset: { kind: "i32.const" as const, value: offset },
      data: new Uint8Array(Math.min(PAGE, imageBytes - offset)).fill(1 + (offset / PAGE) % 250),
    });
  }
  return buildModule({ memories: [{ min: MEMORY_PAGES, max: null, shared: false }], data });
}

function engine(uffd: boolean): Engine {
  return new Engine(new Config().withAllocationStrategy(InstanceAllocationStrategy.pooling({
    uffd,
    moduleLimits: { memoryPages: MEMORY_PAGES },
    instanceLimits: { count: 4, memoryReservationSize: MEMORY_PAGES * PAGE },
  })));
}

const engines = { segmented: engine(false), uffd: engine(true) };
const images = { "64 KiB": imageModule(PAGE), "64 MiB": imageModule(64 * 2 ** 20) };
const modules = new Map<string, Module>();
for (const [mode, e] of Object.entries(engines)) {
  for (const [size, bytes] of Object.entries(images)) {
    modules.set(`${mode} ${size}`, new Module(e, bytes));
  }
}

summary(() => {
  group("instantiate+dispose by image size", () => {
    for (const [mode, e] of Object.entries(engines)) {
      for (const size of Object.keys(images)) {
        const module = modules.get(`${mode} ${size}`)!;
        const b = bench(`${mode}, ${size} image`, () => e.allocate(module).dispose());
        if (mode === "uffd" && size === "64 KiB") b.baseline(true);
      }
    }
  });
});

const TOUCHED_PAGES = 64;
summary(() => {
  group(`instantiate, first touch of ${TOUCHED_PAGES} zero wasm pages, dispose`, () => {
    for (const [mode, e] of Object.entries(engines)) {
      // A module of its own per row: in uffd mode each module learns the pages its instances
      // use (its working set), and the two rows use different ones.
      const module = new Module(e, images["64 KiB"]);
      const b = bench(`${mode}: touch ${TOUCHED_PAGES} pages`, () => {
        const instance = e.allocate(module);
        const bytes = new Uint8Array(instance.memories[0].buffer);
        // Every 4 KiB host page of pages 100.. (zeros in both modes).
        for (let at = 100 * PAGE; at < (100 + TOUCHED_PAGES) * PAGE; at += 4096) bytes[at] = 1;
        instance.dispose();
      });
      if (mode === "segmented") b.baseline(true);
      const sparseModule = new Module(e, images["64 KiB"]);
      bench(`${mode}: one byte in each of ${TOUCHED_PAGES} pages`, () => {
        const instance = e.allocate(sparseModule);
        const bytes = new Uint8Array(instance.memories[0].buffer);
        for (let page = 100; page < 100 + TOUCHED_PAGES; page++) bytes[page * PAGE] = 1;
        instance.dispose();
      });
    }
  });
});

writeResults(`uffd-${RUNTIME}`, await run({ format: "mitata" }));
for (const e of Object.values(engines)) e.close();
