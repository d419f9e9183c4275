//! The engine: one allocator (pooling or on-demand), the modules translated for it, and the
//! operations the C ABI exposes. Only the index allocator, the on-demand id table, grow and the
//! module set take the engine's mutex; initialization of a slot runs outside it.
//!
//! A pool slot's memories keep their last module's image mapped between tenants (module
//! affinity makes the next tenant of that module skip every mapping call). The invariant kept:
//! a slot is handed out only after its reset succeeded, and then only with its memories
//! prepared for the new module (its images mapped, nothing else's); a slot whose reset or
//! remapping failed is restored to a fresh reservation, or else quarantined for good.

const std = @import("std");
const assert = std.debug.assert;
const sys = @import("sys.zig");
const module_mod = @import("module.zig");
const Module = module_mod.Module;
const pool_mod = @import("pool.zig");
const Pool = pool_mod.Pool;
const on_demand_mod = @import("on_demand.zig");
const OnDemand = on_demand_mod.OnDemand;
const InstanceState = @import("instance.zig").InstanceState;
const memory_mod = @import("memory.zig");
const MemoryState = memory_mod.MemoryState;
const TableState = @import("table.zig").TableState;
const Scratch = @import("scratch.zig").Scratch;
const init = @import("init.zig");
const IndexStrategy = @import("index_allocator.zig").Strategy;
const uffd = @import("uffd.zig");
const Handler = @import("uffd_handler.zig").Handler;
const resident = @import("resident.zig");
const registry = @import("registry.zig");
const host_memory = @import("host_memory.zig");
const image_mod = @import("image.zig");

pub const Strategy = enum(u32) { on_demand = 0, pooling = 1 };

/// Written by the TypeScript side, read once at engine creation; the error fields are written
/// back on failure.
pub const Config = extern struct {
    strategy: u32,
    index_strategy: u32,
    seed: u64,
    instance_count: u32,
    memories: u32,
    tables: u32,
    memory_pages: u32,
    table_elements: u32,
    /// 1: serve linear memory through userfaultfd (pooling only).
    uffd: u32,
    memory_reservation_bytes: u64,
    stack_bytes: u64,
    error_code: i32,
    error_pool: u32,
    error_errno: u32,
    reserved1: u32,
    error_size_bytes: u64,
    /// mprotect mode: bytes at the start of each memory restored in place on reset, not dropped.
    memory_keep_resident_bytes: u64,
    /// Next-available: free slots kept affine to modules before one is given to another module.
    max_unused_warm_slots: u32,
    reserved2: u32,
};

/// Negative results of the C ABI. The TypeScript side turns each into a WasmpoolError.
pub const Code = enum(i32) {
    ok = 0,
    pool_full = -1,
    data_out_of_bounds = -2,
    elem_out_of_bounds = -3,
    resource = -4,
    bad_module = -5,
    bad_import = -6,
    grow_past_maximum = -7,
    overflow = -8,
    reservation_failed = -9,
    scratch_too_small = -10,
    bad_config = -11,
    bad_instance = -12,
    out_of_memory = -13,
    uffd_unavailable = -14,
    too_many_engines = -15,
    /// A module's image could not be built (step and errno in the out words).
    image_failed = -16,
    /// The instance is disposed, but resetting its slot failed and the slot is quarantined
    /// (the cause in the stats' quarantine fields).
    quarantined = -17,
};

/// What a quarantine's cause was, for the stats and the error message.
pub const QuarantineOperation = enum(u64) {
    none = 0,
    /// madvise(MADV_DONTNEED) of a reset.
    madvise = 1,
    /// mmap over the slot, restoring a fresh reservation (after a reset or a remapping failed).
    mmap = 2,
    /// mprotect of a reset (uffd mode's guard pages) or of a table.
    mprotect = 3,
};

