/**
 * `Engine#stats()`: the native engine's counters, read in one call (`wasmpool_engine_stats`,
 * whose `Stats` struct in `zig/src/engine.zig` has the same fields in the same order).
 *
 * @module
 */

import type { EngineState } from "./internal.ts";

/** What an engine reports about its allocator. Sizes in bytes. */
export interface EngineStats {
  /** `"on-demand"` or `"pooling"`. */
  readonly strategy: "on-demand" | "pooling";
  /**
   * Instances alive now: handles (`allocate`) and running instances (`instantiate`). With
   * pooling the count is the pool's, across every Worker attached to the engine.
   */
  readonly liveInstances: number;
  /** Instances that can be alive at once. */
  readonly instanceCapacity: number;
  /** Successful instantiations since the engine was made. */
  readonly instantiations: number;
  /** Disposals since the engine was made. */
  readonly deallocations: number;
  /** Slots taken out of service because resetting or remapping them failed. */
  readonly quarantinedSlots: number;
  /** Address space of one memory slot (on demand: of one memory). */
  readonly memorySlotBytes: number;
  /** Address space of the memory pool. */
  readonly memoryPoolBytes: number;
  /** Bytes of one table slot. */
  readonly tableSlotBytes: number;
  /** Address space of the table pool. */
  readonly tablePoolBytes: number;
  /** Address space of the stack pool. */
  readonly stackPoolBytes: number;
  /** Modules translated for this engine and not yet collected. */
  readonly modules: number;
  /** uffd mode: wasm pages the fault handler filled with zeros. */
  readonly uffdPagesZeroed: number;
  /** uffd mode: wasm pages the fault handler filled from a module's paged image. */
  readonly uffdPagesCopied: number;
  /** uffd mode: accesses at or above a memory's size that the handler turned into traps. */
  readonly uffdGuardFaults: number;
  /** Allocations given a slot whose last tenant was the same module (module affinity). */
  readonly affineHits: number;
  /**
   * Memory slots whose mapping changed at allocation (to another module's image, or to
   * anonymous memory) or at a module's teardown. A steady stream of one module makes none.
   */
  readonly imageRemaps: number;
  /**
   * Bytes of module images that live instances map copy-on-write instead of holding a copy,
   * summed over instances: what instantiation did not copy.
   */
  readonly imageBytesShared: number;
  /** Bytes of data held by the images of this engine's modules (each image counted once). */
  readonly imageBytes: number;
  /** uffd mode: bytes filled at instantiation (or grow) from the modules' working sets. */
  readonly uffdPrefetchedBytes: number;
  /**
   * What the last quarantine was caused by: `"madvise"`, `"mmap"`, `"mprotect"`, or `null`
   * when no slot was quarantined.
   */
  readonly quarantineOperation: "madvise" | "mmap" | "mprotect" | null;
  /** The errno of the last quarantine's cause (0 when none). */
  readonly quarantineErrno: number;
  /** The runtime's memories the running layer adopted, across isolates attached to the engine. */
  readonly hostMemoriesAdopted: number;
  /** Host-memory pages (4 KiB) restored after tenants: what resets cost. */
  readonly hostPagesRestored: number;
  /**
   * Host-memory resets that restored a whole memory, because writes could not be tracked
   * (see `hostWriteTracking`) or a scan failed: correct, but costing the memory's size.
   */
  readonly hostFullResets: number;
  /** Times a host memory was given another module's image (or zeros). */
  readonly hostImageSwitches: number;
  /**
   * `"tracked"` when resets of host memories restore exactly the pages a tenant wrote
   * (userfaultfd write protection and PAGEMAP_SCAN, Linux 6.7+), else why not (then every
   * reset restores the whole memory: `hostFullResets`).
   */
  readonly hostWriteTracking: string;
  /**
   * Host-memory resets done by wasmpool's reset thread, off the path of the code that disposed
   * the instance (the main thread's recycled instances, while disposals come in bursts).
   */
  readonly hostResetsBackground: number;
  /** Host-memory resets done inline when their tenant ended (the reset thread slept). */
  readonly hostResetsInline: number;
  /**
   * Queued host-memory resets done inline after all, because the memory was wanted again before
   * the reset thread got to it (keep more warm instances: `Engine#warm`).
   */
  readonly hostResetsClaimed: number;
  /** Times the reset thread was woken from sleep (a syscall on the disposing thread). */
  readonly hostResetWakes: number;
  /** Running instances (`instantiate`) alive in this engine object (this isolate). */
  readonly runningInstances: number;
  /** Host memories (`WebAssembly.Memory`) the pool holds, in use or free, in this isolate. */
  readonly hostMemories: number;
  /** Host memories free for the next tenant. */
  readonly hostMemoriesFree: number;
  /** Host memories made (`new WebAssembly.Memory`). */
  readonly hostMemoriesCreated: number;
  /** Instantiations served with a pooled host memory. */
  readonly hostMemoriesReused: number;
  /** Host memories dropped because their tenant grew them (a memory cannot shrink). */
  readonly hostMemoriesReplaced: number;
  /** Free host memories dropped to make room for a memory of another shape. */
  readonly hostMemoriesEvicted: number;
  /** Host memories dropped because the native side could not reset or prepare them. */
  readonly hostMemoriesFailed: number;
  /**
   * Memories of recycled instances kept grown (`PoolingOptions.recycleGrownMemoryPages`) that
   * the runtime had moved when they grew (JavaScriptCore's heap memories): adopted again at
   * their new address and restored wholly, by writing bytes.
   */
  readonly hostMemoriesReadopted: number;
  /** Instantiations served by an idle recycled ("warm") instance, reset in place. */
  readonly warmHits: number;
  /** Instantiations of a recyclable module that found no idle instance (one was made). */
  readonly warmMisses: number;
  /** Idle recycled instances waiting for a tenant, in this isolate. */
  readonly warmIdle: number;
  /** Tenancies whose instance was reset in place for the next tenant. */
  readonly recycled: number;
  /**
   * Recycled instances destroyed at a tenancy's end instead: the tenant grew a table, or a
   * memory past `PoolingOptions.recycleGrownMemoryPages` (see `recycledGrownReplaced`), or shared
   * a memory with another instance, or a reset failed.
   */
  readonly recycleFallbacks: number;
  /**
   * Instantiations of a recyclable module that needed an instance of their own: the tenant
   * passed other imported global values, or a wasm function as a function import.
   */
  readonly ownInstances: number;
  /** Instantiations of modules whose instances cannot be recycled (see `Module#notRecyclable`). */
  readonly notRecyclable: number;
  /** Recycled instances destroyed after serving `maxInstanceReuse` tenants, to be made anew. */
  readonly warmRetired: number;
  /** Idle recycled instances released by `idleInstanceTimeoutMs` (the warm set shrinking). */
  readonly warmExpired: number;
  /**
   * Tenancies whose instance was recycled though a memory of it had grown past its declared
   * minimum, kept at its grown size for the next tenant (`PoolingOptions.recycleGrownMemoryPages`),
   * whether that tenant or an earlier one grew it. Also counted in `recycled`.
   */
  readonly recycledGrown: number;
  /**
   * Recycled instances destroyed at a tenancy's end because a memory grew past
   * `recycleGrownMemoryPages` (with the default 0: because it grew at all), or could not be
   * taken in at its grown size (the native side refused it). Also counted in `recycleFallbacks`.
   */
  readonly recycledGrownReplaced: number;
}

