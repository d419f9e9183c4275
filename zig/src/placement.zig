//! Where the runtime placed a host memory (a `WebAssembly.Memory` made by V8 or
//! JavaScriptCore), read from `/proc/self/maps`: whether the runtime reserved it in place for
//! its whole maximum, so that it never moves on grow and an image mapped `MAP_PRIVATE|MAP_FIXED`
//! over its accessible part is sound. This file owns the reading of the maps (a fixed buffer, a
//! limit on the bytes read, nothing allocated) and the decision; it keeps one invariant: it
//! answers `in_place` only when every byte of `[address, address + accessible)` is private
//! anonymous read-write memory and every byte of `[address + accessible, address + reserved)`
//! is private anonymous PROT_NONE memory, with no hole, and `reserved` reaches both the maximum
//! and the caller's minimum.
//!
//! What the runtimes do (measured with the pinned Deno 2.9.6 / V8 15.0 and Bun 1.4.5 on Linux
//! 6.18 x86_64; `bench/probes/placement_probe.ts`, `bench/probes/cow_probe.ts`):
//!
//!   V8 (Deno), every memory, the 1st as the 1000th (2,000 live memories tried):
//!
//!     address
//!     |<- accessible: rw-p ->|<------ PROT_NONE: ---p ------>|
//!     |<----------------- declared maximum ----------------->|   (4 GiB when absent)
//!
//!   one reservation of exactly the declared maximum (maximum 1: 64 KiB and nothing else; no
//!   guard region), the buffer at its start; `grow` is an mprotect in place (never moved);
//!   collection unmaps the whole reservation. Reservations sit next to each other, so an
//!   accessible part can merge into one VMA with a neighbour's: VMA boundaries mean nothing,
//!   only the permissions of each byte do.
//!
//!   JavaScriptCore (Bun), the first 8 live memories ("fast" memories), whatever the maximum:
//!
//!     address
//!     |<- accessible: rw-p ->|<---------- ---p ---------->|
//!     |<------------------ 4 GiB + 8 MiB ----------------->|
//!
//!   in place, never moved on grow, unmapped on collection (the slot is then reused). Every
//!   other memory lives inside one large read-write heap mapping (about 1 GiB, memories packed
//!   64 KiB apart): nothing after its accessible part is reserved, it MOVES on every grow with
//!   a non-zero delta, and on collection its bytes go back to the heap, which hands them to
//!   other memories. An image mapped over such a memory would outlive it inside the heap.
//!
//! A memory whose accessible part is its maximum cannot grow, so its own maps cannot tell a
//! dedicated reservation from a slice of a read-write heap. The caller closes that gap with
//! `minimum_reserved_bytes`: 0 for V8 (which reserves every memory for itself), 4 GiB for
//! JavaScriptCore (only its fast memories, 4 GiB + 8 MiB each, qualify).

const std = @import("std");
const assert = std.debug.assert;
const linux = std.os.linux;
const sys = @import("sys.zig");

/// The most of `/proc/self/maps` read for one decision: 65,530 mappings (vm.max_map_count's
/// default) of about 100 bytes each, with room for long paths. Past it, the answer is
/// `maps_too_large`, never a guess.
pub const maps_limit_bytes: usize = 32 << 20;
/// The read buffer; a line longer than this (a path near PATH_MAX) is parsed from its prefix.
pub const line_limit_bytes: usize = 8192;

pub const Kind = enum(i32) {
    /// Reserved in place for at least the maximum (and the caller's minimum).
    in_place = 1,
    /// Mapped, but not reserved in place: it may move on grow, or it lives in a heap.
    not_reserved = 0,
    /// Some byte of the accessible part is not private anonymous read-write memory (a file,
    /// shared memory, another protection), or nothing is mapped at the address.
    not_anonymous = -1,
    /// `/proc/self/maps` could not be opened or read.
    maps_unreadable = -2,
    /// `/proc/self/maps` is larger than `maps_limit_bytes`.
    maps_too_large = -3,
    /// The arguments describe no valid range (unaligned, overflowing, accessible > maximum).
    invalid = -4,
};

pub const Placement = struct {
    kind: Kind,
    /// How far from `address` the accessible part and the PROT_NONE run after it reach.
    reserved_bytes: u64 = 0,
    errno: sys.Errno = 0,
};

pub const Query = struct {
    address: u64,
    accessible_bytes: u64,
    maximum_bytes: u64,
    minimum_reserved_bytes: u64 = 0,
};

