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

    // `zig build wasmtime-bench -- <modules directory> [<output json>]`: Wasmtime's cycle without
    // FFI, linked against the C API library script/bootstrap installs (Linux x86_64 only). Only
    // this step needs the library; without it the step fails saying so, and nothing else does.
    const wasmtime_dir = "../.tools/wasmtime/wasmtime/linux-x86_64";
    const wasmtime_step = b.step("wasmtime-bench", "Run Wasmtime's instantiate cycle from Zig (needs script/bootstrap's Wasmtime)");
    if (b.build_root.handle.access(wasmtime_dir ++ "/_libwasmtime.so", .{})) |_| {
        const wasmtime_module = b.createModule(.{
            .root_source_file = b.path("bench/wasmtime_bench.zig"),
            .target = target,
            .optimize = .ReleaseFast,
            .link_libc = true,
        });
        // The file is not named lib<name>.so, so it is linked by path; it has no soname, so
        // the executable needs it at that path (the rpath is for the loader's search too).
        wasmtime_module.addObjectFile(b.path(wasmtime_dir ++ "/_libwasmtime.so"));
        wasmtime_module.addRPath(b.path(wasmtime_dir));
        const wasmtime_exe = b.addExecutable(.{ .name = "wasmtime_bench", .root_module = wasmtime_module });
        const run_wasmtime = b.addRunArtifact(wasmtime_exe);
        run_wasmtime.setCwd(b.path(".."));
        if (b.args) |args| run_wasmtime.addArgs(args);
        wasmtime_step.dependOn(&run_wasmtime.step);
    } else |_| {
        wasmtime_step.dependOn(&b.addFail("wasmtime-bench: no " ++ wasmtime_dir ++
            "/_libwasmtime.so (script/bootstrap installs Wasmtime on Linux x86_64)").step);
    }
}
