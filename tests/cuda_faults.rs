//! Faulting and hanging kernels on a GPU: each becomes an error within a
//! bounded time, never a hang. Every scenario runs in its own process (a
//! trap leaves a sticky error in the CUDA context). The kernels are the
//! test-only `faults` image of ringbridge-test-kernels, which no user's build
//! compiles.

mod common;

use std::time::{Duration, Instant};

use common::{gpu_or_skip, isolated};
use ringbridge::{Backend, Bridge, Error, Kernel};
use ringbridge_test_kernels as kernels;

fn fault_kernel(entry: &str) -> Kernel {
    let faults = kernels::faults().unwrap_or_else(|| {
        panic!(
            "a GPU is here but the fault kernels were not compiled: {}",
            kernels::NOT_COMPILED_REASON
        )
    });
    Kernel::Custom {
        image: std::sync::Arc::from(faults.fatbin),
        entry: entry.into(),
        grid: 1,
        block: 32,
    }
}

/// Makes the kernel of `entry` fault on purpose after it answered four
/// requests: one round trip (whose payload is returned) and three replies
/// left unread, which must still be delivered, in order, before the error.
fn provoke(entry: &str) -> (Error, Duration, Vec<u8>) {
    let bridge = Bridge::builder()
        .backend(Backend::Cuda)
        .kernel(fault_kernel(entry))
        .block_size(32)
        .hang_timeout(Duration::from_millis(300))
        .shutdown_timeout(Duration::from_millis(500))
        .launch()
        .unwrap();
    let good = bridge.round_trip(b"ok").unwrap().payload;
    for m in [b"a1", b"b2", b"c3"] {
        bridge.send(m).unwrap();
    }
    // Let the kernel publish those three replies before the fault comes.
    let deadline = Instant::now() + Duration::from_secs(5);
    while bridge.stats().kernel.produced < 4 {
        assert!(Instant::now() < deadline, "the kernel never answered");
        std::thread::yield_now();
    }
    bridge.send_with_flags(0xDEAD, b"die").unwrap();
    let t0 = Instant::now();
    for want in [b"b2", b"c3", b"d4"] {
        assert_eq!(
            bridge.recv().unwrap().payload,
            want,
            "a reply published before the fault"
        );
    }
    let err = bridge.recv().unwrap_err();
    let took = t0.elapsed();
    // Later calls keep failing, and shutdown returns (possibly leaking).
    assert!(bridge.send(b"after").is_err());
    let _ = bridge.shutdown();
    (err, took, good)
}

#[test]
fn cuda_trap_is_an_error_not_a_hang() {
    isolated("cuda_trap_is_an_error_not_a_hang", || {
        let Some(_gpu) = gpu_or_skip("cuda_trap_is_an_error_not_a_hang") else {
            return;
        };
        let (err, took, good) = provoke(kernels::TRAP_ENTRY);
        assert_eq!(good, b"pl");
        assert!(matches!(err, Error::KernelFault(_)), "got {err}");
        if common::on_simulated_driver() {
            // The simulator's trap is the driver's "unspecified launch failure".
            assert!(
                err.to_string().contains("CUDA_ERROR_LAUNCH_FAILED"),
                "got {err}"
            );
        }
        assert!(took < Duration::from_secs(2), "took {took:?}");
    });
}

#[test]
fn cuda_illegal_address_is_an_error_not_a_hang() {
    isolated("cuda_illegal_address_is_an_error_not_a_hang", || {
        let Some(_gpu) = gpu_or_skip("cuda_illegal_address_is_an_error_not_a_hang") else {
            return;
        };
        let (err, took, _) = provoke(kernels::ILLEGAL_ADDRESS_ENTRY);
        assert!(matches!(err, Error::KernelFault(_)), "got {err}");
        if common::on_simulated_driver() {
            // The simulator caught the store's SIGSEGV inside the twin.
            assert!(
                err.to_string().contains("CUDA_ERROR_ILLEGAL_ADDRESS"),
                "got {err}"
            );
        }
        assert!(took < Duration::from_secs(2), "took {took:?}");
    });
}

#[test]
fn cuda_hang_is_reported_by_the_heartbeat() {
    isolated("cuda_hang_is_reported_by_the_heartbeat", || {
        let Some(_gpu) = gpu_or_skip("cuda_hang_is_reported_by_the_heartbeat") else {
            return;
        };
        let (err, took, _) = provoke(kernels::HANG_ENTRY);
        assert!(matches!(err, Error::KernelHung { .. }), "got {err}");
        assert!(took < Duration::from_secs(2), "took {took:?}");
    });
}
