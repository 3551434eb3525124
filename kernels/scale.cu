// The built-in scale kernel: the payload is an f32 array, the reply is every
// element times the f32 in the low 32 bits of the control block's param
// (read once at launch). A len not a multiple of 4 gets an error reply with
// code 1. Launch with one block of up to 1024 threads.
#include "handlers.h"

RB_KERNEL_ENTRY(ringbridge_scale_f32, rb_scale_f32_handler)