/// One line of /proc/self/maps, reduced to what the decision needs.
pub const Vma = struct {
    start: u64,
    end: u64,
    protection: Protection,
    private: bool,
    /// No file behind it: inode 0 and no path, or a named anonymous mapping (`[anon:...]`).
    anonymous: bool,
};

pub const Protection = enum { none, read_write, other };

/// Parses `start-end perms offset dev inode [path]`; null for a line that is not one.
pub fn parse_line(line: []const u8) ?Vma {
    var fields = std.mem.tokenizeScalar(u8, line, ' ');
    const range = fields.next() orelse return null;
    const perms = fields.next() orelse return null;
    _ = fields.next() orelse return null; // offset
    _ = fields.next() orelse return null; // device
    const inode = fields.next() orelse return null;
    const path = fields.rest();
    const dash = std.mem.indexOfScalar(u8, range, '-') orelse return null;
    const start = std.fmt.parseInt(u64, range[0..dash], 16) catch return null;
    const end = std.fmt.parseInt(u64, range[dash + 1 ..], 16) catch return null;
    if (end <= start or perms.len != 4) return null;
    const protection: Protection = if (std.mem.eql(u8, perms[0..3], "---"))
        .none
    else if (std.mem.eql(u8, perms[0..3], "rw-"))
        .read_write
    else
        .other;
    const no_inode = std.mem.eql(u8, inode, "0");
    const anonymous = no_inode and (path.len == 0 or std.mem.startsWith(u8, path, "[anon:"));
    return .{
        .start = start,
        .end = end,
        .protection = protection,
        .private = perms[3] == 'p',
        .anonymous = anonymous,
    };
}

/// Walks the mappings in address order (as /proc/self/maps lists them) and decides. Feed
/// every line with `next`; `done` says when the rest cannot change the answer.
pub const Decision = struct {
    query: Query,
    /// The first byte not yet seen covered, from `address` on.
    cursor: u64,
    accessible_end: u64,
    /// The end of the range whose bytes decide: the larger of maximum and minimum.
    wanted_end: u64,
    finished: ?Kind = null,

    pub fn init(query: Query) ?Decision {
        if (query.address % sys.page_size_bytes != 0) return null;
        if (query.accessible_bytes % sys.page_size_bytes != 0) return null;
        if (query.accessible_bytes > query.maximum_bytes) return null;
        const wanted = @max(query.maximum_bytes, query.minimum_reserved_bytes);
        const accessible_end = std.math.add(u64, query.address, query.accessible_bytes) catch return null;
        const wanted_end = std.math.add(u64, query.address, wanted) catch return null;
        return .{
            .query = query,
            .cursor = query.address,
            .accessible_end = accessible_end,
            .wanted_end = wanted_end,
        };
    }

    pub fn done(self: *const Decision) bool {
        return self.finished != null;
    }

    pub fn next(self: *Decision, vma: Vma) void {
        if (self.finished != null) return;
        if (vma.end <= self.cursor) return; // wholly before what is still to be covered
        if (vma.start > self.cursor) {
            // A hole at the cursor: an unmapped accessible byte, or the end of the reservation.
            self.finish_at_gap();
            return;
        }
        assert(vma.start <= self.cursor and self.cursor < vma.end);
        if (self.cursor < self.accessible_end) {
            if (!(vma.private and vma.anonymous and vma.protection == .read_write)) {
                self.finished = .not_anonymous;
                return;
            }
            // Read-write past the accessible end is not a reservation: a heap, or a neighbour.
            if (vma.end > self.accessible_end) {
                self.cursor = self.accessible_end;
                self.finish_at_gap();
                return;
            }
            self.cursor = vma.end;
            if (self.cursor == self.accessible_end and self.cursor >= self.wanted_end) {
                self.finished = .in_place;
            }
            return;
        }
        if (!(vma.private and vma.anonymous and vma.protection == .none)) {
            self.finish_at_gap();
            return;
        }
        self.cursor = vma.end;
        if (self.cursor >= self.wanted_end) self.finished = .in_place;
    }

    /// The walk met the end of the covered run (or of the maps) at `cursor`.
    pub fn finish_at_gap(self: *Decision) void {
        if (self.finished != null) return;
        if (self.cursor < self.accessible_end) {
            self.finished = .not_anonymous;
        } else {
            self.finished = if (self.cursor >= self.wanted_end) .in_place else .not_reserved;
        }
    }

    pub fn placement(self: *const Decision) Placement {
        const kind = self.finished.?;
        const reserved = if (kind == .not_anonymous) 0 else self.cursor - self.query.address;
        return .{ .kind = kind, .reserved_bytes = reserved };
    }
};

