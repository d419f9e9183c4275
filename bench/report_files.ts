/**
 * The results files the README report reads per bench: `bench/results/<prefix>-<runtime>.json`,
 * one a runtime, each checked for its bench's shape before a table is made of it.
 *
 * @module
 */

/** A results file of one runtime. */
export interface RuntimeFile {
  readonly runtime: string;
}

/** By runtime name, the report's default order. */
export function byRuntime(a: RuntimeFile, b: RuntimeFile): number {
  return a.runtime.localeCompare(b.runtime);
}

/**
 * Reads every `<prefix>-*.json` in `dir` and keeps what `read` makes of each (null: a file of
 * another shape, left out), sorted by `compare`. A missing `dir` or a file that is not JSON
 * ends the reading: the files read before it are returned as they are, unsorted.
 */
export async function loadRuntimeFiles<T extends RuntimeFile>(
  dir: string,
  prefix: string,
  read: (json: unknown) => T | null,
  compare: (a: T, b: T) => number = byRuntime,
): Promise<T[]> {
  const files: T[] = [];
  const name = new RegExp(`^${prefix}-.*\\.json$`);
  try {
    for await (const entry of Deno.readDir(dir)) {
      if (!entry.isFile || !name.test(entry.name)) continue;
      const file = read(JSON.parse(await Deno.readTextFile(`${dir}/${entry.name}`)));
      if (file !== null) files.push(file);
    }
  } catch {
    return files;
  }
  return files.sort(compare);
}
