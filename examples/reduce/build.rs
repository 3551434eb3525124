//! Builds `kernels/reduce.cu` for both backends: nvcc's fatbin and PTX when
//! nvcc is found, the host fallback's build always; `$OUT_DIR/reduce_kernels.rs`
//! gets the kernel's constructor. The PTX is also embedded for the tests
//! (`$OUT_DIR/reduce_ptx.rs`: `const PTX: Option<&str>`), so a test binary
//! copied to a GPU machine still has it.
fn main() {
    let built = ringbridge_build::Kernels::new()
        .source("kernels/reduce.cu")
        .ptx(true)
        .compile("reduce_kernels");
    let ptx = match &built.images[0].ptx {
        Some(path) => format!("Some(include_str!({:?}))", path.display().to_string()),
        None => "None".to_string(),
    };
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").unwrap());
    let text =
        format!("/// The kernel's PTX, when nvcc built it.\nconst PTX: Option<&str> = {ptx};\n");
    std::fs::write(out.join("reduce_ptx.rs"), text).unwrap();
}