/// Decides from a whole maps text (tests, and callers that already hold it).
pub fn classify_text(text: []const u8, query: Query) Placement {
    var decision = Decision.init(query) orelse return .{ .kind = .invalid };
    var lines = std.mem.splitScalar(u8, text, '\n');
    while (lines.next()) |line| {
        if (decision.done()) break;
        const vma = parse_line(line) orelse continue;
        decision.next(vma);
    }
    decision.finish_at_gap();
    return decision.placement();
}

/// Decides from this process's `/proc/self/maps`, read in `line_limit_bytes` chunks on the
/// stack, stopping at the first line that settles the answer.
pub fn classify(query: Query) Placement {
    if (Decision.init(query) == null) return .{ .kind = .invalid };
    const flags: linux.O = .{ .ACCMODE = .RDONLY, .CLOEXEC = true };
    const rc = linux.open("/proc/self/maps", flags, 0);
    if (errno_of(rc)) |errno| return .{ .kind = .maps_unreadable, .errno = errno };
    const fd: i32 = @intCast(rc);
    defer _ = linux.close(fd);
    return classify_fd(fd, query, maps_limit_bytes);
}

/// Decides from maps text read from `fd`, reading at most about `limit_bytes` of it.
pub fn classify_fd(fd: i32, query: Query, limit_bytes: usize) Placement {
    var decision = Decision.init(query) orelse return .{ .kind = .invalid };
    var buffer: [line_limit_bytes]u8 = undefined;
    var filled: usize = 0; // bytes of buffer holding the start of the next line(s)
    var skipping = false; // inside an overlong line whose prefix was already parsed
    var read_total: usize = 0;
    while (!decision.done()) {
        if (read_total >= limit_bytes) return .{ .kind = .maps_too_large };
        var errno: sys.Errno = 0;
        const n = read_retrying(fd, buffer[filled..], &errno) orelse {
            return .{ .kind = .maps_unreadable, .errno = errno };
        };
        read_total += n;
        if (n == 0) break; // end of file
        filled += n;
        var consumed: usize = 0;
        while (std.mem.indexOfScalarPos(u8, buffer[0..filled], consumed, '\n')) |newline| {
            if (!skipping) {
                if (parse_line(buffer[consumed..newline])) |vma| decision.next(vma);
            }
            skipping = false;
            consumed = newline + 1;
            if (decision.done()) break;
        }
        std.mem.copyForwards(u8, buffer[0 .. filled - consumed], buffer[consumed..filled]);
        filled -= consumed;
        if (filled == buffer.len) {
            // A line longer than the buffer: its prefix holds every field but the path's tail.
            if (!skipping) {
                if (parse_line(buffer[0..filled])) |vma| decision.next(vma);
            }
            skipping = true;
            filled = 0;
        }
    }
    if (!decision.done() and filled > 0 and !skipping) {
        if (parse_line(buffer[0..filled])) |vma| decision.next(vma);
    }
    decision.finish_at_gap();
    return decision.placement();
}

fn errno_of(rc: usize) ?sys.Errno {
    const signed: isize = @bitCast(rc);
    if (signed > -4096 and signed < 0) return @intCast(-signed);
    return null;
}

/// Reads into `into`, retrying a read interrupted by a signal (a bounded number of times).
fn read_retrying(fd: i32, into: []u8, out_errno: *sys.Errno) ?usize {
    assert(into.len > 0);
    var attempts: u32 = 0;
    while (true) : (attempts += 1) {
        const rc = linux.read(fd, into.ptr, into.len);
        const errno = errno_of(rc) orelse return rc;
        if (errno == @intFromEnum(linux.E.INTR) and attempts < 16) continue;
        out_errno.* = errno;
        return null;
    }
}

const testing = std.testing;
const page = sys.page_size_bytes;
const wasm_page: u64 = 64 * 1024;

