/**
 * Aliases of a wasm memory's bytes, and keeping them honest. Users never get a
 * `WebAssembly.Memory`'s own buffer (wasmpool could not detach it at disposal without a slow
 * `grow(0)`); they get an alias, an ArrayBuffer over the same bytes that wasmpool can detach.
 * When the memory grows, the runtime detaches its own buffer, and may move the bytes (Bun):
 * every alias over it must then be detached too, before user code can touch it. A
 * {@linkcode MemoryRecord} notices the growth by its own buffer's length and does that.
 *
 * @module
 */

import type { NativeLibrary } from "../ffi/symbols.ts";
import { detachBuffer } from "../internal.ts";

/** One alias handed out by one guarded memory object, or none yet. */
export interface AliasBox {
  /** The alias, or null until the next `buffer` access makes one. */
  alias: ArrayBuffer | null;
  /** The memory it aliases. */
  readonly record: MemoryRecord;
}

/** Detaches the alias in `box` and forgets the box (its guarded memory is disposed). */
export function dropBox(box: AliasBox): void {
  if (box.alias === null) return;
  detachBuffer(box.alias);
  box.alias = null;
  const boxes = box.record.boxes;
  const at = boxes.indexOf(box);
  if (at >= 0) boxes.splice(at, 1);
  if (boxes.length === 0) aliased.delete(box.record);
}

const EMPTY = new ArrayBuffer(0);

/** A wasm memory and the aliases handed out over it. */
export class MemoryRecord {
  /** The runtime's memory. */
  readonly memory: WebAssembly.Memory;
  /** The memory's own buffer when last looked at. */
  raw: ArrayBuffer;
  /** Its length then: a detached buffer reads 0, which is how growth shows. */
  rawBytes: number;
  /** Boxes whose alias is live. */
  readonly boxes: AliasBox[] = [];

  /** A record of `memory`. */
  constructor(memory: WebAssembly.Memory) {
    this.memory = memory;
    this.raw = memory.buffer as ArrayBuffer; // shared memories are refused
    this.rawBytes = this.raw.byteLength;
  }

  /** Whether the memory's buffer changed (it grew) since the record last looked. */
  stale(): boolean {
    // A memory of 0 bytes has a 0-length buffer either way: compare identities then.
    return this.rawBytes === 0
      ? this.memory.buffer !== this.raw
      : this.raw.byteLength !== this.rawBytes;
  }

  /** Detaches every alias and looks at the memory's current buffer. */
  refresh(): void {
    this.detachAliases();
    this.raw = this.memory.buffer as ArrayBuffer;
    this.rawBytes = this.raw.byteLength;
  }

  /** Detaches every alias handed out over this memory. */
  detachAliases(): void {
    const boxes = this.boxes;
    for (let i = 0; i < boxes.length; i++) {
      detachBuffer(boxes[i].alias);
      boxes[i].alias = null;
    }
    boxes.length = 0;
    aliased.delete(this);
  }

  /** The live alias in `box` (a box of this record), made now if it has none. */
  aliasFor(box: AliasBox, lib: NativeLibrary): ArrayBuffer {
    if (this.stale()) this.refresh();
    if (box.alias !== null) return box.alias;
    const bytes = this.rawBytes;
    box.alias = bytes === 0
      ? EMPTY.slice(0)
      : lib.arrayBuffer(lib.address(lib.pointerOf(this.raw)!), bytes);
    this.boxes.push(box);
    aliased.add(this);
    return box.alias;
  }
}

// Records with a live alias: the ones the `grew` hook checks.
const aliased = new Set<MemoryRecord>();

/** Brings every alias up to date: code grew a memory (which one, the hook does not say). */
export function syncAliased(): void {
  for (const record of aliased) if (record.stale()) record.refresh();
}

// User-provided memories, so that every instance importing one shares its record.
const records = new WeakMap<WebAssembly.Memory, MemoryRecord>();

/** Makes `record` the one {@linkcode recordOf} returns for its memory. */
export function registerRecord(record: MemoryRecord): void {
  records.set(record.memory, record);
}

/** The record of `memory`, made on first use and shared by every user of the memory. */
export function recordOf(memory: WebAssembly.Memory): MemoryRecord {
  let record = records.get(memory);
  if (record === undefined) {
    record = new MemoryRecord(memory);
    records.set(memory, record);
  }
  return record;
}
