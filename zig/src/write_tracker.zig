//! Page-write tracking for arbitrary address ranges (host memories the runtime made, which
//! wasmpool neither reserved nor can move): a userfaultfd in write-protect mode with
//! `UFFD_FEATURE_WP_ASYNC`, so that a write to a protected page is resolved by the kernel itself
//! (it only clears the page's protection: no message, no handler thread), and
//! `ioctl(PAGEMAP_SCAN)` on `/proc/self/pagemap`, which lists the pages whose protection was
//! cleared (`PAGE_IS_WRITTEN`) and protects them again in the same call
//! (`PM_SCAN_WP_MATCHING`). A reset then costs what the tenant wrote, not the memory's size.
//!
//! The invariant this file keeps: between `register` and `unregister`, every page of a
//! registered range that holds anything but what it held when last protected is reported as
//! written by the next scan of it. `register` protects every populated page; a page never
//! touched has no page-table entry, and the first write to it creates one without protection,
//! which the scan reports. A read of such a page maps the zero page (anonymous memory) or the
//! file's page (an image mapped privately), unprotected too: the scan reports it, though it
//! holds what it held; mode `copies` tells those file pages apart (a written page of a private
//! file mapping is a copy, no file page), so that they can stay shared. Pages never touched are
//! not marked (no `UFFD_FEATURE_WP_UNPOPULATED`): a scan skips their empty page tables, so it
//! costs what was touched, not the range's size (measured: a 5 MiB memory with one page
//! touched, 5.5 µs with markers, 3.1 µs without). A page dropped with `madvise(DONTNEED)`
//! on an anonymous mapping reads zero again and is not reported: the runtimes do not drop pages
//! of a live memory; on a file mapping (an image) it reads the file again.
//! Scans pass `PM_SCAN_CHECK_WPASYNC`: a range that is not (or no longer) registered with async
//! write protection fails with EPERM instead of reporting nothing. Whenever a scan fails, the
//! caller treats the range as wholly written (restores all of it): never fewer pages.
//!
//! Layout of one registered range (host pages of 4 KiB; a run is a maximal span of written ones):
//!
//!     address                                                      address + size
//!     |  wp  |  wp  |written|written|  wp  |  wp  |written|  wp  |
//!                   |<---- run 0 ---->|            |<-run 1->|
//!
//! Measured with the pinned Deno (V8) and Bun (JavaScriptCore) on Linux 6.18 (tests/
//! write_tracker_test.ts, bench/write_tracker_bench.ts): registration works on every kind of
//! host memory, V8's reservations, JavaScriptCore's fast memories and the memories inside its
//! read-write heap (a private anonymous mapping: registering splits that mapping around the
//! range), and on a memfd image mapped privately over a memory. A JavaScriptCore heap memory
//! moves when it grows: its old range stays inside the heap, registered, until `unregister`
//! (until then its reuse by the heap costs write-protect faults, and another tracker cannot
//! register it: EBUSY). Scanning 5 MiB costs 2-4 µs with nothing written, 5-10 µs with 80 pages
//! written; the first write to a protected page costs a fault resolved in the kernel,
//! about 0.7-1 µs here (a VM).
//!
//! The uAPI structs and constants are defined here (the system headers predate them), from the
//! kernel's include/uapi/linux/userfaultfd.h and include/uapi/linux/fs.h, sizes asserted below.
//! Needs Linux 6.7+ (PAGEMAP_SCAN, UFFD_FEATURE_WP_ASYNC); `open` says why it cannot be had.

const std = @import("std");
const assert = std.debug.assert;
const linux = std.os.linux;
const sys = @import("sys.zig");

const page_bytes = sys.page_size_bytes;

// include/uapi/linux/userfaultfd.h
const uffd_api: u64 = 0xaa;
const uffdio: u8 = 0xaa;
const nr_register: u8 = 0x00;
const nr_unregister: u8 = 0x01;
const nr_api: u8 = 0x3f;
const uffd_user_mode_only: usize = 1;
const feature_wp_async: u64 = 1 << 15;
const register_mode_wp: u64 = 1 << 1;

