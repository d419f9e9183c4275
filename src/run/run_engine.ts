/**
 * The running layer of one engine object: its pool of host memories, its live running
 * instances (dedicated ones and the tenants of recycled ones), its idle warm instances, and what
 * it counts. Made on the engine's first `instantiate`.
 *
 * @module
 */

import type { NativePointer } from "../ffi/symbols.ts";
import type { EngineState } from "../internal.ts";
import { WASM_PAGE_BYTES } from "../memory.ts";
import { HostMemoryPool } from "./host_memory_pool.ts";
import { IdleQueue } from "./idle_queue.ts";
import { type IdleSweeper, IdleTimer } from "./idle_timer.ts";
import type { RunPlan } from "./plan.ts";
import { endTenancy, type Tenant, WarmInstance } from "./recycle.ts";
import { retire, type RunState } from "./tenancy.ts";

/** What the running layer reports, merged into `Engine#stats()`. */
export interface RunCounters {
  /** Running instances made (tenancies of recycled instances included). */
  instantiations: number;
  /** Running instances released (disposed, collected, or closed with the engine). */
  releases: number;
  /** Instantiations served by an idle warm instance. */
  warmHits: number;
  /** Instantiations of a recyclable module that found no idle warm instance (one was made). */
  warmMisses: number;
  /** Tenancies whose instance was reset in place for the next tenant. */
  recycled: number;
  /** Instantiations of modules whose instances cannot be recycled (each made anew). */
  notRecyclable: number;
  /** Warm instances destroyed at a tenancy's end: it grew a table or a memory (past
   * `recycleGrownMemoryPages`), shared a memory, or a reset failed. */
  recycleFallbacks: number;
  /** Instantiations of a recyclable module that needed an instance of their own: other
   * imported global values, or a wasm function import. */
  ownInstances: number;
  /** Recycled instances destroyed after serving `maxInstanceReuse` tenants. */
  warmRetired: number;
  /** Idle recycled instances released by `idleInstanceTimeoutMs`. */
  warmExpired: number;
  /** Tenancies whose instance was recycled with a memory grown past its declared minimum
   * (`recycleGrownMemoryPages`), by that tenant or an earlier one. */
  recycledGrown: number;
  /** Warm instances destroyed at a tenancy's end because a memory grew past
   * `recycleGrownMemoryPages`, or could not be kept grown (also in `recycleFallbacks`). */
  recycledGrownReplaced: number;
}

/** How many of the oldest idle instances are looked at for one whose reset is over. */
const READY_LOOKAHEAD = 4;

/** 0 when every memory of `warm` is ready for a tenant, 1 when one is still being reset (and
 * `wait` is false), -1 when a reset failed. */
function readiness(warm: WarmInstance, wait: boolean): number {
  let result = 0;
  for (const memory of warm.state.memories) {
    const ready = memory.ready(wait);
    if (ready < 0) return -1;
    if (ready > 0) result = 1;
  }
  return result;
}

/** The running layer of one engine object. */
export class RunEngine implements IdleSweeper {
  /** The engine. */
  readonly engine: EngineState;
  /** Host memories, with pooling; null on demand (each instance makes its own). */
  readonly pool: HostMemoryPool | null;
  /** Dedicated instances (and warm ones) not yet released. */
  readonly live: Set<RunState> = new Set();
  /** Tenants of warm instances not yet ended. */
  readonly tenants: Set<Tenant> = new Set();
  /** Idle warm instances, by module plan, oldest first. */
  readonly idle: Map<RunPlan, IdleQueue<WarmInstance>> = new Map();
  #idleCount = 0;
  /** Whether warm instances' memories are reset on the reset thread (`backgroundResets`). */
  readonly #background: boolean;
  /** Tenancies a warm instance serves before it is replaced (`maxInstanceReuse`). */
  readonly #maxReuse: number;
  /** Idle instances kept past the idle timeout (`maxUnusedWarmSlots`). */
  readonly #keepIdle: number;
  /** Releases idle instances beyond `#keepIdle`; null when they are kept (no timeout). */
  readonly #idleTimer: IdleTimer | null;
  /** Counts. */
  readonly counters: RunCounters = {
    instantiations: 0,
    releases: 0,
    warmHits: 0,
    warmMisses: 0,
    recycled: 0,
    notRecyclable: 0,
    recycleFallbacks: 0,
    ownInstances: 0,
    warmRetired: 0,
    warmExpired: 0,
    recycledGrown: 0,
    recycledGrownReplaced: 0,
  };
  /** `recycleGrownMemoryPages` in bytes: how large a memory may have grown and be recycled. */
  readonly #grownLimitBytes: number;

