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

/// The PTX nvcc made of `kernels/{kernel}.cu` (`models` or `calls`), when
/// it ran; prints why test `test` skips otherwise, and fails when
/// `RINGBRIDGE_REQUIRE_NVCC=1`.
pub fn ptx_or_skip(test: &str, kernel: &str) -> Option<String> {
    let path = format!("{}/{kernel}.ptx", env!("OUT_DIR"));
    let ptx = std::fs::read_to_string(path).ok();
    if ptx.is_none() {
        assert!(
            std::env::var("RINGBRIDGE_REQUIRE_NVCC").as_deref() != Ok("1"),
            "{test}: RINGBRIDGE_REQUIRE_NVCC=1 but nvcc did not compile kernels/{kernel}.cu"
        );
        println!("{test}: skipped: nvcc did not compile kernels/{kernel}.cu");
    }
    ptx
}

/// The body of PTX entry `name`, from its `.entry` line to its closing brace.
pub fn entry_body<'a>(ptx: &'a str, name: &str) -> &'a str {
    let start = ptx
        .find(&format!(".entry {name}("))
        .unwrap_or_else(|| panic!("no .entry {name}"));
    let rest = &ptx[start..];
    &rest[..rest.find("\n}\n").unwrap_or(rest.len())]
}

/// Whether a GPU serves here; prints why the caller skips otherwise, and
/// fails when `RINGBRIDGE_REQUIRE_GPU=1`.
pub fn gpu_or_skip(test: &str, kernel: &ringbridge::UserKernel) -> bool {
    // Auto picks CUDA exactly when a driver, a GPU and the kernel's fatbin
    // are here, and says why not otherwise.
    match ringbridge::Bridge::builder()
        .backend(ringbridge::Backend::Auto)
        .kernel(ringbridge::Kernel::User(kernel.clone()))
        .resolve_backend()
    {
        Ok((ringbridge::Backend::Cuda, _)) => {
            let sim = ringbridge::cuda::driver_library().is_some_and(|l| l.simulated);
            assert!(
                !(sim && std::env::var("RINGBRIDGE_REQUIRE_GPU").as_deref() == Ok("1")),
                "{test}: RINGBRIDGE_REQUIRE_GPU=1 but the driver is the simulated one"
            );
            println!(
                "{test}: on {}",
                if sim { "the simulated driver" } else { "a GPU" }
            );
            true
        }
        other => {
            let why = match other {
                Ok((_, why)) => why,
                Err(e) => e.to_string(),
            };
            assert!(
                std::env::var("RINGBRIDGE_REQUIRE_GPU").as_deref() != Ok("1"),
                "{test}: RINGBRIDGE_REQUIRE_GPU=1 but no GPU serves: {why}"
            );
            println!("{test}: skipped: no GPU ({why})");
            false
        }
    }
}
