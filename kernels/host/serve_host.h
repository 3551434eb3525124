/*
 * serve_host.h — the host builds' entry into the serve loop: a handler
 * chosen by id (0 echo, 1 scale_f32, 2 a caller's function), built from the
 * control block's `param`, then rb_serve. Shared by the fallback
 * (fallback.cpp, a block of one thread) and the block emulation
 * (block_emulation.cpp, once per emulated CUDA thread), each including it
 * after its own configuration of ringbridge.cuh and handlers.h.
 */
#ifndef RINGBRIDGE_SERVE_HOST_H
#define RINGBRIDGE_SERVE_HOST_H

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

/* Whether the entry points' arguments are usable: the three regions 128-byte
   aligned (and not null), a known handler id, a function for id 2. */
inline bool rb_host_args_ok(const void* ctl, const void* h2k, const void* k2h, uint32_t handler_id,
                            rb_host_handler_fn fn) {
    const auto aligned = [](const void* p) { return p != nullptr && reinterpret_cast<uintptr_t>(p) % RB_LINE == 0; };
    return aligned(ctl) && aligned(h2k) && aligned(k2h) && handler_id <= 2 && (handler_id != 2 || fn != nullptr);
}

/* Serves with handler `handler_id` until terminate or failure; returns the
   final status, or -1 for an unknown id or id 2 without a function. */
inline int32_t rb_serve_host(rb_control* ctl, rb_ring* h2k, rb_ring* k2h, uint32_t handler_id, rb_host_handler_fn fn,
                             void* fn_ctx) {
    /* RELAXED: written by the host before the serving thread started. */
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

#endif /* RINGBRIDGE_SERVE_HOST_H */