const UffdioApi = extern struct { api: u64, features: u64, ioctls: u64 };
const UffdioRange = extern struct { start: u64, len: u64 };
const UffdioRegister = extern struct { range: UffdioRange, mode: u64, ioctls: u64 };

const ioctl_uffdio_api = linux.IOCTL.IOWR(uffdio, nr_api, UffdioApi);
const ioctl_uffdio_register = linux.IOCTL.IOWR(uffdio, nr_register, UffdioRegister);
const ioctl_uffdio_unregister = linux.IOCTL.IOR(uffdio, nr_unregister, UffdioRange);

// include/uapi/linux/fs.h
/// One run of pages as PAGEMAP_SCAN reports it (struct page_region): `[start, end)` addresses.
pub const Run = extern struct { start: u64, end: u64, categories: u64 };

const PmScanArg = extern struct {
    size: u64,
    flags: u64,
    start: u64,
    end: u64,
    walk_end: u64,
    vec: u64,
    vec_len: u64,
    max_pages: u64,
    category_inverted: u64,
    category_mask: u64,
    category_anyof_mask: u64,
    return_mask: u64,
};

const pm_scan_wp_matching: u64 = 1 << 0;
const pm_scan_check_wpasync: u64 = 1 << 1;
const page_is_written: u64 = 1 << 1;
const page_is_file: u64 = 1 << 2;
const page_is_pfnzero: u64 = 1 << 5;
const ioctl_pagemap_scan = linux.IOCTL.IOWR('f', 16, PmScanArg);

comptime {
    assert(@sizeOf(UffdioApi) == 24);
    assert(@sizeOf(UffdioRange) == 16);
    assert(@sizeOf(UffdioRegister) == 32);
    assert(@sizeOf(Run) == 24);
    assert(@sizeOf(PmScanArg) == 96);
    assert(ioctl_uffdio_api == 0xc018aa3f);
    assert(ioctl_uffdio_register == 0xc020aa00);
    assert(ioctl_uffdio_unregister == 0x8010aa01);
    assert(ioctl_pagemap_scan == 0xc0606610);
}

/// Why tracking cannot be had.
pub const Reason = enum(i32) {
    available = 0,
    /// No userfaultfd(2), no `UFFD_USER_MODE_ONLY`, or no PAGEMAP_SCAN: a kernel before 6.7.
    kernel_too_old = 1,
    /// userfaultfd(2) refused (EPERM): vm.unprivileged_userfaultfd, a seccomp filter, an LSM.
    permission = 2,
    /// userfaultfd speaks its API but offers no async write protection (an architecture or a
    /// configuration without uffd-wp).
    feature_missing = 3,
    /// Anything else (descriptors exhausted, /proc not mounted): see the errno.
    other = 4,
};

pub const Unavailable = struct { reason: Reason, errno: sys.Errno };

/// How many times a call interrupted by a signal (EINTR) or by a racing change of the address
/// space (EAGAIN) is retried before its errno is returned.
const retries_max: u32 = 64;

fn errno_of(rc: usize) ?sys.Errno {
    const signed: isize = @bitCast(rc);
    if (signed > -4096 and signed < 0) return @intCast(-signed);
    return null;
}

fn retryable(errno: sys.Errno) bool {
    return errno == @intFromEnum(linux.E.INTR) or errno == @intFromEnum(linux.E.AGAIN);
}

/// An ioctl retried on EINTR and EAGAIN, at most `retries_max` times.
fn ioctl_retrying(fd: i32, request: u32, arg: usize) usize {
    var attempt: u32 = 0;
    while (true) : (attempt += 1) {
        const rc = linux.ioctl(fd, request, arg);
        const errno = errno_of(rc) orelse return rc;
        if (!retryable(errno) or attempt == retries_max) return rc;
    }
}

