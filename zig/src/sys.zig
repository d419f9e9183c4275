//! Thin wrappers over the memory-management system calls. They return the errno instead of
//! treating EINVAL as unreachable (as std.posix does), so a failure reaches the caller as a
//! value with its cause, never as a panic in the host process.

const std = @import("std");
const linux = std.os.linux;

pub const page_size_bytes: usize = std.heap.page_size_min;

/// An errno value, kept for the error message the TypeScript side builds.
pub const Errno = u16;

/// Failure injection for tests: the next `count` calls of an operation fail with ENOMEM, as
/// they would when vm.max_map_count or memory runs out. Off (all zero) unless a test sets it.
pub const Operation = enum(u32) { map = 0, protect = 1, decommit = 2, userfaultfd = 3 };
var injected: [4]std.atomic.Value(u32) = .{ .init(0), .init(0), .init(0), .init(0) };
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
    const prot: usize = switch (protection) {
        .none => linux.PROT.NONE,
        .read_write => linux.PROT.READ | linux.PROT.WRITE,
    };
    return check(linux.mprotect(base, size_bytes, prot));
}

/// Drops the pages of `[base, base + size_bytes)`: the next touch reads zeros.
pub fn decommit(base: [*]u8, size_bytes: usize) ?Errno {
    std.debug.assert(@intFromPtr(base) % page_size_bytes == 0);
    std.debug.assert(size_bytes % page_size_bytes == 0);
    if (size_bytes == 0) return null;
    if (injected_failure(.decommit)) return enomem;
    return check(linux.madvise(@alignCast(base), size_bytes, linux.MADV.DONTNEED));
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
