//! The free list of instance slot indices, with module affinity. Not thread-safe by itself:
//! the engine holds its mutex around every call. Storage is allocated up front for `count`
//! indices; nothing here allocates afterwards.
//!
//! A slot is cold (never handed out), used, or warm (free, last used by some module). Under
//! `next_available`, as in Wasmtime's `ModuleAffinityIndexAllocator`:
//!   1. a warm slot whose last tenant was the same module, the most recently freed first (its
//!      memory still holds that module's image mapping and resident pages);
//!   2. else, while fewer than `max_unused_warm_slots` slots are warm, a cold slot (lowest
//!      index first), so that warm slots stay affine to their modules; failing that the least
//!      recently freed warm slot;
//!   3. else the least recently freed warm slot (its affinity is lost), failing that a cold one.
//! Under `random` every free slot is equally likely, affinity or not.
//!
//! The invariant kept: every index is in exactly one of {cold, used, warm}; a warm index is on
//! the warm list, and on the affine list of its last module if it has one.

const std = @import("std");
const assert = std.debug.assert;

pub const Strategy = enum(u32) {
    /// Module affinity first, then cold slots, then the least recently used warm slot.
    next_available = 0,
    /// Pick a free slot uniformly at random: a tenant cannot predict its neighbour.
    random = 1,
};

const none: u32 = std.math.maxInt(u32);

/// A module's warm slots, most recently freed at the tail. The module owns the list (it lives
/// in the module's native state); the allocator links and unlinks slots in it.
pub const AffineList = struct {
    head: u32 = none,
    tail: u32 = none,
    count: u32 = 0,
};

const SlotState = enum(u8) { cold, used, warm };

/// A doubly linked list threaded through per-slot link arrays.
const Links = struct {
    prev: []u32,
    next: []u32,

    fn append(self: Links, head: *u32, tail: *u32, index: u32) void {
        self.prev[index] = tail.*;
        self.next[index] = none;
        if (tail.* != none) self.next[tail.*] = index else head.* = index;
        tail.* = index;
    }

    fn remove(self: Links, head: *u32, tail: *u32, index: u32) void {
        const prev = self.prev[index];
        const next = self.next[index];
        if (prev != none) self.next[prev] = next else head.* = next;
        if (next != none) self.prev[next] = prev else tail.* = prev;
        self.prev[index] = none;
        self.next[index] = none;
    }
};

/// The tail of `affine`'s list: its most recently freed slot, whose pages are the warmest.
fn pick_affine(affine: ?*AffineList) ?u32 {
    const list = affine orelse return null;
    return if (list.tail == none) null else list.tail;
}

/// What `alloc` hands out.
pub const Pick = struct {
    index: u32,
    /// The slot's last tenant was the module asked for.
    affine: bool,
};