/// What one scan found.
pub const Scan = struct {
    /// Runs written into the caller's array.
    runs_count: usize,
    /// Where the walk stopped: the range's end when it is complete, else the address to scan
    /// from next (the runs array filled up).
    walk_end: u64,
};

pub const Mode = enum {
    /// Report the written pages and protect them again: the next scan reports only newer writes.
    protect,
    /// Report the written pages and leave them writable.
    peek,
    /// Like `peek`, but leave out pages of a privately mapped file that are still the file's
    /// own (read, not written: their copy-on-write never happened).
    copies,
};

pub const Tracker = struct {
    uffd: i32,
    pagemap: i32,

    /// Opens the userfaultfd (async write protection) and /proc/self/pagemap, and checks that
    /// PAGEMAP_SCAN answers. Null with the reason when the kernel or the process cannot.
    pub fn open(out: *Unavailable) ?Tracker {
        out.* = .{ .reason = .available, .errno = 0 };
        if (sys.injected_failure(.userfaultfd)) {
            out.* = .{ .reason = .permission, .errno = @intFromEnum(linux.E.PERM) };
            return null;
        }
        const flags: usize = @as(u32, @bitCast(linux.O{ .CLOEXEC = true, .NONBLOCK = true }));
        // User-mode faults only: no privilege needed (5.11+). Async write-protect faults are
        // resolved in the kernel before the flag is ever looked at, so kernel-mode writes (a
        // read(2) into a tracked buffer) are tracked as well.
        const rc = linux.syscall1(.userfaultfd, flags | uffd_user_mode_only);
        if (errno_of(rc)) |errno| {
            out.* = .{ .reason = switch (errno) {
                @intFromEnum(linux.E.NOSYS), @intFromEnum(linux.E.INVAL) => .kernel_too_old,
                @intFromEnum(linux.E.PERM), @intFromEnum(linux.E.ACCES) => .permission,
                else => .other,
            }, .errno = errno };
            return null;
        }
        const uffd: i32 = @intCast(rc);
        var api = UffdioApi{ .api = uffd_api, .features = feature_wp_async, .ioctls = 0 };
        if (errno_of(linux.ioctl(uffd, ioctl_uffdio_api, @intFromPtr(&api)))) |errno| {
            _ = linux.close(uffd);
            // EINVAL: a feature asked for is not offered.
            out.* = .{ .reason = if (errno == @intFromEnum(linux.E.INVAL)) .feature_missing else .other, .errno = errno };
            return null;
        }
        const needed_ioctls: u64 = (1 << nr_register) | (1 << nr_unregister) | (1 << nr_api);
        if (api.features & feature_wp_async == 0 or api.ioctls & needed_ioctls != needed_ioctls) {
            _ = linux.close(uffd);
            out.* = .{ .reason = .feature_missing, .errno = @intFromEnum(linux.E.OPNOTSUPP) };
            return null;
        }
        const open_flags: linux.O = .{ .ACCMODE = .RDONLY, .CLOEXEC = true };
        const pagemap_rc = linux.open("/proc/self/pagemap", open_flags, 0);
        if (errno_of(pagemap_rc)) |errno| {
            _ = linux.close(uffd);
            out.* = .{ .reason = .other, .errno = errno };
            return null;
        }
        const tracker = Tracker{ .uffd = uffd, .pagemap = @intCast(pagemap_rc) };
        // An empty scan: ENOTTY (or EINVAL) from a kernel without PAGEMAP_SCAN.
        var arg = scan_arg(0, 0, &.{}, .peek);
        if (errno_of(linux.ioctl(tracker.pagemap, ioctl_pagemap_scan, @intFromPtr(&arg)))) |errno| {
            tracker.close();
            out.* = .{ .reason = switch (errno) {
                @intFromEnum(linux.E.NOTTY), @intFromEnum(linux.E.INVAL) => .kernel_too_old,
                else => .other,
            }, .errno = errno };
            return null;
        }
        return tracker;
    }

    /// Closes both descriptors. The kernel then drops every registration of this tracker and
    /// the protection of its pages: nothing is left behind in the address space.
    pub fn close(self: Tracker) void {
        _ = linux.close(self.pagemap);
        _ = linux.close(self.uffd);
    }

    /// Registers `[base, base + size_bytes)` for async write protection and protects every page
    /// of it, populated or not. The range may hold holes; it needs one mapping at least, and
    /// none of its mappings may be registered with another userfaultfd (EBUSY). After an error
    /// the range may be partly registered: `unregister` it.
    pub fn register(self: Tracker, base: u64, size_bytes: u64) ?sys.Errno {
        assert(base % page_bytes == 0);
        assert(size_bytes % page_bytes == 0);
        assert(size_bytes > 0);
        var reg = UffdioRegister{
            .range = .{ .start = base, .len = size_bytes },
            .mode = register_mode_wp,
            .ioctls = 0,
        };
        if (errno_of(ioctl_retrying(self.uffd, ioctl_uffdio_register, @intFromPtr(&reg)))) |errno| return errno;
        return self.protect(base, size_bytes);
    }

    /// Unregisters `[base, base + size_bytes)`: its pages lose their protection and the range
    /// is no longer tracked. For a memory that moved or is dropped. Mappings in the range that
    /// were never registered, and holes, are left as they are.
    pub fn unregister(self: Tracker, base: u64, size_bytes: u64) ?sys.Errno {
        assert(base % page_bytes == 0);
        assert(size_bytes % page_bytes == 0);
        var range = UffdioRange{ .start = base, .len = size_bytes };
        return errno_of(ioctl_retrying(self.uffd, ioctl_uffdio_unregister, @intFromPtr(&range)));
    }

    /// Protects every page of a registered range again, written or not, without reporting.
    pub fn protect(self: Tracker, base: u64, size_bytes: u64) ?sys.Errno {
        var arg = scan_arg(base, base + size_bytes, &.{}, .protect);
        return errno_of(ioctl_retrying(self.pagemap, ioctl_pagemap_scan, @intFromPtr(&arg)));
    }

    /// Writes into `runs` the runs of pages of `[start, end)` written since they were last
    /// protected, in address order, and (mode `protect`) protects them again. Stops early when
    /// `runs` fills: `walk_end` then says where to go on. EPERM: some mapping of the range is not
    /// registered with async write protection (never, or no longer: it was unmapped and mapped
    /// again); the range must be treated as wholly written. A protecting scan is never retried:
    /// one interrupted (EINTR, only for a fatal signal) may have protected pages it did not
    /// report, so on any error the range must be treated as wholly written.
    pub fn scan(self: Tracker, start: u64, end: u64, runs: []Run, mode: Mode, out: *Scan) ?sys.Errno {
        assert(start % page_bytes == 0);
        assert(end % page_bytes == 0);
        assert(start <= end);
        assert(runs.len > 0);
        var arg = scan_arg(start, end, runs, mode);
        const rc = switch (mode) {
            .peek, .copies => ioctl_retrying(self.pagemap, ioctl_pagemap_scan, @intFromPtr(&arg)),
            .protect => linux.ioctl(self.pagemap, ioctl_pagemap_scan, @intFromPtr(&arg)),
        };
        if (errno_of(rc)) |errno| return errno;
        assert(rc <= runs.len);
        assert(arg.walk_end >= start and arg.walk_end <= end);
        out.* = .{ .runs_count = rc, .walk_end = arg.walk_end };
        if (rc > 0) {
            assert(runs[0].start >= start);
            assert(runs[rc - 1].end <= arg.walk_end);
        }
        return null;
    }

    /// Copies back, from `source` (as long as the range), every page of
    /// `[base, base + size_bytes)` written since the last protection, then protects the range
    /// again. Returns the pages restored. The copy runs before the protection, so that it takes
    /// no write-protect fault of its own.
    pub fn restore(self: Tracker, base: u64, size_bytes: u64, source: [*]const u8, out_pages: *u64) ?sys.Errno {
        assert(base % page_bytes == 0);
        assert(size_bytes % page_bytes == 0);
        const end = base + size_bytes;
        var runs: [restore_batch_runs]Run = undefined;
        var cursor = base;
        var pages: u64 = 0;
        // Each pass moves the cursor past at least one run or to the end.
        var passes: u64 = 0;
        while (cursor < end) : (passes += 1) {
            assert(passes <= size_bytes / page_bytes);
            var found: Scan = undefined;
            if (self.scan(cursor, end, &runs, .peek, &found)) |errno| return errno;
            for (runs[0..found.runs_count]) |run| {
                const offset = run.start - base;
                const len = run.end - run.start;
                const destination: [*]u8 = @ptrFromInt(run.start);
                @memcpy(destination[0..len], source[offset..][0..len]);
                pages += len / page_bytes;
            }
            assert(found.walk_end > cursor or found.walk_end == end);
            cursor = found.walk_end;
        }
        if (self.protect(base, size_bytes)) |errno| return errno;
        out_pages.* = pages;
        return null;
    }
};

