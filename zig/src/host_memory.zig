//! Host memories: `WebAssembly.Memory` objects the runtime made (only it can make a memory its
//! engine runs on), adopted so that a pool can hand them from tenant to tenant. This file owns
//! what a host memory holds and how it is brought back to it:
//!
//! - It holds a module's image, or zeros. Where the runtime reserved the memory in place for its
//!   whole maximum (V8: every memory; JavaScriptCore: its first few, see placement.zig), the
//!   image is mapped copy-on-write over the accessible part, shared by every memory holding it.
//!   Elsewhere (JavaScriptCore's heap memories, which move on grow), it is copied in.
//! - After a tenant, exactly the pages it wrote are restored, from the image or to zeros, found
//!   with userfaultfd's asynchronous write protection and PAGEMAP_SCAN (write_tracker.zig): the
//!   cost follows what the tenant wrote, not the memory's size, and pages it only read stay
//!   resident. Where the kernel cannot track writes, the whole accessible part is restored
//!   instead (madvise over a mapped image, a copy over a copied one): correct, and counted.
//!
//! Invariant, between tenants: the accessible bytes `[0, size_bytes)` equal the image of
//! `holds` (zeros past it, and everywhere when it is null); and when `tracked`, every page of
//! that range is write-protected, so that the next tenant's writes are found.
//!
//!     base                    image.size_bytes                 size_bytes
//!     | image (mapped CoW, or  | zeros                          | (the runtime's: beyond the
//!     |  copied)               |                                |  accessible part)

const std = @import("std");
const assert = std.debug.assert;
const sys = @import("sys.zig");
const image_mod = @import("image.zig");
const Image = image_mod.Image;
const write_tracker = @import("write_tracker.zig");
const Tracker = write_tracker.Tracker;
const resetter = @import("resetter.zig");
const resident = @import("resident.zig");

const host_page_bytes: u64 = sys.page_size_bytes;

/// Runs of written pages restored per scan of a reset.
const protect_runs_max = 16;

/// Runs of written pages closer than this are restored and protected as one group: one scan
/// for the image's copies and one protection for the group, rather than one of each per run.
/// A system call costs about 0.7 µs here; the pages of a gap cost a few ns each to walk again
/// (they are protected and unwritten: the scan skips them, the protection leaves them as they
/// are), so a gap of 64 pages costs less than the call it saves.
const group_gap_bytes: u64 = 64 * host_page_bytes;

/// Memories from this size on ask the process's page-fault count before a reset (see
/// `HostMemory.fault_mark`): one getrusage (~0.5 µs) against a scan of 0.3-0.5 µs a MiB.
const fault_gate_min_bytes: u64 = 4 << 20;

/// The page faults every thread of the process took so far (minor and major; threads that
/// exited included): it only grows. The kernel counts a fault in the faulting thread when the
/// fault succeeds, before the access that took it is retried, and that includes faults taken
/// by the kernel on a thread's behalf (a read(2) into the memory, get_user_pages); null when it
/// cannot be read.
fn process_faults() ?u64 {
    var usage: std.os.linux.rusage = undefined;
    if (std.os.linux.getrusage(std.os.linux.rusage.SELF, &usage) != 0) return null;
    return @as(u64, @intCast(usage.minflt)) + @as(u64, @intCast(usage.majflt));
}

/// One tracker for the whole process, shared by every engine and Worker: one userfaultfd may
/// register a range again (two would refuse each other with EBUSY), and the runtime reuses the
/// address space of memories it freed.
var tracker_mutex: std.Thread.Mutex = .{};
var tracker_state: enum { unopened, open, unavailable } = .unopened;
var tracker: Tracker = undefined;
var tracker_unavailable: write_tracker.Unavailable = .{ .reason = .other, .errno = 0 };

fn shared_tracker() ?Tracker {
    tracker_mutex.lock();
    defer tracker_mutex.unlock();
    switch (tracker_state) {
        .open => return tracker,
        .unavailable => return null,
        .unopened => {},
    }
    if (Tracker.open(&tracker_unavailable)) |opened| {
        tracker = opened;
        tracker_state = .open;
        return tracker;
    }
    tracker_state = .unavailable;
    return null;
}

/// Why writes are not tracked (the reason code of write_tracker.zig); 0 when they are, or
/// when no host memory asked yet.
pub fn tracking_unavailable_reason() i32 {
    tracker_mutex.lock();
    defer tracker_mutex.unlock();
    return if (tracker_state == .open) 0 else @intFromEnum(tracker_unavailable.reason);
}

/// What the host memories of an engine did, for its stats.
pub const Counters = struct {
    /// Pages restored after tenants, from images or to zeros.
    pages_restored: std.atomic.Value(u64) = .init(0),
    /// Resets that restored the whole accessible part (no write tracking, or a failed scan).
    full_resets: std.atomic.Value(u64) = .init(0),
    /// Times a memory was given another module's image (or zeros).
    image_switches: std.atomic.Value(u64) = .init(0),
    /// Resets done by the resetter's thread, off the caller's path (resetter.zig).
    resets_background: std.atomic.Value(u64) = .init(0),
    /// Resets done inline when the tenant ended (the thread slept, and no burst woke it).
    resets_inline: std.atomic.Value(u64) = .init(0),
    /// Queued resets taken back and done inline, because the memory was wanted first.
    resets_claimed: std.atomic.Value(u64) = .init(0),
    /// Times the resetter's thread was woken (a futex syscall on the caller's path).
    reset_wakes: std.atomic.Value(u64) = .init(0),

    pub fn add(counter: *std.atomic.Value(u64), n: u64) void {
        _ = counter.fetchAdd(n, .monotonic);
    }
};