pub const IndexAllocator = struct {
    strategy: Strategy,
    max_unused_warm_slots: u32,
    state: []SlotState,
    /// The affine list of each slot's last tenant (null: none, or forgotten).
    last: []?*AffineList,
    /// Warm slots, least recently freed at the head.
    warm_links: Links,
    warm_head: u32 = none,
    warm_tail: u32 = none,
    warm_count: u32 = 0,
    /// Each warm slot's place on its module's affine list.
    affine_links: Links,
    /// `next_available`: every index at or above this one is cold.
    next_cold: u32 = 0,
    /// `random`: free[0..free_count] are the free indices; position[i] is i's place there.
    free: []u32,
    position: []u32,
    free_count: u32,
    used_count: u32 = 0,
    prng: std.Random.DefaultPrng,

    pub fn init(
        allocator: std.mem.Allocator,
        count: u32,
        strategy: Strategy,
        seed: u64,
        max_unused_warm_slots: u32,
    ) error{OutOfMemory}!IndexAllocator {
        assert(count > 0 and count < none);
        const state = try allocator.alloc(SlotState, count);
        errdefer allocator.free(state);
        const last = try allocator.alloc(?*AffineList, count);
        errdefer allocator.free(last);
        const links = try allocator.alloc(u32, 6 * @as(usize, count));
        @memset(state, .cold);
        @memset(last, null);
        @memset(links, none);
        const free = links[4 * @as(usize, count) ..][0..count];
        const position = links[5 * @as(usize, count) ..][0..count];
        // Reversed, so that `random` with no draw yet has index 0 last, like a stack.
        for (free, 0..) |*slot, i| slot.* = count - 1 - @as(u32, @intCast(i));
        for (position, 0..) |*p, i| p.* = count - 1 - @as(u32, @intCast(i));
        return .{
            .strategy = strategy,
            .max_unused_warm_slots = max_unused_warm_slots,
            .state = state,
            .last = last,
            .warm_links = .{ .prev = links[0..count], .next = links[count..][0..count] },
            .affine_links = .{ .prev = links[2 * @as(usize, count) ..][0..count], .next = links[3 * @as(usize, count) ..][0..count] },
            .free = free,
            .position = position,
            .free_count = count,
            .prng = std.Random.DefaultPrng.init(seed),
        };
    }

    pub fn deinit(self: *IndexAllocator, allocator: std.mem.Allocator) void {
        allocator.free(self.state);
        allocator.free(self.last);
        allocator.free(self.warm_links.prev.ptr[0 .. 6 * self.state.len]);
        self.* = undefined;
    }

    pub fn capacity(self: *const IndexAllocator) u32 {
        return @intCast(self.state.len);
    }

    pub fn live_count(self: *const IndexAllocator) u32 {
        return self.used_count;
    }

    /// Returns a free index (preferring one whose last tenant was `affine`'s module), or null
    /// when every index is in use.
    pub fn alloc(self: *IndexAllocator, affine: ?*AffineList) ?Pick {
        const index = switch (self.strategy) {
            .random => self.pick_random() orelse return null,
            .next_available => pick_affine(affine) orelse self.pick_other() orelse return null,
        };
        const was_affine = affine != null and self.last[index] == affine;
        self.take_free(index);
        return .{ .index = index, .affine = was_affine };
    }

    /// Gives `index` back, affine to the module whose list is `affine` (null: to none).
    pub fn release(self: *IndexAllocator, index: u32, affine: ?*AffineList) void {
        assert(index < self.capacity());
        assert(self.state[index] == .used);
        self.state[index] = .warm;
        self.used_count -= 1;
        self.warm_links.append(&self.warm_head, &self.warm_tail, index);
        self.warm_count += 1;
        self.last[index] = affine;
        if (affine) |list| {
            self.affine_links.append(&list.head, &list.tail, index);
            list.count += 1;
        }
        self.free[self.free_count] = index;
        self.position[index] = self.free_count;
        self.free_count += 1;
        assert(self.free_count + self.used_count == self.capacity());
    }

    /// Takes the free slot `index` out of circulation (as if allocated); false if it is in use.
    pub fn take(self: *IndexAllocator, index: u32) bool {
        assert(index < self.capacity());
        if (self.state[index] == .used) return false;
        self.take_free(index);
        return true;
    }

    /// A module is going away: its warm slots stay warm but affine to no one.
    pub fn forget(self: *IndexAllocator, list: *AffineList) void {
        while (list.head != none) {
            const index = list.head;
            assert(self.state[index] == .warm and self.last[index] == list);
            self.affine_links.remove(&list.head, &list.tail, index);
            list.count -= 1;
            self.last[index] = null;
        }
        assert(list.count == 0 and list.tail == none);
    }

    /// The affine list of `index`'s last tenant (meaningful for a free slot).
    pub fn affine_to(self: *const IndexAllocator, index: u32) ?*AffineList {
        return self.last[index];
    }

    pub fn is_free(self: *const IndexAllocator, index: u32) bool {
        return self.state[index] != .used;
    }

    fn pick_random(self: *IndexAllocator) ?u32 {
        if (self.free_count == 0) return null;
        const position = self.prng.random().uintLessThan(u32, self.free_count);
        return self.free[position];
    }

    fn pick_other(self: *IndexAllocator) ?u32 {
        if (self.warm_count < self.max_unused_warm_slots) {
            return self.pick_cold() orelse self.pick_warm();
        }
        return self.pick_warm() orelse self.pick_cold();
    }

    fn pick_cold(self: *IndexAllocator) ?u32 {
        while (self.next_cold < self.capacity()) {
            const index = self.next_cold;
            if (self.state[index] == .cold) return index;
            // Taken out of order (by `take`): skip it.
            self.next_cold += 1;
        }
        return null;
    }

    fn pick_warm(self: *IndexAllocator) ?u32 {
        return if (self.warm_head == none) null else self.warm_head;
    }

    /// Moves free `index` to used, off every list it is on.
    fn take_free(self: *IndexAllocator, index: u32) void {
        switch (self.state[index]) {
            .used => unreachable,
            .cold => {
                if (index == self.next_cold) self.next_cold += 1;
            },
            .warm => {
                self.warm_links.remove(&self.warm_head, &self.warm_tail, index);
                self.warm_count -= 1;
                if (self.last[index]) |list| {
                    self.affine_links.remove(&list.head, &list.tail, index);
                    list.count -= 1;
                }
            },
        }
        self.state[index] = .used;
        self.used_count += 1;
        // Swap-remove from the free array.
        const position = self.position[index];
        assert(position < self.free_count and self.free[position] == index);
        const moved = self.free[self.free_count - 1];
        self.free[position] = moved;
        self.position[moved] = position;
        self.free_count -= 1;
        self.position[index] = none;
        assert(self.free_count + self.used_count == self.capacity());
    }
};

const testing = std.testing;

