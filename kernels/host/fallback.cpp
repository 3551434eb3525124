// The host fallback's serve loop for handlers written in Rust: ringbridge's
// device half (kernels/ringbridge.cuh) compiled by the host C++ compiler and
// run as a block of one thread on a CPU thread, calling a Rust function per
// request. Built by build.rs into the static library `ringbridge_fallback`;
// declared in Rust in src/kernels.rs (`ffi`). The kernels written in C++
// (the built-in echo and scale, and users' kernels) have host entries of
// their own, defined by RB_KERNEL_ENTRY (ringbridge-build compiles them).
#include <stdint.h>

#include "host/serve_host.h"

using namespace rb_detail;  // ringbridge's own host code
#include "ringbridge.cuh"

extern "C" {

// Runs the serve loop with `fn` on the calling thread until terminate or
// failure. ctl, h2k, k2h: the control block and the two ring headers,
// 128-byte aligned. block: the block this thread plays in a striped group
// (0 for a plain bridge): ctl, h2k and k2h are region 0's, and block b
// serves region b (rb_select_stripe), as block b of a striped launch does on
// the GPU. Returns the final status (RB_STATUS_STOPPED or RB_STATUS_FAILED),
// or -1 for a null or misaligned pointer or fn null; RB_STATUS_LAUNCHING when
// the group has no region for this block.
int32_t rb_host_serve_callback(void* ctl, void* h2k, void* k2h, rb_host_handler_fn fn, void* fn_ctx, uint32_t block);

// The host's side of the doorbells (src/wait.rs), the same futex the serve
// loop uses: parks while *word's low half is `expected` (at most timeout_ns;
// may return early), and wakes every thread parked on *word. word: a
// doorbell of a control block.
void rb_host_doorbell_park(uint64_t* word, uint32_t expected, uint64_t timeout_ns);
void rb_host_doorbell_wake(uint64_t* word);
// The serve loop's wake of the host's doorbell (rb_wake_host), for the
// host-side tests of the doorbell protocol. ctl: a live control block.
void rb_host_doorbell_wake_host(void* ctl);

}  // extern "C"

extern "C" void rb_host_doorbell_park(uint64_t* word, uint32_t expected, uint64_t timeout_ns) {
    rb_host_park_while(word, expected, timeout_ns);
}

extern "C" void rb_host_doorbell_wake(uint64_t* word) { rb_host_wake_on(word); }

extern "C" void rb_host_doorbell_wake_host(void* ctl) { rb_wake_host(static_cast<rb_control*>(ctl)); }

extern "C" int32_t rb_host_serve_callback(void* ctl, void* h2k, void* k2h, rb_host_handler_fn fn, void* fn_ctx,
                                          uint32_t block) {
    if (!rb_host_args_ok(ctl, h2k, k2h, fn)) return -1;
    rb_host_block_index = block;
    return rb_serve_callback(static_cast<rb_control*>(ctl), static_cast<rb_ring*>(h2k), static_cast<rb_ring*>(k2h), fn,
                             fn_ctx);
}
