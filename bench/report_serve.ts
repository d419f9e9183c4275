/**
 * The README table and chart for `bench/results/serve-<runtime>.json` (bench/serve_bench.ts):
 * requests per second and p50/p99 latency of examples/serve.ts's `/tokens` per mode and
 * concurrency, the soak and the deadline. The chart is an SVG (log scales: the modes differ by
 * orders of magnitude), written by bench/report.ts to {@linkcode SERVE_CHART_PATH}.
 *
 * @module
 */

import { loadRuntimeFiles } from "./report_files.ts";

/** Where the chart goes, from the repository's root; the README links it. */
export const SERVE_CHART_PATH = "docs/serve.svg";

interface Point {
  readonly mode: string;
  readonly concurrency: number;
  readonly reqPerSec: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly errors: number;
}

interface ServeFile {
  readonly runtime: string;
  readonly autocannon: string;
  readonly durationS: number;
  readonly textBytes: number;
  readonly points: readonly Point[];
  readonly ratios: readonly {
    readonly concurrency: number;
    readonly tenantOverShared: number | null;
    readonly tenantOverFresh: number | null;
    readonly tenantP99OverP50: number | null;
  }[];
  readonly soak: {
    readonly durationS: number;
    readonly requests: number;
    readonly errors: number;
    readonly rssWarmBytes: number;
    readonly rssAfterSoakBytes: number;
  };
  readonly spin: {
    readonly all504ThenServed: boolean;
    readonly guestP50Ms: number;
    readonly guestMaxMs: number;
    readonly deadlineMs: number;
    readonly tickMs: number;
  };
}

function isServeFile(value: unknown): value is ServeFile {
  const v = value as Partial<ServeFile> | null;
  return typeof v === "object" && v !== null && typeof v.runtime === "string" &&
    Array.isArray(v.points) && Array.isArray(v.ratios) && typeof v.soak === "object";
}

/** Reads every `serve-*.json` in `dir`; files of another shape are left out. */
export function loadServe(dir: string): Promise<ServeFile[]> {
  return loadRuntimeFiles(dir, "serve", (json) => isServeFile(json) ? json : null);
}

const fixed = (x: number | null, digits: number): string => x === null ? "-" : x.toFixed(digits);
const mib = (bytes: number): string => (bytes / 2 ** 20).toFixed(1);

/** The Markdown for the serving results; empty when there are none. */
export function renderServe(files: readonly ServeFile[]): string {
  if (files.length === 0) return "";
  const rows = files.flatMap((file) =>
    file.points.map((p) =>
      `| ${file.runtime} | ${p.mode} | ${p.concurrency} | ${p.reqPerSec.toFixed(1)} | ` +
      `${p.p50Ms} | ${p.p99Ms} | ${p.errors} |`
    )
  );
  const ratios = files.flatMap((file) =>
    file.ratios.map((r) =>
      `| ${file.runtime} | ${r.concurrency} | ${fixed(r.tenantOverShared, 3)}× | ` +
      `${fixed(r.tenantOverFresh, 2)}× | ${fixed(r.tenantP99OverP50, 2)} |`
    )
  );
  const soaks = files.map((file) => {
    const s = file.soak;
    const spin = file.spin;
    return `| ${file.runtime} | ${s.durationS.toFixed(0)} s, ${s.requests} requests, ` +
      `${s.errors} errors | ${mib(s.rssWarmBytes)} → ${mib(s.rssAfterSoakBytes)} MiB ` +
      `(${(s.rssAfterSoakBytes / s.rssWarmBytes).toFixed(2)}×) | ` +
      `${spin.guestP50Ms.toFixed(1)} / ${spin.guestMaxMs.toFixed(1)} ms ` +
      `(deadline ${spin.deadlineMs} ms, tick ${spin.tickMs} ms)${
        spin.all504ThenServed ? "" : ", NOT all 504 then served"
      } |`;
  });
  const first = files[0];
  return [
    `### Serving: \`POST /tokens\` of examples/serve.ts under autocannon ${first.autocannon} ` +
    `(${first.durationS} s per point, ${first.textBytes}-byte text)`,
    "",
    `![req/s and latency per mode and concurrency](${SERVE_CHART_PATH})`,
    "",
    "| runtime | mode | concurrency | req/s | p50 ms | p99 ms | errors |",
    "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ...rows,
    "",
    "| runtime | concurrency | tenant / shared req/s | tenant / fresh req/s | tenant p99 / p50 |",
    "| --- | ---: | ---: | ---: | ---: |",
    ...ratios,
    "",
    "| runtime | soak (tenant mode, concurrency 16) | RSS after warm-up → after soak | " +
    "`/run?spin=1` stopped after (p50 / max) |",
    "| --- | --- | --- | --- |",
    ...soaks,
  ].join("\n");
}

const MODES = ["tenant", "shared", "fresh"] as const;
const COLORS: Record<string, string> = { tenant: "#2f6fb0", shared: "#9a9a9a", fresh: "#d0702c" };
const PANEL_W = 380;
const PANEL_H = 200;
const MARGIN = { left: 56, top: 34, bottom: 34, right: 16 };

