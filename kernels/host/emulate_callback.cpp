// The block emulation of a handler written in Rust (ringbridge's
// `Kernel::RustHandler`): the callback serve loop of serve_host.h, built with
// RB_EMULATE_BLOCK into ringbridge's own emulation library
// (libringbridge_callback_emulation.so, with block_emulation.cpp), which
// the bridge loads only when asked to emulate a block.
#define RB_EMULATE_BLOCK 1
#include "host/serve_host.h"

using namespace rb_detail;  // ringbridge's own host code

namespace {

struct callback {
    rb_host_handler_fn fn;
    void* ctx;
};

int32_t serve_thread(void* ctl, void* h2k, void* k2h, const void* arg) {
    const callback* c = static_cast<const callback*>(arg);
    return rb_serve_callback(static_cast<rb_control*>(ctl), static_cast<rb_ring*>(h2k), static_cast<rb_ring*>(k2h),
                             c->fn, c->ctx);
}

}  // namespace

// Serves with `fn` on a block of `nthreads` (1 to 1024) emulated threads
// until terminate or failure; returns thread 0's final status, or -1 for bad
// arguments or a thread that could not be created.
extern "C" RB_EMU_EXPORT int32_t rb_emulate_callback(void* ctl, void* h2k, void* k2h, rb_host_handler_fn fn,
                                                     void* fn_ctx, uint32_t nthreads) {
    if (!rb_host_args_ok(ctl, h2k, k2h, fn)) return -1;
    const callback c{fn, fn_ctx};
    return rb_emu_run(nthreads, serve_thread, ctl, h2k, k2h, &c);
}
