/**
 * The binary of a snapshot (Wizer's output format): the original module, rewritten so that
 * instantiating it gives the state a running instance was in, with nothing run.
 *
 * - **Memories**: each defined memory's minimum is its current size; its contents are active
 *   data segments, one for each run of non-zero bytes (found by 1 KiB chunks, see
 *   {@linkcode nonZeroRuns}), appended after the module's own segments. The module's active
 *   segments keep their place (code may name them in `data.drop` or `memory.init`) but are
 *   emptied; passive ones are copied.
 * - **Tables**: each defined table's minimum is its current length; its entries are one active
 *   element segment per table, appended. The module's active segments become declarative ones
 *   (same place, same functions: they still declare what `ref.func` in the code names).
 * - **Globals**: each mutable defined global's initializer is its current value.
 * - **No start section**: the start function ran in the original instance.
 *
 * Everything else (types, imports, functions, exports, code, custom sections) is copied byte
 * for byte, so every index is what it was. What cannot be captured (a segment dropped by
 * `data.drop` or `elem.drop` is whole again in the snapshot) is documented in the README.
 *
 * @module
 */

import { BinaryWriter, REF_TYPE, sleb, VALUE_TYPE, writeConst } from "../run/binary_writer.ts";
import { ByteReader } from "./reader.ts";
import type { ConstExpr, ParsedModule } from "./types.ts";

/** A running instance's state, by defined index (imports not counted). */
export interface CapturedState {
  /** Each defined memory's contents: its whole current size, a multiple of 64 KiB. */
  readonly memories: readonly Uint8Array[];
  /** The new initializer of each mutable defined global, by defined global index. */
  readonly globals: ReadonlyMap<number, ConstExpr>;
  /** Each defined table's entries: a function index (imports first), or null. */
  readonly tables: readonly (readonly (number | null)[])[];
}

const WASM_PAGE_BYTES = 65536;
/** The granularity of the zero scan: a chunk of zeros between two runs splits them. */
const CHUNK_BYTES = 1024;
/** V8 refuses more than 100,000 data segments; past this many, chunks double. */
const MAX_RUN_SEGMENTS = 50_000;
const HEADER_BYTES = 8;
/** The most unused bytes the returned view's buffer may hold past its end. */
const MAX_SLACK_BYTES = 64 * 1024;
/** Non-custom sections in the order the binary format requires. */
const ORDER: readonly number[] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 10, 11];
const SECTION = { table: 4, memory: 5, global: 6, start: 8, element: 9, data: 11, dataCount: 12 };

/**
 * The runs `[start, end)` of `memory` that hold a non-zero byte, at `chunkBytes` granularity
 * (each run's ends trimmed to its first and last non-zero byte), as a flat array.
 */
export function nonZeroRuns(memory: Uint8Array, chunkBytes: number = CHUNK_BYTES): number[] {
  if (memory.byteLength % WASM_PAGE_BYTES !== 0 || memory.byteOffset % 4 !== 0) {
    throw new RangeError(`snapshot: a memory of ${memory.byteLength} bytes is not whole pages`);
  }
  const words = new Uint32Array(memory.buffer, memory.byteOffset, memory.byteLength >>> 2);
  const chunkWords = chunkBytes >>> 2;
  const runs: number[] = [];
  let runStart = -1;
  for (let chunk = 0; chunk < words.length; chunk += chunkWords) {
    let i = chunk;
    const end = chunk + chunkWords;
    while (i < end && words[i] === 0) i++;
    if (i < end) {
      if (runStart < 0) runStart = chunk * 4;
    } else if (runStart >= 0) {
      runs.push(runStart, chunk * 4);
      runStart = -1;
    }
  }
  if (runStart >= 0) runs.push(runStart, memory.byteLength);
  if (runs.length / 2 > MAX_RUN_SEGMENTS) return nonZeroRuns(memory, chunkBytes * 2);
  for (let r = 0; r < runs.length; r += 2) {
    while (memory[runs[r]] === 0) runs[r]++;
    while (memory[runs[r + 1] - 1] === 0) runs[r + 1]--;
  }
  return runs;
}

