//! A translated module as the native side keeps it: the blob the TypeScript side builds once
//! per module (memory and table types, data and element segments), copied ("boxed") into
//! native memory and checked once, so instantiation reads it without further checks.
//!
//! Blob layout, little-endian, every offset in bytes from the start of the blob:
//!   Header
//!   MemoryDesc  × defined_memories
//!   TableDesc   × defined_tables
//!   DataDesc    × data_segments
//!   ElemDesc    × elem_segments
//!   payload: element entries (u32, 4-byte aligned), then data bytes

const std = @import("std");
const assert = std.debug.assert;

pub const magic: u32 = 0x424d5057; // "WPMB"
pub const version: u32 = 1;

pub const Header = extern struct {
    magic: u32,
    version: u32,
    blob_bytes: u32,
    imported_memories: u32,
    defined_memories: u32,
    imported_tables: u32,
    defined_tables: u32,
    imported_globals: u32,
    data_segments: u32,
    elem_segments: u32,
    reserved: [6]u32,
};

pub const MemoryDesc = extern struct { min_pages: u32, max_pages: u32 };
pub const TableDesc = extern struct { min_elements: u32, max_elements: u32 };

pub const OffsetKind = enum(u32) {
    constant = 0,
    /// The offset is the value of imported global `offset_value`, given in the scratch area.
    imported_global = 1,
    _,
};

pub const DataDesc = extern struct {
    memory_index: u32,
    offset_kind: OffsetKind,
    offset_value: u32,
    bytes_offset: u32,
    bytes_len: u32,
    reserved: u32,
};

pub const ElemDesc = extern struct {
    table_index: u32,
    offset_kind: OffsetKind,
    offset_value: u32,
    entries_offset: u32,
    entries_count: u32,
    reserved: u32,
};

/// What the engine's allocator allows; a blob beyond them is refused.
pub const Limits = struct {
    memories: u32,
    tables: u32,
    memory_pages: u32,
    table_elements: u32,
};

pub const Module = struct {
    blob: []align(8) u8,
    header: *const Header,
    memories: []const MemoryDesc,
    tables: []const TableDesc,
    data: []const DataDesc,
    elems: []const ElemDesc,
    /// Instances alive with this module; a module is destroyed only at zero.
    live_instances: std.atomic.Value(u32),
    /// uffd mode: each defined memory's initial image in 64 KiB pages, served by the fault
    /// handler. Null when the module initializes its memories segment by segment.
    paged: ?[]PagedMemory = null,

    /// The initial contents of wasm page `page` of defined memory `memory`, or null for zeros.
    pub fn paged_page(self: *const Module, memory: u32, page: u32) ?[*]const u8 {
        const paged = self.paged orelse return null;
        return paged[memory].page(page);
    }

    pub fn data_bytes(self: *const Module, desc: DataDesc) []const u8 {
        return self.blob[desc.bytes_offset..][0..desc.bytes_len];
    }

    pub fn elem_entries(self: *const Module, desc: ElemDesc) []const u32 {
        const bytes = self.blob[desc.entries_offset..][0 .. @as(usize, desc.entries_count) * 4];
        return @alignCast(std.mem.bytesAsSlice(u32, bytes));
    }
};

pub const BlobError = error{ Malformed, OutOfMemory };