test "parse_line" {
    const anon = parse_line("7f0a38e00000-7f0a38e20000 rw-p 00000000 00:00 0 ").?;
    try testing.expectEqual(@as(u64, 0x7f0a38e00000), anon.start);
    try testing.expectEqual(@as(u64, 0x7f0a38e20000), anon.end);
    try testing.expectEqual(Protection.read_write, anon.protection);
    try testing.expect(anon.private and anon.anonymous);
    const file = parse_line("7f0a38e00000-7f0a38e20000 rw-p 00000000 00:01 1234 /memfd:x (deleted)").?;
    try testing.expect(!file.anonymous);
    const named = parse_line("1000-2000 ---p 00000000 00:00 0   [anon:v8]").?;
    try testing.expect(named.anonymous and named.protection == .none);
    const heap = parse_line("1000-2000 rw-p 00000000 00:00 0   [heap]").?;
    try testing.expect(!heap.anonymous);
    const shared = parse_line("1000-2000 rw-s 00000000 00:00 0 ").?;
    try testing.expect(!shared.private);
    try testing.expectEqual(Protection.other, parse_line("1000-2000 r--p 0 00:00 0").?.protection);
    try testing.expectEqual(@as(?Vma, null), parse_line("garbage"));
    try testing.expectEqual(@as(?Vma, null), parse_line("2000-1000 rw-p 0 00:00 0"));
    try testing.expectEqual(@as(?Vma, null), parse_line(""));
}

test "classify_text: V8's layout, JavaScriptCore's fast and heap memories" {
    // V8: 2 pages of 160, then the next memory's read-write page merged after the tail.
    const v8 =
        \\100000-120000 rw-p 00000000 00:00 0
        \\120000-1000000 ---p 00000000 00:00 0
        \\1000000-1010000 rw-p 00000000 00:00 0
    ;
    const two_of_160 = Query{ .address = 0x100000, .accessible_bytes = 2 * wasm_page, .maximum_bytes = 0xf00000 };
    try testing.expectEqual(Kind.in_place, classify_text(v8, two_of_160).kind);
    try testing.expectEqual(@as(u64, 0xf00000), classify_text(v8, two_of_160).reserved_bytes);
    // More than is reserved: not in place.
    var too_much = two_of_160;
    too_much.maximum_bytes = 0xf10000;
    try testing.expectEqual(Kind.not_reserved, classify_text(v8, too_much).kind);
    // Fully accessible, merged with the neighbour's read-write page: the minimum decides.
    const merged =
        \\100000-1010000 rw-p 00000000 00:00 0
    ;
    const full = Query{ .address = 0x100000, .accessible_bytes = 0xf00000, .maximum_bytes = 0xf00000 };
    try testing.expectEqual(Kind.in_place, classify_text(merged, full).kind);
    var full_jsc = full;
    full_jsc.minimum_reserved_bytes = 4 << 30;
    try testing.expectEqual(Kind.not_reserved, classify_text(merged, full_jsc).kind);
    // JavaScriptCore's heap: read-write after the accessible part.
    const heap =
        \\355d9200000-355dab80000 rw-p 00000000 00:00 0
        \\355dab90000-35619200000 rw-p 00000000 00:00 0
    ;
    const in_heap = Query{ .address = 0x355daba0000, .accessible_bytes = wasm_page, .maximum_bytes = 160 * wasm_page };
    try testing.expectEqual(Kind.not_reserved, classify_text(heap, in_heap).kind);
    // A hole at the address, or in the accessible part.
    try testing.expectEqual(Kind.not_anonymous, classify_text(heap, .{ .address = 0x355dab80000, .accessible_bytes = 2 * wasm_page, .maximum_bytes = 2 * wasm_page }).kind);
    try testing.expectEqual(Kind.not_reserved, classify_text(heap, .{ .address = 0x1000, .accessible_bytes = 0, .maximum_bytes = wasm_page }).kind);
    // JavaScriptCore's fast memory, preceded by a merged read-write mapping.
    const fast =
        \\7f2eff001000-7f2eff411000 rw-p 00000000 00:00 0
        \\7f2eff411000-7f2fffc01000 ---p 00000000 00:00 0
        \\7f2fffc01000-7f3000000000 rw-p 00000000 00:00 0
    ;
    var fast_query = Query{ .address = 0x7f2eff401000, .accessible_bytes = wasm_page, .maximum_bytes = wasm_page, .minimum_reserved_bytes = 4 << 30 };
    try testing.expectEqual(Kind.in_place, classify_text(fast, fast_query).kind);
    try testing.expectEqual(@as(u64, (4 << 30) + (8 << 20)), classify_text(fast, fast_query).reserved_bytes);
    // A file mapped over the accessible part is not the runtime's memory any more.
    const mapped =
        \\7f2eff401000-7f2eff411000 rw-p 00000000 00:01 99 /memfd:image (deleted)
        \\7f2eff411000-7f2fffc01000 ---p 00000000 00:00 0
    ;
    try testing.expectEqual(Kind.not_anonymous, classify_text(mapped, fast_query).kind);
    // Invalid queries.
    fast_query.address += 1;
    try testing.expectEqual(Kind.invalid, classify_text(fast, fast_query).kind);
    try testing.expectEqual(Kind.invalid, classify_text(fast, .{ .address = 0, .accessible_bytes = 2 * wasm_page, .maximum_bytes = wasm_page }).kind);
    try testing.expectEqual(Kind.invalid, classify_text(fast, .{ .address = std.math.maxInt(u64) - page + 1, .accessible_bytes = 0, .maximum_bytes = 2 * page }).kind);
}

