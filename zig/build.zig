const std = @import("std");

pub fn build(b: *std.Build) void {
    const target = b.standardTargetOptions(.{});
    const optimize = b.standardOptimizeOption(.{});

    const root_module = b.createModule(.{
        .root_source_file = b.path("src/root.zig"),
        .target = target,
        .optimize = optimize,
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
}