/// Copies and checks a blob. Every count is bounded by the blob's own length before use.
pub fn create(allocator: std.mem.Allocator, bytes: []const u8, limits: Limits) BlobError!*Module {
    if (bytes.len < @sizeOf(Header) or bytes.len > std.math.maxInt(u32)) return error.Malformed;
    const blob = try allocator.alignedAlloc(u8, .@"8", bytes.len);
    errdefer allocator.free(blob);
    @memcpy(blob, bytes);
    const header: *const Header = @ptrCast(blob.ptr);
    if (header.magic != magic or header.version != version) return error.Malformed;
    if (header.blob_bytes != blob.len) return error.Malformed;

    var cursor: u64 = @sizeOf(Header);
    const memories = try take(MemoryDesc, blob, &cursor, header.defined_memories);
    const tables = try take(TableDesc, blob, &cursor, header.defined_tables);
    const data = try take(DataDesc, blob, &cursor, header.data_segments);
    const elems = try take(ElemDesc, blob, &cursor, header.elem_segments);

    if (header.defined_memories > limits.memories) return error.Malformed;
    if (header.defined_tables > limits.tables) return error.Malformed;
    for (memories) |m| {
        if (m.min_pages > m.max_pages or m.max_pages > limits.memory_pages) return error.Malformed;
    }
    for (tables) |t| {
        if (t.min_elements > t.max_elements or t.max_elements > limits.table_elements) {
            return error.Malformed;
        }
    }
    const memory_count = @as(u64, header.imported_memories) + header.defined_memories;
    for (data) |d| {
        if (d.memory_index >= memory_count) return error.Malformed;
        try check_offset(d.offset_kind, d.offset_value, header.imported_globals);
        if (@as(u64, d.bytes_offset) + d.bytes_len > blob.len) return error.Malformed;
    }
    const table_count = @as(u64, header.imported_tables) + header.defined_tables;
    for (elems) |e| {
        if (e.table_index >= table_count) return error.Malformed;
        try check_offset(e.offset_kind, e.offset_value, header.imported_globals);
        if (e.entries_offset % 4 != 0) return error.Malformed;
        if (@as(u64, e.entries_offset) + @as(u64, e.entries_count) * 4 > blob.len) {
            return error.Malformed;
        }
    }

    const module = try allocator.create(Module);
    module.* = .{
        .blob = blob,
        .header = header,
        .memories = memories,
        .tables = tables,
        .data = data,
        .elems = elems,
        .live_instances = std.atomic.Value(u32).init(0),
    };
    return module;
}

pub fn destroy(allocator: std.mem.Allocator, module: *Module) void {
    assert(module.live_instances.load(.acquire) == 0);
    if (module.paged) |paged| {
        for (paged) |*memory| memory.deinit(allocator);
        allocator.free(paged);
    }
    allocator.free(module.blob);
    allocator.destroy(module);
}

fn check_offset(kind: OffsetKind, value: u32, imported_globals: u32) BlobError!void {
    switch (kind) {
        .constant => {},
        .imported_global => if (value >= imported_globals) return error.Malformed,
        _ => return error.Malformed,
    }
}

fn take(comptime T: type, blob: []align(8) u8, cursor: *u64, count: u32) BlobError![]const T {
    comptime assert(@alignOf(T) <= 8 and @sizeOf(T) % 4 == 0);
    const size = @as(u64, count) * @sizeOf(T);
    if (cursor.* + size > blob.len) return error.Malformed;
    const start: usize = @intCast(cursor.*);
    cursor.* += size;
    const bytes = blob[start..][0..@intCast(size)];
    return @alignCast(std.mem.bytesAsSlice(T, bytes));
}

comptime {
    assert(@sizeOf(Header) == 64);
    assert(@sizeOf(DataDesc) == 24);
    assert(@sizeOf(ElemDesc) == 24);
}

/// One memory's initial image: only the wasm pages that are not all zeros are stored.
pub const PagedMemory = struct {
    /// For each page below the initial size: 0 for a zero page, else 1 + its index in `pages`.
    page_slots: []u32,
    pages: []align(std.heap.page_size_min) u8,

    pub fn page(self: *const PagedMemory, wasm_page: u32) ?[*]const u8 {
        if (wasm_page >= self.page_slots.len) return null;
        const slot = self.page_slots[wasm_page];
        if (slot == 0) return null;
        return self.pages[(slot - 1) * wasm_page_bytes ..].ptr;
    }

    fn deinit(self: *PagedMemory, allocator: std.mem.Allocator) void {
        allocator.free(self.page_slots);
        allocator.free(self.pages);
    }
};

const wasm_page_bytes: usize = 64 * 1024;

/// A paged image may hold at most this much more than the data itself: a few bytes in each of
/// many pages must not pin a whole page each (a 38 KB module could otherwise pin 256 MiB).
const paged_image_slack_bytes: u64 = 1 << 20;

/// Whether every data segment has a constant offset into a defined memory and fits its initial
/// size, and the pages it touches are not much more than its bytes: only then is the image cut
/// into pages ahead of instantiation (at most max(1 MiB, 2 × the data) of them).
pub fn can_page(module: *const Module) bool {
    const h = module.header;
    var data_bytes: u64 = 0;
    for (module.data) |d| {
        if (d.offset_kind != .constant or d.memory_index < h.imported_memories) return false;
        const memory = module.memories[d.memory_index - h.imported_memories];
        const end = @as(u64, d.offset_value) + d.bytes_len;
        if (end > @as(u64, memory.min_pages) * wasm_page_bytes) return false;
        data_bytes += d.bytes_len;
    }
    var stored_page_bytes: u64 = 0;
    for (0..h.defined_memories) |m| {
        stored_page_bytes += touched_pages(module, h.imported_memories + @as(u32, @intCast(m))) * wasm_page_bytes;
    }
    return stored_page_bytes <= @max(paged_image_slack_bytes, 2 * data_bytes);
}

