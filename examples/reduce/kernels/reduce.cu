/*
 * reduce.cu — a compute service: the whole thread block reduces one request
 * at a time (a block-cooperative handler, see ringbridge.cuh).
 *
 * A request is a vector of little-endian f32 (any length that fits a slot);
 * its header's flags say what to compute:
 *   REDUCE_SUM (0): the sum of the elements;
 *   REDUCE_DOT (1): the dot product with the weights in buffer 0 (f32, set
 *                   by the host when it builds the bridge), over the request's
 *                   length.
 * The reply is the result as one little-endian f64. Errors: REDUCE_ERR_LEN
 * (the length is not whole f32s), REDUCE_ERR_OP (unknown flags),
 * REDUCE_ERR_TOO_LONG (a dot product longer than the weights).
 *
 * Each thread sums a strided share of the vector in f64 (an f32 times an f32
 * is exact in f64), the block then adds the threads' partial sums in a tree
 * in shared scratch, with a barrier per level. Any block size works, 1 (the
 * host fallback) included, and any vector length.
 */
#include "ringbridge.cuh"

#define REDUCE_SUM 0u
#define REDUCE_DOT 1u

#define REDUCE_ERR_LEN 1
#define REDUCE_ERR_OP 2
#define REDUCE_ERR_TOO_LONG 3

struct reduce_handler {
    static constexpr bool rb_cooperative = true;
    /* One f64 partial sum per thread of the largest block. */
    static constexpr uint32_t rb_scratch_bytes = RB_MAX_BLOCK_THREADS * sizeof(double);

    const float* weights;
    uint64_t weights_len;

    RB_DEVICE explicit reduce_handler(const rb_launch& l)
        : weights(l.buffer<const float>(0)), weights_len(l.buffer_bytes(0) / sizeof(float)) {}

    RB_DEVICE int operator()(rb_block& b, const rb_msg_header& in, const uint8_t* in_payload, rb_msg_header& out,
                             uint8_t* out_payload, uint32_t out_capacity) const {
        /* Every thread sees the same header, so these returns are taken by
           the whole block or by none: no barrier is left unpaired. */
        if (in.len % sizeof(float) != 0) return REDUCE_ERR_LEN;
        if (in.flags != REDUCE_SUM && in.flags != REDUCE_DOT) return REDUCE_ERR_OP;
        const uint32_t n = in.len / (uint32_t)sizeof(float);
        if (in.flags == REDUCE_DOT && n > weights_len) return REDUCE_ERR_TOO_LONG;
        if (out_capacity < sizeof(double)) return RB_ERR_REPLY_TOO_LONG;

        const uint32_t t = b.thread(), threads = b.size();
        /* 16-byte aligned (the serve loop's promise): f32 loads are fine. */
        const float* x = reinterpret_cast<const float*>(in_payload);
        double acc = 0.0;
        if (in.flags == REDUCE_DOT) {
            for (uint32_t i = t; i < n; i += threads) acc += (double)x[i] * (double)weights[i];
        } else {
            for (uint32_t i = t; i < n; i += threads) acc += (double)x[i];
        }

        double* partial = b.scratch<double>();
        partial[t] = acc;
        b.sync();
        /* Tree over the next power of two: at each level thread t < half
           adds its partner t + half, when there is one. */
        uint32_t width = 1;
        while (width < threads) width *= 2;
        for (uint32_t half = width / 2; half > 0; half /= 2) {
            if (t < half && t + half < threads) partial[t] += partial[t + half];
            b.sync();
        }
        if (t == 0) {
            const double result = partial[0];
            memcpy(out_payload, &result, sizeof result);
            out.len = sizeof result;
        }
        return 0;
    }
};

RB_KERNEL_ENTRY(reduce_vectors, reduce_handler)
