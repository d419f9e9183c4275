/**
 * The running layer of one engine object: its pool of host memories, its live running
 * instances, and what it counts. Made on the engine's first `instantiate`.
 *
 * @module
 */

import type { EngineState } from "../internal.ts";
import { HostMemoryPool } from "./host_memory_pool.ts";
import { retire, type RunState } from "./tenancy.ts";

/** What the running layer reports, merged into `Engine#stats()`. */
export interface RunCounters {
  /** Running instances made. */
  instantiations: number;
  /** Running instances released (disposed, collected, or closed with the engine). */
  releases: number;
}

/** The running layer of one engine object. */
export class RunEngine {
  /** The engine. */
  readonly engine: EngineState;
  /** Host memories, with pooling; null on demand (each instance makes its own). */
  readonly pool: HostMemoryPool | null;
  /** Instances not yet released. */
  readonly live: Set<RunState> = new Set();
  /** Counts. */
  readonly counters: RunCounters = { instantiations: 0, releases: 0 };

  /** The running layer of `engine`. */
  constructor(engine: EngineState) {
    this.engine = engine;
    const pooling = engine.pooling;
    this.pool = pooling === null
      ? null
      : new HostMemoryPool(pooling.instanceLimits.count * pooling.moduleLimits.memories);
  }

  /** Gives back what `state`'s instance held: its memories to the pool, its pool slot. */
  release(state: RunState): void {
    if (!this.live.delete(state)) return;
    this.counters.releases += 1;
    const pool = this.pool;
    if (pool !== null && !this.engine.closed) {
      for (const memory of state.memories) {
        if (state.poisoned) pool.discard(memory);
        else pool.give(memory, state.affinity);
      }
    }
    if (state.ticket >= 0 && !this.engine.closed) {
      const code = this.engine.lib.instanceLeave(this.engine.pointer, state.ticket);
      if (code !== 0) {
        throw new Error(`wasmpool: native leave of slot ${state.ticket} gave ${code}`);
      }
    }
  }

  /** Disposes every live instance (the engine is closing); their slots go back first. */
  close(): void {
    for (const state of [...this.live]) retire(state);
    // Instances whose code is still running (closed from inside a call) release on return;
    // their slots go with the native engine.
    this.live.clear();
    this.pool?.clear();
  }
}
