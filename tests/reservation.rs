//! Several CUDA bridges in one process, launched and stopped at different
//! times, from a `ringbridge::cuda::Reservation` made before any launch.
//! The GPU tests skip with a message without a GPU (and fail under
//! `RINGBRIDGE_REQUIRE_GPU=1`); the others run everywhere.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use common::gpu_or_skip;
use ringbridge::buffer::BufferInit;
use ringbridge::cuda::{Reservation, ReservationFree};
use ringbridge::{Backend, Bridge, BridgeBuilder, Error, Kernel, StripedBridge};

fn cuda() -> BridgeBuilder {
    common::patient_on_sim(Bridge::builder().backend(Backend::Cuda).capacity(256))
}

fn scale() -> BridgeBuilder {
    cuda().kernel(Kernel::ScaleF32 { factor: 3.0 })
}

/// A builder that cannot launch makes `reserve` fail with its reason,
/// before any driver call (so on every machine).
#[test]
fn a_builder_that_cannot_launch_fails_the_reservation() {
    let err = Reservation::builder(0)
        .bridge(&cuda().capacity(0))
        .reserve()
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidArgument(m) if m.contains("cannot launch")),
        "{err}"
    );
}

/// Without a driver a reservation says so, as a typed error.
#[test]
fn without_a_driver_a_reservation_is_cuda_unavailable() {
    if ringbridge::cuda::driver_available() {
        eprintln!("a CUDA driver is here: the no-driver case is not checked");
        return;
    }
    let err = Reservation::builder(0)
        .ring_bytes(4096)
        .reserve()
        .unwrap_err();
    assert!(matches!(err, Error::CudaUnavailable(_)), "{err}");
}

/// Two bridges with different kernels on one GPU: the second launched
/// while the first streams, each stopped on its own, and a third launched
/// from the space the first gave back, while the second still serves.
#[test]
fn cuda_two_kernels_launched_and_stopped_apart_while_the_other_streams() {
    let Some(_gpu) = gpu_or_skip("cuda_two_kernels_launched_and_stopped_apart") else {
        return;
    };
    common::within(120, "two bridges from a reservation", || {
        let reservation = Reservation::builder(0)
            .bridge(&cuda())
            .bridge(&scale())
            .reserve()
            .unwrap();
        let full = reservation.free();
        let echo = Arc::new(cuda().reservation(&reservation).launch().unwrap());

        // The first streams on a thread of its own, checking every reply.
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicU64::new(0));
        let streamer = {
            let (echo, stop, done) = (Arc::clone(&echo), Arc::clone(&stop), Arc::clone(&done));
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let payload = n.to_le_bytes();
                    let reply = echo.round_trip(&payload).unwrap();
                    let want: Vec<u8> = payload.iter().map(|b| b.wrapping_add(1)).collect();
                    assert_eq!(reply.payload, want);
                    n += 1;
                    done.store(n, Ordering::Relaxed);
                }
                n
            })
        };
        while done.load(Ordering::Relaxed) < 1000 {
            std::thread::yield_now();
        }

        // Launched while the echo kernel serves: from the reservation.
        let scaler = scale().reservation(&reservation).launch().unwrap();
        let reply = scaler.round_trip(&2f32.to_le_bytes()).unwrap();
        assert_eq!(reply.payload, 6f32.to_le_bytes());
        let before = done.load(Ordering::Relaxed);
        while done.load(Ordering::Relaxed) < before + 1000 {
            std::thread::yield_now();
        }

        // The echo bridge stops alone; the scaler goes on.
        stop.store(true, Ordering::Relaxed);
        let streamed = streamer.join().unwrap();
        assert!(streamed >= 2000);
        echo.shutdown().unwrap();
        drop(echo);
        assert_eq!(
            scaler.round_trip(&1f32.to_le_bytes()).unwrap().payload,
            3f32.to_le_bytes()
        );

        // What the echo bridge held is free again: another launches from it
        // while the scaler still serves.
        let again = cuda().reservation(&reservation).launch().unwrap();
        assert_eq!(again.round_trip(b"hi").unwrap().payload, b"ij");
        scaler.shutdown().unwrap();
        drop(scaler);
        assert_eq!(again.round_trip(b"ok").unwrap().payload, b"pl");
        drop(again);
        assert_eq!(reservation.free(), full);
    });
}

/// A bridge needing more than the reservation has, while a kernel runs, is
/// refused with a typed error saying what ran out: never a hang.
#[test]
fn cuda_an_exhausted_reservation_is_a_typed_error() {
    let Some(_gpu) = gpu_or_skip("cuda_an_exhausted_reservation_is_a_typed_error") else {
        return;
    };
    common::within(60, "exhausted reservation", || {
        let reservation = Reservation::builder(0).bridge(&cuda()).reserve().unwrap();
        let first = cuda().reservation(&reservation).launch().unwrap();
        let second = cuda().reservation(&reservation).launch();
        assert!(
            matches!(
                &second,
                Err(Error::ReservationExhausted { what, .. }) if what.contains("ring memory")
            ),
            "{second:?}"
        );
        // A kernel the reservation did not load cannot be loaded now.
        let other = scale().reservation(&reservation).launch();
        assert!(
            matches!(&other, Err(Error::ReservationExhausted { .. })),
            "{other:?}"
        );
        // Without a reservation: DeviceBusy, as before.
        assert!(matches!(
            cuda().launch(),
            Err(Error::DeviceBusy { running: 1 })
        ));
        assert_eq!(first.round_trip(b"a").unwrap().payload, b"b");
        // The wrong device is refused at launch.
        let wrong = cuda().reservation(&reservation).device(1).launch();
        assert!(matches!(wrong, Err(Error::InvalidArgument(_))), "{wrong:?}");
    });
}

/// Buffers come from the reservation's device arena, filled at launch and
/// read back after the kernel stopped; a striped group launches from it
/// while a bridge serves.
#[test]
fn cuda_buffers_and_a_striped_group_from_a_reservation() {
    let Some(_gpu) = gpu_or_skip("cuda_buffers_and_a_striped_group_from_a_reservation") else {
        return;
    };
    common::within(60, "buffers and stripes from a reservation", || {
        let with_buffer = cuda().buffer(BufferInit::from_pod(&[7u32, 8, 9]));
        let reservation = Reservation::builder(0)
            .bridge(&with_buffer)
            .striped(&cuda(), 4)
            .reserve()
            .unwrap();
        assert!(reservation.free().buffer_bytes >= 12);
        let a = with_buffer.reservation(&reservation).launch().unwrap();
        let group = StripedBridge::launch(cuda().reservation(&reservation), 4).unwrap();
        group.send_batch(&[b"a", b"b", b"c", b"d"]).unwrap();
        for want in [b"b", b"c", b"d", b"e"] {
            assert_eq!(group.recv().unwrap().payload, want);
        }
        assert_eq!(a.round_trip(b"x").unwrap().payload, b"y");
        a.shutdown().unwrap();
        assert_eq!(a.download_pod::<u32>(0).unwrap(), [7, 8, 9]);
        a.upload(0, bytemuck::bytes_of(&5u32)).unwrap();
        assert_eq!(a.download_pod::<u32>(0).unwrap(), [5, 8, 9]);
        drop(a);
        drop(group);
        let ReservationFree { streams, .. } = reservation.free();
        assert_eq!(streams, 2);
    });
}