  /** The running layer of `engine`. */
  constructor(engine: EngineState) {
    this.engine = engine;
    const pooling = engine.pooling;
    this.pool = pooling === null ? null : new HostMemoryPool(
      pooling.instanceLimits.count * pooling.moduleLimits.memories,
      {
        lib: engine.lib,
        pointer: engine.pointer,
        minReservedPages: engine.lib.runtime === "bun" ? 65536 : 0,
      },
      () => this.reclaimIdle(),
    );
    this.#background = pooling !== null && pooling.backgroundResets && engine.lib.mainThread;
    this.#maxReuse = pooling?.maxInstanceReuse ?? Infinity;
    this.#keepIdle = pooling?.maxUnusedWarmSlots ?? 0;
    const timeoutMs = pooling?.idleInstanceTimeoutMs ?? Infinity;
    this.#idleTimer = timeoutMs === Infinity ? null : new IdleTimer(timeoutMs, this);
    this.#grownLimitBytes = (pooling?.recycleGrownMemoryPages ?? 0) * WASM_PAGE_BYTES;
  }

  /** Idle warm instances. */
  get idleCount(): number {
    return this.#idleCount;
  }

  /**
   * An idle warm instance of `plan`'s module, ready for a tenant, or null: the oldest ready one
   * among the oldest few (the reset thread may still be resetting the others), else the oldest,
   * whose reset is then finished here. One whose reset failed is destroyed.
   */
  takeIdle(plan: RunPlan): WarmInstance | null {
    const idle = this.idle.get(plan);
    while (idle !== undefined && idle.length > 0) {
      let chosen = 0;
      const look = Math.min(idle.length, READY_LOOKAHEAD);
      for (let i = 0; i < look; i++) {
        if (readiness(idle.at(i), false) === 0) {
          chosen = i;
          break;
        }
      }
      const warm = idle.take(chosen);
      this.#idleCount -= 1;
      if (readiness(warm, true) === 0) return warm;
      this.counters.recycleFallbacks += 1;
      this.destroyWarm(warm);
    }
    return null;
  }

  /** Puts back an idle warm instance taken and not used. */
  putIdle(warm: WarmInstance): void {
    let idle = this.idle.get(warm.plan);
    if (idle === undefined) this.idle.set(warm.plan, idle = new IdleQueue());
    idle.push(warm);
    this.#idleCount += 1;
    const timer = this.#idleTimer;
    if (timer !== null) {
      warm.idleSweep = timer.sweep;
      if (this.#idleCount > this.#keepIdle) timer.arm();
    }
  }

  /** Releases the oldest idle instances beyond the kept number that went idle by `expiredSweep`. */
  expireIdle(expiredSweep: number): boolean {
    while (this.#idleCount > this.#keepIdle) {
      let oldest: IdleQueue<WarmInstance> | null = null;
      for (const idle of this.idle.values()) {
        if (idle.length === 0) continue;
        if (oldest === null || idle.at(0).idleSweep < oldest.at(0).idleSweep) oldest = idle;
      }
      if (oldest === null || oldest.at(0).idleSweep > expiredSweep) break;
      this.#idleCount -= 1;
      this.counters.warmExpired += 1;
      this.destroyWarm(oldest.take(0));
    }
    return this.#idleCount > this.#keepIdle;
  }

  /**
   * Makes a warm instance of `plan`'s module (not idle: about to get a tenant). `images` are
   * the native modules whose memory 0 is the image of each imported memory the plan passes
   * (`plan.imported`: a reservation's variant), before the module's own.
   */
  makeWarm(
    plan: RunPlan,
    module: NativePointer,
    globals: readonly unknown[],
    images: readonly NativePointer[] = [],
  ): WarmInstance {
    const pool = this.pool!;
    const memories = [];
    try {
      for (let m = 0; m < plan.memories.length; m++) {
        memories.push(
          m < plan.imported
            ? pool.take(plan.memories[m], plan, images[m], 0)
            : pool.take(plan.memories[m], plan, module, m - plan.imported),
        );
      }
      const warm = new WarmInstance(this.engine, this, plan, memories, globals);
      this.live.add(warm.state);
      return warm;
    } catch (error) {
      for (const memory of memories) pool.give(memory);
      throw error;
    }
  }

  /** A tenancy ended: its slot goes back, its instance is reset for the next tenant or goes. */
  endTenant(tenant: Tenant): void {
    if (!this.tenants.delete(tenant)) return;
    this.counters.releases += 1;
    const closed = this.engine.closed;
    if (!closed) this.#leave(tenant.ticket);
    const warm = tenant.warm;
    if (!closed && ++warm.tenantsServed >= this.#maxReuse) {
      this.counters.warmRetired += 1;
      this.destroyWarm(warm);
      return;
    }
    // A tenant stopped by a deadline or fuel poisoned its instance: never recycled in place.
    if (closed || warm.state.poisoned || !this.#resetForNext(warm)) {
      if (!closed) this.counters.recycleFallbacks += 1;
      this.destroyWarm(warm);
      return;
    }
    this.counters.recycled += 1;
    this.putIdle(warm);
  }

  /** Gives back the pool slot `ticket` (a failure is a bug of ours, not the user's). */
  #leave(ticket: number): void {
    const code = this.engine.lib.instanceLeave(this.engine.pointer, ticket);
    if (code !== 0) throw new Error(`wasmpool: native leave of slot ${ticket} gave ${code}`);
  }

