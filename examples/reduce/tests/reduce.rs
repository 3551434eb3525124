//! The reduce service on the host fallback (a block of one thread) and on
//! emulated GPU blocks of many threads, every answer checked against the
//! host's `f64` sum within the bound `reduce::reference` states (and
//! exactly, for integer vectors, whose sums `f64` holds exactly in any
//! order); the error replies; and the kernel's PTX when nvcc built it.

use std::time::Duration;

use reduce::*;
use ringbridge::{Backend, Bridge, BridgeBuilder, Error, measure};

/// Lengths around every power of two a block splits by, the empty vector
/// and the longest one.
const LENGTHS: &[usize] = &[
    0,
    1,
    2,
    3,
    4,
    5,
    15,
    16,
    17,
    31,
    32,
    33,
    63,
    64,
    65,
    127,
    128,
    129,
    255,
    256,
    257,
    1000,
    1023,
    1024,
    1025,
    4095,
    4096,
    4097,
    10_007,
    16_383,
    MAX_ELEMENTS,
];

fn weights() -> Vec<f32> {
    XorShift::new(0x3e16).vector(MAX_ELEMENTS)
}

fn ask(bridge: &Bridge, op: u32, x: &[f32]) -> f64 {
    let seq = bridge.send_with_flags(op, bytemuck::cast_slice(x)).unwrap();
    let m = bridge.recv().unwrap();
    assert_eq!(m.header.correlation, seq);
    result_of(&m).unwrap_or_else(|e| panic!("n = {}: {e}", x.len()))
}

/// Sums and dot products of random vectors of every length in `LENGTHS`
/// and of integer vectors (exact), through a bridge from `builder`.
fn check_lengths(builder: BridgeBuilder, label: &str) {
    let w = weights();
    let bridge = builder.launch().unwrap();
    let mut rng = XorShift::new(0xab5 + label.len() as u64);
    for &n in LENGTHS {
        let x = rng.vector(n);
        let (want, tol) = reference(&x, None);
        let got = ask(&bridge, OP_SUM, &x);
        assert!(
            (got - want).abs() <= tol,
            "{label}: sum of {n}: {got} vs {want} (tolerance {tol:e})"
        );
        let (want, tol) = reference(&x, Some(&w[..n]));
        let got = ask(&bridge, OP_DOT, &x);
        assert!(
            (got - want).abs() <= tol,
            "{label}: dot of {n}: {got} vs {want} (tolerance {tol:e})"
        );
        // Integers: every partial sum is an integer below 2^53, so exact.
        let ints: Vec<f32> = (0..n)
            .map(|_| (rng.next_u64() % 2001) as f32 - 1000.0)
            .collect();
        let exact: f64 = ints.iter().map(|&v| f64::from(v)).sum();
        assert_eq!(
            ask(&bridge, OP_SUM, &ints),
            exact,
            "{label}: integer sum of {n}"
        );
    }
    bridge.shutdown().unwrap();
}

#[test]
fn sums_and_dot_products_of_every_length_on_the_fallback() {
    check_lengths(
        bridge_builder(&weights()).backend(Backend::Fallback),
        "fallback",
    );
}

#[test]
fn many_requests_in_flight_are_each_answered() {
    let bridge = bridge_builder(&weights())
        .backend(Backend::Fallback)
        .launch()
        .unwrap();
    let mut rng = XorShift::new(77);
    let vectors: Vec<Vec<f32>> = (0..37)
        .map(|i| rng.vector(i * 443 % (MAX_ELEMENTS + 1)))
        .collect();
    let answers: Vec<(f64, f64)> = vectors.iter().map(|x| reference(x, None)).collect();
    let rate = measure::stream(
        &bridge,
        2_000,
        8,
        |i, buf| {
            let bytes: &[u8] = bytemuck::cast_slice(&vectors[i as usize % vectors.len()]);
            buf[..bytes.len()].copy_from_slice(bytes);
            bytes.len()
        },
        |i, h, reply| {
            let (want, tol) = answers[i as usize % answers.len()];
            match <[u8; 8]>::try_from(reply).map(f64::from_le_bytes) {
                Ok(got)
                    if h.kind == ringbridge::layout::KIND_REPLY && (got - want).abs() <= tol =>
                {
                    Ok(())
                }
                _ => Err(format!("got {h:?} {reply:?}, want {want}")),
            }
        },
    )
    .unwrap();
    assert_eq!(rate.messages, 2_000);
    bridge.shutdown().unwrap();
}