/** The size of `bytes`' data section with its id and size; 0 without one. */
function dataSectionBytes(bytes: Uint8Array): number {
  const r = new ByteReader(bytes, HEADER_BYTES);
  while (!r.atEnd()) {
    const start = r.offset;
    const id = r.u8();
    const body = r.sub(r.u32());
    if (id === SECTION.data) return body.end - start;
  }
  return 0;
}

/** Writes a constant expression, its `end` included. */
function writeConstExpr(w: BinaryWriter, expr: ConstExpr): void {
  writeConst(w, expr);
  w.u8(0x0b);
}

function limits(w: BinaryWriter, min: number, max: number | null): void {
  if (max === null) w.u8(0x00).u32(min);
  else w.u8(0x01).u32(min).u32(max);
}

function elementVector(w: BinaryWriter, elements: readonly (number | null)[], type: string): void {
  w.u32(elements.length);
  for (const f of elements) {
    if (f === null) w.u8(0xd0).u8(type === "externref" ? 0x6f : 0x70).u8(0x0b);
    else w.u8(0xd2).u32(f).u8(0x0b);
  }
}

/**
 * The snapshot binary of `bytes` (which `parsed` was parsed from) in `state`, as this file's
 * documentation describes. `state` must have an entry for every defined memory and table and
 * every mutable defined global.
 */
