// Kernels of `ringbridge compare`: the alternatives to a ringbridge bridge
// that a user would otherwise pick, all doing the same echo work (reply =
// request with every byte + 1, wrapping).
//
// - ringbridge_cmp_oneshot: one launch per message. Used over mapped pinned
//   host memory (alternative "launch + sync") and over device buffers with
//   copies around it ("copy + launch + copy", and the CUDA graph of that).
// - ringbridge_cmp_volatile_fence: a persistent kernel that polls a volatile
//   sequence word in mapped host memory and uses `__threadfence_system()`
//   before reading the request and before publishing the reply: the usual
//   hand-rolled protocol, for comparison with ringbridge's acquire/release
//   rings.
//
// These entries do not use the ring layout, so they are not declared with
// RB_KERNEL_ENTRY (and are not listed in the image's `entries`).

#include <stdint.h>

// One-shot echo: out[i] = in[i] + 1 for i < len. Any grid and block shape;
// the host launches ceil(len / 128) blocks of 128 threads (at least one).
extern "C" __global__ void ringbridge_cmp_oneshot(const uint8_t* in, uint8_t* out, uint32_t len) {
    const uint32_t stride = gridDim.x * blockDim.x;
    for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < len; i += stride) {
        out[i] = (uint8_t)(in[i] + 1u);
    }
}

// Word indices in the control words `ctl` of ringbridge_cmp_volatile_fence
// (each on its own 128-byte line).
#define RB_CMP_REQUEST_SEQ 0   // host -> kernel: sequence of the waiting request
#define RB_CMP_REPLY_SEQ 16    // kernel -> host: sequence of the last reply
#define RB_CMP_LEN 32          // host, before launch: payload bytes
#define RB_CMP_STOP 0xFFFFFFFFFFFFFFFFull  // request sequence that stops the kernel

// Persistent echo with the "volatile + __threadfence_system()" protocol.
// Launch with ONE block (any size up to 1024). Requests carry sequences
// 1, 2, 3, ...: the host writes the payload to `in`, then the sequence to
// ctl[RB_CMP_REQUEST_SEQ]; thread 0 polls that word with volatile loads,
// the block fences, reads the payload (volatile), writes the reply to `out`,
// fences again, and thread 0 publishes the sequence in ctl[RB_CMP_REPLY_SEQ].
// The kernel returns when the request sequence is RB_CMP_STOP.
extern "C" __global__ void ringbridge_cmp_volatile_fence(unsigned long long* ctl, const uint8_t* in,
                                                         uint8_t* out) {
    __shared__ unsigned long long seq;
    volatile unsigned long long* vctl = ctl;
    const volatile uint8_t* vin = in;
    volatile uint8_t* vout = out;
    const uint32_t len = (uint32_t)vctl[RB_CMP_LEN];
    unsigned long long expect = 1;
    for (;;) {
        if (threadIdx.x == 0) {
            unsigned long long s;
            do {
                s = vctl[RB_CMP_REQUEST_SEQ];
            } while (s != expect && s != RB_CMP_STOP);
            seq = s;
        }
        __syncthreads();
        const unsigned long long s = seq;
        if (s == RB_CMP_STOP) {
            return;
        }
        __threadfence_system();
        for (uint32_t i = threadIdx.x; i < len; i += blockDim.x) {
            vout[i] = (uint8_t)(vin[i] + 1u);
        }
        __threadfence_system();
        __syncthreads();
        if (threadIdx.x == 0) {
            vctl[RB_CMP_REPLY_SEQ] = s;
            __threadfence_system();
        }
        expect = s + 1;
        // Nobody may read `seq` for the next request before all have read it.
        __syncthreads();
    }
}