#[test]
fn bad_requests_get_their_error_and_the_service_goes_on() {
    // Weights for 100 elements only: a longer dot product is refused.
    let w = weights();
    let bridge = bridge_builder(&w[..100])
        .backend(Backend::Fallback)
        .launch()
        .unwrap();
    let error_of = |flags: u32, payload: &[u8]| {
        bridge.send_with_flags(flags, payload).unwrap();
        let m = bridge.recv().unwrap();
        assert!(m.is_error(), "{m:?}");
        m.header.flags
    };
    assert_eq!(error_of(OP_SUM, &[0; 7]), ERR_LEN);
    assert_eq!(error_of(7, &[0; 8]), ERR_OP);
    assert_eq!(error_of(OP_DOT, &[0; 101 * 4]), ERR_TOO_LONG);
    let x = XorShift::new(5).vector(100);
    let (want, tol) = reference(&x, Some(&w[..100]));
    assert!((ask(&bridge, OP_DOT, &x) - want).abs() <= tol);
    // Longer than a slot: the host refuses it before sending.
    let too_long = vec![0u8; SLOT_SIZE];
    assert!(matches!(
        bridge.send(&too_long),
        Err(Error::PayloadTooLarge { .. })
    ));
    assert_eq!(ask(&bridge, OP_SUM, &[1.5, 2.25]), 3.75);
    bridge.shutdown().unwrap();
}

/// The block-cooperative path with many threads: the block emulation runs
/// the handler on a block of CPU threads with real barriers, so the tree
/// over the shared scratch is exercised as on a GPU; 37 threads is no power
/// of two.
#[test]
fn emulated_gpu_blocks_reduce_the_same() {
    for threads in [128, 37] {
        let builder = bridge_builder(&weights())
            .backend(Backend::Fallback)
            .emulate_block(threads)
            .hang_timeout(Duration::from_secs(20));
        check_lengths(builder, &format!("emulated block of {threads}"));
    }
}

// `const PTX: Option<&str>`, written by build.rs.
include!(concat!(env!("OUT_DIR"), "/reduce_ptx.rs"));

/// Whether nvcc built the kernel (then `PTX` is its PTX); without, says
/// "skipped", or fails under `RINGBRIDGE_REQUIRE_NVCC=1`.
fn ptx_or_skip() -> Option<&'static str> {
    if let Some(ptx) = PTX {
        assert!(reduce_vectors().fatbin().is_some(), "a PTX but no fatbin");
        return Some(ptx);
    }
    let why = reduce_vectors().no_fatbin_reason();
    assert!(
        std::env::var_os("RINGBRIDGE_REQUIRE_NVCC").is_none(),
        "RINGBRIDGE_REQUIRE_NVCC is set but the kernel was not compiled: {why}"
    );
    println!("skipped: no PTX ({why})");
    None
}

#[test]
fn the_ptx_has_the_entry_with_the_launch_arguments_and_barriers() {
    let Some(ptx) = ptx_or_skip() else { return };
    let start = ptx
        .find(".entry reduce_vectors(")
        .expect("no `.entry reduce_vectors` in the PTX");
    let body = &ptx[start..];
    let body = &body[..body.find("\n}\n").unwrap_or(body.len())];
    let signature = &body[..body.find(')').unwrap()];
    assert!(
        signature.contains(".param .align 16 .b8 reduce_vectors_param_3[1168]"),
        "the fourth parameter is not the 1168-byte launch arguments:\n{signature}"
    );
    assert_eq!(size_of::<ringbridge::layout::LaunchArgs>(), 1168);
    assert!(body.contains("bar.sync"), "no block barrier in the entry");
    assert!(reduce_vectors().traits().cooperative);
}

/// The same checks on the GPU, when there is one, at several block sizes
/// (37: no power of two; 1024: the largest): skipped without one, failed
/// instead under `RINGBRIDGE_REQUIRE_GPU=1`.
#[test]
fn the_gpu_reduces_the_same_when_there_is_one() {
    let (backend, why) = bridge_builder(&weights())
        .backend(Backend::Auto)
        .resolve_backend()
        .unwrap();
    if backend != Backend::Cuda {
        assert!(
            std::env::var("RINGBRIDGE_REQUIRE_GPU").map_or(true, |v| v != "1"),
            "RINGBRIDGE_REQUIRE_GPU=1 but {why}"
        );
        println!("skipped: {why}");
        return;
    }
    let sim = ringbridge::cuda::driver_library().is_some_and(|l| l.simulated);
    assert!(
        !(sim && std::env::var("RINGBRIDGE_REQUIRE_GPU").is_ok_and(|v| v == "1")),
        "RINGBRIDGE_REQUIRE_GPU=1 but the driver is the simulated one"
    );
    println!("on {}", if sim { "the simulated driver" } else { "a GPU" });
    for threads in [1, 37, 256, 1024] {
        let mut builder = bridge_builder(&weights())
            .backend(Backend::Cuda)
            .block_size(threads);
        if sim {
            // Blocks of CPU threads: turns take milliseconds.
            let long = std::time::Duration::from_secs(60);
            builder = builder.hang_timeout(long).shutdown_timeout(long);
        }
        check_lengths(builder, &format!("CUDA block of {threads}"));
    }
}