export function snapshotBytes(
  bytes: Uint8Array,
  parsed: ParsedModule,
  state: CapturedState,
): Uint8Array<ArrayBuffer> {
  if (state.memories.length !== parsed.memories.length) {
    throw new RangeError(
      `snapshot: ${state.memories.length} memories for ${parsed.memories.length}`,
    );
  }
  if (state.tables.length !== parsed.tables.length) {
    throw new RangeError(`snapshot: ${state.tables.length} tables for ${parsed.tables.length}`);
  }
  let importedMemories = 0;
  let importedTables = 0;
  for (const i of parsed.imports) {
    if (i.desc.kind === "memory") importedMemories++;
    if (i.desc.kind === "table") importedTables++;
  }
  const runs = state.memories.map((m) => nonZeroRuns(m));
  let runCount = 0;
  let runBytes = 0;
  for (const r of runs) {
    runCount += r.length / 2;
    for (let k = 0; k < r.length; k += 2) runBytes += r[k + 1] - r[k];
  }

  const rewrite = new Map<number, () => BinaryWriter | null>([
    [SECTION.memory, () => {
      if (parsed.memories.length === 0) return null;
      const w = new BinaryWriter(16 * parsed.memories.length).u32(parsed.memories.length);
      parsed.memories.forEach((m, i) =>
        limits(w, state.memories[i].byteLength / WASM_PAGE_BYTES, m.max)
      );
      return w;
    }],
    [SECTION.table, () => {
      if (parsed.tables.length === 0) return null;
      const w = new BinaryWriter(16 * parsed.tables.length).u32(parsed.tables.length);
      parsed.tables.forEach((t, i) => {
        const init = parsed.tableInits[i];
        if (init !== null) w.u8(0x40).u8(0x00);
        w.u8(REF_TYPE[t.element]);
        limits(w, state.tables[i].length, t.max);
        if (init !== null) writeConstExpr(w, init);
      });
      return w;
    }],
    [SECTION.global, () => {
      if (parsed.globals.length === 0) return null;
      const w = new BinaryWriter(16 * parsed.globals.length).u32(parsed.globals.length);
      parsed.globals.forEach((g, i) => {
        w.u8(VALUE_TYPE[g.type.type]).u8(g.type.mutable ? 1 : 0);
        const now = g.type.mutable ? state.globals.get(i) : g.init;
        if (now === undefined) throw new RangeError(`snapshot: no value for global ${i}`);
        writeConstExpr(w, now);
      });
      return w;
    }],
    [SECTION.start, () => null],
    [SECTION.element, () => {
      const filled = state.tables.filter((t) => t.length > 0).length;
      if (parsed.elements.length + filled === 0) return null;
      const w = new BinaryWriter(64).u32(parsed.elements.length + filled);
      for (const e of parsed.elements) {
        // Active and declarative both become declarative (7); passive stays passive (5).
        w.u32(e.mode === "passive" ? 5 : 7).u8(REF_TYPE[e.type]);
        elementVector(w, e.elements, e.type);
      }
      state.tables.forEach((entries, t) => {
        if (entries.length === 0) return;
        w.u32(6).u32(importedTables + t).u8(0x41).u8(0).u8(0x0b);
        w.u8(REF_TYPE[parsed.tables[t].element]);
        elementVector(w, entries, parsed.tables[t].element);
      });
      return w;
    }],
    [
      SECTION.dataCount,
      () =>
        parsed.dataCount === null ? null : new BinaryWriter(8).u32(parsed.data.length + runCount),
    ],
    // The data section is written straight into the output (see below): its payload is most
    // of the binary, and one copy of the memories is what a snapshot must cost.
    [SECTION.data, () => null],
  ]);
  // The data section but the runs' payloads: the module's segments, then each run's header.
  const dataHead = new BinaryWriter(64 + 16 * parsed.data.length).u32(
    parsed.data.length + runCount,
  );
  for (const d of parsed.data) {
    if (d.mode === "passive") {
      dataHead.u32(1).u32(d.data.length).bytes(d.data);
      continue;
    }
    if (d.memory === 0) dataHead.u32(0);
    else dataHead.u32(2).u32(d.memory);
    dataHead.u8(0x41).u8(0).u8(0x0b).u32(0);
  }
  const runHeaders = runs.map((r, m) => {
    const index = importedMemories + m;
    const headers: Uint8Array[] = [];
    for (let k = 0; k < r.length; k += 2) {
      const w = new BinaryWriter(24);
      if (index === 0) w.u32(0);
      else w.u32(2).u32(index);
      w.u8(0x41).bytes(sleb(BigInt(r[k]))).u8(0x0b).u32(r[k + 1] - r[k]);
      headers.push(w.finish());
    }
    return headers;
  });
  let dataBytes = dataHead.length + runBytes;
  for (const headers of runHeaders) for (const h of headers) dataBytes += h.length;
  const writeData = (): void => {
    if (parsed.data.length + runCount === 0) return;
    out.u8(SECTION.data).u32(dataBytes).bytes(dataHead.finish());
    runs.forEach((r, m) => {
      const memory = state.memories[m];
      for (let k = 0; k < r.length; k += 2) {
        out.bytes(runHeaders[m][k / 2]).bytes(memory.subarray(r[k], r[k + 1]));
      }
    });
  };

  const out = new BinaryWriter(bytes.length - dataSectionBytes(bytes) + dataBytes + 256);
  out.bytes(bytes.subarray(0, HEADER_BYTES));
  const done = new Set<number>();
  const emit = (id: number): void => {
    done.add(id);
    if (id === SECTION.data) return writeData();
    const written = rewrite.get(id)!();
    if (written !== null) out.section(id, written);
  };
  // Sections the rewrite writes that come before `id` and were not in the module.
  const emitMissingBefore = (id: number): void => {
    const until = id < 0 ? ORDER.length : ORDER.indexOf(id);
    for (let k = 0; k < until; k++) {
      const missing = ORDER[k];
      if (!done.has(missing) && rewrite.has(missing)) emit(missing);
    }
  };
  const r = new ByteReader(bytes, HEADER_BYTES);
  while (!r.atEnd()) {
    const start = r.offset;
    const id = r.u8();
    const body = r.sub(r.u32());
    if (id === 0) {
      out.bytes(bytes.subarray(start, body.end));
      continue;
    }
    emitMissingBefore(id);
    done.add(id);
    if (rewrite.has(id)) emit(id);
    else out.bytes(bytes.subarray(start, body.end));
  }
  emitMissingBefore(-1);
  const written = out.finish();
  // The estimate is off only by the small sections' changes: a copy only when it is far off.
  return written.buffer.byteLength - written.byteLength <= MAX_SLACK_BYTES
    ? written
    : written.slice();
}
