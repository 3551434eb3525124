/*
 * serve_host.h — the host builds' serve loop over a handler written in Rust:
 * a function pointer and its context, called once per request. Shared by
 * the fallback (fallback.cpp, a block of one thread) and the block
 * emulation (block_emulation.cpp, once per emulated CUDA thread), each
 * including it after its own configuration of ringbridge.cuh. Handlers
 * written in C++ need none of this: RB_KERNEL_ENTRY compiled for the host
 * defines their entry (ringbridge.cuh).
 */
#ifndef RINGBRIDGE_SERVE_HOST_H
#define RINGBRIDGE_SERVE_HOST_H

#include "ringbridge.cuh"

/* Part of ringbridge's own host code: it uses the serve loop's internals. */
namespace rb_detail {

/* A handler implemented by the caller (Rust): same contract as a device
   handler (0: reply; > 0: error reply with that code; < 0: fatal;
   RB_HANDLER_PANICKED: fatal, RB_ERR_HANDLER_PANICKED). Must not unwind. */
typedef int32_t (*rb_host_handler_fn)(void* ctx, const rb_msg_header* in, const uint8_t* in_payload,
                                      rb_msg_header* out, uint8_t* out_payload, uint32_t out_capacity);

/* The caller's function as a per-request handler. */
struct rb_callback_handler {
    rb_host_handler_fn fn;
    void* ctx;
    int operator()(const rb_msg_header& in, const uint8_t* in_payload, rb_msg_header& out, uint8_t* out_payload,
                   uint32_t out_capacity) const {
        return fn(ctx, &in, in_payload, &out, out_payload, out_capacity);
    }
};

/* Whether the callback entry's arguments are usable: the three regions
   128-byte aligned (and not null), and a function. */
inline bool rb_host_args_ok(const void* ctl, const void* h2k, const void* k2h, rb_host_handler_fn fn) {
    return rb_host_regions_ok(ctl, h2k, k2h) && fn != nullptr;
}

/* Serves with the caller's function until terminate or failure; returns the
   final status. */
inline int32_t rb_serve_callback(rb_control* ctl, rb_ring* h2k, rb_ring* k2h, rb_host_handler_fn fn, void* fn_ctx) {
    rb_callback_handler h{fn, fn_ctx};
    return rb_serve(ctl, h2k, k2h, h);
}

}  // namespace rb_detail

#endif /* RINGBRIDGE_SERVE_HOST_H */
