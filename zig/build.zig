const std = @import("std");

pub fn build(b: *std.Build) void {
    const target = b.standardTargetOptions(.{});
    const optimize = b.standardOptimizeOption(.{});
    // script/build-release strips the packaged libraries (no debug info, no symbol table):
    // panics still print their message, without a symbolized trace.
    const strip = b.option(bool, "strip", "Omit debug information and the symbol table") orelse false;

    const root_module = b.createModule(.{
        .root_source_file = b.path("src/root.zig"),
        .target = target,
        .optimize = optimize,
        .strip = strip,
        // libc: the fault-handling thread is a pthread inside a libc process (Deno, Bun).
        .link_libc = true,
    });
    const lib = b.addLibrary(.{
        .name = "wasmpool",
        .linkage = .dynamic,
        .root_module = root_module,
    });
    b.installArtifact(lib);

    const tests = b.addTest(.{ .root_module = root_module });
    const run_tests = b.addRunArtifact(tests);
    b.step("test", "Run the Zig unit tests").dependOn(&run_tests.step);

    // `zig build bench`: the Zig-native floor of instantiate+dispose, always ReleaseFast
    // whatever -Doptimize says, run from the repository root so that it writes
    // bench/results/zig-native.json (`zig build bench -- <path>` writes elsewhere).
    const bench_engine = b.createModule(.{
        .root_source_file = b.path("src/engine.zig"),
        .target = target,
        .optimize = .ReleaseFast,
        .link_libc = true,
    });
    const bench_module = b.createModule(.{
        .root_source_file = b.path("bench/instantiate_bench.zig"),
        .target = target,
        .optimize = .ReleaseFast,
        .link_libc = true,
        .imports = &.{.{ .name = "wasmpool", .module = bench_engine }},
    });
    const bench_exe = b.addExecutable(.{ .name = "instantiate_bench", .root_module = bench_module });
    const run_bench = b.addRunArtifact(bench_exe);
    run_bench.setCwd(b.path(".."));
    if (b.args) |args| run_bench.addArgs(args);
    b.step("bench", "Run the Zig-native instantiate+dispose benchmark (ReleaseFast)").dependOn(&run_bench.step);
}
