//! Builds `kernels/scan.cu` for both backends: nvcc's fatbin and PTX when
//! nvcc is found, the host fallback's build, the block emulation's and its
//! race-check build (ThreadSanitizer, for `ringbridge::race_check`) always;
//! `$OUT_DIR/scan_kernels.rs` gets the kernel's constructor. The PTX
//! is also embedded for the tests (`$OUT_DIR/scan_ptx.rs`:
//! `const PTX: Option<&str>`), so a test binary copied to a GPU machine
//! still has it.
fn main() {
    let built = ringbridge_build::Kernels::new()
        .source("kernels/scan.cu")
        .race_check(true)
        .ptx(true)
        .compile("scan_kernels");
    let ptx = match &built.images[0].ptx {
        Some(path) => format!("Some(include_str!({:?}))", path.display().to_string()),
        None => "None".to_string(),
    };
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").unwrap());
    let text =
        format!("/// The kernel's PTX, when nvcc built it.\nconst PTX: Option<&str> = {ptx};\n");
    std::fs::write(out.join("scan_ptx.rs"), text).unwrap();
}