/// A reservation of `total_bytes`, the first `accessible_bytes` read-write, unmapped on deinit.
const Reservation = struct {
    base: [*]align(page) u8,
    total_bytes: usize,

    fn init(total_bytes: usize, accessible_bytes: usize) !Reservation {
        var errno: sys.Errno = 0;
        const base = sys.reserve(total_bytes, &errno) orelse return error.ReserveFailed;
        if (sys.protect(base, accessible_bytes, .read_write) != null) return error.ProtectFailed;
        return .{ .base = base, .total_bytes = total_bytes };
    }

    fn address(self: Reservation) u64 {
        return @intFromPtr(self.base);
    }

    fn deinit(self: Reservation) void {
        sys.unmap(self.base, self.total_bytes);
    }
};

test "classify: reservations made here, as V8 and JavaScriptCore make theirs" {
    const maximum: u64 = 160 * wasm_page;
    // Guard pages on both sides, so that no neighbour merges into the layout under test.
    const outer = try Reservation.init(maximum + 2 * wasm_page, 0);
    defer outer.deinit();
    const address = outer.address() + wasm_page;
    try testing.expectEqual(@as(?sys.Errno, null), sys.protect(@ptrFromInt(address), 2 * wasm_page, .read_write));
    const query = Query{ .address = address, .accessible_bytes = 2 * wasm_page, .maximum_bytes = maximum };
    const placed = classify(query);
    try testing.expectEqual(Kind.in_place, placed.kind);
    // The PROT_NONE run goes on into the outer guard page (and maybe a neighbour's).
    try testing.expect(placed.reserved_bytes >= maximum);
    // Grown in place: still in place.
    try testing.expectEqual(@as(?sys.Errno, null), sys.protect(@ptrFromInt(address), 80 * wasm_page, .read_write));
    try testing.expectEqual(Kind.in_place, classify(.{ .address = address, .accessible_bytes = 80 * wasm_page, .maximum_bytes = maximum }).kind);
    // A caller that says fewer bytes are accessible than are read-write: not a reservation.
    try testing.expectEqual(Kind.not_reserved, classify(query).kind);
    // A minimum beyond the reservation.
    try testing.expectEqual(Kind.not_reserved, classify(.{ .address = address, .accessible_bytes = 80 * wasm_page, .maximum_bytes = maximum, .minimum_reserved_bytes = 4 << 30 }).kind);
}