/// The number of distinct wasm pages the data segments of `memory_index` touch.
fn touched_pages(module: *const Module, memory_index: u32) u64 {
    // One bit per page of the largest memory: 8 KiB, on the stack.
    var touched = std.StaticBitSet(65536).initEmpty();
    for (module.data) |d| {
        if (d.memory_index != memory_index or d.bytes_len == 0) continue;
        const first = d.offset_value / wasm_page_bytes;
        const last = (@as(u64, d.offset_value) + d.bytes_len - 1) / wasm_page_bytes;
        touched.setRangeValue(.{ .start = first, .end = @intCast(last + 1) }, true);
    }
    return touched.count();
}

/// Cuts the module's initial memory image into 64 KiB pages, dropping pages of zeros.
pub fn build_paged(allocator: std.mem.Allocator, module: *Module) error{OutOfMemory}!void {
    assert(can_page(module));
    const h = module.header;
    const paged = try allocator.alloc(PagedMemory, h.defined_memories);
    var built: usize = 0;
    errdefer {
        for (paged[0..built]) |*memory| memory.deinit(allocator);
        allocator.free(paged);
    }
    for (paged, module.memories, 0..) |*memory, desc, m| {
        memory.* = try build_memory(allocator, module, @intCast(h.imported_memories + m), desc.min_pages);
        built += 1;
    }
    module.paged = paged;
}

fn build_memory(allocator: std.mem.Allocator, module: *const Module, memory_index: u32, min_pages: u32) error{OutOfMemory}!PagedMemory {
    const page_slots = try allocator.alloc(u32, min_pages);
    errdefer allocator.free(page_slots);
    @memset(page_slots, 0);
    // Number the pages any segment touches, in page order.
    for (module.data) |d| {
        if (d.memory_index != memory_index or d.bytes_len == 0) continue;
        const first = d.offset_value / wasm_page_bytes;
        const last = (@as(u64, d.offset_value) + d.bytes_len - 1) / wasm_page_bytes;
        for (page_slots[first .. last + 1]) |*slot| slot.* = 1;
    }
    var stored: u32 = 0;
    for (page_slots) |*slot| {
        if (slot.* != 0) {
            stored += 1;
            slot.* = stored;
        }
    }
    const pages = try allocator.alignedAlloc(u8, .fromByteUnits(std.heap.page_size_min), @as(usize, stored) * wasm_page_bytes);
    errdefer allocator.free(pages);
    @memset(pages, 0);
    // Apply the segments in order, as instantiation would.
    for (module.data) |d| {
        if (d.memory_index != memory_index) continue;
        const bytes = module.data_bytes(d);
        var done: usize = 0;
        while (done < bytes.len) {
            const at = @as(usize, d.offset_value) + done;
            const slot = page_slots[at / wasm_page_bytes];
            assert(slot != 0);
            const in_page = at % wasm_page_bytes;
            const n = @min(bytes.len - done, wasm_page_bytes - in_page);
            @memcpy(pages[(slot - 1) * wasm_page_bytes + in_page ..][0..n], bytes[done..][0..n]);
            done += n;
        }
    }
    // Drop the pages that ended up all zeros, moving the others down.
    var kept: u32 = 0;
    for (page_slots) |*slot| {
        if (slot.* == 0) continue;
        const from = pages[(slot.* - 1) * wasm_page_bytes ..][0..wasm_page_bytes];
        if (std.mem.allEqual(u8, from, 0)) {
            slot.* = 0;
            continue;
        }
        if (slot.* - 1 != kept) @memcpy(pages[kept * wasm_page_bytes ..][0..wasm_page_bytes], from);
        kept += 1;
        slot.* = kept;
    }
    const trimmed = if (allocator.resize(pages, @as(usize, kept) * wasm_page_bytes)) pages[0 .. @as(usize, kept) * wasm_page_bytes] else pages;
    return .{ .page_slots = page_slots, .pages = trimmed };
}