/** A log10 axis over the decades that hold `values`. */
function logAxis(values: readonly number[]): { lo: number; hi: number } {
  const positive = values.filter((v) => v > 0);
  const lo = Math.floor(Math.log10(Math.min(...positive, 1)));
  const hi = Math.ceil(Math.log10(Math.max(...positive, 10)));
  return { lo, hi: hi === lo ? lo + 1 : hi };
}

function esc(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;");
}

/** One panel: bars per concurrency and mode, on a log scale; `whisker` draws p99 over p50. */
function panel(
  x0: number,
  y0: number,
  title: string,
  unit: string,
  points: readonly Point[],
  value: (p: Point) => number,
  whisker: ((p: Point) => number) | null,
): string {
  const concurrencies = [...new Set(points.map((p) => p.concurrency))].sort((a, b) => a - b);
  const all = points.flatMap((p) => [value(p), ...(whisker ? [whisker(p)] : [])]);
  const { lo, hi } = logAxis(all);
  const plotW = PANEL_W - MARGIN.left - MARGIN.right;
  const plotH = PANEL_H - MARGIN.top - MARGIN.bottom;
  const y = (v: number): number => {
    const clamped = Math.max(v, 10 ** lo);
    return y0 + MARGIN.top + plotH * (1 - (Math.log10(clamped) - lo) / (hi - lo));
  };
  const out: string[] = [
    `<text x="${x0 + MARGIN.left}" y="${y0 + 18}" font-weight="bold">${esc(title)}</text>`,
  ];
  for (let d = lo; d <= hi; d++) {
    const yy = y(10 ** d).toFixed(1);
    out.push(
      `<line x1="${x0 + MARGIN.left}" x2="${x0 + PANEL_W - MARGIN.right}" y1="${yy}" ` +
        `y2="${yy}" stroke="#ddd"/>`,
      `<text x="${x0 + MARGIN.left - 6}" y="${yy}" text-anchor="end" dy="4">` +
        `${10 ** d >= 1 ? (10 ** d).toLocaleString("en-US") : 10 ** d} ${unit}</text>`,
    );
  }
  const groupW = plotW / concurrencies.length;
  const barW = (groupW - 16) / MODES.length;
  concurrencies.forEach((c, gi) => {
    const gx = x0 + MARGIN.left + gi * groupW + 8;
    out.push(
      `<text x="${(gx + (groupW - 16) / 2).toFixed(1)}" y="${y0 + PANEL_H - 12}" ` +
        `text-anchor="middle">c=${c}</text>`,
    );
    MODES.forEach((mode, mi) => {
      const p = points.find((q) => q.mode === mode && q.concurrency === c);
      if (p === undefined) return;
      const bx = gx + mi * barW;
      const top = y(value(p));
      const base = y(10 ** lo);
      out.push(
        `<rect x="${bx.toFixed(1)}" y="${top.toFixed(1)}" width="${(barW - 2).toFixed(1)}" ` +
          `height="${(base - top).toFixed(1)}" fill="${COLORS[mode]}"><title>${mode}, c=${c}: ` +
          `${value(p).toFixed(1)} ${unit}</title></rect>`,
      );
      if (whisker !== null) {
        const wy = y(whisker(p)).toFixed(1);
        const cx = (bx + (barW - 2) / 2).toFixed(1);
        out.push(
          `<line x1="${cx}" x2="${cx}" y1="${top.toFixed(1)}" y2="${wy}" stroke="#222"/>`,
          `<line x1="${(bx + 2).toFixed(1)}" x2="${(bx + barW - 4).toFixed(1)}" y1="${wy}" ` +
            `y2="${wy}" stroke="#222"/>`,
        );
      }
    });
  });
  return out.join("\n");
}

/** The chart: per runtime, req/s and latency (p50 bars, p99 whiskers) per mode and concurrency. */
export function serveSvg(files: readonly ServeFile[]): string {
  const legendH = 28;
  const width = PANEL_W * 2;
  const height = legendH + PANEL_H * files.length;
  const parts: string[] = [];
  MODES.forEach((mode, i) => {
    const lx = 60 + i * 210;
    parts.push(
      `<rect x="${lx}" y="8" width="12" height="12" fill="${COLORS[mode]}"/>`,
      `<text x="${lx + 18}" y="18">${
        { tenant: "tenant per request", shared: "one shared instance", fresh: "fresh instance" }[
          mode
        ]
      }</text>`,
    );
  });
  files.forEach((file, i) => {
    const y0 = legendH + i * PANEL_H;
    parts.push(
      panel(0, y0, `${file.runtime}: req/s`, "", file.points, (p) => p.reqPerSec, null),
      panel(
        PANEL_W,
        y0,
        `${file.runtime}: latency, p50 (bar) and p99`,
        "ms",
        file.points,
        (p) => Math.max(p.p50Ms, 0.5),
        (p) => Math.max(p.p99Ms, 0.5),
      ),
    );
  });
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" ` +
    `viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    ...parts,
    "</svg>",
    "",
  ].join("\n");
}
