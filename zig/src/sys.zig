//! Thin wrappers over the memory-management system calls. They return the errno instead of
//! treating EINVAL as unreachable (as std.posix does), so a failure reaches the caller as a
//! value with its cause, never as a panic in the host process.

const std = @import("std");
const linux = std.os.linux;

pub const page_size_bytes: usize = std.heap.page_size_min;

/// An errno value, kept for the error message the TypeScript side builds.
pub const Errno = u16;

/// Failure injection for tests: the next `count` calls of an operation fail with ENOMEM (EPERM
/// for userfaultfd), as they would when vm.max_map_count or memory runs out. Off (all zero)
/// unless a test sets it. `map` is a new mapping anywhere (the pools, an image's view);
/// `map_fixed` is a mapping over a range the caller owns (an image or anonymous memory over a
/// slot); `memfd_create` is the creation of a module's image.
pub const Operation = enum(u32) {
    map = 0,
    protect = 1,
    decommit = 2,
    userfaultfd = 3,
    memfd_create = 4,
    map_fixed = 5,
};
const operation_count = @typeInfo(Operation).@"enum".fields.len;
var injected: [operation_count]std.atomic.Value(u32) = @splat(.init(0));
const enomem: Errno = @intFromEnum(linux.E.NOMEM);

pub fn inject_failures(operation: Operation, count: u32) void {
    injected[@intFromEnum(operation)].store(count, .release);
}

pub fn injected_failure(operation: Operation) bool {
    const counter = &injected[@intFromEnum(operation)];
    var left = counter.load(.acquire);
    while (left > 0) {
        left = counter.cmpxchgWeak(left, left - 1, .acq_rel, .acquire) orelse return true;
    }
    return false;
}

fn check(rc: usize) ?Errno {
    const signed: isize = @bitCast(rc);
    if (signed > -4096 and signed < 0) return @intCast(-signed);
    return null;
}

/// Reserves `size_bytes` of address space: PROT_NONE, private, anonymous, no swap reserved.
pub fn reserve(size_bytes: usize, out_errno: *Errno) ?[*]align(page_size_bytes) u8 {
    return map(size_bytes, linux.PROT.NONE, out_errno);
}

/// Maps `size_bytes` read-write, committed lazily on first touch.
pub fn map_read_write(size_bytes: usize, out_errno: *Errno) ?[*]align(page_size_bytes) u8 {
    return map(size_bytes, linux.PROT.READ | linux.PROT.WRITE, out_errno);
}

/// Maps `size_bytes` of zeros, read-only: every page is the kernel's shared zero page, so the
/// mapping costs no memory however often it is read.
pub fn map_zeros(size_bytes: usize, out_errno: *Errno) ?[*]align(page_size_bytes) const u8 {
    return map(size_bytes, linux.PROT.READ, out_errno);
}

fn map(size_bytes: usize, prot: usize, out_errno: *Errno) ?[*]align(page_size_bytes) u8 {
    std.debug.assert(size_bytes > 0);
    std.debug.assert(size_bytes % page_size_bytes == 0);
    if (injected_failure(.map)) {
        out_errno.* = enomem;
        return null;
    }
    const rc = linux.mmap(null, size_bytes, prot, .{
        .TYPE = .PRIVATE,
        .ANONYMOUS = true,
        .NORESERVE = true,
    }, -1, 0);
    if (check(rc)) |errno| {
        out_errno.* = errno;
        return null;
    }
    return @ptrFromInt(rc);
}

pub fn unmap(base: [*]align(page_size_bytes) u8, size_bytes: usize) void {
    const rc = linux.munmap(base, size_bytes);
    // munmap of a range we mapped cannot fail but for a bug of ours.
    std.debug.assert(check(rc) == null);
}

pub const Protection = enum { none, read_write };