test "classify: a read-write heap, a hole, a file" {
    // A heap: everything read-write.
    var errno: sys.Errno = 0;
    const heap_bytes = 64 * wasm_page;
    const heap = sys.map_read_write(heap_bytes, &errno) orelse return error.MapFailed;
    defer sys.unmap(heap, heap_bytes);
    const in_heap = @intFromPtr(heap) + 8 * wasm_page;
    try testing.expectEqual(Kind.not_reserved, classify(.{ .address = in_heap, .accessible_bytes = wasm_page, .maximum_bytes = 16 * wasm_page }).kind);
    try testing.expectEqual(Kind.not_reserved, classify(.{ .address = in_heap, .accessible_bytes = wasm_page, .maximum_bytes = wasm_page, .minimum_reserved_bytes = 4 << 30 }).kind);

    // A reservation whose tail was unmapped: shorter than its maximum.
    const outer = try Reservation.init(32 * wasm_page, wasm_page);
    defer outer.deinit();
    sys.unmap(@alignCast(outer.base + 16 * wasm_page), 16 * wasm_page);
    const short = classify(.{ .address = outer.address(), .accessible_bytes = wasm_page, .maximum_bytes = 32 * wasm_page });
    try testing.expectEqual(Kind.not_reserved, short.kind);
    try testing.expectEqual(@as(u64, 16 * wasm_page), short.reserved_bytes);
    try testing.expectEqual(Kind.in_place, classify(.{ .address = outer.address(), .accessible_bytes = wasm_page, .maximum_bytes = 16 * wasm_page }).kind);
    // An unmapped address.
    try testing.expectEqual(Kind.not_anonymous, classify(.{ .address = outer.address() + 20 * wasm_page, .accessible_bytes = wasm_page, .maximum_bytes = wasm_page }).kind);

    // A memfd mapped privately over the accessible part.
    const fd_rc = linux.memfd_create("placement-test", linux.MFD.CLOEXEC);
    try testing.expect(errno_of(fd_rc) == null);
    const fd: i32 = @intCast(fd_rc);
    defer _ = linux.close(fd);
    try testing.expect(errno_of(linux.ftruncate(fd, wasm_page)) == null);
    const fixed = linux.mmap(outer.base, wasm_page, linux.PROT.READ | linux.PROT.WRITE, .{ .TYPE = .PRIVATE, .FIXED = true }, fd, 0);
    try testing.expectEqual(@intFromPtr(outer.base), fixed);
    try testing.expectEqual(Kind.not_anonymous, classify(.{ .address = outer.address(), .accessible_bytes = wasm_page, .maximum_bytes = 16 * wasm_page }).kind);
}

/// A memfd holding `text`, read from its start.
fn text_fd(text: []const u8) !i32 {
    const rc = linux.memfd_create("placement-text", linux.MFD.CLOEXEC);
    if (errno_of(rc) != null) return error.MemfdFailed;
    const fd: i32 = @intCast(rc);
    var written: usize = 0;
    while (written < text.len) {
        const n = linux.pwrite(fd, text[written..].ptr, text.len - written, @intCast(written));
        if (errno_of(n) != null) return error.WriteFailed;
        written += n;
    }
    return fd;
}

test "classify_fd: lines across reads, an overlong path, no final newline, the size limit" {
    var text: std.ArrayList(u8) = .empty;
    defer text.deinit(testing.allocator);
    // Unrelated lines enough to cross several reads, one with a path longer than the buffer.
    for (0..400) |i| {
        try text.print(testing.allocator, "{x}-{x} r--p 00000000 00:00 0 \n", .{ 0x1000 + i * 0x2000, 0x2000 + i * 0x2000 });
    }
    try text.print(testing.allocator, "{x}-{x} r--p 00000000 08:01 77 /", .{ 0x10000000, 0x10001000 });
    try text.appendNTimes(testing.allocator, 'x', 3 * line_limit_bytes);
    try text.appendSlice(testing.allocator, "\n");
    // The memory: 1 page read-write, 3 PROT_NONE; no newline at the end.
    try text.print(testing.allocator, "{x}-{x} rw-p 00000000 00:00 0 \n{x}-{x} ---p 00000000 00:00 0", .{ 0x20000000, 0x20010000, 0x20010000, 0x20040000 });
    const query = Query{ .address = 0x20000000, .accessible_bytes = wasm_page, .maximum_bytes = 4 * wasm_page };

    const fd = try text_fd(text.items);
    defer _ = linux.close(fd);
    const placed = classify_fd(fd, query, maps_limit_bytes);
    try testing.expectEqual(Kind.in_place, placed.kind);
    try testing.expectEqual(@as(u64, 4 * wasm_page), placed.reserved_bytes);

    // The overlong line's prefix is parsed: a query about it sees a read-only file mapping.
    try testing.expectEqual(@as(i64, 0), @as(i64, @bitCast(linux.lseek(fd, 0, linux.SEEK.SET))));
    try testing.expectEqual(Kind.not_anonymous, classify_fd(fd, .{ .address = 0x10000000, .accessible_bytes = page, .maximum_bytes = page }, maps_limit_bytes).kind);

    // Past the limit, no guess.
    try testing.expectEqual(@as(i64, 0), @as(i64, @bitCast(linux.lseek(fd, 0, linux.SEEK.SET))));
    try testing.expectEqual(Kind.maps_too_large, classify_fd(fd, query, 4 * line_limit_bytes).kind);
}
