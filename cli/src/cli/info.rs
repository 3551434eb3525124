//! `ringbridge info`: what this machine offers.

use serde::Serialize;

use ringbridge::kernels;

#[derive(Clone, Serialize)]
struct Gpu {
    ordinal: usize,
    name: String,
    compute_capability: String,
    total_memory_bytes: usize,
}

#[derive(Serialize)]
struct Info {
    driver: bool,
    /// The driver library loaded, and whether it is the simulated one.
    driver_library: Option<String>,
    driver_simulated: bool,
    driver_version: Option<i32>,
    /// The first GPU (device 0), as before `gpus` existed.
    gpu: Option<Gpu>,
    /// Every GPU the driver reports, by ordinal.
    gpus: Vec<Gpu>,
    gpu_count: usize,
    gpu_error: Option<String>,
    kernels_compiled: bool,
    kernels_not_compiled_reason: Option<&'static str>,
    nvcc: Option<&'static str>,
    archs: Vec<&'static str>,
    backend: &'static str,
    backend_reason: String,
}

pub(crate) fn run(json: bool) -> anyhow::Result<()> {
    let driver = ringbridge::cuda::driver_available();
    let (gpu_count, mut gpu_error) = match ringbridge::cuda::device_count() {
        Ok(0) => (0, Some("the driver reports no CUDA device".to_string())),
        Ok(n) => (n, None),
        Err(e) => (0, Some(e.to_string())),
    };
    // Every device, by ordinal, each queried once; one that cannot be read
    // is left out and its error kept (the first one) when no other error is
    // known. Device 0 also gives the driver's version and `gpu`.
    let mut gpus = Vec::new();
    let mut driver_version = None;
    for ordinal in 0..gpu_count {
        match ringbridge::cuda::device_info(ordinal) {
            Ok(d) => {
                if ordinal == 0 {
                    driver_version = Some(d.driver_version);
                }
                gpus.push(Gpu {
                    ordinal: d.ordinal,
                    name: d.name,
                    compute_capability: format!(
                        "{}.{}",
                        d.compute_capability.0, d.compute_capability.1
                    ),
                    total_memory_bytes: d.total_memory,
                });
            }
            Err(e) if ordinal == 0 => {
                gpu_error.get_or_insert_with(|| e.to_string());
            }
            Err(e) => {
                gpu_error.get_or_insert_with(|| format!("device {ordinal}: {e}"));
            }
        }
    }
    let gpu = gpus.first().filter(|g| g.ordinal == 0).cloned();
    let (backend, backend_reason) = ringbridge::Bridge::builder().resolve_backend()?;
    let library = ringbridge::cuda::driver_library();
    let info = Info {
        driver,
        driver_library: library.as_ref().map(|l| l.path.display().to_string()),
        driver_simulated: library.as_ref().is_some_and(|l| l.simulated),
        driver_version,
        gpu,
        gpus,
        gpu_count,
        gpu_error,
        kernels_compiled: kernels::KERNELS_COMPILED,
        kernels_not_compiled_reason: (!kernels::KERNELS_COMPILED)
            .then_some(kernels::NOT_COMPILED_REASON),
        nvcc: kernels::NVCC_VERSION,
        archs: kernels::ARCHS.to_vec(),
        backend: backend.name(),
        backend_reason,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&info)?);
        return Ok(());
    }
    match (&info.driver_library, info.driver_simulated) {
        (Some(path), true) => println!("CUDA driver:      simulated ({path}), not a GPU"),
        (Some(path), false) => println!("CUDA driver:      found ({path})"),
        (None, _) if driver => println!("CUDA driver:      found"),
        (None, _) => println!("CUDA driver:      not found"),
    }
    if info.gpus.is_empty() {
        println!(
            "GPU:              none ({})",
            info.gpu_error.as_deref().unwrap_or("unknown")
        );
    }
    for g in &info.gpus {
        println!(
            "GPU {}:            {} (compute capability {}, {} GiB)",
            g.ordinal,
            g.name,
            g.compute_capability,
            g.total_memory_bytes >> 30
        );
    }
    match (info.kernels_compiled, info.nvcc) {
        (true, v) => println!(
            "kernels:          compiled by nvcc {} for {}",
            v.unwrap_or("?"),
            info.archs.join(", ")
        ),
        (false, _) => println!(
            "kernels:          not compiled ({})",
            kernels::NOT_COMPILED_REASON
        ),
    }
    println!(
        "Auto backend:     {} ({})",
        info.backend, info.backend_reason
    );
    Ok(())
}
