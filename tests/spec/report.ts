/**
 * A plain-text summary of spec test runs: per file, how many commands ran, agreed with the
 * suite, were text-format assertions, were skipped, compared or refused, and the most
 * instances alive at once (the total row holds the largest: what a pool must hold to run
 * the suite); then every skipped command with its reason.
 *
 * @module
 */

import type { FileReport } from "./runner.ts";

function pad(text: string | number, width: number): string {
  return String(text).padStart(width);
}

/**
 * Formats reports as a table and a skip list.
 *
 * @param title The first line (for instance the runtime and backends).
 * @param reports One report per file.
 */
export function formatSummary(title: string, reports: readonly FileReport[]): string {
  const columns = [
    "commands",
    "passed",
    "text",
    "skipped",
    "compared",
    "refused",
    "failed",
    "instances",
    "ms",
  ];
  const nameWidth = Math.max(5, ...reports.map((r) => r.file.length));
  const lines = [title, `${"file".padEnd(nameWidth)} ${columns.map((c) => pad(c, 9)).join(" ")}`];
  const total = {
    commands: 0,
    passed: 0,
    text: 0,
    skipped: 0,
    compared: 0,
    refused: 0,
    failed: 0,
    instances: 0,
    ms: 0,
  };
  for (const r of reports) {
    const refused = Object.values(r.refused).reduce((a, b) => a + b, 0);
    const row = {
      commands: r.commands,
      passed: r.passed,
      text: r.text,
      skipped: r.skipped.length,
      compared: r.compared,
      refused,
      failed: r.failures.length,
      instances: r.instances,
      ms: Math.round(r.elapsedMs),
    };
    for (const key of Object.keys(total) as (keyof typeof total)[]) {
      total[key] = key === "instances" ? Math.max(total[key], row[key]) : total[key] + row[key];
    }
    lines.push(
      `${r.file.padEnd(nameWidth)} ${Object.values(row).map((v) => pad(v, 9)).join(" ")}`,
    );
  }
  lines.push(
    `${"total".padEnd(nameWidth)} ${Object.values(total).map((v) => pad(v, 9)).join(" ")}`,
  );
  const skips = reports.flatMap((r) =>
    r.skipped.map((s) => `  ${r.file}.wast:${s.line} ${s.command}: ${s.reason}`)
  );
  lines.push(skips.length === 0 ? "skipped commands: none" : "skipped commands:", ...skips);
  const refusals = reports.flatMap((r) =>
    Object.entries(r.refused).map(([name, count]) =>
      `  ${r.file}: ${count} commands refused (${name})`
    )
  );
  if (refusals.length > 0) lines.push("refused:", ...refusals);
  return lines.join("\n");
}
