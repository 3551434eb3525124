/*
 * handlers.h — the built-in handlers, shared by the CUDA kernels
 * (kernels/echo.cu, kernels/scale.cu, kernels/faults.cu) and the host
 * fallback (kernels/host/fallback.cpp): one source, both backends.
 *
 * A handler is built from the control block's `param` word and called once
 * per request; see rb_serve in ringbridge.cuh for the contract. Payloads are
 * processed in whole 16-byte chunks (plain vector loads and stores straight
 * from/to the slots in the slot format, from/to block-shared buffers in the
 * lane format: the same handler serves both); the bytes of the last chunk
 * past `len` are padding, read and written but never part of a message.
 */
#ifndef RINGBRIDGE_HANDLERS_H
#define RINGBRIDGE_HANDLERS_H

#include "ringbridge.cuh"

/* Error-reply codes (the reply's flags when its kind is RB_KIND_ERROR);
   mirrored in src/kernels.rs. */
#define RB_SCALE_ERR_BAD_LEN 1   /* scale_f32: len is not a multiple of 4 */
#define RB_ERR_REPLY_TOO_LONG 2  /* the reply would not fit a K2H slot */

/* Adds 1 to each byte of x, wrapping, without carries between bytes: the low
   7 bits of each byte cannot carry out of it, and bit 7 is fixed up by XOR. */
RB_INLINE uint32_t rb_bytes_plus_one(uint32_t x) {
    return ((x & 0x7f7f7f7fu) + 0x01010101u) ^ (x & 0x80808080u);
}

/* echo: reply = request payload with every byte + 1 (wrapping), same len,
   flags echoed. The parameter is unused. */
struct rb_echo_handler {
    RB_DEVICE explicit rb_echo_handler(uint64_t) {}
    RB_DEVICE int operator()(const rb_msg_header& in, const uint8_t* in_payload, rb_msg_header& out,
                             uint8_t* out_payload, uint32_t out_capacity) const {
        if (in.len > out_capacity) return RB_ERR_REPLY_TOO_LONG;
        rb_map16(in_payload, out_payload, in.len, [](rb_vec16 v) {
            v.x = rb_bytes_plus_one(v.x);
            v.y = rb_bytes_plus_one(v.y);
            v.z = rb_bytes_plus_one(v.z);
            v.w = rb_bytes_plus_one(v.w);
            return v;
        });
        out.len = in.len;
        return 0;
    }
};

/* scale_f32: the payload is an array of little-endian f32; reply[i] =
   x[i] * factor (IEEE round-to-nearest multiply, no fast-math, denormals
   kept), where factor is the f32 in the low 32 bits of ctl->param. A len
   that is not a multiple of 4 gets an error reply RB_SCALE_ERR_BAD_LEN. */
struct rb_scale_f32_handler {
    float factor;
    RB_DEVICE explicit rb_scale_f32_handler(uint64_t param) : factor(rb_u32_as_f32((uint32_t)param)) {}
    RB_DEVICE int operator()(const rb_msg_header& in, const uint8_t* in_payload, rb_msg_header& out,
                             uint8_t* out_payload, uint32_t out_capacity) const {
        if (in.len % 4 != 0) return RB_SCALE_ERR_BAD_LEN;
        if (in.len > out_capacity) return RB_ERR_REPLY_TOO_LONG;
        const float k = factor;
        rb_map16(in_payload, out_payload, in.len, [k](rb_vec16 v) {
            v.x = rb_f32_as_u32(rb_u32_as_f32(v.x) * k);
            v.y = rb_f32_as_u32(rb_u32_as_f32(v.y) * k);
            v.z = rb_f32_as_u32(rb_u32_as_f32(v.z) * k);
            v.w = rb_f32_as_u32(rb_u32_as_f32(v.w) * k);
            return v;
        });
        out.len = in.len;
        return 0;
    }
};

#endif /* RINGBRIDGE_HANDLERS_H */
