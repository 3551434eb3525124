/*
 * ringbridge/entry.h — internal to ringbridge.cuh, which includes it (in
 * order, after the headers before it): not for handlers to include or use.
 *
 * The entry-point macros: RB_KERNEL_ENTRY on the GPU, for the host
 * fallback, and for the block emulation.
 */
#ifndef RINGBRIDGE_DETAIL_ENTRY_H
#define RINGBRIDGE_DETAIL_ENTRY_H

/*
 * The largest block RB_KERNEL_ENTRY's kernels are compiled for: nvcc fits the
 * handler's registers to it, so a handler built for 128 threads need not
 * spill to fit 1024. Define it (e.g. ringbridge_build::Kernels::define(
 * "RB_MAX_BLOCK_THREADS", Some("128"))) to the block size you launch with;
 * a larger block is then refused at launch.
 */
#ifndef RB_MAX_BLOCK_THREADS
#define RB_MAX_BLOCK_THREADS 1024
#endif

#if RB_ON_GPU
/*
 * Defines a persistent-kernel entry point serving `HandlerType`:
 *   extern "C" __global__ void name(rb_control* ctl, rb_ring* h2k, rb_ring* k2h,
 *                                   const __grid_constant__ rb_args args)
 * Each thread builds its handler (rb_make_handler), then serves.
 * __launch_bounds__(threads): any block size up to `threads` launches
 * (RB_KERNEL_ENTRY: RB_MAX_BLOCK_THREADS). Write it at the start of a line:
 * ringbridge-build lists a source's entry points from its
 * `RB_KERNEL_ENTRY(` and `RB_KERNEL_ENTRY_BOUNDED(` lines.
 */
#define RB_KERNEL_ENTRY_BOUNDED(name, HandlerType, threads)                                          \
    extern "C" __global__ void __launch_bounds__(threads)                                            \
        name(::rb_detail::rb_control* ctl, ::rb_detail::rb_ring* h2k, ::rb_detail::rb_ring* k2h, const __grid_constant__ ::rb_detail::rb_args args) {    \
        uint64_t param_error = 0;                                                                     \
        HandlerType handler = ::rb_detail::rb_make_handler<HandlerType>(args, param_error);                       \
        ::rb_detail::rb_call_ring_setup(ctl, h2k, k2h);                                              \
        (void)::rb_detail::rb_serve(ctl, h2k, k2h, handler, param_error);                                         \
    }
#elif defined(RB_EMULATE_BLOCK)
namespace rb_detail {

/*
 * The GPU entry's parameter space, as cuLaunchKernel lays it out for
 * name(rb_control*, rb_ring*, rb_ring*, const rb_args): three 8-byte
 * pointers at 0, 8 and 16, then the rb_args at the next multiple of its
 * alignment. The test simulator (sim-driver) packs a launch's parameters by
 * it and hands them to name__rb_sim_launch, which reads them back here.
 */
static_assert(sizeof(void*) == 8, "the GPU entry's pointers are 8 bytes");
constexpr uint32_t rb_sim_ptrs_end = 3 * 8;
constexpr uint32_t rb_sim_args_offset =
    (rb_sim_ptrs_end + (uint32_t)alignof(rb_args) - 1) / (uint32_t)alignof(rb_args) * (uint32_t)alignof(rb_args);
constexpr uint32_t rb_sim_params_size = rb_sim_args_offset + (uint32_t)sizeof(rb_args);

/* name__rb_sim_params: fills the first min(4, cap) (offset, size) pairs,
   returns 4 (the parameter count), so a caller can size its arrays first. */
inline uint32_t rb_sim_params(uint32_t* offsets, uint32_t* sizes, uint32_t cap) {
    const uint32_t off[4] = {0, 8, 16, rb_sim_args_offset};
    const uint32_t size[4] = {8, 8, 8, (uint32_t)sizeof(rb_args)};
    for (uint32_t i = 0; i < 4 && i < cap; ++i) {
        if (offsets != nullptr) offsets[i] = off[i];
        if (sizes != nullptr) sizes[i] = size[i];
    }
    return 4;
}

/* name__rb_sim_launch's body: unpacks the parameter space and runs block
   `block_index` on nthreads emulated threads. The rb_args is copied to a
   local because the simulator's buffer may be only 8-byte aligned while
   rb_args is 16; the local outlives the serve, as rb_emu_run_block joins
   every thread (or, after a trap, never returns). */
inline int32_t rb_sim_launch(const void* params, uint32_t params_size, uint32_t block_index, uint32_t nthreads,
                             uint32_t max_threads, rb_emu_thread_fn thread) {
    if (params == nullptr || params_size != rb_sim_params_size || nthreads == 0 || nthreads > max_threads)
        return -1;
    const uint8_t* p = static_cast<const uint8_t*>(params);
    void* regions[3];
    memcpy(regions, p, sizeof regions);
    if (!rb_host_regions_ok(regions[0], regions[1], regions[2])) return -1;
    rb_args args;
    memcpy(&args, p + rb_sim_args_offset, sizeof args);
    rb_emu_as_gpu = true; /* a GPU launch: idle as the GPU build does */
    return rb_emu_run_block(block_index, nthreads, thread, regions[0], regions[1], regions[2], &args);
}

}  // namespace rb_detail

