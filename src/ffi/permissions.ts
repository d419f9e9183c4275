/**
 * Tells a permission refusal from other failures, so that an error can name the flag that
 * would have allowed the operation. Only Deno refuses operations this way (`NotCapable`, raised
 * before the operation is tried); Bun allows everything.
 *
 * @module
 */

/** Whether `error` is Deno refusing an operation for want of a `--allow-*` flag. */
export function isPermissionDenial(error: unknown): boolean {
  return error instanceof Error && error.name === "NotCapable";
}

/** `"; Deno needs <flag>"` when `error` is a permission refusal, else the empty string. */
export function permissionHint(error: unknown, flag: string): string {
  return isPermissionDenial(error) ? `; Deno needs ${flag}` : "";
}

/** The message of `error`, or its string form when it is not an Error. */
export function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