/// Changes the protection of `[base, base + size_bytes)`. Returns the errno on failure
/// (ENOMEM when the process would exceed vm.max_map_count).
pub fn protect(base: [*]u8, size_bytes: usize, protection: Protection) ?Errno {
    std.debug.assert(@intFromPtr(base) % page_size_bytes == 0);
    std.debug.assert(size_bytes % page_size_bytes == 0);
    if (size_bytes == 0) return null;
    if (injected_failure(.protect)) return enomem;
    return check(linux.mprotect(base, size_bytes, prot_of(protection)));
}

/// Drops the pages of `[base, base + size_bytes)`: the next touch reads zeros.
pub fn decommit(base: [*]u8, size_bytes: usize) ?Errno {
    std.debug.assert(@intFromPtr(base) % page_size_bytes == 0);
    std.debug.assert(size_bytes % page_size_bytes == 0);
    if (size_bytes == 0) return null;
    if (injected_failure(.decommit)) return enomem;
    return check(linux.madvise(@alignCast(base), size_bytes, linux.MADV.DONTNEED));
}

/// Maps `[base, base + size_bytes)` anew as private anonymous memory (MAP_FIXED over what the
/// caller owns there: everything it held is gone), with the pool reservation's flags, so that
/// the kernel can merge it with its neighbours.
pub fn map_anonymous_fixed(base: [*]u8, size_bytes: usize, protection: Protection) ?Errno {
    std.debug.assert(@intFromPtr(base) % page_size_bytes == 0);
    std.debug.assert(size_bytes % page_size_bytes == 0);
    if (size_bytes == 0) return null;
    if (injected_failure(.map_fixed)) return enomem;
    const rc = linux.mmap(@alignCast(base), size_bytes, prot_of(protection), .{
        .TYPE = .PRIVATE,
        .ANONYMOUS = true,
        .NORESERVE = true,
        .FIXED = true,
    }, -1, 0);
    if (check(rc)) |errno| return errno;
    std.debug.assert(rc == @intFromPtr(base));
    return null;
}

/// Maps `size_bytes` of file `fd` from offset 0 copy-on-write (MAP_PRIVATE|MAP_FIXED), read-write,
/// over `[base, base + size_bytes)`: reads see the file, the first write to a page copies it.
pub fn map_file_private_fixed(base: [*]align(page_size_bytes) u8, size_bytes: usize, fd: i32) ?Errno {
    std.debug.assert(size_bytes > 0 and size_bytes % page_size_bytes == 0);
    if (injected_failure(.map_fixed)) return enomem;
    const rc = linux.mmap(base, size_bytes, prot_of(.read_write), .{
        .TYPE = .PRIVATE,
        .NORESERVE = true,
        .FIXED = true,
    }, fd, 0);
    if (check(rc)) |errno| return errno;
    std.debug.assert(rc == @intFromPtr(base));
    return null;
}

/// Maps `size_bytes` of file `fd` from offset 0 shared and read-only, anywhere.
pub fn map_file_read_only(size_bytes: usize, fd: i32, out_errno: *Errno) ?[*]align(page_size_bytes) const u8 {
    std.debug.assert(size_bytes > 0 and size_bytes % page_size_bytes == 0);
    if (injected_failure(.map)) {
        out_errno.* = enomem;
        return null;
    }
    const rc = linux.mmap(null, size_bytes, linux.PROT.READ, .{ .TYPE = .SHARED }, fd, 0);
    if (check(rc)) |errno| {
        out_errno.* = errno;
        return null;
    }
    return @ptrFromInt(rc);
}

pub fn unmap_const(base: [*]align(page_size_bytes) const u8, size_bytes: usize) void {
    unmap(@constCast(base), size_bytes);
}

/// An anonymous file (memfd) that can be sealed; close-on-exec.
pub fn memfd_create(name: [*:0]const u8, out_errno: *Errno) ?i32 {
    if (injected_failure(.memfd_create)) {
        out_errno.* = enomem;
        return null;
    }
    const rc = linux.memfd_create(name, linux.MFD.CLOEXEC | linux.MFD.ALLOW_SEALING);
    if (check(rc)) |errno| {
        out_errno.* = errno;
        return null;
    }
    return @intCast(rc);
}

