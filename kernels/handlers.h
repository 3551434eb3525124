/*
 * handlers.h — the built-in handlers, shared by the CUDA kernels
 * (kernels/echo.cu, kernels/scale.cu, kernels/faults.cu) and the host
 * fallback (kernels/host/fallback.cpp): one source, both backends.
 *
 * A handler is built from the control block's `param` word and called once
 * per request (or, chunkwise, admitted per request and mapped per 16-byte
 * chunk); see ringbridge.cuh for the contract. Payloads are processed in
 * whole 16-byte chunks (plain vector loads and stores straight
 * from/to the slots in the slot format, from/to block-shared buffers in the
 * lane format: the same handler serves both); the bytes of the last chunk
 * past `len` are padding, read and written but never part of a message.
 */
#ifndef RINGBRIDGE_HANDLERS_H
#define RINGBRIDGE_HANDLERS_H

#include "ringbridge.cuh"

/* Error-reply codes (the reply's flags when its kind is RB_KIND_ERROR):
   RB_SCALE_ERR_BAD_LEN (scale_f32: len is not a multiple of 4) and
   RB_ERR_REPLY_TOO_LONG (the reply would not fit a K2H slot), from
   src/layout.rs through ringbridge_layout.h. */

/* Adds 1 to each byte of x, wrapping, without carries between bytes: the low
   7 bits of each byte cannot carry out of it, and bit 7 is fixed up by XOR. */
RB_INLINE uint32_t rb_bytes_plus_one(uint32_t x) {
    return ((x & 0x7f7f7f7fu) + 0x01010101u) ^ (x & 0x80808080u);
}

/* echo: reply = request payload with every byte + 1 (wrapping), same len,
   flags echoed. The parameter is unused. Chunkwise (see ringbridge.cuh):
   the slot format spreads a batch's chunks over the whole block. */
struct rb_echo_handler {
    static constexpr bool rb_chunkwise = true;
    RB_DEVICE explicit rb_echo_handler(uint64_t) {}
    RB_DEVICE int admit(const rb_msg_header& in, uint32_t out_capacity) const {
        return in.len > out_capacity ? RB_ERR_REPLY_TOO_LONG : 0;
    }
    RB_DEVICE rb_vec16 chunk(rb_vec16 v) const {
        v.x = rb_bytes_plus_one(v.x);
        v.y = rb_bytes_plus_one(v.y);
        v.z = rb_bytes_plus_one(v.z);
        v.w = rb_bytes_plus_one(v.w);
        return v;
    }
};

/* scale_f32: the payload is an array of little-endian f32; reply[i] =
   x[i] * factor (IEEE round-to-nearest multiply, no fast-math, denormals
   kept), where factor is the f32 in the low 32 bits of ctl->param. A len
   that is not a multiple of 4 gets an error reply RB_SCALE_ERR_BAD_LEN.
   Chunkwise, like echo. */
struct rb_scale_f32_handler {
    static constexpr bool rb_chunkwise = true;
    float factor;
    RB_DEVICE explicit rb_scale_f32_handler(uint64_t param) : factor(rb_u32_as_f32((uint32_t)param)) {}
    RB_DEVICE int admit(const rb_msg_header& in, uint32_t out_capacity) const {
        if (in.len % 4 != 0) return RB_SCALE_ERR_BAD_LEN;
        return in.len > out_capacity ? RB_ERR_REPLY_TOO_LONG : 0;
    }
    RB_DEVICE rb_vec16 chunk(rb_vec16 v) const {
        v.x = rb_f32_as_u32(rb_u32_as_f32(v.x) * factor);
        v.y = rb_f32_as_u32(rb_u32_as_f32(v.y) * factor);
        v.z = rb_f32_as_u32(rb_u32_as_f32(v.z) * factor);
        v.w = rb_f32_as_u32(rb_u32_as_f32(v.w) * factor);
        return v;
    }
};

#endif /* RINGBRIDGE_HANDLERS_H */
