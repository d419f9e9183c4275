/**
 * The pool of host memories: `WebAssembly.Memory` objects made by the runtime (only it can
 * make a memory its engine runs on), kept between tenants and handed out again.
 *
 * - A memory is handed out only at exactly its shape (initial and maximum pages), so that
 *   `memory.size`, `memory.grow` results and grow failures are what a fresh memory gives.
 *   A wasm memory cannot shrink: a tenant that grew one costs a replacement.
 * - Each memory is adopted by the native side (`zig/src/host_memory.zig`), which makes it hold
 *   a module's image (mapped copy-on-write where the runtime reserved the memory in place,
 *   copied where it did not) and, after a tenant, restores exactly the pages the tenant wrote.
 * - Free memories are kept per shape, most recently freed last, and remember the module whose
 *   image they hold (affinity): a memory goes back to the same module first, and then costs
 *   nothing to prepare.
 * - At most `capacity` memories exist at once (`instanceLimits.count × moduleLimits.memories`):
 *   when a shape has no free memory and the pool is at capacity, the least recently freed
 *   memory of another shape is dropped to make room.
 *
 * @module
 */

import { ResourceError } from "../errors.ts";
import { WASM_PAGE_BYTES } from "../memory.ts";
import type { NativeLibrary, NativePointer } from "../ffi/symbols.ts";
import { MemoryRecord, registerRecord } from "./memory_record.ts";
import type { MemoryShape } from "./plan.ts";

/** Counters of the host-memory pool. */
export interface HostMemoryCounters {
  /** Memories made (`new WebAssembly.Memory`). */
  created: number;
  /** Instantiations served by a pooled memory. */
  reused: number;
  /** Memories dropped because their tenant grew them. */
  replaced: number;
  /** Free memories dropped to make room for another shape. */
  evicted: number;
  /** Memories dropped because the native side could not reset or prepare them. */
  failed: number;
  /**
   * Memories kept grown (`recycleGrownMemoryPages`) that the runtime moved when they grew
   * (JavaScriptCore's heap memories): adopted again at their new address, restored by writing.
   */
  readopted: number;
}

/** The native engine a pool's memories are adopted by. */
export interface NativeEngine {
  /** The library. */
  readonly lib: NativeLibrary;
  /** The native engine. */
  readonly pointer: NativePointer;
  /**
   * How much the runtime must have reserved in place, in pages, for an image to be mapped over
   * a memory: 0 in V8 (it reserves every memory's maximum in place), 65536 in JavaScriptCore
   * (only its first few memories get a 4 GiB reservation; the rest live in its heap and move).
   */
  readonly minReservedPages: number;
}

/** A pooled memory. */
export class HostMemory extends MemoryRecord {
  /** Its shape. */
  readonly shape: MemoryShape;
  /** The module (its plan) whose image it holds between tenants, for affinity. */
  affinity: object | null = null;
  /** The native record (null once given up). */
  native: NativePointer | null;
  readonly #engine: NativeEngine;
  /** Whether a reset was queued for the reset thread and not yet claimed. */
  #queued = false;
  /** Where the runtime placed its bytes when it was adopted (0 for a memory of 0 bytes). */
  #address: number;
  /** The module and memory index whose initial contents it holds (see `prepare`). */
  #module: NativePointer | null = null;
  #index = 0;
  /** The bytes the native record covers: its initial size, or what {@linkcode keepGrown} took. */
  #nativeBytes: number;

  /** Makes a memory of `shape`, adopted by `engine`. */
  constructor(shape: MemoryShape, engine: NativeEngine) {
    let memory: WebAssembly.Memory;
    // A pooled shape always has a maximum: the engine's limit when the module declares none.
    const maximum = shape.max ?? 65536;
    try {
      memory = new WebAssembly.Memory({ initial: shape.min, maximum });
    } catch (cause) {
      throw new ResourceError(
        `the runtime could not make a memory of ${shape.min} pages (maximum ${shape.max}): ` +
          `${cause}`,
      );
    }
    super(memory);
    this.shape = shape;
    this.#engine = engine;
    const { lib, pointer } = engine;
    const address = lib.pointerOf(this.raw);
    this.#address = address === null ? 0 : lib.address(address);
    this.#nativeBytes = this.rawBytes;
    this.native = address === null
      ? null
      : lib.hostMemoryAdopt(pointer, address, shape.min, maximum, engine.minReservedPages);
    if (shape.min !== 0 && this.native === null) {
      throw new ResourceError(
        `the native side could not adopt a memory of ${shape.min} pages (at most ` +
          "1,048,576 host memories per engine)",
      );
    }
    registerRecord(this);
  }