pub const Failure = enum(u32) { none = 0, map = 1, register = 2, scan = 3, protect = 4 };

pub const HostMemory = struct {
    base: [*]align(sys.page_size_bytes) u8,
    /// The accessible bytes the record covers: the memory's initial size when adopted, more
    /// once `extend` took in what a tenant grew it by (in place: the base never moves).
    size_bytes: u64,
    /// Whether the runtime reserved it in place (an image may be mapped over it).
    in_place: bool,
    /// The image its bytes equal between tenants (null: zeros).
    holds: ?*const Image = null,
    /// Whether `holds` is mapped (copy-on-write) at `base`, rather than copied there.
    mapped: bool = false,
    /// Whether its writes are tracked (registered with the shared tracker).
    tracked: bool = false,
    /// The failure behind the last operation that returned false, and its errno.
    failure: Failure = .none,
    errno: sys.Errno = 0,
    /// Where its reset stands (a resetter.State), and its links in the resetter's queue.
    reset_state: std.atomic.Value(u32) = .init(0),
    reset_next: ?*HostMemory = null,
    reset_prev: ?*HostMemory = null,
    /// The counters of the engine that queued it, and its ticket (resetter.settled).
    reset_counters: ?*Counters = null,
    reset_ticket: u32 = 0,
    /// Where `holds` is mapped: one bit per host page of it, set once a reset restored the
    /// page by copy, which made it a private page (a copy), no longer the image's own: a later
    /// reset restores it again without the finer scan that tells copies from pages only read.
    /// Cleared when the pages go back to the image (another image, or a whole reset). A bit
    /// that is wrong costs sharing, never contents: a copy of the image over the image's own
    /// page holds the same bytes. Empty for a record adopted without an allocator (then every
    /// group takes the finer scan).
    known_copies: std.DynamicBitSetUnmanaged = .{},
    /// Memories of `fault_gate_min_bytes` or more: the process's page-fault count
    /// (`process_faults`), read by the last reset of this memory before its scan; null when
    /// unknown. Once that reset protected every page again, a write to the memory takes a
    /// fault: every page is write-protected, read-only (the image's page, the zero page) or
    /// missing, and clearing a page's protection, or populating it, is a fault the kernel
    /// counts. So while the count has not moved, nothing was written, in this memory or
    /// anywhere: the next reset has nothing to restore and skips its scan (which costs what
    /// the memory's size costs, written or not). Any fault anywhere in the process, however
    /// unrelated, means a scan. Like the scan, it relies on nothing writing the memory while
    /// it is reset or idle. Cleared whenever the pages change otherwise (another image,
    /// growth, a whole reset, a drop).
    fault_mark: ?u64 = null,

    /// Adopts a fresh memory of `size_bytes` (all zeros) at `base`.
    pub fn adopt(self: *HostMemory, base: [*]align(sys.page_size_bytes) u8, size_bytes: u64, in_place: bool) void {
        assert(size_bytes % host_page_bytes == 0);
        self.* = .{ .base = base, .size_bytes = size_bytes, .in_place = in_place };
        self.track();
    }

    /// Registers the whole accessible part with the tracker (which protects every page), or
    /// leaves the memory untracked when that cannot be had.
    fn track(self: *HostMemory) void {
        self.tracked = false;
        if (self.size_bytes == 0) return;
        const t = shared_tracker() orelse return;
        if (t.register(@intFromPtr(self.base), self.size_bytes)) |_| {
            _ = t.unregister(@intFromPtr(self.base), self.size_bytes);
            return;
        }
        self.tracked = true;
    }

    fn untrack(self: *HostMemory) void {
        self.fault_mark = null;
        if (!self.tracked) return;
        self.tracked = false;
        const t = shared_tracker() orelse return;
        _ = t.unregister(@intFromPtr(self.base), self.size_bytes);
    }

    /// Makes the memory hold `image` (null: zeros) for a new tenant. Nothing to do when it
    /// holds it already, which a pool that hands memories back to the same module makes the
    /// usual case. Returns false (failure set) when the memory cannot be trusted any more.
    pub fn prepare(self: *HostMemory, image: ?*const Image, counters: *Counters) bool {
        if (self.holds == image) return true;
        if (image) |i| assert(i.size_bytes <= self.size_bytes);
        Counters.add(&counters.image_switches, 1);
        self.known_copies.unsetAll();
        self.fault_mark = null;
        // The pages change wholesale: untracked meanwhile, so the copies take no fault.
        self.untrack();
        const old_extent: u64 = if (self.holds) |h| h.size_bytes else 0;
        const new_extent: u64 = if (image) |i| i.size_bytes else 0;
        if (self.in_place and image != null) {
            if (image.?.map(self.base)) |errno| return self.fail(.map, errno);
            if (old_extent > new_extent) {
                if (self.clear(new_extent, old_extent - new_extent)) |errno| return self.fail(.map, errno);
            }
            self.mapped = true;
        } else {
            // A mapped image is replaced by plain zeros first, then copied over.
            // (A mapped one means an in-place memory going to zeros: the fresh mapping is them.)
            if (self.mapped) {
                assert(image == null);
                if (sys.map_anonymous_fixed(self.base, old_extent, .read_write)) |errno| return self.fail(.map, errno);
                self.mapped = false;
            } else image_mod.restore_range(image, self.base, 0, @max(old_extent, new_extent));
        }
        self.holds = image;
        self.track();
        return true;
    }

    /// The last tenant grew the memory in place to `grown_bytes` (the runtime made the pages
    /// past `size_bytes` accessible, at the same base): the record takes them in, so that
    /// the memory can serve the next tenant at its grown size. The tenant wrote the new pages
    /// before they were tracked, so they are all zeroed here, once (an in-place memory's are
    /// the runtime's anonymous pages: dropped, they read zero; elsewhere they are cleared by
    /// writing), then registered, so that later resets cost what later tenants write. Call
    /// before `reset`, which restores the rest. Returns false (failure set) when the memory
    /// cannot be trusted any more.
    pub fn extend(self: *HostMemory, grown_bytes: u64, counters: *Counters) bool {
        self.fault_mark = null;
        assert(grown_bytes % host_page_bytes == 0);
        assert(grown_bytes > self.size_bytes);
        const added_bytes = grown_bytes - self.size_bytes;
        // Past any image: an image never reaches beyond the memory's initial size.
        if (self.holds) |h| assert(h.size_bytes <= self.size_bytes);
        const added = self.base + self.size_bytes;
        if (self.in_place) {
            if (sys.decommit(added, added_bytes)) |errno| return self.fail(.map, errno);
        } else {
            @memset(added[0..added_bytes], 0);
        }
        Counters.add(&counters.pages_restored, added_bytes / host_page_bytes);
        const old_bytes = self.size_bytes;
        self.size_bytes = grown_bytes;
        if (!self.tracked and old_bytes == 0) {
            // Adopted at 0 bytes, so never registered: all of it was just zeroed.
            self.track();
        } else if (self.tracked) {
            const t = shared_tracker().?;
            if (t.register(@intFromPtr(added), added_bytes)) |_| {
                // Tracked in part only: untracked wholly, and every reset restores it all.
                _ = t.unregister(@intFromPtr(added), added_bytes);
                _ = t.unregister(@intFromPtr(self.base), grown_bytes - added_bytes);
                self.tracked = false;
            }
        }
        return true;
    }

    /// Zeros `[offset, offset + len)`: mapped image pages are replaced by anonymous memory.
    fn clear(self: *HostMemory, offset: u64, len: u64) ?sys.Errno {
        if (self.mapped) return sys.map_anonymous_fixed(self.base + offset, len, .read_write);
        @memset(self.base[offset..][0..len], 0);
        return null;
    }

    /// Restores what the last tenant changed: the pages it wrote, from the image or to zeros,
    /// protected again. Returns false (failure set) when the memory cannot be trusted any more.
    pub fn reset(self: *HostMemory, counters: *Counters) bool {
        if (!self.tracked) return self.reset_whole(counters);
        // Read before the scan: every write the scan may miss comes after the protection it
        // ends with, so after this count (faults meanwhile only make the next reset scan).
        const faults: ?u64 = if (self.size_bytes >= fault_gate_min_bytes) process_faults() else null;
        if (faults != null and faults == self.fault_mark) return true; // nothing was written
        self.fault_mark = null;
        const t = shared_tracker().?;
        var runs: [protect_runs_max]write_tracker.Run = undefined;
        var from = @intFromPtr(self.base);
        const end = from + self.size_bytes;
        var batches: u32 = 0;
        while (from < end) : (batches += 1) {
            assert(batches < self.size_bytes / host_page_bytes);
            var scan: write_tracker.Scan = undefined;
            if (t.scan(from, end, &runs, .peek, &scan)) |_| return self.reset_whole(counters);
            // Group by group (runs closer than `group_gap_bytes`): restored, then protected after
            // the copies (a peek scan leaves them writable), so that the copies take no
            // write-protect fault; never the whole range, so that a reset of an untouched
            // memory costs one walk, not two.
            const found = runs[0..scan.runs_count];
            var first: usize = 0;
            while (first < found.len) {
                var last = first;
                while (last + 1 < found.len and found[last + 1].start - found[last].end <= group_gap_bytes) last += 1;
                const group = found[first .. last + 1];
                for (group) |run| assert(run.start >= from and run.end <= end and run.start < run.end);
                if (!self.restore_group(t, group, counters)) return self.reset_whole(counters);
                const start = group[0].start;
                if (t.protect(start, group[group.len - 1].end - start)) |errno| return self.fail(.protect, errno);
                first = last + 1;
            }
            assert(scan.walk_end > from and scan.walk_end <= end);
            from = scan.walk_end;
        }
        self.fault_mark = faults;
        return true;
    }

    /// Restores a group of runs of pages the scan found unprotected (in address order; the
    /// pages between them are protected, so unwritten). Where the image is mapped, a page only
    /// read is still the image's own (shared) page: only the copies, pages written, are
    /// restored, so that read pages stay shared; one finer scan finds them in the whole group,
    /// whose gaps it skips (protected pages are not written). Past the image, each run is
    /// restored, never a gap: a write there would take a write-protect fault. False when the
    /// finer scan fails.
    fn restore_group(self: *HostMemory, t: Tracker, group: []const write_tracker.Run, counters: *Counters) bool {
        assert(group.len > 0);
        const base = @intFromPtr(self.base);
        const image_end = if (self.mapped) base + self.holds.?.size_bytes else base;
        const start = group[0].start;
        const end = group[group.len - 1].end;
        if (start < image_end) {
            const until = @min(end, image_end);
            if (self.known_copies_cover(group, until)) {
                // Every page written there is a copy already: restored run by run (written
                // pages only, writable: the copies take no write-protect fault).
                for (group) |run| {
                    if (run.start < until) self.restore_range(run.start, @min(run.end, until), counters);
                }
            } else {
                var runs: [protect_runs_max]write_tracker.Run = undefined;
                var from = start;
                var batches: u32 = 0;
                while (from < until) : (batches += 1) {
                    assert(batches < (until - start) / host_page_bytes);
                    var scan: write_tracker.Scan = undefined;
                    if (t.scan(from, until, &runs, .copies, &scan)) |_| return false;
                    for (runs[0..scan.runs_count]) |copy| {
                        self.restore_range(copy.start, copy.end, counters);
                        self.mark_copies(copy.start, copy.end);
                    }
                    from = scan.walk_end;
                }
            }
        }
        if (end > image_end) {
            for (group) |run| {
                if (run.end > image_end) self.restore_range(@max(run.start, image_end), run.end, counters);
            }
        }
        return true;
    }

    /// Whether every page of `group`'s runs below `until` is known to be a copy.
    fn known_copies_cover(self: *const HostMemory, group: []const write_tracker.Run, until: u64) bool {
        const base = @intFromPtr(self.base);
        for (group) |run| {
            if (run.start >= until) break;
            const first = (run.start - base) / host_page_bytes;
            const last = (@min(run.end, until) - base) / host_page_bytes;
            if (last > self.known_copies.bit_length) return false;
            for (first..last) |page| if (!self.known_copies.isSet(page)) return false;
        }
        return true;
    }

    /// Records `[start, end)` (pages of the mapped image) as copies.
    fn mark_copies(self: *HostMemory, start: u64, end: u64) void {
        const base = @intFromPtr(self.base);
        const first = (start - base) / host_page_bytes;
        const last = @min((end - base) / host_page_bytes, self.known_copies.bit_length);
        if (first < last) self.known_copies.setRangeValue(.{ .start = first, .end = last }, true);
    }

    fn restore_range(self: *HostMemory, start: u64, end: u64, counters: *Counters) void {
        const offset = start - @intFromPtr(self.base);
        image_mod.restore_range(self.holds, self.base, offset, end - start);
        Counters.add(&counters.pages_restored, (end - start) / host_page_bytes);
    }

    /// Restores the whole accessible part, whatever was written before it was tracked: for a
    /// memory adopted with a tenant's bytes in it (the runtime moved it when it grew, and it is
    /// adopted again at its new address). Returns false (failure set) when it cannot be trusted.
    pub fn restore_all(self: *HostMemory, counters: *Counters) bool {
        return self.reset_whole(counters);
    }

    /// Restores the whole accessible part: without tracking, or when a scan failed (then the
    /// range counts as wholly written).
    fn reset_whole(self: *HostMemory, counters: *Counters) bool {
        self.fault_mark = null;
        Counters.add(&counters.full_resets, 1);
        Counters.add(&counters.pages_restored, self.size_bytes / host_page_bytes);
        if (self.mapped) {
            // The image's private copies go, the file pages come back; the rest reads zero.
            self.known_copies.unsetAll();
            if (sys.decommit(self.base, self.size_bytes)) |errno| return self.fail(.map, errno);
        } else {
            image_mod.restore_range(self.holds, self.base, 0, self.size_bytes);
        }
        if (self.tracked) {
            const t = shared_tracker().?;
            if (t.protect(@intFromPtr(self.base), self.size_bytes)) |_| self.untrack();
        }
        return true;
    }

    /// The memory is given up (it grew, moved, or its pool dropped it): nothing of it is
    /// tracked any more. Its mapping stays until the runtime frees the memory.
    pub fn drop(self: *HostMemory) void {
        self.fault_mark = null;
        self.untrack();
        self.holds = null;
        self.known_copies.unsetAll();
    }

    fn fail(self: *HostMemory, failure: Failure, errno: sys.Errno) bool {
        self.failure = failure;
        self.errno = errno;
        return false;
    }
};