/// Runs gathered per PAGEMAP_SCAN call by `restore` (on the stack: 64 × 24 bytes).
const restore_batch_runs = 64;

fn scan_arg(start: u64, end: u64, runs: []Run, mode: Mode) PmScanArg {
    return .{
        .size = @sizeOf(PmScanArg),
        .flags = pm_scan_check_wpasync | @as(u64, if (mode == .protect) pm_scan_wp_matching else 0),
        .start = start,
        .end = end,
        .walk_end = 0,
        .vec = if (runs.len == 0) 0 else @intFromPtr(runs.ptr),
        .vec_len = runs.len,
        .max_pages = 0,
        // Exactly PAGE_IS_WRITTEN in both masks: the kernel's fast path for this question.
        // `copies`: written, and not a file page: a page of a file mapped privately that was
        // only read is the file's own page, unprotected but holding what it held (slower: the
        // kernel looks at every page's categories).
        .category_inverted = if (mode == .copies) page_is_file else 0,
        .category_mask = if (mode == .copies) page_is_written | page_is_file else page_is_written,
        .category_anyof_mask = 0,
        .return_mask = page_is_written,
    };
}

const testing = std.testing;

fn open_for_test() !Tracker {
    var why: Unavailable = undefined;
    return Tracker.open(&why) orelse {
        std.debug.print("write tracking unavailable: {s} (errno {d})\n", .{ @tagName(why.reason), why.errno });
        if (why.reason == .other) return error.OpenFailed;
        return error.SkipZigTest;
    };
}