  /** Whether its tenant grew it (or the runtime moved it): it cannot serve its shape again. */
  grew(): boolean {
    return this.stale() || this.rawBytes !== this.shape.min * WASM_PAGE_BYTES;
  }

  /** Whether the runtime moved its bytes when it grew (JavaScriptCore's heap memories do). */
  moved(): boolean {
    const now = this.#engine.lib.pointerOf(this.memory.buffer);
    return now === null || this.#engine.lib.address(now) !== this.#address;
  }

  /**
   * Keeps the memory at the size its tenant grew it to, for the next tenant of the same
   * instance (`PoolingOptions.recycleGrownMemoryPages`), so that the reset that follows covers
   * it all. Grown in place, the native record takes the new pages in (zeroed, and tracked from
   * now on). Moved by the runtime when it grew (JavaScriptCore's heap memories; its record was
   * given up then, see {@linkcode giveUpMoved}), it is adopted again at its new address and
   * restored wholly by writing bytes (counted in `readopted`, by the caller). Aliases are
   * detached. Returns 0 when kept in place, 1 when kept at a new address, -1 when it cannot be
   * kept (then it is given up).
   */
  keepGrown(): number {
    this.refresh();
    const bytes = this.rawBytes;
    if (!this.moved()) {
      if (this.native === null) return -1;
      if (bytes === this.#nativeBytes) return 0;
      const { lib, pointer } = this.#engine;
      if (lib.hostMemoryExtend(pointer, this.native, bytes / WASM_PAGE_BYTES) !== 0) {
        this.giveUp();
        return -1;
      }
      this.#nativeBytes = bytes;
      return 0;
    }
    this.giveUp();
    return this.#readopt() ? 1 : -1;
  }

  /** Adopts the memory again where the runtime moved it, holding its module's image wholly. */
  #readopt(): boolean {
    const { lib, pointer, minReservedPages } = this.#engine;
    const address = lib.pointerOf(this.raw);
    if (address === null || this.#module === null) return false;
    const pages = this.rawBytes / WASM_PAGE_BYTES;
    const native = lib.hostMemoryAdopt(
      pointer,
      address,
      pages,
      this.shape.max ?? 65536,
      minReservedPages,
    );
    if (native === null) return false;
    this.native = native;
    this.#address = lib.address(address);
    this.#nativeBytes = this.rawBytes;
    // The bytes it brought along are the last tenant's: the whole of it is written over.
    if (
      lib.hostMemoryPrepare(pointer, native, this.#module, this.#index) !== 0 ||
      lib.hostMemoryRestoreAll(pointer, native) !== 0
    ) {
      this.giveUp();
      return false;
    }
    return true;
  }

  /**
   * Makes the memory hold the initial contents of `module`'s defined memory `index` (its image,
   * or zeros). False when it cannot: the memory is then given up.
   */
  prepare(module: NativePointer, index: number): boolean {
    this.#module = module;
    this.#index = index;
    if (this.native === null) return this.shape.min === 0;
    const { lib, pointer } = this.#engine;
    this.#queued = false; // the native side finishes a queued reset first
    if (lib.hostMemoryPrepare(pointer, this.native, module, index) === 0) return true;
    this.giveUp();
    return false;
  }

  /**
   * Restores what the last tenant changed, on the reset thread if it is awake (see
   * zig/src/resetter.zig): then {@linkcode ready} must be called before the memory's next use.
   * False when it cannot: the memory is given up.
   */
  resetLater(): boolean {
    if (this.native === null) return this.shape.min === 0;
    const { lib, pointer } = this.#engine;
    const ticket = lib.hostMemoryResetLater(pointer, this.native);
    if (ticket < 0) {
      this.giveUp();
      return false;
    }
    if (ticket > 0) {
      this.#queued = true;
      keepUntilSettled(this, ticket, lib);
    }
    return true;
  }

  /**
   * Whether a reset queued by {@linkcode resetLater} is over: 0 when the memory is ready for
   * its next use (the reset done, or taken back and done now), 1 when it is still being done
   * and `wait` is false, -1 when it failed (the memory is given up).
   */
  ready(wait: boolean): number {
    if (!this.#queued) return this.native === null && this.shape.min !== 0 ? -1 : 0;
    const { lib, pointer } = this.#engine;
    const result = lib.hostMemoryClaim(pointer, this.native!, wait ? 1 : 0);
    if (result === 1) return 1;
    this.#queued = false;
    if (result === 0) return 0;
    this.giveUp();
    return -1;
  }

  /** Restores what the last tenant changed. False when it cannot: the memory is given up. */
  reset(): boolean {
    if (this.native === null) return this.shape.min === 0;
    const { lib, pointer } = this.#engine;
    this.#queued = false; // the native side finishes a queued reset first
    if (lib.hostMemoryReset(pointer, this.native) === 0) return true;
    this.giveUp();
    return false;
  }

  /** The native side forgets the memory (it grew, moved, or is dropped). */
  giveUp(): void {
    if (this.native === null) return;
    const { lib, pointer } = this.#engine;
    lib.hostMemoryDrop(pointer, this.native);
    this.native = null;
    this.#queued = false;
  }
}

// Memories whose reset was queued, oldest first, kept reachable until the reset thread is
// done with them: the runtime unmaps a memory it collects, and a memory whose engine was
// dropped without `close()` can be collected at any time (main thread only: see
// `PoolingOptions.backgroundResets`).
const queued: { memory: HostMemory; ticket: number }[] = [];
let queuedHead = 0;

function keepUntilSettled(memory: HostMemory, ticket: number, lib: NativeLibrary): void {
  queued.push({ memory, ticket });
  // Swept every few pushes: a few settled memories held a little longer cost nothing.
  if (queued.length - queuedHead < 8) return;
  while (queuedHead < queued.length && lib.resetSettled(queued[queuedHead].ticket) !== 0) {
    queuedHead += 1;
  }
  if (queuedHead === queued.length) {
    queued.length = 0;
    queuedHead = 0;
  } else if (queuedHead > 64 && queuedHead * 2 > queued.length) {
    queued.splice(0, queuedHead);
    queuedHead = 0;
  }
}

// The memories each pool has handed out, for every pool of this isolate: after code grew a
// memory (the `grew` hook), one that moved when it grew is given up at once, before the runtime
// can hand the bytes it moved away from to another memory (JavaScriptCore's heap memories move
// on grow). One grown in place stays adopted: its instance may keep it grown
// (`recycleGrownMemoryPages`).
// Each pool holds its own set strongly (its engine's live instances hold those memories anyway);
// this list holds the sets weakly, so that an engine dropped without `close()` does not keep its
// memories. Never a WeakRef to a memory: making or dereferencing one keeps its target alive to
// the end of the job (ECMA-262 AddToKeptObjects), and a job that replaces memories in a loop
// kept every one of them, resident, until it returned (~5.8 MiB per tiktoken tenant in Deno).
const inUseSets: WeakRef<Set<HostMemory>>[] = [];
let sweepAtLength = 64;

/** Gives up every memory in use that moved when it grew (see {@linkcode inUseSets}). */
export function giveUpMoved(): void {
  let kept = 0;
  for (let i = 0; i < inUseSets.length; i++) {
    const inUse = inUseSets[i].deref();
    if (inUse === undefined) continue;
    inUseSets[kept++] = inUseSets[i];
    for (const memory of inUse) {
      if (memory.native !== null && memory.stale() && memory.moved()) memory.giveUp();
    }
  }
  inUseSets.length = kept;
  sweepAtLength = 2 * kept + 64;
}

/** The host memories of one engine object (one runtime isolate). */
export class HostMemoryPool {
  readonly #capacity: number;
  readonly #engine: NativeEngine;
  readonly #free = new Map<string, HostMemory[]>();
  /** Memories handed out and not given back (see {@linkcode inUseSets}). */
  readonly #inUse = new Set<HostMemory>();
  #count = 0;
  #freeCount = 0;
  /** What the pool did so far. */
  readonly counters: HostMemoryCounters = {
    created: 0,
    reused: 0,
    replaced: 0,
    evicted: 0,
    failed: 0,
    readopted: 0,
  };

  readonly #reclaim: () => boolean;

  /**
   * A pool of at most `capacity` memories, adopted by `engine`; `reclaim` frees memories held
   * elsewhere (by idle warm instances) when the pool is full, and says whether it did.
   */
  constructor(capacity: number, engine: NativeEngine, reclaim: () => boolean = () => false) {
    this.#capacity = capacity;
    this.#engine = engine;
    this.#reclaim = reclaim;
    // Swept here too: engines made and dropped while no code grows a memory.
    if (inUseSets.length >= sweepAtLength) {
      inUseSets.splice(
        0,
        inUseSets.length,
        ...inUseSets.filter((ref) => ref.deref() !== undefined),
      );
      sweepAtLength = 2 * inUseSets.length + 64;
    }
    inUseSets.push(new WeakRef(this.#inUse));
  }

  /** Memories alive (in use or free). */
  get size(): number {
    return this.#count;
  }

  /** Free memories. */
  get freeCount(): number {
    return this.#freeCount;
  }

  /**
   * A memory of `shape` holding the initial contents of `module`'s defined memory `index`, for
   * a tenant of the module whose plan is `affinity`: a free one (of the same module first),
   * else a new one.
   */
  take(shape: MemoryShape, affinity: object, module: NativePointer, index: number): HostMemory {
    const free = this.#takeFree(shape, affinity, module, index);
    if (free !== null) return free;
    // At capacity, memories idle warm instances hold come back first, then a free one of
    // another shape goes: one idle instance is destroyed for it, not every one.
    while (this.#count >= this.#capacity) {
      const freeBefore = this.#freeCount;
      if (!this.#reclaim()) break;
      const reclaimed = this.#takeFree(shape, affinity, module, index);
      if (reclaimed !== null) return reclaimed;
      if (this.#freeCount > freeBefore) break;
    }
    if (this.#count >= this.#capacity) this.#evict();
    const memory = new HostMemory(shape, this.#engine);
    this.#count += 1;
    this.counters.created += 1;
    if (!memory.prepare(module, index)) {
      this.#count -= 1;
      this.counters.failed += 1;
      throw new ResourceError(
        `the native side could not put module memory ${index}'s initial contents in a new ` +
          `memory of ${shape.min} pages`,
      );
    }
    return this.#lend(memory, affinity);
  }

  #takeFree(
    shape: MemoryShape,
    affinity: object,
    module: NativePointer,
    index: number,
  ): HostMemory | null {
    const free = this.#free.get(shape.key);
    while (free !== undefined && free.length > 0) {
      this.#freeCount -= 1;
      const memory = takeAffine(free, affinity);
      if (memory.prepare(module, index)) {
        this.counters.reused += 1;
        return this.#lend(memory, affinity);
      }
      this.#count -= 1;
      this.counters.failed += 1;
    }
    return null;
  }

  #lend(memory: HostMemory, affinity: object): HostMemory {
    memory.affinity = affinity;
    this.#inUse.add(memory);
    return memory;
  }

  /** Gives `memory` back after its tenant: reset and pooled, or dropped if it grew. */
  give(memory: HostMemory): void {
    this.#inUse.delete(memory);
    memory.detachAliases();
    if (memory.grew()) {
      memory.giveUp();
      this.#count -= 1;
      this.counters.replaced += 1;
      return;
    }
    if (!memory.reset()) {
      this.#count -= 1;
      this.counters.failed += 1;
      return;
    }
    let free = this.#free.get(memory.shape.key);
    if (free === undefined) this.#free.set(memory.shape.key, free = []);
    free.push(memory);
    this.#freeCount += 1;
  }

  /**
   * Drops `memory` instead of pooling it: its tenant was interrupted, and its next tenant gets
   * a memory never written by anyone (counted as a replacement).
   */
  discard(memory: HostMemory): void {
    this.#inUse.delete(memory);
    memory.detachAliases();
    memory.giveUp();
    this.#count -= 1;
    this.counters.replaced += 1;
  }

  /** Drops every free memory and forgets the ones handed out (the engine is closing). */
  clear(): void {
    this.#inUse.clear();
    for (const free of this.#free.values()) for (const memory of free) memory.giveUp();
    this.#count -= this.#freeCount;
    this.#freeCount = 0;
    this.#free.clear();
  }

  #evict(): void {
    for (const free of this.#free.values()) {
      if (free.length === 0) continue;
      free.shift()!.giveUp();
      this.#count -= 1;
      this.#freeCount -= 1;
      this.counters.evicted += 1;
      return;
    }
  }
}

/** Takes the most recently freed memory of `affinity`'s module, else the most recent one. */
function takeAffine(free: HostMemory[], affinity: object): HostMemory {
  const last = free.length - 1;
  for (let i = last; i >= 0 && i >= last - 8; i--) {
    if (free[i].affinity === affinity) {
      const memory = free[i];
      free[i] = free[last];
      free.pop();
      return memory;
    }
  }
  return free.pop()!;
}
