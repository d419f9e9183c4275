/**
 * The modules the image benches instantiate, defined once so that every bench (ours and the
 * Wasmtime peer, in Deno, Bun and the Zig-native bench) measures identical bytes:
 *
 * - `small`: {@linkcode smallModuleBytes} (1 page, a 1 KiB data segment, a 10-entry table);
 * - `64 KiB image`: `(memory 80 96)` with one 64 KiB data segment at offset 0;
 * - `5 MiB image`: `(memory 80 96)` with 80 data segments of 64 KiB, one per page, filling
 *   the initial memory;
 * - `tiktoken`: tiktoken's `tiktoken_bg.wasm` (the pinned npm fixture: 4.9 MB in 81 segments,
 *   91 pages, 7 function imports), unchanged.
 *
 * The two synthetic image modules declare the same memory, so that they differ only in the
 * size of the image. No byte of their data is zero, so every page of the image is stored.
 *
 * Run as a script, it writes each module's bytes and a manifest to a directory, for
 * `zig build wasmtime-bench`:
 *
 * ```sh
 * deno run -A bench/image_modules.ts <directory>   # <directory>/modules.json, <file>.wasm
 * ```
 *
 * @module
 */

import { mkdirSync, writeFileSync } from "node:fs";
import { buildModule } from "../tests/fixtures/wasm_builder.ts";
import { readRealModule, realModules } from "../tests/fixtures/npm_modules.ts";
import { smallModuleBytes } from "./small_module.ts";

/** The size of a WebAssembly page. */
const WASM_PAGE_BYTES = 65536;

/** What {@linkcode imageModuleBytes} builds. */
export interface ImageModuleOptions {
  /** The size of the data image: the bytes from offset 0 that the data segments cover. */
  readonly imageBytes: number;
  /** How many data segments the image is split into, of equal size (the last takes the rest). */
  readonly segments: number;
  /** The memory's declared minimum, in 64 KiB pages. */
  readonly minPages: number;
  /** The memory's declared maximum, in 64 KiB pages (`null`: none). */
  readonly maxPages: number | null;
}

/** The 64 KiB image module's shape: one page of data in `(memory 80 96)`. */
export const IMAGE_64_KIB: ImageModuleOptions = Object.freeze({
  imageBytes: 64 * 1024,
  segments: 1,
  minPages: 80,
  maxPages: 96,
});

/** The 5 MiB image module's shape: 80 segments of 64 KiB in `(memory 80 96)`. */
export const IMAGE_5_MIB: ImageModuleOptions = Object.freeze({
  imageBytes: 5 * 1024 * 1024,
  segments: 80,
  minPages: 80,
  maxPages: 96,
});

/**
 * A module with one defined memory and active data segments that cover `[0, imageBytes)`
 * with non-zero bytes (segment `i` is filled with `1 + i % 250`), the memory exported as
 * `"memory"`, and one function, `read()`, returning the i32 at offset 0 (the call the running
 * benches make). No imports.
 *
 * @param options The image's size, its segments and the memory's limits.
 * @throws {RangeError} When the image does not fit the memory's minimum or a count is not
 * positive.
 */
export function imageModuleBytes(options: ImageModuleOptions): Uint8Array<ArrayBuffer> {
  const { imageBytes, segments, minPages, maxPages } = options;
  if (!Number.isSafeInteger(segments) || segments < 1) {
    throw new RangeError(`segments ${segments} is not a positive integer`);
  }
  if (!Number.isSafeInteger(imageBytes) || imageBytes < segments) {
    throw new RangeError(`imageBytes ${imageBytes} is fewer than its ${segments} segments`);
  }
  if (imageBytes > minPages * WASM_PAGE_BYTES) {
    throw new RangeError(
      `imageBytes ${imageBytes} exceeds the memory's minimum of ${minPages} pages`,
    );
  }
  const segmentBytes = Math.floor(imageBytes / segments);
  const data = [];
  for (let i = 0; i < segments; i++) {
    const offset = i * segmentBytes;
    const end = i === segments - 1 ? imageBytes : offset + segmentBytes;
    data.push({
      mode: "active" as const,
      offset: { kind: "i32.const" as const, value: offset },
      data: new Uint8Array(end - offset).fill(1 + i % 250),
    });
  }
  return buildModule({
    types: [{ params: [], results: ["i32"] }],
    functions: [0],
    memories: [{ min: minPages, max: maxPages, shared: false }],
    exports: [
      { name: "memory", kind: "memory", index: 0 },
      { name: "read", kind: "function", index: 0 },
    ],
    bodies: [{ code: [0x41, 0x00, 0x28, 0x02, 0x00] }], // i32.const 0; i32.load
    data,
  });
}

