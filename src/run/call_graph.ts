/**
 * Which functions need the interruption (and fuel) check at their entry. Wasmtime checks at
 * every function entry; in real code that is a check every few nanoseconds (tiktoken: 2.5
 * million entries in a 20 ms encoding), so wasmpool checks only where a check bounds something:
 *
 * - a function that calls through a table or a reference (`call_indirect`, `call_ref`, their
 *   tail forms) or calls an imported function: every cycle of calls that leaves the module's
 *   direct calls (through a table, another instance, or the host calling an export again)
 *   passes one;
 * - on every cycle of direct calls (recursion, tail calls included), one function at least:
 *   the targets of the back edges of a depth-first walk of the calls, which every cycle has;
 * - a function whose calls reach more than {@linkcode UNCHECKED_COST_LIMIT} instructions of
 *   code without a check: its own instructions, plus those of every unchecked function it calls,
 *   once per call site (so that fan-out, a function calling the next twice, 64 deep, cannot
 *   run 2^64 calls unchecked).
 *
 * A function that calls nothing is never checked at entry: it runs to its end or to a loop
 * header. Loops are checked at their headers wherever they are, so they add nothing here. What
 * every other function runs between two checks is then bounded by its own size plus that limit
 * per call site, and every unbounded execution passes a check: it loops (a header), or it
 * calls without end, around a cycle.
 *
 * @module
 */

/** Instructions a call may run, through unchecked callees, before its callee needs a check. */
export const UNCHECKED_COST_LIMIT = 10_000;

/** What the decision needs of one defined function. */
export interface FunctionCalls {
  /** Its instruction count. */
  readonly size: number;
  /** The defined functions it calls directly (`call`, `return_call`), once per call site. */
  readonly callees: readonly number[];
  /** Whether it calls anything (directly, indirectly, imports, tail calls). */
  readonly calls: boolean;
  /** Whether it calls through a table or a reference, or calls an imported function. */
  readonly callsOut: boolean;
}

/**
 * Decides which defined functions (by index among defined functions) get a check at entry.
 * Linear in the functions and call sites.
 */
export function checkedAtEntry(functions: readonly FunctionCalls[]): boolean[] {
  const n = functions.length;
  const checked = new Array<boolean>(n).fill(false);
  for (let f = 0; f < n; f++) if (functions[f].callsOut) checked[f] = true;
  const { order, backEdgeTargets } = depthFirst(functions);
  // Every cycle of direct calls has an edge back to a function still being visited, in any
  // depth-first walk: checking the targets of those edges cuts every cycle.
  for (const f of backEdgeTargets) checked[f] = true;
  // Callees before callers (the walk's post-order, back edges aside, whose targets are
  // checked): a checked callee costs its callers nothing.
  const cost = new Array<number>(n).fill(0);
  for (const f of order) {
    if (checked[f]) continue;
    let total = functions[f].size;
    for (const callee of functions[f].callees) {
      if (!checked[callee]) total += cost[callee];
      if (total > UNCHECKED_COST_LIMIT) break;
    }
    // A function that calls nothing runs to its end or a loop header: a check at its entry
    // bounds nothing.
    if (total > UNCHECKED_COST_LIMIT && functions[f].calls) checked[f] = true;
    else cost[f] = total;
  }
  return checked;
}

/**
 * An iterative depth-first walk of the direct calls: the functions in post-order (callees
 * before callers, but along back edges), and the targets of the back edges (calls of a
 * function whose visit is in progress: recursion).
 */
function depthFirst(
  functions: readonly FunctionCalls[],
): { order: number[]; backEdgeTargets: number[] } {
  const n = functions.length;
  // 0 unseen, 1 in progress, 2 done.
  const state = new Uint8Array(n);
  const order: number[] = [];
  const backEdgeTargets: number[] = [];
  const frames: number[] = []; // (function, next callee position) pairs
  for (let root = 0; root < n; root++) {
    if (state[root] !== 0) continue;
    state[root] = 1;
    frames.push(root, 0);
    while (frames.length > 0) {
      const f = frames[frames.length - 2];
      const at = frames[frames.length - 1];
      const callees = functions[f].callees;
      if (at < callees.length) {
        frames[frames.length - 1] = at + 1;
        const c = callees[at];
        if (state[c] === 0) {
          state[c] = 1;
          frames.push(c, 0);
        } else if (state[c] === 1) {
          backEdgeTargets.push(c);
        }
        continue;
      }
      frames.length -= 2;
      state[f] = 2;
      order.push(f);
    }
  }
  return { order, backEdgeTargets };
}