test "next-available hands out ascending cold indices, then reuses affine slots" {
    var ia = try IndexAllocator.init(testing.allocator, 4, .next_available, 0, 4);
    defer ia.deinit(testing.allocator);
    var a: AffineList = .{};
    var b: AffineList = .{};
    try testing.expectEqual(@as(u32, 0), ia.alloc(&a).?.index);
    try testing.expectEqual(@as(u32, 1), ia.alloc(&a).?.index);
    try testing.expectEqual(@as(u32, 2), ia.alloc(&b).?.index);
    ia.release(1, &a);
    ia.release(0, &a);
    // Most recently freed affine slot first.
    const pick = ia.alloc(&a).?;
    try testing.expectEqual(@as(u32, 0), pick.index);
    try testing.expect(pick.affine);
    // Another module takes a cold slot while few slots are warm, not a's warm slot 1.
    const other = ia.alloc(&b).?;
    try testing.expectEqual(@as(u32, 3), other.index);
    try testing.expect(!other.affine);
    // No cold slot left: b evicts a's warm slot.
    const evicted = ia.alloc(&b).?;
    try testing.expectEqual(@as(u32, 1), evicted.index);
    try testing.expect(!evicted.affine);
    try testing.expectEqual(@as(?Pick, null), ia.alloc(&a));
    try testing.expectEqual(@as(u32, 4), ia.live_count());
    try testing.expectEqual(@as(u32, 0), a.count);
}

test "past max_unused_warm_slots, the least recently used warm slot goes before a cold one" {
    var ia = try IndexAllocator.init(testing.allocator, 8, .next_available, 0, 2);
    defer ia.deinit(testing.allocator);
    var lists = [_]AffineList{ .{}, .{}, .{}, .{} };
    for (0..3) |i| try testing.expectEqual(@as(u32, @intCast(i)), ia.alloc(&lists[i]).?.index);
    ia.release(0, &lists[0]);
    ia.release(1, &lists[1]);
    ia.release(2, &lists[2]);
    // Three warm slots >= 2: module 3 takes the least recently freed (0), not cold slot 3.
    try testing.expectEqual(@as(u32, 0), ia.alloc(&lists[3]).?.index);
    try testing.expectEqual(@as(u32, 0), lists[0].count);
    // Two warm slots: still not below the cap, so warm again (1).
    try testing.expectEqual(@as(u32, 1), ia.alloc(&lists[3]).?.index);
    // One warm slot < 2: a cold slot.
    try testing.expectEqual(@as(u32, 3), ia.alloc(&lists[3]).?.index);
    // Slot 2 is still affine to module 2.
    const again = ia.alloc(&lists[2]).?;
    try testing.expectEqual(@as(u32, 2), again.index);
    try testing.expect(again.affine);
}

test "forget and take: a module's slots lose their affinity; a free slot can be taken out" {
    var ia = try IndexAllocator.init(testing.allocator, 3, .next_available, 0, 0);
    defer ia.deinit(testing.allocator);
    var a: AffineList = .{};
    _ = ia.alloc(&a);
    _ = ia.alloc(&a);
    ia.release(0, &a);
    ia.release(1, &a);
    try testing.expectEqual(@as(u32, 2), a.count);
    ia.forget(&a);
    try testing.expectEqual(@as(u32, 0), a.count);
    try testing.expectEqual(@as(?*AffineList, null), ia.affine_to(0));
    try testing.expect(ia.take(1));
    try testing.expect(!ia.take(1));
    try testing.expect(ia.take(2)); // a cold one
    // max_unused_warm_slots 0: warm first, so 0; then nothing.
    const pick = ia.alloc(&a).?;
    try testing.expectEqual(@as(u32, 0), pick.index);
    try testing.expect(!pick.affine);
    try testing.expectEqual(@as(?Pick, null), ia.alloc(null));
}

test "random hands out every index exactly once and covers the pool" {
    const count = 64;
    var ia = try IndexAllocator.init(testing.allocator, count, .random, 42, 0);
    defer ia.deinit(testing.allocator);
    var seen = [_]bool{false} ** count;
    var in_order = true;
    for (0..count) |i| {
        const index = ia.alloc(null).?.index;
        try testing.expect(!seen[index]);
        seen[index] = true;
        if (index != i) in_order = false;
    }
    try testing.expectEqual(@as(?Pick, null), ia.alloc(null));
    try testing.expect(!in_order);
    // After freeing all, a long run of alloc/release visits every slot.
    var list: AffineList = .{};
    for (0..count) |i| ia.release(@intCast(i), &list);
    var visited = [_]bool{false} ** count;
    for (0..count * 50) |_| {
        const index = ia.alloc(&list).?.index;
        visited[index] = true;
        ia.release(index, &list);
    }
    for (visited) |v| try testing.expect(v);
    ia.forget(&list);
    try testing.expectEqual(@as(u32, 0), list.count);
}