pub fn ftruncate(fd: i32, size_bytes: u64) ?Errno {
    return check(linux.ftruncate(fd, @intCast(size_bytes)));
}

/// Writes all of `bytes` at `offset` (looping over short writes).
pub fn pwrite_all(fd: i32, bytes: []const u8, offset: u64) ?Errno {
    var done: usize = 0;
    while (done < bytes.len) {
        const rc = linux.pwrite(fd, bytes[done..].ptr, bytes.len - done, @intCast(offset + done));
        if (check(rc)) |errno| {
            if (errno == @intFromEnum(linux.E.INTR)) continue;
            return errno;
        }
        if (rc == 0) return @intFromEnum(linux.E.IO);
        done += rc;
    }
    return null;
}

/// F_ADD_SEALS: no write, shrink or grow, and no further change to the seals.
pub fn seal(fd: i32) ?Errno {
    const f_add_seals = 1033;
    const seal_seal = 0x1;
    const seal_shrink = 0x2;
    const seal_grow = 0x4;
    const seal_write = 0x8;
    return check(linux.fcntl(fd, f_add_seals, seal_seal | seal_shrink | seal_grow | seal_write));
}

pub fn close(fd: i32) void {
    _ = linux.close(fd);
}

fn prot_of(protection: Protection) usize {
    return switch (protection) {
        .none => linux.PROT.NONE,
        .read_write => linux.PROT.READ | linux.PROT.WRITE,
    };
}

/// MADV_DONTFORK and MADV_UNMERGEABLE over `[base, base + size_bytes)`: a forked child does not
/// share its pages, and KSM never merges them.
pub fn advise_private(base: [*]u8, size_bytes: usize) ?Errno {
    std.debug.assert(@intFromPtr(base) % page_size_bytes == 0);
    const dontfork = 10;
    const unmergeable = 13;
    if (check(linux.madvise(@alignCast(base), size_bytes, dontfork))) |errno| return errno;
    return check(linux.madvise(@alignCast(base), size_bytes, unmergeable));
}

pub fn round_up_to_page(size_bytes: u64) ?u64 {
    return round_up(size_bytes, page_size_bytes);
}

/// Rounds up to a multiple of `alignment` (a power of two), or null on overflow.
pub fn round_up(size: u64, alignment: u64) ?u64 {
    std.debug.assert(std.math.isPowerOfTwo(alignment));
    const sum = std.math.add(u64, size, alignment - 1) catch return null;
    return sum & ~(alignment - 1);
}

test "round_up" {
    try std.testing.expectEqual(@as(?u64, 0), round_up(0, 4096));
    try std.testing.expectEqual(@as(?u64, 4096), round_up(1, 4096));
    try std.testing.expectEqual(@as(?u64, 65536), round_up(65536, 65536));
    try std.testing.expectEqual(@as(?u64, null), round_up(std.math.maxInt(u64), 4096));
}

test "protect and decommit a mapping" {
    var errno: Errno = 0;
    const size_bytes = 4 * page_size_bytes;
    const base = reserve(size_bytes, &errno) orelse return error.ReserveFailed;
    defer unmap(base, size_bytes);
    try std.testing.expectEqual(@as(?Errno, null), protect(base, page_size_bytes, .read_write));
    base[0] = 7;
    try std.testing.expectEqual(@as(?Errno, null), decommit(base, page_size_bytes));
    try std.testing.expectEqual(@as(u8, 0), base[0]);
}

/// CLOCK_MONOTONIC in nanoseconds (0 if the clock cannot be read). libc's call, not
/// std.posix's: no error union, so no error-return trace on our threads (whose Debug builds
/// crash reading one in a dlopen'd library).
pub fn monotonic_ns() u64 {
    var ts: std.c.timespec = undefined;
    if (std.c.clock_gettime(.MONOTONIC, &ts) != 0) return 0;
    return @as(u64, @intCast(ts.sec)) * std.time.ns_per_s + @as(u64, @intCast(ts.nsec));
}