/// A private anonymous read-write mapping of `pages` host pages, never touched.
const Mapping = struct {
    base: [*]align(page_bytes) u8,
    pages: usize,

    fn init(pages: usize) !Mapping {
        var errno: sys.Errno = 0;
        const base = sys.map_read_write(pages * page_bytes, &errno) orelse return error.MapFailed;
        return .{ .base = base, .pages = pages };
    }

    fn deinit(self: Mapping) void {
        sys.unmap(self.base, self.pages * page_bytes);
    }

    fn address(self: Mapping) u64 {
        return @intFromPtr(self.base);
    }

    fn end(self: Mapping) u64 {
        return self.address() + self.pages * page_bytes;
    }

    fn write(self: Mapping, page: usize, value: u8) void {
        const bytes: [*]volatile u8 = @ptrCast(self.base);
        bytes[page * page_bytes + 17] = value;
    }

    fn read(self: Mapping, page: usize) u8 {
        const bytes: [*]volatile u8 = @ptrCast(self.base);
        return bytes[page * page_bytes + 17];
    }
};

/// The runs of one complete protecting scan, as `[first page, end page)` pairs.
fn scan_pages(tracker: Tracker, mapping: Mapping, out: [][2]usize) ![]const [2]usize {
    var runs: [32]Run = undefined;
    var found: Scan = undefined;
    if (tracker.scan(mapping.address(), mapping.end(), &runs, .protect, &found)) |errno| {
        std.debug.print("scan failed: errno {d}\n", .{errno});
        return error.ScanFailed;
    }
    try testing.expectEqual(mapping.end(), found.walk_end);
    for (runs[0..found.runs_count], 0..) |run, i| {
        try testing.expectEqual(page_is_written, run.categories);
        out[i] = .{ (run.start - mapping.address()) / page_bytes, (run.end - mapping.address()) / page_bytes };
    }
    return out[0..found.runs_count];
}

