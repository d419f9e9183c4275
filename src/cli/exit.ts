/**
 * How the demo ends early: {@linkcode DemoExit} carries the message and the exit status, so
 * that every part of the demo can stop it and only `main.ts` prints and exits.
 *
 * @module
 */

/** An input the demo cannot work with: print `message`, exit with `code`. */
export class DemoExit extends Error {
  /** The exit status: 1 for a module that cannot be read, run or measured, 2 for a usage error. */
  readonly code: number;

  /** A stop with `message` and exit status `code`. */
  constructor(message: string, code: number) {
    super(message);
    this.code = code;
  }
}
