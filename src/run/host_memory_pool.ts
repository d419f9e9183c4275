/**
 * The pool of host memories: `WebAssembly.Memory` objects made by the runtime (only it can
 * make a memory its engine runs on), kept between tenants and handed out again.
 *
 * - A memory is handed out only at exactly its shape (initial and maximum pages), so that
 *   `memory.size`, `memory.grow` results and grow failures are what a fresh memory gives.
 *   A wasm memory cannot shrink: a tenant that grew one costs a replacement.
 * - Free memories are kept per shape, most recently freed last, and remember the module whose
 *   tenant they held (affinity): a memory goes back to the same module first.
 * - At most `capacity` memories exist at once (`instanceLimits.count × moduleLimits.memories`):
 *   when a shape has no free memory and the pool is at capacity, the least recently freed
 *   memory of another shape is dropped to make room.
 * - A memory is reset before it is pooled again: the next tenant sees zeros (the runtime then
 *   applies the module's data segments at instantiation).
 *
 * @module
 */

import { ResourceError } from "../errors.ts";
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
}

/** A pooled memory. */
export class HostMemory extends MemoryRecord {
  /** Its shape. */
  readonly shape: MemoryShape;
  /** The module (its plan) whose tenant last held it, for affinity. */
  affinity: object | null = null;

  /** Makes a memory of `shape`. */
  constructor(shape: MemoryShape) {
    let memory: WebAssembly.Memory;
    try {
      memory = new WebAssembly.Memory(
        shape.max === null ? { initial: shape.min } : { initial: shape.min, maximum: shape.max },
      );
    } catch (cause) {
      throw new ResourceError(
        `the runtime could not make a memory of ${shape.min} pages (maximum ${shape.max}): ` +
          `${cause}`,
      );
    }
    super(memory);
    this.shape = shape;
    registerRecord(this);
  }
}

/** The host memories of one engine object (one runtime isolate). */
export class HostMemoryPool {
  readonly #capacity: number;
  readonly #free = new Map<string, HostMemory[]>();
  #count = 0;
  #freeCount = 0;
  /** What the pool did so far. */
  readonly counters: HostMemoryCounters = { created: 0, reused: 0, replaced: 0, evicted: 0 };

  /** A pool of at most `capacity` memories. */
  constructor(capacity: number) {
    this.#capacity = capacity;
  }

  /** Memories alive (in use or free). */
  get size(): number {
    return this.#count;
  }

  /** Free memories. */
  get freeCount(): number {
    return this.#freeCount;
  }

  /** A memory of `shape` for a tenant of `affinity`'s module: a free one, else a new one. */
  take(shape: MemoryShape, affinity: object): HostMemory {
    const free = this.#free.get(shape.key);
    if (free !== undefined && free.length > 0) {
      this.#freeCount -= 1;
      this.counters.reused += 1;
      return takeAffine(free, affinity);
    }
    if (this.#count >= this.#capacity) this.#evict();
    const memory = new HostMemory(shape);
    this.#count += 1;
    this.counters.created += 1;
    return memory;
  }

  /** Gives `memory` back after its tenant: reset and pooled, or dropped if it grew. */
  give(memory: HostMemory, affinity: object): void {
    memory.detachAliases();
    if (memory.stale() || memory.rawBytes !== memory.shape.min * 65536) {
      this.#count -= 1;
      this.counters.replaced += 1;
      return;
    }
    new Uint8Array(memory.raw).fill(0);
    memory.affinity = affinity;
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
    memory.detachAliases();
    this.#count -= 1;
    this.counters.replaced += 1;
  }

  /** Drops every free memory (the engine is closing). */
  clear(): void {
    this.#count -= this.#freeCount;
    this.#freeCount = 0;
    this.#free.clear();
  }

  #evict(): void {
    for (const free of this.#free.values()) {
      if (free.length === 0) continue;
      free.shift();
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