fn expect_runs(expected: []const [2]usize, actual: []const [2]usize) !void {
    try testing.expectEqualSlices([2]usize, expected, actual);
}

test "write tracker: the pages written since the last scan, exactly, then none, then newer ones" {
    const tracker = try open_for_test();
    defer tracker.close();
    const mapping = try Mapping.init(64);
    defer mapping.deinit();
    // Half the pages populated before registering, half never touched.
    for (0..32) |page| mapping.write(page, 1);
    try testing.expectEqual(@as(?sys.Errno, null), tracker.register(mapping.address(), mapping.pages * page_bytes));
    var out: [32][2]usize = undefined;
    try expect_runs(&.{}, try scan_pages(tracker, mapping, &out));

    for ([_]usize{ 1, 2, 3, 10, 40, 63 }) |page| mapping.write(page, 2);
    _ = mapping.read(5); // a read of a populated page
    _ = mapping.read(50); // a read of a page never touched
    try expect_runs(&.{ .{ 1, 4 }, .{ 10, 11 }, .{ 40, 41 }, .{ 63, 64 } }, try scan_pages(tracker, mapping, &out));
    try expect_runs(&.{}, try scan_pages(tracker, mapping, &out));
    mapping.write(2, 3);
    mapping.write(20, 3);
    mapping.write(50, 3);
    try expect_runs(&.{ .{ 2, 3 }, .{ 20, 21 }, .{ 50, 51 } }, try scan_pages(tracker, mapping, &out));
    // The bytes are what was written: tracking never changes them.
    try testing.expectEqual(@as(u8, 3), mapping.read(2));
    try testing.expectEqual(@as(u8, 2), mapping.read(3));
    try testing.expectEqual(@as(u8, 0), mapping.read(51));
    try testing.expectEqual(@as(?sys.Errno, null), tracker.unregister(mapping.address(), mapping.pages * page_bytes));
}

test "write tracker: unpopulated pages, and pages dropped with MADV_DONTNEED" {
    const tracker = try open_for_test();
    defer tracker.close();
    const mapping = try Mapping.init(16);
    defer mapping.deinit();
    try testing.expectEqual(@as(?sys.Errno, null), tracker.register(mapping.address(), mapping.pages * page_bytes));
    var out: [32][2]usize = undefined;
    mapping.write(7, 1);
    mapping.write(8, 1);
    try expect_runs(&.{.{ 7, 9 }}, try scan_pages(tracker, mapping, &out));
    // An anonymous page dropped loses its bytes and, with them, its protection (the kernel
    // drops everything on an anonymous zap): reported as written, written or not, since its
    // bytes changed to zeros.
    try testing.expectEqual(@as(?sys.Errno, null), sys.decommit(mapping.base + 7 * page_bytes, page_bytes));
    mapping.write(9, 2);
    try testing.expectEqual(@as(?sys.Errno, null), sys.decommit(mapping.base + 9 * page_bytes, page_bytes));
    try expect_runs(&.{ .{ 7, 8 }, .{ 9, 10 } }, try scan_pages(tracker, mapping, &out));
    try testing.expectEqual(@as(u8, 0), mapping.read(7));
    try expect_runs(&.{}, try scan_pages(tracker, mapping, &out));
}