pub const Stats = extern struct {
    live_instances: u64,
    instance_capacity: u64,
    instantiations: u64,
    deallocations: u64,
    quarantined_slots: u64,
    memory_slot_bytes: u64,
    memory_pool_bytes: u64,
    table_slot_bytes: u64,
    table_pool_bytes: u64,
    stack_pool_bytes: u64,
    modules: u64,
    uffd_pages_zeroed: u64,
    uffd_pages_copied: u64,
    uffd_guard_faults: u64,
    /// Allocations given a slot whose last tenant was the same module.
    affine_hits: u64,
    /// Memory slots whose mapping changed to another module's image or to anonymous memory.
    image_remaps: u64,
    /// Bytes of images mapped copy-on-write into live instances' memories (summed over them).
    image_bytes_shared: u64,
    /// Bytes of data the modules' images hold (their memfds), counted once per module.
    image_bytes: u64,
    /// uffd mode: bytes filled ahead of use from the modules' working sets.
    uffd_prefetched_bytes: u64,
    /// The cause of the last quarantine (a QuarantineOperation) and its errno.
    quarantine_operation: u64,
    quarantine_errno: u64,
    /// Host memories (the runtime's, adopted by the running layer) alive.
    host_memories: u64,
    /// Host-memory pages restored after tenants.
    host_pages_restored: u64,
    /// Host-memory resets that restored a whole memory (no write tracking).
    host_full_resets: u64,
    /// Host memories given another module's image.
    host_image_switches: u64,
    /// Why host-memory writes are not tracked (write_tracker.Reason), 0 when they are.
    host_tracking_unavailable: u64,
    /// Host-memory resets done by the resetter's thread, done inline at the tenant's end, and
    /// queued ones taken back inline because the memory was wanted first; and the thread's
    /// wakes (resetter.zig).
    host_resets_background: u64,
    host_resets_inline: u64,
    host_resets_claimed: u64,
    host_reset_wakes: u64,
};