/// The host memories one engine adopted: records allocated one at a time (a pool makes its
/// memories lazily), at most `max_live` at once, all freed with the engine.
pub const HostMemories = struct {
    /// Far more than any pool holds (instances × memories × isolates), far less than the
    /// address space could: a bound on what a bug could leak.
    pub const max_live: u32 = 1 << 20;

    mutex: std.Thread.Mutex = .{},
    live: std.AutoHashMapUnmanaged(*HostMemory, void) = .empty,
    counters: Counters = .{},

    /// A record for the memory at `base`, tracked if the kernel allows; null when `max_live`
    /// are adopted or the heap is out of memory.
    pub fn adopt(self: *HostMemories, allocator: std.mem.Allocator, base: [*]align(sys.page_size_bytes) u8, size_bytes: u64, in_place: bool) ?*HostMemory {
        const memory = allocator.create(HostMemory) catch return null;
        {
            self.mutex.lock();
            defer self.mutex.unlock();
            if (self.live.count() >= max_live) {
                allocator.destroy(memory);
                return null;
            }
            self.live.put(allocator, memory, {}) catch {
                allocator.destroy(memory);
                return null;
            };
        }
        memory.adopt(base, size_bytes, in_place);
        // Only an in-place memory has an image mapped (and an image fits its initial size);
        // without the bits, resets take the finer scan, as before.
        if (in_place) {
            memory.known_copies = std.DynamicBitSetUnmanaged.initEmpty(allocator, @intCast(size_bytes / host_page_bytes)) catch .{};
        }
        return memory;
    }

    /// Gives up `memory` and frees its record; false for a record this engine does not hold.
    pub fn drop(self: *HostMemories, allocator: std.mem.Allocator, memory: *HostMemory) bool {
        {
            self.mutex.lock();
            defer self.mutex.unlock();
            if (!self.live.remove(memory)) return false;
        }
        resetter.forget(memory);
        memory.drop();
        memory.known_copies.deinit(allocator);
        allocator.destroy(memory);
        return true;
    }

    /// `images` (a module's) are about to be freed: every memory holding one is made to hold
    /// zeros instead (after any queued reset of it, which reads the image), so that no memory
    /// points at a freed image, nor mistakes a later image at the same address for its own. A
    /// memory that cannot be emptied is marked failed: its pool drops it.
    pub fn forget_images(self: *HostMemories, images: []const ?*Image) void {
        self.mutex.lock();
        defer self.mutex.unlock();
        var it = self.live.keyIterator();
        while (it.next()) |entry| {
            const memory = entry.*;
            const held = memory.holds orelse continue;
            if (std.mem.indexOfScalar(?*Image, images, @constCast(held)) == null) continue;
            if (resetter.claim(memory, true) == .failed) continue;
            if (!memory.prepare(null, &self.counters)) {
                memory.reset_state.store(@intFromEnum(resetter.State.failed), .release);
            }
        }
    }

    pub fn live_count(self: *HostMemories) u32 {
        self.mutex.lock();
        defer self.mutex.unlock();
        return self.live.count();
    }

    pub fn deinit(self: *HostMemories, allocator: std.mem.Allocator) void {
        var it = self.live.keyIterator();
        while (it.next()) |memory| {
            resetter.forget(memory.*);
            memory.*.drop();
            memory.*.known_copies.deinit(allocator);
            allocator.destroy(memory.*);
        }
        self.live.deinit(allocator);
    }
};