test "write tracker: a range partly unmapped, registered and scanned" {
    const tracker = try open_for_test();
    defer tracker.close();
    const mapping = try Mapping.init(32);
    defer mapping.deinit();
    try testing.expectEqual(@as(?sys.Errno, null), tracker.register(mapping.address(), mapping.pages * page_bytes));
    var out: [32][2]usize = undefined;
    // Pages 8..16 unmapped after registering: the hole is skipped.
    sys.unmap(@alignCast(mapping.base + 8 * page_bytes), 8 * page_bytes);
    mapping.write(2, 1);
    mapping.write(20, 1);
    try expect_runs(&.{ .{ 2, 3 }, .{ 20, 21 } }, try scan_pages(tracker, mapping, &out));
    try testing.expectEqual(@as(?sys.Errno, null), tracker.unregister(mapping.address(), mapping.pages * page_bytes));
    // Registering a range with the hole in it: the mappings around it are registered.
    try testing.expectEqual(@as(?sys.Errno, null), tracker.register(mapping.address(), mapping.pages * page_bytes));
    mapping.write(3, 1);
    mapping.write(31, 1);
    try expect_runs(&.{ .{ 3, 4 }, .{ 31, 32 } }, try scan_pages(tracker, mapping, &out));
    // A range that is wholly a hole cannot be registered.
    try testing.expect(tracker.register(mapping.address() + 8 * page_bytes, 8 * page_bytes) != null);
}

test "write tracker: a full runs array stops the walk, which goes on from walk_end" {
    const tracker = try open_for_test();
    defer tracker.close();
    const mapping = try Mapping.init(16);
    defer mapping.deinit();
    try testing.expectEqual(@as(?sys.Errno, null), tracker.register(mapping.address(), mapping.pages * page_bytes));
    var page: usize = 0;
    while (page < 16) : (page += 2) mapping.write(page, 1); // 8 runs of one page
    var runs: [3]Run = undefined;
    var cursor = mapping.address();
    var seen: usize = 0;
    var calls: usize = 0;
    while (cursor < mapping.end()) : (calls += 1) {
        var found: Scan = undefined;
        try testing.expectEqual(@as(?sys.Errno, null), tracker.scan(cursor, mapping.end(), &runs, .protect, &found));
        for (runs[0..found.runs_count], 0..) |run, i| {
            try testing.expectEqual(mapping.address() + (seen + i) * 2 * page_bytes, run.start);
            try testing.expectEqual(run.start + page_bytes, run.end);
        }
        seen += found.runs_count;
        if (found.runs_count == runs.len) try testing.expect(found.walk_end < mapping.end());
        cursor = found.walk_end;
    }
    try testing.expectEqual(@as(usize, 8), seen);
    try testing.expectEqual(@as(usize, 3), calls);
    var out: [32][2]usize = undefined;
    try expect_runs(&.{}, try scan_pages(tracker, mapping, &out));
}

test "write tracker: peek leaves pages written, restore copies them back and protects again" {
    const tracker = try open_for_test();
    defer tracker.close();
    const mapping = try Mapping.init(16);
    defer mapping.deinit();
    var source: [16 * page_bytes]u8 = undefined;
    for (0..16) |page| @memset(source[page * page_bytes ..][0..page_bytes], @intCast(100 + page));
    @memcpy(mapping.base[0 .. 16 * page_bytes], &source);
    try testing.expectEqual(@as(?sys.Errno, null), tracker.register(mapping.address(), mapping.pages * page_bytes));
    mapping.write(4, 1);
    mapping.write(5, 1);
    mapping.write(12, 1);
    var runs: [8]Run = undefined;
    var found: Scan = undefined;
    try testing.expectEqual(@as(?sys.Errno, null), tracker.scan(mapping.address(), mapping.end(), &runs, .peek, &found));
    try testing.expectEqual(@as(usize, 2), found.runs_count);
    var pages: u64 = 0;
    try testing.expectEqual(@as(?sys.Errno, null), tracker.restore(mapping.address(), mapping.pages * page_bytes, &source, &pages));
    try testing.expectEqual(@as(u64, 3), pages);
    try testing.expectEqualSlices(u8, &source, mapping.base[0 .. 16 * page_bytes]);
    var out: [32][2]usize = undefined;
    try expect_runs(&.{}, try scan_pages(tracker, mapping, &out));
    mapping.write(0, 1);
    try expect_runs(&.{.{ 0, 1 }}, try scan_pages(tracker, mapping, &out));
}