const STATS_FIELDS = [
  "liveInstances",
  "instanceCapacity",
  "instantiations",
  "deallocations",
  "quarantinedSlots",
  "memorySlotBytes",
  "memoryPoolBytes",
  "tableSlotBytes",
  "tablePoolBytes",
  "stackPoolBytes",
  "modules",
  "uffdPagesZeroed",
  "uffdPagesCopied",
  "uffdGuardFaults",
  "affineHits",
  "imageRemaps",
  "imageBytesShared",
  "imageBytes",
  "uffdPrefetchedBytes",
  "quarantineOperation",
  "quarantineErrno",
  "hostMemoriesAdopted",
  "hostPagesRestored",
  "hostFullResets",
  "hostImageSwitches",
  "hostWriteTracking",
  "hostResetsBackground",
  "hostResetsInline",
  "hostResetsClaimed",
  "hostResetWakes",
] as const;

/** Why writes to host memories are not tracked, by write_tracker.zig's reason code. */
const TRACKING_UNAVAILABLE = [
  "tracked",
  "unavailable: the kernel has no userfaultfd write protection or PAGEMAP_SCAN (Linux 6.7+)",
  "unavailable: userfaultfd refused (EPERM: vm.unprivileged_userfaultfd, seccomp or an LSM)",
  "unavailable: userfaultfd offers no asynchronous write protection",
  "unavailable: opening the tracker failed",
] as const;

