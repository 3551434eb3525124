//! Runs the reduce service on `Backend::Auto` (the GPU when there is one,
//! else the host fallback; with `RINGBRIDGE_REQUIRE_GPU=1`, the GPU or
//! failure): a few checked sums and dot products, then the
//! rate of checked requests at two vector lengths.

use std::process::ExitCode;

use reduce::{MAX_ELEMENTS, OP_DOT, XorShift, bridge_builder, reference, result_of};
use ringbridge::{Backend, measure};

fn run() -> Result<(), String> {
    let mut rng = XorShift::new(0x0edc);
    let weights = rng.vector(MAX_ELEMENTS);
    let bridge = bridge_builder(&weights)
        .backend(Backend::Auto)
        .launch()
        .map_err(|e| format!("launch: {e}"))?;
    println!(
        "reduce on {} ({})",
        bridge.backend().name(),
        bridge.backend_reason()
    );
    if std::env::var("RINGBRIDGE_REQUIRE_GPU").is_ok_and(|v| v == "1")
        && bridge.backend() != Backend::Cuda
    {
        return Err(format!(
            "RINGBRIDGE_REQUIRE_GPU=1 but {}",
            bridge.backend_reason()
        ));
    }

    for n in [0, 1, 1000, 4097, MAX_ELEMENTS] {
        let x = rng.vector(n);
        let sum = result_of(
            &bridge
                .round_trip(bytemuck::cast_slice(&x))
                .map_err(|e| e.to_string())?,
        )?;
        let (want, tol) = reference(&x, None);
        bridge
            .send_with_flags(OP_DOT, bytemuck::cast_slice(&x))
            .map_err(|e| e.to_string())?;
        let dot = result_of(&bridge.recv().map_err(|e| e.to_string())?)?;
        let (want_dot, tol_dot) = reference(&x, Some(&weights[..n]));
        if (sum - want).abs() > tol || (dot - want_dot).abs() > tol_dot {
            return Err(format!(
                "n = {n}: sum {sum} (want {want}), dot {dot} (want {want_dot})"
            ));
        }
        println!("n = {n:5}: sum {sum:+.9e}, dot with the weights {dot:+.9e} (both checked)");
    }

    for (n, messages) in [(256, 100_000), (MAX_ELEMENTS, 20_000)] {
        let vectors: Vec<Vec<f32>> = (0..64).map(|_| rng.vector(n)).collect();
        let answers: Vec<(f64, f64)> = vectors.iter().map(|x| reference(x, None)).collect();
        let rate = measure::stream(
            &bridge,
            messages,
            8,
            |i, buf| {
                let bytes: &[u8] = bytemuck::cast_slice(&vectors[i as usize % 64]);
                buf[..bytes.len()].copy_from_slice(bytes);
                bytes.len()
            },
            |i, h, reply| {
                let (want, tol) = answers[i as usize % 64];
                match <[u8; 8]>::try_from(reply).map(f64::from_le_bytes) {
                    Ok(got)
                        if h.kind == ringbridge::layout::KIND_REPLY
                            && (got - want).abs() <= tol =>
                    {
                        Ok(())
                    }
                    _ => Err(format!("sum answered {reply:?}, want {want}")),
                }
            },
        )
        .map_err(|e| format!("stream: {e}"))?;
        println!(
            "sums of {n} f32: {:.0} requests/s, {:.2} GB/s of vectors ({} requests, every answer checked)",
            rate.msgs_per_s,
            rate.bytes_per_s / 1e9,
            rate.messages
        );
    }
    bridge.shutdown().map_err(|e| format!("shutdown: {e}"))
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("reduce: {e}");
            ExitCode::FAILURE
        }
    }
}