/** One module of the image benches. */
export interface BenchModule {
  /** A short name, used in group titles and file names. */
  readonly name: string;
  /** What the module is, for a group title. */
  readonly description: string;
  /** Its binary. */
  readonly bytes: Uint8Array<ArrayBuffer>;
  /** How many functions it imports (every import is a function). */
  readonly functionImports: number;
}

/**
 * The bench modules, in a stable order: small, 64 KiB image, 5 MiB image, tiktoken.
 *
 * @throws {Error} When tiktoken's fixture is missing: run `script/bootstrap`.
 */
export function benchModules(): BenchModule[] {
  const tiktoken = realModules().find((m) => m.name === "tiktoken");
  if (tiktoken === undefined) throw new Error("tests/fixtures/npm_modules.ts lists no tiktoken");
  return [
    {
      name: "small",
      description: "small module (1 page, 1 KiB data segment, 10-entry table)",
      bytes: smallModuleBytes(),
      functionImports: 0,
    },
    {
      name: "64 KiB image",
      description: "64 KiB image (1 segment, memory 80 96)",
      bytes: imageModuleBytes(IMAGE_64_KIB),
      functionImports: 0,
    },
    {
      name: "5 MiB image",
      description: "5 MiB image (80 segments, memory 80 96)",
      bytes: imageModuleBytes(IMAGE_5_MIB),
      functionImports: 0,
    },
    {
      name: "tiktoken",
      description: `tiktoken's image (${tiktoken.package}@${tiktoken.version}, ` +
        `${tiktoken.facts.dataSegments} segments, ${tiktoken.facts.functionImports} function ` +
        "imports)",
      bytes: readRealModule(tiktoken),
      functionImports: tiktoken.facts.functionImports,
    },
  ];
}

/**
 * The mitata group title of one bench module in the Wasmtime comparison
 * (bench/wasmtime_bench.ts, zig/bench/wasmtime_bench.zig): the same string in every runtime,
 * so that bench/report.ts puts their columns side by side.
 *
 * @param module The module.
 */
export function wasmtimeGroupTitle(module: BenchModule): string {
  return `Wasmtime as the peer: instantiate+dispose, ${module.description}`;
}

/** The file name of one module's bytes in {@linkcode writeBenchModules}'s directory. */
function fileName(module: BenchModule): string {
  return `${module.name.replace(/[^a-z0-9]+/gi, "-").toLowerCase()}.wasm`;
}

/**
 * Writes every bench module to `directory` as `<name>.wasm`, and `modules.json`: an array of
 * `{name, group, file}` (`group`: {@linkcode wasmtimeGroupTitle}).
 *
 * @param directory The directory, made if missing.
 */
export function writeBenchModules(directory: string): void {
  mkdirSync(directory, { recursive: true });
  const manifest = benchModules().map((module) => {
    const file = fileName(module);
    writeFileSync(`${directory}/${file}`, module.bytes);
    return { name: module.name, group: wasmtimeGroupTitle(module), file };
  });
  writeFileSync(`${directory}/modules.json`, JSON.stringify(manifest, null, 2) + "\n");
}

if (import.meta.main) {
  const directory = Deno.args[0];
  if (directory === undefined) {
    console.error("usage: deno run -A bench/image_modules.ts <directory>");
    Deno.exit(2);
  }
  writeBenchModules(directory);
}

/** Pages of the image modules' memory: initial and maximum (`IMAGE_64_KIB`, `IMAGE_5_MIB`). */
export const IMAGE_MEMORY_PAGES = { min: IMAGE_5_MIB.minPages, max: 96 } as const;

/** `(memory 80 96)` with a 64 KiB image: one segment at offset 0. */
export function image64KiBModuleBytes(): Uint8Array<ArrayBuffer> {
  return imageModuleBytes(IMAGE_64_KIB);
}

/** `(memory 80 96)` with a 5 MiB image: 80 segments of 64 KiB, one per page. */
export function image5MiBModuleBytes(): Uint8Array<ArrayBuffer> {
  return imageModuleBytes(IMAGE_5_MIB);
}