/*
 * The same line in the block emulation's build (ringbridge-build's
 * lib<stem>_emulation.so) defines
 *   extern "C" int32_t name__rb_emulate(void* ctl, void* h2k, void* k2h, const void* args,
 *                                       uint32_t nthreads)
 * which serves region 0's rings (block 0: no stripes) on a block of
 * nthreads emulated threads (at most `threads`), each building its handler
 * from *args, until terminate or failure; returns thread 0's final status,
 * or -1 for bad arguments. For the test simulator (sim-driver), which runs
 * a launch's blocks through this library, it also defines
 *   extern "C" int32_t name__rb_sim_launch(const void* params, uint32_t params_size,
 *                                          uint32_t block_index, uint32_t nthreads)
 * which runs block `block_index` of a launch on nthreads emulated threads,
 * its parameters the GPU entry's parameter space (rb_sim_params_size bytes,
 * laid out as name__rb_sim_params says); the block picks its own region by
 * its index (rb_select_stripe), as on the GPU. Returns thread 0's final
 * status, RB_STATUS_LAUNCHING for a block without a region, -1 for null
 * params, a wrong params_size, nthreads 0 or over `threads`, or a null or
 * misaligned region pointer.
 *   extern "C" uint32_t name__rb_sim_max_threads(void)
 * returns `threads` (the GPU entry's __launch_bounds__), and
 *   extern "C" uint32_t name__rb_sim_params(uint32_t* offsets, uint32_t* sizes, uint32_t cap)
 * fills the (offset, size) of the parameters, at most cap of them, and
 * returns their count, 4: {0,8} {8,8} {16,8} {32, sizeof(rb_args)}.
 */
#define RB_KERNEL_ENTRY_BOUNDED(name, HandlerType, threads)                                          \
    static int32_t name##__rb_emulated_thread(void* ctl, void* h2k, void* k2h, const void* args) {   \
        uint64_t param_error = 0;                                                                     \
        HandlerType handler = ::rb_detail::rb_make_handler<HandlerType>(*static_cast<const ::rb_detail::rb_args*>(args), param_error); \
        ::rb_detail::rb_call_ring_setup(static_cast<::rb_detail::rb_control*>(ctl), static_cast<::rb_detail::rb_ring*>(h2k), \
                                        static_cast<::rb_detail::rb_ring*>(k2h));                    \
        return ::rb_detail::rb_serve(static_cast<::rb_detail::rb_control*>(ctl), static_cast<::rb_detail::rb_ring*>(h2k),                   \
                        static_cast<::rb_detail::rb_ring*>(k2h), handler, param_error);                           \
    }                                                                                                \
    extern "C" RB_EMU_EXPORT int32_t name##__rb_emulate(void* ctl, void* h2k, void* k2h, const void* args, \
                                                        uint32_t nthreads) {                         \
        if (!::rb_detail::rb_host_regions_ok(ctl, h2k, k2h) || args == nullptr || nthreads > (uint32_t)(threads)) \
            return -1;                                                                               \
        return rb_emu_run(nthreads, name##__rb_emulated_thread, ctl, h2k, k2h, args);                \
    }                                                                                                \
    extern "C" RB_EMU_EXPORT int32_t name##__rb_sim_launch(const void* params, uint32_t params_size,  \
                                                           uint32_t block_index, uint32_t nthreads) { \
        return ::rb_detail::rb_sim_launch(params, params_size, block_index, nthreads, (uint32_t)(threads), \
                                          name##__rb_emulated_thread);                               \
    }                                                                                                \
    extern "C" RB_EMU_EXPORT uint32_t name##__rb_sim_max_threads(void) { return (uint32_t)(threads); } \
    extern "C" RB_EMU_EXPORT uint32_t name##__rb_sim_params(uint32_t* offsets, uint32_t* sizes, uint32_t cap) { \
        return ::rb_detail::rb_sim_params(offsets, sizes, cap);                                       \
    }
