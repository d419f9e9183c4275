/**
 * Who may still reach what: the state of a running instance and the group it belongs to.
 *
 * Instances that share anything (one imports another's memory, table, global or function, or
 * one's function was stored in another's table or global) form a group: code of one can run
 * code of, or read the memory of, another. The group is the unit of release: the pooled
 * memories of its members go back to the pool (and are reset for the next tenant) only once
 * every member is disposed, so that no reference left inside a live member can reach a
 * memory that a new tenant has been given. It is also the unit of alias upkeep: after any
 * member's code ran, the aliases over every memory of the group are checked.
 *
 * The state of an instance is what the finalizer holds: it never references the instance, its
 * lease, or the wrappers handed to the user (they reference it), so that an instance nobody
 * can reach any more is collected and its slot given back.
 *
 * @module
 */

import type { EngineState } from "../internal.ts";
import type { HostMemory } from "./host_memory_pool.ts";
import { type AliasBox, dropBox, type MemoryRecord } from "./memory_record.ts";
import type { RunEngine } from "./run_engine.ts";

/** The native-side and pooled resources of one running instance, and whether it is over. */
export class RunState {
  /** The engine. */
  readonly engine: EngineState;
  /** The engine's running layer. */
  readonly run: RunEngine;
  /** The module's plan, the affinity key of its pooled memories. */
  readonly affinity: object;
  /** The native pool slot counting this instance against the limit, or -1 (on demand). */
  readonly ticket: number;
  /** The pooled memories this instance's module defines. */
  readonly memories: readonly HostMemory[];
  /** Whether the instance was disposed (or collected, or its engine closed). */
  dead = false;
  /** The alias boxes of this instance's guarded memories, detached when it is over. */
  readonly boxes: AliasBox[] = [];
  /** Calls into this instance's code in flight (the host may dispose it from inside one). */
  depth = 0;
  /** Whether the finalizer registered this state (dispose then unregisters it). */
  finalizing = false;
  /** The group; merged into another's when the instance shares with it. */
  group: Group;

  /** Whether the instance is over, for the finalizer. */
  get released(): boolean {
    return this.dead;
  }

  /** The state of a new instance, alone in a new group. */
  constructor(
    engine: EngineState,
    run: RunEngine,
    affinity: object,
    ticket: number,
    memories: readonly HostMemory[],
  ) {
    this.engine = engine;
    this.run = run;
    this.affinity = affinity;
    this.ticket = ticket;
    this.memories = memories;
    this.group = new Group(this);
  }
}

/** Instances that can reach each other's state, released together. */
export class Group {
  /** The members. */
  readonly members: RunState[];
  /** Members not yet disposed. */
  live = 1;
  /** Every memory a member uses that has a guarded object: aliases to keep honest. */
  readonly records: MemoryRecord[] = [];
  /** Every member is over but code of one is still running: released when it returns. */
  pendingRelease = false;

  /** A group of one. */
  constructor(first: RunState) {
    this.members = [first];
  }
}

/** Adds `record` to the records `state`'s group keeps honest. */
export function watchRecord(state: RunState, record: MemoryRecord): void {
  const records = state.group.records;
  if (!records.includes(record)) records.push(record);
}

/** Puts `a` and `b` in one group (the larger absorbs the smaller). */
export function link(a: RunState, b: RunState): void {
  let big = a.group;
  let small = b.group;
  if (big === small) return;
  if (small.members.length > big.members.length) [big, small] = [small, big];
  for (const member of small.members) {
    member.group = big;
    big.members.push(member);
  }
  big.live += small.live;
  for (const record of small.records) {
    if (!big.records.includes(record)) big.records.push(record);
  }
}

/**
 * Marks `state` over; when it is the last live member of its group, releases every member's
 * pooled memories and pool slot. Only the first call counts.
 */
export function retire(state: RunState): void {
  if (state.dead) return;
  state.dead = true;
  for (const box of state.boxes) dropBox(box);
  const group = state.group;
  group.live -= 1;
  if (group.live > 0) return;
  // Code of a member still running (the host disposed it from inside a call) must not find its
  // memory given to someone else: the release waits until the outermost call returns.
  group.pendingRelease = true;
  releaseIfIdle(group);
}

/** Releases every member's pooled memories and pool slots if no member's code is running. */
export function releaseIfIdle(group: Group): void {
  for (const member of group.members) if (member.depth > 0) return;
  group.pendingRelease = false;
  for (const record of group.records) record.detachAliases();
  for (const member of group.members) member.run.release(member);
  group.members.length = 0;
}