const testing = std.testing;

fn fill_image(allocator: std.mem.Allocator, contents: []const u8) !*Image {
    var failure: image_mod.Failure = undefined;
    return (try Image.create(allocator, contents, &failure)).?;
}

test "a host memory holds its image, is reset to it after a tenant, and switches images" {
    const size_bytes = 16 * host_page_bytes * 16; // 16 wasm pages
    var errno: sys.Errno = 0;
    const base = sys.map_read_write(size_bytes, &errno).?;
    defer sys.unmap(base, size_bytes);
    var contents = [_]u8{0} ** (3 * 65536);
    @memset(contents[0..100], 7);
    @memset(contents[2 * 65536 ..][0..10], 9);
    const image_a = try fill_image(testing.allocator, &contents);
    defer image_a.destroy(testing.allocator);
    const image_b = try fill_image(testing.allocator, &[_]u8{5} ** 4096);
    defer image_b.destroy(testing.allocator);

    for ([_]bool{ true, false }) |in_place| {
        var counters: Counters = .{};
        var memory: HostMemory = undefined;
        @memset(base[0..size_bytes], 0);
        memory.adopt(base, size_bytes, in_place);
        defer memory.drop();
        try testing.expect(memory.prepare(image_a, &counters));
        try testing.expectEqual(@as(u8, 7), base[99]);
        try testing.expectEqual(@as(u8, 9), base[2 * 65536]);
        // A tenant writes in the image, past it, and reads elsewhere.
        base[5] = 1;
        base[2 * 65536 + 3] = 1;
        base[10 * 65536] = 1;
        try testing.expect(memory.reset(&counters));
        try testing.expectEqual(@as(u8, 7), base[5]);
        try testing.expectEqual(@as(u8, 9), base[2 * 65536 + 3]);
        try testing.expectEqual(@as(u8, 0), base[10 * 65536]);
        if (memory.tracked) try testing.expect(counters.pages_restored.load(.monotonic) <= 3);
        // To a smaller image: nothing of the larger one remains.
        try testing.expect(memory.prepare(image_b, &counters));
        try testing.expectEqual(@as(u8, 5), base[4095]);
        try testing.expectEqual(@as(u8, 0), base[4096]);
        try testing.expectEqual(@as(u8, 0), base[2 * 65536]);
        base[70000] = 3;
        try testing.expect(memory.reset(&counters));
        try testing.expectEqual(@as(u8, 0), base[70000]);
        // To zeros.
        try testing.expect(memory.prepare(null, &counters));
        try testing.expect(std.mem.allEqual(u8, base[0..size_bytes], 0));
    }
}