pub const Engine = struct {
    allocator: std.mem.Allocator,
    strategy: Strategy,
    mutex: std.Thread.Mutex = .{},
    module_limits: module_mod.Limits,
    pool: ?Pool,
    on_demand: OnDemand,
    modules: std.AutoHashMapUnmanaged(*Module, void) = .empty,
    /// The runtime's memories the running layer adopted (host_memory.zig).
    host_memories: host_memory.HostMemories = .{},
    instantiations: std.atomic.Value(u64) = .init(0),
    deallocations: std.atomic.Value(u64) = .init(0),
    /// Pool slots whose reset failed: never handed out again.
    quarantined_slots: u64 = 0,
    last_quarantine: QuarantineOperation = .none,
    last_quarantine_errno: sys.Errno = 0,
    affine_hits: std.atomic.Value(u64) = .init(0),
    image_remaps: std.atomic.Value(u64) = .init(0),
    image_bytes_shared: std.atomic.Value(u64) = .init(0),
    uffd_prefetched_bytes: std.atomic.Value(u64) = .init(0),
    /// The userfaultfd handler, in uffd mode.
    handler: ?*Handler = null,
    /// /proc/self/pagemap, for keep-resident resets; null where it cannot be opened.
    pagemap_fd: ?i32 = null,
    /// Holders: the creating thread, and every Worker attached through the registry. The
    /// engine is destroyed when the last one releases it.
    refs: std.atomic.Value(u32) = .init(1),
    /// The engine's id in registry.zig.
    id: u32 = 0,

    pub fn create(allocator: std.mem.Allocator, config: *Config) ?*Engine {
        config.error_code = @intFromEnum(Code.ok);
        const strategy = std.meta.intToEnum(Strategy, config.strategy) catch return fail(config, .bad_config);
        const index_strategy = std.meta.intToEnum(IndexStrategy, config.index_strategy) catch
            return fail(config, .bad_config);
        const reservation_bytes = sys.round_up(config.memory_reservation_bytes, 65536) orelse
            return fail(config, .overflow);
        if (config.memory_pages > 65536) return fail(config, .bad_config);
        if (@as(u64, config.memory_pages) * 65536 > reservation_bytes) return fail(config, .bad_config);

        const engine = allocator.create(Engine) catch return fail(config, .out_of_memory);
        engine.* = .{
            .allocator = allocator,
            .strategy = strategy,
            .module_limits = .{
                .memories = config.memories,
                .tables = config.tables,
                .memory_pages = config.memory_pages,
                .table_elements = config.table_elements,
            },
            .pool = null,
            .on_demand = .{ .memory_reservation_bytes = reservation_bytes },
        };
        if (config.uffd != 0 and strategy != .pooling) {
            allocator.destroy(engine);
            return fail(config, .bad_config);
        }
        if (strategy == .pooling) {
            if (config.instance_count == 0) {
                allocator.destroy(engine);
                return fail(config, .bad_config);
            }
            var uffd_failure: uffd.Failure = undefined;
            const uffd_fd: ?i32 = if (config.uffd != 0) uffd.open(&uffd_failure) orelse {
                allocator.destroy(engine);
                config.error_pool = @intFromEnum(uffd_failure.step);
                config.error_errno = uffd_failure.errno;
                return fail(config, .uffd_unavailable);
            } else null;
            var failure: pool_mod.Failure = .{};
            engine.pool = Pool.init(allocator, .{
                .instance_count = config.instance_count,
                .memories = config.memories,
                .tables = config.tables,
                .memory_pages = config.memory_pages,
                .table_elements = config.table_elements,
                .memory_reservation_bytes = reservation_bytes,
                .stack_bytes = config.stack_bytes,
            }, index_strategy, config.seed, config.max_unused_warm_slots, uffd_fd, &failure) catch |err| {
                if (uffd_fd) |fd| uffd.close(fd);
                allocator.destroy(engine);
                config.error_pool = @intFromEnum(failure.pool);
                config.error_errno = failure.errno;
                config.error_size_bytes = failure.size_bytes;
                if (err == error.UffdRegisterFailed) config.error_pool = @intFromEnum(uffd.Step.register);
                return fail(config, switch (err) {
                    error.Overflow => .overflow,
                    error.OutOfMemory => .out_of_memory,
                    error.ReservationFailed, error.ProtectFailed => .reservation_failed,
                    error.UffdRegisterFailed => .uffd_unavailable,
                });
            };
            const keep = sys.round_up_to_page(config.memory_keep_resident_bytes) orelse
                std.math.maxInt(u64);
            engine.pool.?.keep_resident_bytes = keep;
            // uffd mode reads it to learn working sets, mprotect mode for keep-resident resets.
            if (keep > 0 or uffd_fd != null) engine.pagemap_fd = resident.open_pagemap();
            if (uffd_fd) |fd| {
                engine.start_handler(fd, config) catch {
                    engine.pool.?.deinit(allocator);
                    allocator.destroy(engine);
                    return fail(config, .uffd_unavailable);
                };
            }
        }
        engine.id = registry.add(engine) orelse {
            engine.destroy();
            return fail(config, .too_many_engines);
        };
        return engine;
    }

    /// Attaches to the live engine `id` (from another thread) and holds it; null if it is gone.
    pub fn attach(id: u32) ?*Engine {
        const found = registry.find_and_retain(id, retain_opaque) orelse return null;
        return @ptrCast(@alignCast(found));
    }

    fn retain_opaque(opaque_engine: *anyopaque) bool {
        const self: *Engine = @ptrCast(@alignCast(opaque_engine));
        // Under the registry's lock: a count of 0 means destruction has begun.
        var refs = self.refs.load(.acquire);
        while (refs > 0) {
            refs = self.refs.cmpxchgWeak(refs, refs + 1, .acq_rel, .acquire) orelse return true;
        }
        return false;
    }

    /// Drops one holder; the last one destroys the engine.
    pub fn release(self: *Engine) void {
        const before = self.refs.fetchSub(1, .acq_rel);
        assert(before > 0);
        if (before > 1) return;
        registry.remove(self.id);
        self.destroy();
    }

    fn start_handler(self: *Engine, fd: i32, config: *Config) error{Failed}!void {
        const handler = self.allocator.create(Handler) catch {
            uffd.close(fd);
            config.error_pool = @intFromEnum(uffd.Step.thread);
            config.error_errno = @intFromEnum(std.os.linux.E.NOMEM);
            return error.Failed;
        };
        var failure: uffd.Failure = undefined;
        if (!handler.start(fd, &self.pool.?, &failure)) {
            self.allocator.destroy(handler);
            uffd.close(fd);
            config.error_pool = @intFromEnum(failure.step);
            config.error_errno = failure.errno;
            return error.Failed;
        }
        self.handler = handler;
    }

    fn fail(config: *Config, code: Code) ?*Engine {
        config.error_code = @intFromEnum(code);
        return null;
    }

    /// Unmaps everything, live instances included: the TypeScript side has detached their views.
    fn destroy(self: *Engine) void {
        self.host_memories.deinit(self.allocator);
        // The handler reads the pool: stop it before anything is unmapped.
        if (self.handler) |handler| {
            handler.stop();
            self.allocator.destroy(handler);
        }
        if (self.pool) |*pool| {
            for (pool.instances) |*instance| {
                if (instance.live and instance.module != null) release_module(instance);
            }
            pool.deinit(self.allocator);
            // The slots are gone with the pool, and so is every module's affinity to them.
            var modules = self.modules.keyIterator();
            while (modules.next()) |module| module.*.affine_slots = .{};
        } else {
            for (self.on_demand.instances.items) |maybe| {
                if (maybe) |instance| release_module(instance);
            }
        }
        self.on_demand.deinit(self.allocator);
        if (self.pagemap_fd) |fd| resident.close_pagemap(fd);
        var it = self.modules.keyIterator();
        while (it.next()) |module| module_mod.destroy(self.allocator, module.*);
        self.modules.deinit(self.allocator);
        const allocator = self.allocator;
        allocator.destroy(self);
    }

    pub const ModuleError = module_mod.BlobError || error{ImageFailed};

    pub fn module_create(self: *Engine, bytes: []const u8) ModuleError!*Module {
        var failure: image_mod.Failure = undefined;
        return self.module_create_with(bytes, &failure);
    }

    /// Boxes the blob and builds its images (where `module_mod.can_image` allows), and in uffd
    /// mode its working sets. On `error.ImageFailed`, `failure` says which step and why.
    pub fn module_create_with(self: *Engine, bytes: []const u8, failure: *image_mod.Failure) ModuleError!*Module {
        const module = try module_mod.create(self.allocator, bytes, self.module_limits);
        errdefer module_mod.destroy(self.allocator, module);
        if (module_mod.can_image(module)) {
            module_mod.build_images(self.allocator, module, failure) catch |err| return switch (err) {
                error.OutOfMemory => error.OutOfMemory,
                error.Failed => error.ImageFailed,
            };
        }
        if (self.handler != null) try module_mod.build_working_sets(self.allocator, module);
        self.mutex.lock();
        defer self.mutex.unlock();
        try self.modules.put(self.allocator, module, {});
        return module;
    }

    pub fn module_destroy(self: *Engine, module: *Module) Code {
        self.mutex.lock();
        defer self.mutex.unlock();
        if (!self.modules.contains(module)) return .bad_module;
        if (module.live_instances.load(.acquire) != 0) return .bad_module;
        if (self.pool) |*pool| self.purge_locked(pool, module);
        self.host_memories.forget_images(module.images);
        _ = self.modules.remove(module);
        module_mod.destroy(self.allocator, module);
        return .ok;
    }

    /// A module is going away: no free slot may keep it affine or keep its images mapped (the
    /// mappings would hold its memfds' pages after the module closed them). Each such memory
    /// becomes anonymous memory again; one that cannot is restored to a fresh reservation, and
    /// failing that its slot is quarantined. Under the mutex; no instance of the module lives.
    fn purge_locked(self: *Engine, pool: *Pool, module: *Module) void {
        pool.index_allocator.forget(&module.affine_slots);
        if (module.images.len == 0) return;
        for (pool.instances, 0..) |*instance, index| {
            // Only slots nobody else can touch: free ones (an allocation takes a slot from the
            // index allocator, under this mutex, before it touches it) and quarantined ones.
            if (!pool.index_allocator.is_free(@intCast(index)) and !instance.quarantined) continue;
            for (instance.memory_slots) |*state| {
                const image = state.image orelse continue;
                if (!owns_image(module, image)) continue;
                var failure: MemoryState.MapFailure = undefined;
                if (!state.poisoned) {
                    if (state.prepare(null, &failure)) |_| {
                        _ = self.image_remaps.fetchAdd(1, .monotonic);
                        continue;
                    } else |_| {}
                }
                if (state.recover()) |errno| {
                    // Still free (a quarantined slot is not): take it out of circulation.
                    if (pool.index_allocator.take(@intCast(index))) {
                        instance.quarantined = true;
                        self.quarantine_locked(if (state.mode == .uffd) .madvise else .mmap, errno);
                    }
                    // It still maps the image: forget the pointer, the pages stay until unmap.
                    state.image = null;
                }
            }
        }
    }

    fn owns_image(module: *const Module, image: *const image_mod.Image) bool {
        for (module.images) |maybe| {
            if (maybe == image) return true;
        }
        return false;
    }

    fn quarantine_locked(self: *Engine, operation: QuarantineOperation, errno: sys.Errno) void {
        self.quarantined_slots += 1;
        self.last_quarantine = operation;
        self.last_quarantine_errno = errno;
    }

    /// Returns the new instance's id, or a negative Code with detail in the scratch area.
    pub fn allocate(self: *Engine, module: *Module, scratch: Scratch) i32 {
        if (scratch.bytes.len < Scratch.required_bytes(module.header)) return @intFromEnum(Code.scratch_too_small);
        const id = switch (self.strategy) {
            .pooling => self.allocate_pooled(module, scratch),
            .on_demand => self.allocate_on_demand(module, scratch),
        } catch |err| return @intFromEnum(code_of(err));
        _ = self.instantiations.fetchAdd(1, .monotonic);
        return @intCast(id);
    }

    const InstantiateError = init.Error || error{ PoolFull, Resource, OutOfMemory };

    fn code_of(err: InstantiateError) Code {
        return switch (err) {
            error.PoolFull => .pool_full,
            error.DataOutOfBounds => .data_out_of_bounds,
            error.ElemOutOfBounds => .elem_out_of_bounds,
            error.BadImport => .bad_import,
            error.Resource => .resource,
            error.OutOfMemory => .out_of_memory,
        };
    }

    fn allocate_pooled(self: *Engine, module: *Module, scratch: Scratch) InstantiateError!u32 {
        const pool = &self.pool.?;
        const header = module.header;
        assert(header.defined_memories <= pool.limits.memories);
        assert(header.defined_tables <= pool.limits.tables);
        const pick = blk: {
            self.mutex.lock();
            defer self.mutex.unlock();
            break :blk pool.index_allocator.alloc(&module.affine_slots);
        } orelse {
            scratch.set_detail(&.{pool.limits.instance_count});
            return error.PoolFull;
        };
        if (pick.affine) _ = self.affine_hits.fetchAdd(1, .monotonic);
        const index = pick.index;
        const instance = &pool.instances[index];
        assert(!instance.live);
        instance.live = true;
        // Before any page of the slot can fault: the handler reads the module's image from it.
        @atomicStore(?*Module, &instance.module, module, .release);
        _ = module.live_instances.fetchAdd(1, .acq_rel);
        instance.memory_count = header.defined_memories;
        instance.table_count = header.defined_tables;
        errdefer {
            // Word 7 of the detail: whether the slot had to be quarantined.
            const quarantined = self.release_pooled(index) == .quarantined;
            scratch.detail()[7] = @intFromBool(quarantined);
        }

        var shared_bytes: u64 = 0;
        for (instance.memories(), module.memories, 0..) |*state, desc, m| {
            state.max_pages = desc.max_pages;
            const image = module.image(@intCast(m));
            var failure: MemoryState.MapFailure = undefined;
            const remapped = state.prepare(image, &failure) catch {
                scratch.set_detail(&.{ failure.errno, @intCast(m), @intFromEnum(failure.step) });
                return error.Resource;
            };
            if (remapped) _ = self.image_remaps.fetchAdd(1, .monotonic);
            const min_bytes = @as(u64, desc.min_pages) * memory_mod.wasm_page_bytes;
            switch (state.mode) {
                .mprotect => if (image) |i| {
                    shared_bytes += i.size_bytes;
                },
                .uffd => state.trim_kept(min_bytes, &failure) catch {
                    scratch.set_detail(&.{ failure.errno, @intCast(m), @intFromEnum(failure.step) });
                    return error.Resource;
                },
            }
            if (state.protect_linear_memory(desc.min_pages)) |errno| {
                scratch.set_detail(&.{ errno, @intCast(m), @intFromEnum(MemoryState.MapStep.protect) });
                return error.Resource;
            }
            // The pages a reset kept already hold this module's image: prefetch the rest.
            if (state.mode == .uffd) self.prefetch(module, @intCast(m), state, @min(state.kept_bytes, min_bytes), min_bytes);
            scratch.set_memory_base(header, @intCast(m), @intFromPtr(state.base));
        }
        for (instance.tables(), module.tables, 0..) |*table, desc, t| {
            assert(desc.max_elements <= table.capacity_elements);
            table.max_elements = desc.max_elements;
            table.size_elements = desc.min_elements;
            scratch.set_table_base(header, @intCast(t), @intFromPtr(table.entries));
        }
        try init.initialize(module, instance.memories(), instance.tables(), scratch, self.resolver(), !module.imaged);
        instance.image_bytes_shared = shared_bytes;
        _ = self.image_bytes_shared.fetchAdd(shared_bytes, .monotonic);
        return index;
    }

    /// uffd mode: fills the pages of `[from_bytes, to_bytes)` that the module's instances used
    /// before, from this thread, so that they cost no round trip to the handler.
    fn prefetch(self: *Engine, module: *const Module, memory: u32, state: *MemoryState, from_bytes: u64, to_bytes: u64) void {
        const handler = self.handler orelse return;
        if (memory >= module.working_sets.len or from_bytes >= to_bytes) return;
        const bytes = module.working_sets[memory].prefetch(
            handler.fd,
            module.image(memory),
            state.base,
            from_bytes,
            to_bytes,
            handler.zero_source,
        );
        if (bytes > 0) _ = self.uffd_prefetched_bytes.fetchAdd(bytes, .monotonic);
    }

    fn allocate_on_demand(self: *Engine, module: *Module, scratch: Scratch) InstantiateError!u32 {
        var errno: sys.Errno = 0;
        const instance = on_demand_mod.create_instance(
            self.allocator,
            module,
            self.on_demand.memory_reservation_bytes,
            &errno,
        ) catch |err| switch (err) {
            error.OutOfMemory => return error.OutOfMemory,
            error.MapFailed => {
                scratch.set_detail(&.{errno});
                return error.Resource;
            },
        };
        _ = module.live_instances.fetchAdd(1, .acq_rel);
        const id = blk: {
            self.mutex.lock();
            defer self.mutex.unlock();
            break :blk self.on_demand.register(self.allocator, instance);
        } catch |err| {
            release_module(instance);
            on_demand_mod.destroy_instance(self.allocator, instance);
            return err;
        } orelse {
            release_module(instance);
            on_demand_mod.destroy_instance(self.allocator, instance);
            scratch.set_detail(&.{on_demand_mod.max_instances});
            return error.PoolFull;
        };
        // Undo the registration without dispose(): a failed instantiation is no deallocation.
        errdefer {
            self.mutex.lock();
            _ = self.on_demand.unregister(id);
            self.mutex.unlock();
            release_module(instance);
            on_demand_mod.destroy_instance(self.allocator, instance);
        }
        for (instance.memories(), 0..) |*state, m| {
            scratch.set_memory_base(module.header, @intCast(m), @intFromPtr(state.base));
        }
        for (instance.tables(), 0..) |*table, t| {
            scratch.set_table_base(module.header, @intCast(t), @intFromPtr(table.entries));
        }
        try init.initialize(module, instance.memories(), instance.tables(), scratch, self.resolver(), !module.imaged);
        var shared_bytes: u64 = 0;
        for (instance.memories()) |*state| {
            if (state.image) |i| shared_bytes += i.size_bytes;
        }
        instance.image_bytes_shared = shared_bytes;
        _ = self.image_bytes_shared.fetchAdd(shared_bytes, .monotonic);
        return id;
    }

    /// Takes a pool slot for an instance that runs on the runtime's own engine (its memories
    /// are the runtime's): the slot counts against the instance limit and holds nothing.
    /// Returns the slot index, or a negative Code.
    pub fn admit(self: *Engine) i32 {
        const pool = if (self.pool) |*p| p else return @intFromEnum(Code.bad_config);
        self.mutex.lock();
        defer self.mutex.unlock();
        // Affine to no module: a running instance's memories are the runtime's, not the slot's.
        const index = (pool.index_allocator.alloc(null) orelse return @intFromEnum(Code.pool_full)).index;
        const instance = &pool.instances[index];
        assert(!instance.live and instance.module == null);
        assert(instance.memory_count == 0 and instance.table_count == 0);
        instance.live = true;
        _ = self.instantiations.fetchAdd(1, .monotonic);
        return @intCast(index);
    }

    /// Gives back a slot taken by `admit`. Nothing of it was used, so nothing is reset.
    pub fn leave(self: *Engine, index: u32) Code {
        const pool = if (self.pool) |*p| p else return .bad_config;
        self.mutex.lock();
        defer self.mutex.unlock();
        if (index >= pool.instances.len) return .bad_instance;
        const instance = &pool.instances[index];
        if (!instance.live or instance.module != null) return .bad_instance;
        instance.live = false;
        pool.index_allocator.release(index, null);
        _ = self.deallocations.fetchAdd(1, .monotonic);
        return .ok;
    }

    pub fn dispose(self: *Engine, id: u32) Code {
        var code: Code = .ok;
        switch (self.strategy) {
            .pooling => {
                // An admitted slot (no module) is given back by `leave`, not here.
                if (self.lookup(id) == null) return .bad_instance;
                code = self.release_pooled(id);
            },
            .on_demand => {
                const instance = blk: {
                    self.mutex.lock();
                    defer self.mutex.unlock();
                    if (self.on_demand.lookup(id) == null) return .bad_instance;
                    break :blk self.on_demand.unregister(id);
                };
                _ = self.image_bytes_shared.fetchSub(instance.image_bytes_shared, .monotonic);
                release_module(instance);
                on_demand_mod.destroy_instance(self.allocator, instance);
            },
        }
        _ = self.deallocations.fetchAdd(1, .monotonic);
        return code;
    }

    /// Resets the slot so that nothing of this tenant is visible to the next, then frees it,
    /// affine to its module. A memory whose reset (or an earlier remapping) failed is restored
    /// to a fresh reservation; if that fails too, the slot is quarantined (`.quarantined`).
    fn release_pooled(self: *Engine, index: u32) Code {
        const pool = &self.pool.?;
        const instance = &pool.instances[index];
        assert(instance.live);
        const module = instance.module.?;
        var cause: ?struct { operation: QuarantineOperation, errno: sys.Errno } = null;
        for (instance.memories(), 0..) |*state, m| {
            if (state.mode == .uffd) {
                // A tenancy that reached the handler teaches the module's working set.
                if (state.uffd_faults.swap(0, .monotonic) > 0 and m < module.working_sets.len) {
                    module.working_sets[m].learn(module.image(@intCast(m)), self.pagemap_fd, state.base, state.byte_length());
                }
                if (state.poisoned) {
                    // A failed prepare left the old image's kept pages: drop everything.
                    if (state.drop_all()) |errno| cause = .{ .operation = .madvise, .errno = errno };
                    continue;
                }
                if (state.reset(pool.keep_resident_bytes, self.pagemap_fd)) |errno| {
                    cause = .{ .operation = .madvise, .errno = errno };
                }
                continue;
            }
            var reset_errno: ?sys.Errno = null;
            if (!state.poisoned) {
                reset_errno = state.reset(pool.keep_resident_bytes, self.pagemap_fd);
                if (reset_errno != null) state.poisoned = true;
            }
            if (state.poisoned) {
                // The cause named is the first failure: the reset's, or the mapping's that
                // poisoned the memory at allocation (then the restore's own errno).
                if (state.restore_reservation()) |errno| cause = if (reset_errno) |e|
                    .{ .operation = .madvise, .errno = e }
                else
                    .{ .operation = .mmap, .errno = errno };
            }
        }
        for (instance.tables()) |*state| {
            if (state.reset()) |errno| cause = .{ .operation = .madvise, .errno = errno };
        }
        if (instance.stack) |stack| {
            if (sys.decommit(stack, pool.stack_bytes())) |errno| cause = .{ .operation = .madvise, .errno = errno };
        }
        _ = self.image_bytes_shared.fetchSub(instance.image_bytes_shared, .monotonic);
        instance.image_bytes_shared = 0;
        instance.memory_count = 0;
        instance.table_count = 0;
        self.mutex.lock();
        defer self.mutex.unlock();
        // Linked before the module lets go of the instance: module_destroy (under the mutex)
        // then sees either a live instance or the slot on the module's affine list.
        if (cause) |c| {
            instance.quarantined = true;
            self.quarantine_locked(c.operation, c.errno);
        } else {
            pool.index_allocator.release(index, &module.affine_slots);
        }
        release_module(instance);
        return if (cause == null) .ok else .quarantined;
    }

    fn release_module(instance: *InstanceState) void {
        const module = instance.module.?;
        const before = module.live_instances.fetchSub(1, .acq_rel);
        assert(before > 0);
        @atomicStore(?*Module, &instance.module, null, .release);
        instance.live = false;
    }

    fn lookup(self: *Engine, id: u32) ?*InstanceState {
        switch (self.strategy) {
            .pooling => {
                const pool = &self.pool.?;
                if (id >= pool.instances.len or !pool.instances[id].live) return null;
                if (pool.instances[id].module == null) return null; // admitted: no state
                return &pool.instances[id];
            },
            .on_demand => {
                self.mutex.lock();
                defer self.mutex.unlock();
                return self.on_demand.lookup(id);
            },
        }
    }

    /// `lookup` for a caller that already holds the mutex.
    fn lookup_locked(self: *Engine, id: u32) ?*InstanceState {
        return switch (self.strategy) {
            .pooling => self.lookup(id),
            .on_demand => self.on_demand.lookup(id),
        };
    }

    pub fn find_memory(self: *Engine, id: u32, index: u32) ?*MemoryState {
        const instance = self.lookup(id) orelse return null;
        if (index >= instance.memory_count) return null;
        return &instance.memories()[index];
    }

    pub fn find_table(self: *Engine, id: u32, index: u32) ?*TableState {
        const instance = self.lookup(id) orelse return null;
        if (index >= instance.table_count) return null;
        return &instance.tables()[index];
    }

    fn resolver(self: *Engine) init.Resolver {
        return .{ .context = self, .memory = resolve_memory, .table = resolve_table };
    }

    fn resolve_memory(context: *anyopaque, id: u32, index: u32) ?*MemoryState {
        const self: *Engine = @ptrCast(@alignCast(context));
        return self.find_memory(id, index);
    }

    fn resolve_table(context: *anyopaque, id: u32, index: u32) ?*TableState {
        const self: *Engine = @ptrCast(@alignCast(context));
        return self.find_table(id, index);
    }

    /// Returns the old size in pages, or a negative Code (errno in the detail on failure).
    pub fn memory_grow(self: *Engine, id: u32, index: u32, delta_pages: u32, scratch: Scratch) i32 {
        // Grows are rare and must not race each other on one memory shared between threads.
        self.mutex.lock();
        defer self.mutex.unlock();
        const instance = self.lookup_locked(id) orelse return @intFromEnum(Code.bad_instance);
        if (index >= instance.memory_count) return @intFromEnum(Code.bad_instance);
        const state = &instance.memories()[index];
        var errno: sys.Errno = 0;
        switch (state.grow(delta_pages, &errno)) {
            .grown => |old| {
                if (state.mode == .uffd) {
                    const page_bytes = memory_mod.wasm_page_bytes;
                    self.prefetch(instance.module.?, index, state, @as(u64, old) * page_bytes, (@as(u64, old) + delta_pages) * page_bytes);
                }
                return @intCast(old);
            },
            .past_maximum => |old| {
                scratch.set_detail(&.{ old, delta_pages, state.max_pages });
                return @intFromEnum(Code.grow_past_maximum);
            },
            .failed => |old| {
                scratch.set_detail(&.{ errno, old, delta_pages });
                return @intFromEnum(Code.resource);
            },
        }
    }

    /// Returns the old size in elements, or a negative Code.
    pub fn table_grow(self: *Engine, id: u32, index: u32, delta: u32, scratch: Scratch) i32 {
        self.mutex.lock();
        defer self.mutex.unlock();
        const instance = self.lookup_locked(id) orelse return @intFromEnum(Code.bad_instance);
        if (index >= instance.table_count) return @intFromEnum(Code.bad_instance);
        const state = &instance.tables()[index];
        const old = state.grow(delta) orelse {
            scratch.set_detail(&.{ state.size_elements, delta, state.max_elements });
            return @intFromEnum(Code.grow_past_maximum);
        };
        return @intCast(old);
    }

    pub fn stats(self: *Engine) Stats {
        self.mutex.lock();
        defer self.mutex.unlock();
        var result = std.mem.zeroes(Stats);
        result.instantiations = self.instantiations.load(.monotonic);
        result.deallocations = self.deallocations.load(.monotonic);
        result.quarantined_slots = self.quarantined_slots;
        result.modules = self.modules.count();
        result.affine_hits = self.affine_hits.load(.monotonic);
        result.image_remaps = self.image_remaps.load(.monotonic);
        result.image_bytes_shared = self.image_bytes_shared.load(.monotonic);
        result.uffd_prefetched_bytes = self.uffd_prefetched_bytes.load(.monotonic);
        result.quarantine_operation = @intFromEnum(self.last_quarantine);
        result.quarantine_errno = self.last_quarantine_errno;
        var modules = self.modules.keyIterator();
        while (modules.next()) |module| result.image_bytes += module.*.image_bytes();
        result.host_memories = self.host_memories.live_count();
        const host = &self.host_memories.counters;
        result.host_pages_restored = host.pages_restored.load(.monotonic);
        result.host_full_resets = host.full_resets.load(.monotonic);
        result.host_image_switches = host.image_switches.load(.monotonic);
        result.host_tracking_unavailable = @intCast(host_memory.tracking_unavailable_reason());
        result.host_resets_background = host.resets_background.load(.monotonic);
        result.host_resets_inline = host.resets_inline.load(.monotonic);
        result.host_resets_claimed = host.resets_claimed.load(.monotonic);
        result.host_reset_wakes = host.reset_wakes.load(.monotonic);
        if (self.pool) |*pool| {
            result.live_instances = pool.index_allocator.live_count() - self.quarantined_slots;
            result.instance_capacity = pool.limits.instance_count;
            result.memory_slot_bytes = pool.layout.memory_slot_bytes;
            result.memory_pool_bytes = pool.layout.memory_pool_bytes;
            result.table_slot_bytes = pool.layout.table_slot_bytes;
            result.table_pool_bytes = pool.layout.table_pool_bytes;
            result.stack_pool_bytes = pool.layout.stack_pool_bytes;
            if (self.handler) |handler| {
                result.uffd_pages_zeroed = handler.counters.pages_zeroed.load(.monotonic);
                result.uffd_pages_copied = handler.counters.pages_copied.load(.monotonic);
                result.uffd_guard_faults = handler.counters.guard_faults.load(.monotonic);
            }
        } else {
            result.live_instances = self.on_demand.live_count;
            result.instance_capacity = on_demand_mod.max_instances;
            result.memory_slot_bytes = self.on_demand.memory_reservation_bytes;
        }
        return result;
    }
};