test "write tracker: a range never registered, or unregistered, fails with EPERM" {
    const tracker = try open_for_test();
    defer tracker.close();
    const mapping = try Mapping.init(4);
    defer mapping.deinit();
    var runs: [4]Run = undefined;
    var found: Scan = undefined;
    const eperm: sys.Errno = @intFromEnum(linux.E.PERM);
    try testing.expectEqual(@as(?sys.Errno, eperm), tracker.scan(mapping.address(), mapping.end(), &runs, .protect, &found));
    try testing.expectEqual(@as(?sys.Errno, null), tracker.register(mapping.address(), mapping.pages * page_bytes));
    try testing.expectEqual(@as(?sys.Errno, null), tracker.scan(mapping.address(), mapping.end(), &runs, .protect, &found));
    try testing.expectEqual(@as(?sys.Errno, null), tracker.unregister(mapping.address(), mapping.pages * page_bytes));
    try testing.expectEqual(@as(?sys.Errno, eperm), tracker.scan(mapping.address(), mapping.end(), &runs, .protect, &found));
    // A second tracker cannot take a range the first holds.
    try testing.expectEqual(@as(?sys.Errno, null), tracker.register(mapping.address(), mapping.pages * page_bytes));
    const other = try open_for_test();
    defer other.close();
    try testing.expectEqual(@as(?sys.Errno, @intFromEnum(linux.E.BUSY)), other.register(mapping.address(), mapping.pages * page_bytes));
}

test "write tracker: a memfd mapped privately (an image) is tracked too" {
    const tracker = try open_for_test();
    defer tracker.close();
    const fd_rc = linux.memfd_create("write-tracker-test", linux.MFD.CLOEXEC);
    try testing.expect(errno_of(fd_rc) == null);
    const fd: i32 = @intCast(fd_rc);
    defer _ = linux.close(fd);
    try testing.expect(errno_of(linux.ftruncate(fd, 8 * page_bytes)) == null);
    const rc = linux.mmap(null, 8 * page_bytes, linux.PROT.READ | linux.PROT.WRITE, .{ .TYPE = .PRIVATE }, fd, 0);
    try testing.expect(errno_of(rc) == null);
    const mapping = Mapping{ .base = @ptrFromInt(rc), .pages = 8 };
    defer mapping.deinit();
    mapping.write(0, 1); // a private copy before registering
    try testing.expectEqual(@as(?sys.Errno, null), tracker.register(mapping.address(), mapping.pages * page_bytes));
    _ = mapping.read(3);
    mapping.write(0, 2);
    mapping.write(6, 2);
    var out: [32][2]usize = undefined;
    try expect_runs(&.{ .{ 0, 1 }, .{ 6, 7 } }, try scan_pages(tracker, mapping, &out));
    try testing.expectEqual(@as(?sys.Errno, null), sys.decommit(mapping.base, 8 * page_bytes));
    try testing.expectEqual(@as(u8, 0), mapping.read(6)); // the file's byte again
    try expect_runs(&.{}, try scan_pages(tracker, mapping, &out));
}

test "write tracker: open reports an injected refusal" {
    sys.inject_failures(.userfaultfd, 1);
    var why: Unavailable = undefined;
    try testing.expectEqual(@as(?Tracker, null), Tracker.open(&why));
    try testing.expectEqual(Reason.permission, why.reason);
}