/// For the tests: a read-write mapping of `host_pages` pages and an image of its first half,
/// each host page of it filled with its own odd byte (zeros after it).
const ImagedMapping = struct {
    base: [*]align(sys.page_size_bytes) u8,
    size_bytes: u64,
    contents: []u8,
    image: *Image,

    fn init(host_pages: u64) !ImagedMapping {
        const size_bytes = host_pages * host_page_bytes;
        var errno: sys.Errno = 0;
        const base = sys.map_read_write(size_bytes, &errno) orelse return error.MapFailed;
        errdefer sys.unmap(base, size_bytes);
        const contents = try testing.allocator.alloc(u8, size_bytes / 2);
        errdefer testing.allocator.free(contents);
        for (contents, 0..) |*b, i| b.* = @truncate((i / host_page_bytes) | 1);
        const image = try fill_image(testing.allocator, contents);
        return .{ .base = base, .size_bytes = size_bytes, .contents = contents, .image = image };
    }

    fn deinit(self: ImagedMapping) void {
        self.image.destroy(testing.allocator);
        testing.allocator.free(self.contents);
        sys.unmap(self.base, self.size_bytes);
    }
};

test "runs written close together are restored as one group; the pages between stay as they were, tracked" {
    const mapping = try ImagedMapping.init(1024); // 4 MiB: an image of 2 MiB, zeros after it
    defer mapping.deinit();
    const base = mapping.base;
    const size_bytes = mapping.size_bytes;
    const contents = mapping.contents;
    const image = mapping.image;
    const gap_pages = group_gap_bytes / host_page_bytes;
    const image_pages = contents.len / host_page_bytes;
    // Tenant A writes pages in groups (close together), alone (far from the others), and past
    // the image; it reads the pages between some of them.
    const written_a = [_]u64{ 5, 12, 12 + gap_pages, 300, image_pages + 3, image_pages + 10 };
    const read_a = [_]u64{ 10, 12 + gap_pages / 2, image_pages + 6 };
    // Tenant B writes pages A only read, and one A neither read nor wrote.
    const written_b = [_]u64{ 10, image_pages + 6, 400 };
    for ([_]bool{ true, false }) |in_place| {
        @memset(base[0..size_bytes], 0);
        var counters: Counters = .{};
        var memory: HostMemory = undefined;
        memory.adopt(base, size_bytes, in_place);
        defer memory.drop();
        try testing.expect(memory.prepare(image, &counters));
        for ([_][]const u64{ &written_a, &written_b }, 0..) |written, tenant| {
            var sum: u64 = 0;
            if (tenant == 0) for (read_a) |page| {
                sum +%= base[page * host_page_bytes + 1];
            };
            for (written) |page| @memset(base[page * host_page_bytes ..][0..100], 0xee);
            const before = counters.pages_restored.load(.monotonic);
            try testing.expect(memory.reset(&counters));
            try testing.expect(std.mem.eql(u8, contents, base[0..contents.len]));
            try testing.expect(std.mem.allEqual(u8, base[contents.len..size_bytes], 0));
            if (memory.tracked) {
                // Exactly the pages written: the pages read, and those between, are not copied.
                try testing.expectEqual(@as(u64, written.len), counters.pages_restored.load(.monotonic) - before);
            }
            std.mem.doNotOptimizeAway(sum);
        }
    }
}

