// Test kernels that fault on purpose, for the fault-handling tests. Each one
// echoes like ringbridge_echo until a request's flags equal RB_FAULT_FLAG,
// then:
//   ringbridge_test_trap             executes __trap() (the launch fails),
//   ringbridge_test_illegal_address  stores through an invalid pointer,
//   ringbridge_test_hang             spins forever in the handler, so the
//                                    heartbeat stops (the block waits on it).
#include "handlers.h"

/* The echo part of a fault handler: these handlers look at each request's
   flags, so they are per-request handlers (rb_chunkwise = false below hides
   echo's flag) that echo through echo's admit + chunk. */
#define RB_ECHO_REST() \
    rb_detail::rb_chunkwise_call(static_cast<const rb_echo_handler&>(*this), in, in_payload, out, out_payload, out_capacity)

struct rb_trap_handler : rb_echo_handler {
    static constexpr bool rb_chunkwise = false;
    RB_DEVICE explicit rb_trap_handler(uint64_t param) : rb_echo_handler(param) {}
    RB_DEVICE int operator()(const rb_msg_header& in, const uint8_t* in_payload, rb_msg_header& out,
                             uint8_t* out_payload, uint32_t out_capacity) const {
        if (in.flags == RB_FAULT_FLAG) __trap();
        return RB_ECHO_REST();
    }
};

struct rb_illegal_address_handler : rb_echo_handler {
    static constexpr bool rb_chunkwise = false;
    RB_DEVICE explicit rb_illegal_address_handler(uint64_t param) : rb_echo_handler(param) {}
    RB_DEVICE int operator()(const rb_msg_header& in, const uint8_t* in_payload, rb_msg_header& out,
                             uint8_t* out_payload, uint32_t out_capacity) const {
        if (in.flags == RB_FAULT_FLAG) {
            // Address 8 is in no mapped range: the store faults with
            // CUDA_ERROR_ILLEGAL_ADDRESS. volatile: it cannot be dropped.
            *reinterpret_cast<volatile uint32_t*>(static_cast<uintptr_t>(8)) = in.flags;
        }
        return RB_ECHO_REST();
    }
};

struct rb_hang_handler : rb_echo_handler {
    static constexpr bool rb_chunkwise = false;
    RB_DEVICE explicit rb_hang_handler(uint64_t param) : rb_echo_handler(param) {}
    RB_DEVICE int operator()(const rb_msg_header& in, const uint8_t* in_payload, rb_msg_header& out,
                             uint8_t* out_payload, uint32_t out_capacity) const {
        if (in.flags == RB_FAULT_FLAG) {
            // A volatile read of the request slot each turn: a side effect
            // the compiler must keep, so the loop is neither removed nor
            // undefined. No heartbeat is written from here.
            const volatile uint32_t* word = reinterpret_cast<const volatile uint32_t*>(in_payload);
            for (;;) {
                (void)*word;
            }
        }
        return RB_ECHO_REST();
    }
};

RB_KERNEL_ENTRY(ringbridge_test_trap, rb_trap_handler)
RB_KERNEL_ENTRY(ringbridge_test_illegal_address, rb_illegal_address_handler)
RB_KERNEL_ENTRY(ringbridge_test_hang, rb_hang_handler)
