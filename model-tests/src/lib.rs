//! One kernel per handler model of `kernels/ringbridge.cuh`, built for both
//! backends and the block emulation through `ringbridge-build`, as a user's
//! crate builds its own; the tests are in `tests/`.

include!(concat!(env!("OUT_DIR"), "/model_kernels.rs"));

/// `models_param`'s parameter: larger than 256 bytes, read by every thread.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub struct TableParam {
    /// Added to every reply byte.
    pub add: u32,
    /// Padding to keep `table` where the C++ struct has it.
    pub pad: u32,
    /// `reply[i] = table[request[i]] + add`.
    pub table: [u8; 256],
    /// The parameter's last bytes, replied after the mapped payload.
    pub tail: [u8; 64],
}

/// The PTX nvcc made of `kernels/models.cu`, when it ran.
pub fn ptx() -> Option<String> {
    let path = concat!(env!("OUT_DIR"), "/models.ptx");
    std::fs::read_to_string(path).ok()
}