#else
/*
 * The same line compiled by a host C++ compiler (ringbridge-build's host
 * build of a .cu file) defines the entry the fallback calls instead:
 *   extern "C" int32_t name__rb_host(void* ctl, void* h2k, void* k2h, uint32_t block,
 *                                    const void* args)
 * run on the calling thread as block `block` of a striped group (0 for a
 * plain bridge; ctl, h2k and k2h are region 0's, see rb_select_stripe). It
 * builds the handler from *args (an rb_args that outlives the call) and
 * serves until terminate or failure; returns the final status
 * (RB_STATUS_STOPPED or RB_STATUS_FAILED), RB_STATUS_LAUNCHING when the
 * group has no region for `block`, or -1 for a null or misaligned region or
 * null args. rb_host_block_index is a C++17 inline variable: defined once
 * however many kernels' libraries are linked together. It also defines
 *   extern "C" uint32_t name__rb_traits(void)
 * the handler's RB_TRAIT_* bits, which the host reads to pick a format.
 */
#define RB_KERNEL_ENTRY_BOUNDED(name, HandlerType, threads)                                          \
    /* The serve loop in a function of its own, as it was before calls:  \
       its code is the same whether or not the entry sets up calls. */    \
    __attribute__((noinline)) static int32_t name##__rb_host_serve(void* ctl, void* h2k, void* k2h, const void* args) { \
        uint64_t param_error = 0;                                                                     \
        HandlerType handler = ::rb_detail::rb_make_handler<HandlerType>(*static_cast<const ::rb_detail::rb_args*>(args), param_error); \
        return ::rb_detail::rb_serve(static_cast<::rb_detail::rb_control*>(ctl), static_cast<::rb_detail::rb_ring*>(h2k),                   \
                        static_cast<::rb_detail::rb_ring*>(k2h), handler, param_error);                           \
    }                                                                                                \
    extern "C" int32_t name##__rb_host(void* ctl, void* h2k, void* k2h, uint32_t block, const void* args) { \
        if (!::rb_detail::rb_host_regions_ok(ctl, h2k, k2h) || args == nullptr) return -1;                       \
        ::rb_detail::rb_host_block_index = block;                                                                 \
        ::rb_detail::rb_call_ring_setup(static_cast<::rb_detail::rb_control*>(ctl), static_cast<::rb_detail::rb_ring*>(h2k), \
                                        static_cast<::rb_detail::rb_ring*>(k2h));                    \
        return name##__rb_host_serve(ctl, h2k, k2h, args);                                           \
    }                                                                                                \
    extern "C" uint32_t name##__rb_traits(void) { return ::rb_detail::rb_traits_of<HandlerType>(); }
#endif

/* The common case: bounded by RB_MAX_BLOCK_THREADS (default 1024). */
#define RB_KERNEL_ENTRY(name, HandlerType) RB_KERNEL_ENTRY_BOUNDED(name, HandlerType, RB_MAX_BLOCK_THREADS)

#endif /* RINGBRIDGE_DETAIL_ENTRY_H */
