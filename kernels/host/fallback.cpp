// The host fallback: ringbridge's device half (kernels/ringbridge.cuh and the
// built-in handlers of kernels/handlers.h), compiled by the host C++ compiler
// and run as a block of one thread on a CPU thread. Built by build.rs into
// the static library `ringbridge_fallback`; declared in Rust in
// src/kernels.rs (`ffi`).
#include <stdint.h>

#include "handlers.h"
#include "ringbridge.cuh"

extern "C" {

// A handler implemented by the caller (Rust): same contract as a device
// handler (0: reply; > 0: error reply with that code; < 0: fatal;
// RB_HANDLER_PANICKED: fatal, RB_ERR_HANDLER_PANICKED). Must not unwind.
typedef int32_t (*rb_host_handler_fn)(void* ctx, const rb_msg_header* in, const uint8_t* in_payload,
                                      rb_msg_header* out, uint8_t* out_payload, uint32_t out_capacity);

// Runs the serve loop on the calling thread until terminate or failure.
// ctl, h2k, k2h: the control block and the two ring headers, 128-byte aligned.
// handler_id: 0 echo, 1 scale_f32, 2 fn(fn_ctx, ...).
// Returns the final status (RB_STATUS_STOPPED or RB_STATUS_FAILED), or -1 for
// an unknown handler_id, a null or misaligned pointer, or id 2 with fn null.
int32_t rb_host_serve(void* ctl, void* h2k, void* k2h, uint32_t handler_id, rb_host_handler_fn fn, void* fn_ctx);

}  // extern "C"

namespace {

struct rb_callback_handler {
    rb_host_handler_fn fn;
    void* ctx;
    int operator()(const rb_msg_header& in, const uint8_t* in_payload, rb_msg_header& out, uint8_t* out_payload,
                   uint32_t out_capacity) const {
        return fn(ctx, &in, in_payload, &out, out_payload, out_capacity);
    }
};

bool aligned(const void* p) { return p != nullptr && reinterpret_cast<uintptr_t>(p) % RB_LINE == 0; }

}  // namespace

extern "C" int32_t rb_host_serve(void* ctl_, void* h2k_, void* k2h_, uint32_t handler_id, rb_host_handler_fn fn,
                                 void* fn_ctx) {
    if (!aligned(ctl_) || !aligned(h2k_) || !aligned(k2h_)) return -1;
    rb_control* ctl = static_cast<rb_control*>(ctl_);
    rb_ring* h2k = static_cast<rb_ring*>(h2k_);
    rb_ring* k2h = static_cast<rb_ring*>(k2h_);
    // RELAXED: written by the host before this thread was started.
    const uint64_t param = rb_ld_relaxed(&ctl->param);
    switch (handler_id) {
        case 0: {
            rb_echo_handler h(param);
            return rb_serve(ctl, h2k, k2h, h);
        }
        case 1: {
            rb_scale_f32_handler h(param);
            return rb_serve(ctl, h2k, k2h, h);
        }
        case 2: {
            if (fn == nullptr) return -1;
            rb_callback_handler h{fn, fn_ctx};
            return rb_serve(ctl, h2k, k2h, h);
        }
        default:
            return -1;
    }
}