/** The operations a quarantine can be caused by, by their native number. */
const QUARANTINE_OPERATIONS = [null, "madvise", "mmap", "mprotect"] as const;

/** @internal Reads the stats of the engine behind `state`. */
export function readStats(state: EngineState): EngineStats {
  const out = new BigUint64Array(STATS_FIELDS.length);
  state.lib.engineStats(state.pointer, new Uint8Array(out.buffer));
  const stats: Record<string, number | string | null> = { strategy: state.kind };
  STATS_FIELDS.forEach((field, i) => (stats[field] = Number(out[i])));
  stats.quarantineOperation = QUARANTINE_OPERATIONS[Number(stats.quarantineOperation)] ?? null;
  stats.hostWriteTracking = TRACKING_UNAVAILABLE[Number(stats.hostWriteTracking)] ??
    `unavailable (reason ${stats.hostWriteTracking})`;
  const run = state.run;
  const pool = run?.pool;
  const counters = pool?.counters;
  let dedicated = 0;
  if (run) { for (const s of run.live) if (!s.recycled) dedicated++; }
  stats.runningInstances = dedicated + (run?.tenants.size ?? 0);
  stats.hostMemories = pool?.size ?? 0;
  stats.hostMemoriesFree = pool?.freeCount ?? 0;
  stats.hostMemoriesCreated = counters?.created ?? 0;
  stats.hostMemoriesReused = counters?.reused ?? 0;
  stats.hostMemoriesReplaced = counters?.replaced ?? 0;
  stats.hostMemoriesEvicted = counters?.evicted ?? 0;
  stats.hostMemoriesFailed = counters?.failed ?? 0;
  stats.hostMemoriesReadopted = counters?.readopted ?? 0;
  stats.warmHits = run?.counters.warmHits ?? 0;
  stats.warmMisses = run?.counters.warmMisses ?? 0;
  stats.warmIdle = run?.idleCount ?? 0;
  stats.recycled = run?.counters.recycled ?? 0;
  stats.recycleFallbacks = run?.counters.recycleFallbacks ?? 0;
  stats.ownInstances = run?.counters.ownInstances ?? 0;
  stats.notRecyclable = run?.counters.notRecyclable ?? 0;
  stats.warmRetired = run?.counters.warmRetired ?? 0;
  stats.warmExpired = run?.counters.warmExpired ?? 0;
  stats.recycledGrown = run?.counters.recycledGrown ?? 0;
  stats.recycledGrownReplaced = run?.counters.recycledGrownReplaced ?? 0;
  if (state.pooling === null && run) {
    // On demand, running instances take no native slot: count them here.
    stats.liveInstances = (stats.liveInstances as number) + dedicated;
    stats.instantiations = (stats.instantiations as number) + run.counters.instantiations;
    stats.deallocations = (stats.deallocations as number) + run.counters.releases;
  }
  return stats as unknown as EngineStats;
}
