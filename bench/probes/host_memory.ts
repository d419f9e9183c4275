/**
 * Probe helpers shared by the host-memory probes: the address of a `WebAssembly.Memory`'s
 * buffer in either runtime, and the `/proc/self/maps` lines at and after an address.
 *
 * @module
 */

import { readFileSync } from "node:fs";

/** The runtime running the probe. */
export { RUNTIME } from "../mitata_results.ts";
import { RUNTIME } from "../mitata_results.ts";

interface DenoPointers {
  UnsafePointer: {
    of(view: ArrayBufferView): unknown;
    value(pointer: unknown): bigint | number;
  };
}

type BunPtr = (view: ArrayBufferView) => number;

const bunPtr: BunPtr | null = RUNTIME === "bun"
  ? ((await import(["bun", "ffi"].join(":"))) as { ptr: BunPtr }).ptr
  : null;

/** The address of the first byte of `buffer` (a memory's buffer of at least one byte). */
export function addressOf(buffer: ArrayBufferLike): number {
  const view = new Uint8Array(buffer);
  if (bunPtr !== null) return bunPtr(view);
  const deno = (globalThis as unknown as { Deno: DenoPointers }).Deno;
  return Number(deno.UnsafePointer.value(deno.UnsafePointer.of(view)));
}

/** One line of `/proc/self/maps`. */
export interface Vma {
  /** The first address. */
  readonly start: number;
  /** The address past the last. */
  readonly end: number;
  /** `rw-p` and the like. */
  readonly perms: string;
  /** The path, `[heap]` and the like, or empty for anonymous memory. */
  readonly path: string;
}

/** Every mapping of this process, in address order. */
export function readMaps(): Vma[] {
  const text = readFileSync("/proc/self/maps", "utf8");
  return text.trim().split("\n").map((line) => {
    const [range, perms, , , , ...rest] = line.split(/\s+/);
    const [start, end] = range.split("-").map((h) => parseInt(h, 16));
    return { start, end, perms, path: rest.join(" ") };
  });
}

/**
 * The mappings that hold `address` and the ones that follow it without a gap, up to
 * `spanBytes` past `address` (and at most `limit` of them).
 */
export function vmasFrom(address: number, spanBytes: number, limit = 8): Vma[] {
  const maps = readMaps();
  const first = maps.findIndex((v) => v.start <= address && address < v.end);
  if (first < 0) return [];
  const out: Vma[] = [maps[first]];
  for (let i = first + 1; i < maps.length && out.length < limit; i++) {
    if (maps[i].start !== maps[i - 1].end || maps[i].start >= address + spanBytes) break;
    out.push(maps[i]);
  }
  return out;
}

const GiB = 2 ** 30;
const MiB = 2 ** 20;
const KiB = 1024;

/** A size in the largest unit that divides it, e.g. `4 GiB`, `96 KiB`. */
export function size(bytes: number): string {
  if (bytes >= GiB && bytes % GiB === 0) return `${bytes / GiB} GiB`;
  if (bytes >= MiB && bytes % MiB === 0) return `${bytes / MiB} MiB`;
  if (bytes >= KiB && bytes % KiB === 0) return `${bytes / KiB} KiB`;
  return `${bytes} B`;
}

/** The mappings from `address` on, as `perms size [path]` with the offset of `address`. */
export function describe(address: number, spanBytes: number): string {
  const vmas = vmasFrom(address, spanBytes);
  if (vmas.length === 0) return "not mapped";
  const offset = address - vmas[0].start;
  const parts = vmas.map((v) => `${v.perms} ${size(v.end - v.start)}${v.path ? " " + v.path : ""}`);
  return `at +${size(offset)} of [${parts.join(" | ")}]`;
}