test "pages a reset copied are known as copies: later resets restore them alike, pages only read stay the image's own" {
    const mapping = try ImagedMapping.init(512); // 2 MiB: an image of 1 MiB, zeros after it
    defer mapping.deinit();
    const base = mapping.base;
    const size_bytes = mapping.size_bytes;
    const contents = mapping.contents;
    const image = mapping.image;
    const other = try fill_image(testing.allocator, &[_]u8{9} ** 4096);
    defer other.destroy(testing.allocator);
    const pagemap = resident.open_pagemap();
    defer if (pagemap) |fd| resident.close_pagemap(fd);
    var memories: HostMemories = .{};
    defer memories.deinit(testing.allocator);
    const memory = memories.adopt(testing.allocator, base, size_bytes, true).?;
    try testing.expect(memory.prepare(image, &memories.counters));
    // Tenants write pages 3, 4 and 40, then 3 and 41 (4 only read), then 3, 4, 40, 41 again.
    const tenants = [_][]const u64{ &.{ 3, 4, 40 }, &.{ 3, 41 }, &.{ 3, 4, 40, 41 } };
    for (0..2) |round| {
        for (tenants, 0..) |written, k| {
            var sum: u64 = 0;
            for ([_]u64{ 4, 100, 200 }) |page| sum +%= base[page * host_page_bytes + 7];
            for (written) |page| @memset(base[page * host_page_bytes ..][0..64], 0xee);
            const before = memory.reset_ticket; // untouched by a reset done inline
            try testing.expect(memory.reset(&memories.counters));
            try testing.expectEqual(before, memory.reset_ticket);
            try testing.expect(std.mem.eql(u8, contents, base[0..contents.len]));
            try testing.expect(std.mem.allEqual(u8, base[contents.len..size_bytes], 0));
            std.mem.doNotOptimizeAway(sum);
            if (!memory.tracked or pagemap == null) continue;
            if (round == 0 and k == 0) {
                try testing.expect(memory.known_copies.isSet(3) and memory.known_copies.isSet(40));
                try testing.expect(!memory.known_copies.isSet(100));
            }
            // Pages only read are still the image's own.
            var entries: [1]u64 = undefined;
            for ([_]u64{ 100, 200 }) |page| {
                resident.read_entries(pagemap, base + page * host_page_bytes, &entries);
                try testing.expectEqual(resident.Page.file, resident.classify(entries[0]));
            }
        }
        // Another image, and back: nothing is known any more, and the memory holds the image.
        try testing.expect(memory.prepare(other, &memories.counters));
        try testing.expectEqual(@as(usize, 0), memory.known_copies.count());
        try testing.expectEqual(@as(u8, 9), base[7]);
        try testing.expect(std.mem.allEqual(u8, base[host_page_bytes..size_bytes], 0));
        try testing.expect(memory.prepare(image, &memories.counters));
        try testing.expect(std.mem.eql(u8, contents, base[0..contents.len]));
    }
}

