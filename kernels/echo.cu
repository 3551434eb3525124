// The built-in echo kernel: reply = request with every byte + 1 (wrapping),
// same len, flags echoed. Launch with one block of up to 1024 threads.
#include "handlers.h"

RB_KERNEL_ENTRY(ringbridge_echo, rb_echo_handler)
