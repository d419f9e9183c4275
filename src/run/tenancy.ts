/**
 * Who may still reach what: the state of a running instance, and the group it belongs to.
 *
 * Functions need no bookkeeping here: each one that can be reached from outside checks its
 * own instance's `dead` flag on entry (see rewrite.ts). Memories do: an instance that imports
 * another's memory reads and writes it directly. Instances that share a memory form a group,
 * the unit of release: the pooled memories of the members go back to the pool (and are reset
 * for the next tenant) only once every member is disposed, so that no live member's code can
 * reach a memory that a new tenant has been given.
 *
 * The state of an instance is what the finalizer holds: it never references the runtime's
 * instance or what was handed to the user (they reference it), so that an instance nobody
 * can reach any more is collected and its memories and slot given back.
 *
 * @module
 */

import type { EngineState } from "../internal.ts";
import type { HostMemory } from "./host_memory_pool.ts";
import { type AliasBox, dropBox } from "./memory_record.ts";

/**
 * What a released state gives its memories and slot back to: the engine's running layer
 * (`RunEngine`), named by what this file needs of it so that the two do not import each other.
 */
export interface Releaser {
  /** Gives back what `state`'s instance held. */
  release(state: RunState): void;
}

/**
 * What hands out guarded objects, and says when they stop working: a dedicated instance's
 * state, or one tenant of a recycled instance.
 */
export interface Owner {
  /** Whether it is over: its guarded objects then throw DisposedError. */
  readonly dead: boolean;
  /** The alias boxes of its guarded memories, detached when it is over. */
  readonly boxes: AliasBox[];
  /** The engine. */
  readonly engine: EngineState;
  /** Memories the user passed in as imports: theirs, so their own buffers are handed out. */
  readonly userMemories: Set<WebAssembly.Memory> | null;
}

/** The pooled resources of one running instance, and whether it is over. */
export class RunState implements Owner {
  /** The engine. */
  readonly engine: EngineState;
  /** The engine's running layer. */
  readonly run: Releaser;
  /** The native pool slot counting this instance against the limit, or -1 (on demand). */
  readonly ticket: number;
  /** The pooled memories this instance's module defines. */
  readonly memories: HostMemory[];
  /** Whether the instance was disposed (or collected, or its engine closed). */
  dead = false;
  /**
   * Whether a deadline or fuel stopped the instance: its memories are dropped at release, not
   * pooled, so its next tenant gets memory no one wrote.
   */
  poisoned = false;
  /** The alias boxes of this instance's guarded memories, detached when it is over. */
  readonly boxes: AliasBox[] = [];
  /** Whether the finalizer registered this state (dispose then unregisters it). */
  finalizing = false;
  /** Its place among the states waiting for the finalizer's registration, or -1. */
  pending = -1;
  /** Memories the user passed in as imports: theirs, so their own buffers are handed out. */
  userMemories: Set<WebAssembly.Memory> | null = null;
  /** The group; merged into another's when the instance shares a memory with it. */
  group: Group;

  /** Whether the instance is recycled between tenants (its tenants hold the pool slots). */
  readonly recycled: boolean;

  /** The state of a new instance, alone in a new group. */
  constructor(
    engine: EngineState,
    run: Releaser,
    ticket: number,
    memories: HostMemory[],
    recycled = false,
  ) {
    this.recycled = recycled;
    this.engine = engine;
    this.run = run;
    this.ticket = ticket;
    this.memories = memories;
    this.group = new Group(this);
  }

  /** Whether the instance is over, for the finalizer. */
  get released(): boolean {
    return this.dead;
  }
}

/** Instances that share memories, released together. */
export class Group {
  /** The members. */
  readonly members: RunState[];
  /** Members not yet disposed. */
  live = 1;

  /** A group of one. */
  constructor(first: RunState) {
    this.members = [first];
  }
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
}

/**
 * Marks `state` over and detaches the aliases it handed out; when it is the last live member
 * of its group, gives back every member's pooled memories and pool slot. Only the first call
 * counts.
 */
export function retire(state: RunState): void {
  if (state.dead) return;
  state.dead = true;
  for (const box of state.boxes) dropBox(box);
  const group = state.group;
  group.live -= 1;
  if (group.live > 0) return;
  for (const member of group.members) member.run.release(member);
  group.members.length = 0;
}