test "a large memory's reset skips its scan while the process took no page fault; every kind of write is still restored" {
    const host_pages = fault_gate_min_bytes / host_page_bytes;
    const mapping = try ImagedMapping.init(host_pages);
    defer mapping.deinit();
    const base = mapping.base;
    const size_bytes = mapping.size_bytes;
    const contents = mapping.contents;
    const image = mapping.image;
    const image_pages = contents.len / host_page_bytes;
    for ([_]bool{ true, false }) |in_place| {
        @memset(base[0..size_bytes], 0);
        var counters: Counters = .{};
        var memory: HostMemory = undefined;
        memory.adopt(base, size_bytes, in_place);
        defer memory.drop();
        try testing.expect(memory.prepare(image, &counters));
        try testing.expect(memory.reset(&counters));
        if (memory.tracked) try testing.expect(memory.fault_mark != null);
        var sum: u64 = 0;
        // Pages read only (an image page, a zero page), then written by a later tenant; a page
        // written twice (a copy by then, protected); a page never touched before.
        for ([_]u64{ 7, image_pages + 7 }) |page| sum +%= base[page * host_page_bytes];
        try testing.expect(memory.reset(&counters));
        const tenants = [_][]const u64{ &.{}, &.{ 7, 20 }, &.{}, &.{}, &.{ 20, image_pages + 7 }, &.{}, &.{host_pages - 1}, &.{} };
        for (tenants) |written| {
            for (written) |page| base[page * host_page_bytes + 5] = 0xee;
            try testing.expect(memory.reset(&counters));
            try testing.expect(std.mem.eql(u8, contents, base[0..contents.len]));
            try testing.expect(std.mem.allEqual(u8, base[contents.len..size_bytes], 0));
            if (memory.tracked) try testing.expect(memory.fault_mark != null);
        }
        std.mem.doNotOptimizeAway(sum);
    }
}

test "a memory grown in place is taken in: zeroed past the image up to its grown size, then tracked" {
    const wasm_page_bytes: u64 = 65536;
    const reserved_bytes = 8 * wasm_page_bytes;
    const initial_bytes = 2 * wasm_page_bytes;
    const grown_bytes = 5 * wasm_page_bytes;
    var errno: sys.Errno = 0;
    const base = sys.reserve(reserved_bytes, &errno).?;
    defer sys.unmap(base, reserved_bytes);
    var contents = [_]u8{0} ** (wasm_page_bytes + 100);
    @memset(contents[0..100], 7);
    @memset(contents[wasm_page_bytes..], 9);
    const image = try fill_image(testing.allocator, &contents);
    defer image.destroy(testing.allocator);

    for ([_]bool{ true, false }) |in_place| {
        var counters: Counters = .{};
        var memory: HostMemory = undefined;
        try testing.expectEqual(@as(?sys.Errno, null), sys.protect(base, initial_bytes, .read_write));
        memory.adopt(base, initial_bytes, in_place);
        defer {
            memory.drop();
            _ = sys.map_anonymous_fixed(base, reserved_bytes, .none);
        }
        try testing.expect(memory.prepare(image, &counters));
        // A tenant writes everywhere, grows the memory as a runtime does (the reservation's next
        // pages made accessible), and writes everywhere in the new pages too.
        @memset(base[0..initial_bytes], 0xa5);
        try testing.expectEqual(@as(?sys.Errno, null), sys.protect(base + initial_bytes, grown_bytes - initial_bytes, .read_write));
        @memset(base[initial_bytes..grown_bytes], 0x5a);
        try testing.expect(memory.extend(grown_bytes, &counters));
        try testing.expectEqual(grown_bytes, memory.size_bytes);
        try testing.expect(memory.reset(&counters));
        try testing.expect(std.mem.allEqual(u8, base[0..100], 7));
        try testing.expect(std.mem.allEqual(u8, base[100..wasm_page_bytes], 0));
        try testing.expect(std.mem.allEqual(u8, base[wasm_page_bytes..][0..100], 9));
        try testing.expect(std.mem.allEqual(u8, base[wasm_page_bytes + 100 .. grown_bytes], 0));
        // The next tenant's writes in the grown part are found by the tracker: a reset restores
        // only those.
        const restored_before = counters.pages_restored.load(.monotonic);
        base[4 * wasm_page_bytes + 17] = 3;
        base[10] = 3;
        try testing.expect(memory.reset(&counters));
        try testing.expectEqual(@as(u8, 0), base[4 * wasm_page_bytes + 17]);
        try testing.expectEqual(@as(u8, 7), base[10]);
        if (memory.tracked) {
            try testing.expectEqual(restored_before + 2, counters.pages_restored.load(.monotonic));
        }
        try testing.expect(std.mem.allEqual(u8, base[wasm_page_bytes + 100 .. grown_bytes], 0));
    }
}