  /** Returns `warm` to the state of a new instance; false when it cannot be. */
  #resetForNext(warm: WarmInstance): boolean {
    const state = warm.state;
    // A memory, or a table or global, shared with another instance.
    if (state.group.members.length > 1) return false;
    let grown = false;
    for (const memory of state.memories) {
      if (!memory.grew()) continue;
      // Kept at its grown size when small enough (see keepGrown).
      const kept = memory.memory.buffer.byteLength > this.#grownLimitBytes
        ? -1
        : memory.keepGrown();
      if (kept < 0) {
        this.counters.recycledGrownReplaced += 1;
        return false;
      }
      if (kept > 0) this.pool!.counters.readopted += 1;
      grown = true;
    }
    // The argument: where memory 0's logical size starts (logical_memory.ts; ignored without).
    const fromJs = warm.plan.logical?.grownFromJs === true ? 1 : 0;
    if (warm.plan.resets && warm.reset(fromJs) !== 0) return false; // a table grew
    // In the background only when another idle instance can serve the next tenant meanwhile:
    // else the next tenant would wait for this very reset, across cores.
    const later = this.#background && (this.idle.get(warm.plan)?.length ?? 0) > 0;
    for (const memory of state.memories) {
      memory.detachAliases();
      if (!(later ? memory.resetLater() : memory.reset())) return false;
    }
    if (warm.killed) {
      warm.kill(0);
      warm.killed = false;
    }
    if (grown) this.counters.recycledGrown += 1;
    return true;
  }

  /**
   * Takes back `warm`, taken for a tenant that never came (a reservation disposed before
   * instantiation), and its pool slot `ticket`: reset (the reservation's memory may have been
   * written) and idle again, or destroyed when it cannot be reset.
   */
  putBackUnused(warm: WarmInstance, ticket: number): void {
    if (this.engine.closed) return this.destroyWarm(warm);
    this.#leave(ticket);
    if (!this.#resetForNext(warm)) {
      this.counters.recycleFallbacks += 1;
      return this.destroyWarm(warm);
    }
    this.putIdle(warm);
  }

  /** Destroys a warm instance: its code throws from now on, its memories go back. */
  destroyWarm(warm: WarmInstance): void {
    if (!this.engine.closed) warm.kill(1);
    retire(warm.state);
  }

  /** Destroys the least recently used idle warm instance; false when there is none. */
  reclaimIdle(): boolean {
    for (const idle of this.idle.values()) {
      if (idle.length === 0) continue;
      this.#idleCount -= 1;
      this.destroyWarm(idle.take(0));
      return true;
    }
    return false;
  }

  /** Gives back what `state`'s instance held: its memories to the pool, its pool slot. */
  release(state: RunState): void {
    if (!this.live.delete(state)) return;
    if (!state.recycled) this.counters.releases += 1;
    const pool = this.pool;
    if (pool !== null && !this.engine.closed) {
      for (const memory of state.memories) {
        if (state.poisoned) pool.discard(memory);
        else pool.give(memory);
      }
    }
    if (state.ticket >= 0 && !this.engine.closed) this.#leave(state.ticket);
  }

  /** Disposes every live instance (the engine is closing); their slots go back first. */
  close(): void {
    this.#idleTimer?.stop();
    for (const tenant of [...this.tenants]) endTenancy(tenant);
    for (const idle of this.idle.values()) for (const warm of idle) this.destroyWarm(warm);
    this.idle.clear();
    this.#idleCount = 0;
    for (const state of [...this.live]) retire(state);
    // Instances whose code is still running (closed from inside a call) release on return;
    // their slots go with the native engine.
    this.live.clear();
    this.pool?.clear();
  }
}
