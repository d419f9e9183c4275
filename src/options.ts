/**
 * Unknown option names. Every options object of the public API is checked against the names
 * its type declares, so that a misspelt key (`moduleLimit`, `tickMS`, `deadlinems`) is an
 * {@linkcode ArgumentError} naming it, instead of a default silently kept.
 *
 * @module
 */

import { ArgumentError } from "./errors.ts";

/**
 * Every key of the options type `T`, each exactly once: the one list of known names of an
 * options type, kept beside the type. The compiler refuses a record that misses a key of `T`
 * or names one `T` lacks, so adding an option is a line in the interface and a line here, and
 * `deno check` points at the record that lacks it.
 *
 * @example
 * ```ts ignore
 * interface ReserveOptions { readonly count?: number; readonly pages?: number }
 * const RESERVE_OPTIONS: OptionNames<ReserveOptions> = { count: true, pages: true };
 * checkOptions(options, RESERVE_OPTIONS, "reserve()");
 * ```
 */
export type OptionNames<T> = { readonly [K in keyof Required<T>]-?: true };

/** How far apart (in edits) a misspelt name and the name it was meant to be may be. */
const MAX_SUGGESTION_EDITS = 2;

/**
 * Throws {@linkcode ArgumentError} unless `options` is undefined or an object whose every
 * enumerable key is one of `names` (an {@linkcode OptionNames} record, or any object whose keys
 * are the known names, such as a defaults object). `owner` names what took the options in the
 * message: `unknown option "moduleLimit" of pooling(); did you mean "moduleLimits"? known:
 * strategy, moduleLimits, ...`. Cheap enough for a hot path: no allocation unless it throws.
 */
export function checkOptions(options: unknown, names: object, owner: string): void {
  if (options === undefined) return;
  if (typeof options !== "object" || options === null) {
    throw new ArgumentError(`the options of ${owner} must be an object, got ${String(options)}`);
  }
  // for-in, not Object.keys: nothing allocated for the usual, valid, object.
  for (const key in options) {
    if (!Object.hasOwn(names, key)) throw unknownOption(key, Object.keys(names), owner);
  }
}

function unknownOption(key: string, known: readonly string[], owner: string): ArgumentError {
  const suggestion = closest(key, known);
  return new ArgumentError(
    `unknown option ${JSON.stringify(key)} of ${owner}; ` +
      (suggestion === null ? "" : `did you mean ${JSON.stringify(suggestion)}? `) +
      `known: ${known.join(", ")}`,
  );
}

/** The known name `key` most likely misspells, or null when none is close. */
function closest(key: string, known: readonly string[]): string | null {
  let best: string | null = null;
  let bestEdits = MAX_SUGGESTION_EDITS + 1;
  for (const name of known) {
    const edits = distance(key.toLowerCase(), name.toLowerCase());
    if (edits < bestEdits && edits < name.length) [best, bestEdits] = [name, edits];
  }
  return best;
}

/** Levenshtein distance of `a` and `b` (both short: option names). */
function distance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min(previous[j] + 1, current[j - 1] + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length];
}
