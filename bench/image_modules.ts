/**
 * The benches' image-size modules: one memory of 80 pages (maximum 96) whose initial image is
 * 64 KiB (one segment) or 5 MiB (80 segments of 64 KiB, the whole initial memory), every byte
 * non-zero, the memory exported as `"memory"`. With the small module of `small_module.ts`
 * they are the cases the image goals name: instantiation must not cost more with a larger
 * image. Deterministic: the same bytes every run, in every runtime.
 *
 * @module
 */

import { buildModule, type DataSpec } from "../tests/fixtures/wasm_builder.ts";

/** Pages of the image modules' memory: initial and maximum. */
export const IMAGE_MEMORY_PAGES = { min: 80, max: 96 } as const;

const PAGE = 65536;

function segment(index: number): DataSpec {
  const data = new Uint8Array(PAGE);
  for (let i = 0; i < PAGE; i++) data[i] = ((i * 31 + index * 7) & 0xff) | 1;
  return { mode: "active", offset: { kind: "i32.const", value: index * PAGE }, data };
}

function imageModule(segments: number): Uint8Array<ArrayBuffer> {
  return buildModule({
    memories: [{ min: IMAGE_MEMORY_PAGES.min, max: IMAGE_MEMORY_PAGES.max, shared: false }],
    exports: [{ name: "memory", kind: "memory", index: 0 }],
    data: Array.from({ length: segments }, (_, i) => segment(i)),
  });
}

/** `(memory 80 96)` with a 64 KiB image: one segment at offset 0. */
export function image64KiBModuleBytes(): Uint8Array<ArrayBuffer> {
  return imageModule(1);
}

/** `(memory 80 96)` with a 5 MiB image: 80 segments of 64 KiB, one per page. */
export function image5MiBModuleBytes(): Uint8Array<ArrayBuffer> {
  return imageModule(IMAGE_MEMORY_PAGES.min);
}