test "a memory adopted at 0 bytes is tracked once it grew in place" {
    const reserved_bytes = 4 * 65536;
    var errno: sys.Errno = 0;
    const base = sys.reserve(reserved_bytes, &errno).?;
    defer sys.unmap(base, reserved_bytes);
    var counters: Counters = .{};
    var memory: HostMemory = undefined;
    memory.adopt(base, 0, true);
    defer memory.drop();
    try testing.expect(!memory.tracked);
    try testing.expectEqual(@as(?sys.Errno, null), sys.protect(base, 2 * 65536, .read_write));
    @memset(base[0 .. 2 * 65536], 0x77);
    try testing.expect(memory.extend(2 * 65536, &counters));
    try testing.expect(memory.reset(&counters));
    try testing.expect(std.mem.allEqual(u8, base[0 .. 2 * 65536], 0));
    if (shared_tracker() != null) try testing.expect(memory.tracked);
    base[65536 + 1] = 5;
    try testing.expect(memory.reset(&counters));
    try testing.expectEqual(@as(u8, 0), base[65536 + 1]);
}

test "a memory adopted with a tenant's bytes in it is restored wholly to its image and zeros" {
    const size_bytes = 4 * 65536;
    var errno: sys.Errno = 0;
    const base = sys.map_read_write(size_bytes, &errno).?;
    defer sys.unmap(base, size_bytes);
    const image = try fill_image(testing.allocator, &[_]u8{3} ** 8192);
    defer image.destroy(testing.allocator);
    for ([_]bool{ true, false }) |in_place| {
        @memset(base[0..size_bytes], 0xee); // what a moved memory brings along
        var counters: Counters = .{};
        var memory: HostMemory = undefined;
        memory.adopt(base, size_bytes, in_place);
        defer memory.drop();
        try testing.expect(memory.prepare(image, &counters));
        try testing.expect(memory.restore_all(&counters));
        try testing.expect(std.mem.allEqual(u8, base[0..8192], 3));
        try testing.expect(std.mem.allEqual(u8, base[8192..size_bytes], 0));
        base[3 * 65536] = 1;
        try testing.expect(memory.reset(&counters));
        try testing.expect(std.mem.allEqual(u8, base[8192..size_bytes], 0));
    }
}

test "a module's images going away empty every memory holding one, after its queued reset" {
    const size_bytes = 4 * 65536;
    var errno: sys.Errno = 0;
    const base = sys.map_read_write(size_bytes, &errno).?;
    defer sys.unmap(base, size_bytes);
    const image = try fill_image(testing.allocator, &[_]u8{3} ** 8192);
    var memories: HostMemories = .{};
    defer memories.deinit(testing.allocator);
    const memory = memories.adopt(testing.allocator, base, size_bytes, true).?;
    try testing.expect(memory.prepare(image, &memories.counters));
    base[0] = 9;
    base[3 * 65536] = 9;
    // Queued for the thread (a second reset right after another is a burst, which wakes it):
    // it must be over before the image goes.
    const other_base = sys.map_read_write(65536, &errno).?;
    defer sys.unmap(other_base, 65536);
    const other = memories.adopt(testing.allocator, other_base, 65536, true).?;
    var queued = false;
    for (0..1000) |_| {
        _ = resetter.later(other, &memories.counters);
        _ = resetter.claim(other, true);
        switch (resetter.later(memory, &memories.counters)) {
            .queued => {
                queued = true;
                break;
            },
            .inline_done => {
                base[0] = 9;
                base[3 * 65536] = 9;
            },
            .failed => return error.TestUnexpectedResult,
        }
    }
    try testing.expect(queued);
    memories.forget_images(&.{image});
    image.destroy(testing.allocator);
    try testing.expectEqual(resetter.Claim.ready, resetter.claim(memory, true));
    try testing.expectEqual(@as(?*const Image, null), memory.holds);
    try testing.expect(std.mem.allEqual(u8, base[0..size_bytes], 0));
}
