fn main() {
    ringbridge_build::Kernels::new()
        .source("kernels/models.cu")
        .ptx(true)
        .compile("model_kernels");
}
