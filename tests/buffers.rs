//! Bridge-owned buffers: allocated at launch, described to the kernel in its
//! launch arguments, readable and writable from the host once the kernel
//! stopped. On the host fallback here (a Rust handler cannot see the launch
//! arguments; kernels that write buffers are tested with their C++ side),
//! and on a GPU when there is one.

mod common;

use ringbridge::buffer::{BUFFER_ALIGN, BufferInit, MAX_BUFFERS};
use ringbridge::fallback::RustHandler;
use ringbridge::layout::BufferRef;
use ringbridge::{Backend, Bridge, BridgeBuilder, Error, Kernel};

fn host() -> BridgeBuilder {
    Bridge::builder().backend(Backend::Fallback)
}

#[test]
fn more_than_eight_buffers_or_an_empty_one_are_refused_at_launch() {
    let mut b = host();
    for _ in 0..=MAX_BUFFERS {
        b = b.buffer(BufferInit::zeroed(16));
    }
    let err = b.launch().unwrap_err();
    assert!(
        matches!(&err, Error::InvalidArgument(w) if w.contains("9 buffers")),
        "{err:?}"
    );
    let mut b = host();
    for _ in 0..MAX_BUFFERS {
        b = b.buffer(BufferInit::zeroed(16));
    }
    assert_eq!(b.launch().unwrap().buffer_count(), MAX_BUFFERS);

    let err = host()
        .buffer(BufferInit::zeroed(8))
        .buffer(BufferInit::from_bytes(Vec::new()))
        .launch()
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidArgument(w) if w.contains("buffer 1 has zero bytes")),
        "{err:?}"
    );
}

#[test]
fn the_launch_arguments_carry_each_buffer_s_address_and_size() {
    let table: Vec<u32> = (0..100).collect();
    let bridge = host()
        .buffer(BufferInit::zeroed(1000))
        .buffer(BufferInit::from_pod(&table))
        .buffer(BufferInit::from_bytes(b"abc".to_vec()))
        .launch()
        .unwrap();
    let args = *bridge.launch_args();
    assert_eq!(args.buffer_count, 3);
    let sizes: Vec<u64> = args.buffers[..3].iter().map(|b| b.bytes).collect();
    assert_eq!(sizes, [1000, 400, 3]);
    for b in &args.buffers[..3] {
        assert!(b.addr != 0 && b.addr % BUFFER_ALIGN as u64 == 0, "{b:?}");
    }
    assert!(args.buffers[3..].iter().all(|b| *b == BufferRef::default()));
    bridge.shutdown().unwrap();
    // The addresses are the buffers the host downloads: on the fallback
    // the kernel's address is the host's.
    for (i, b) in args.buffers[..3].iter().enumerate() {
        // SAFETY: buffer `i` is `b.bytes` live bytes at `b.addr` for as long
        // as the bridge lives, and the stopped kernel writes it no more.
        let seen = unsafe { std::slice::from_raw_parts(b.addr as *const u8, b.bytes as usize) };
        assert_eq!(bridge.download(i).unwrap(), seen, "buffer {i}");
    }
    assert_eq!(bridge.download_pod::<u32>(1).unwrap(), table);
}

#[test]
fn buffers_are_the_kernel_s_while_it_may_run() {
    let bridge = host()
        .buffer(BufferInit::from_pod(&[1.5f32, 2.5]))
        .launch()
        .unwrap();
    for err in [
        bridge.download(0).unwrap_err(),
        bridge.download_pod::<f32>(0).unwrap_err(),
        bridge.upload(0, &[0; 4]).unwrap_err(),
    ] {
        assert!(matches!(err, Error::BufferInUse { index: 0 }), "{err:?}");
        assert!(err.to_string().contains("shut the bridge down"), "{err}");
    }
    // An unknown index is an argument error whatever the kernel does.
    assert!(matches!(bridge.download(1), Err(Error::InvalidArgument(_))));
    assert_eq!(bridge.round_trip(b"x").unwrap().payload, b"y");

    bridge.shutdown().unwrap();
    assert_eq!(bridge.download_pod::<f32>(0).unwrap(), [1.5, 2.5]);
    bridge.upload(0, &7.0f32.to_ne_bytes()).unwrap();
    assert_eq!(bridge.download_pod::<f32>(0).unwrap(), [7.0, 2.5]);
    bridge
        .upload(0, bytemuck::cast_slice(&[3.0f32, 4.0]))
        .unwrap();
    assert_eq!(bridge.download_pod::<f32>(0).unwrap(), [3.0, 4.0]);
    assert!(matches!(
        bridge.upload(0, &[0; 9]),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        bridge.upload(5, &[0]),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        bridge.download_pod::<[u8; 3]>(0),
        Err(Error::InvalidArgument(_))
    ));
}

/// A kernel that stopped on its own (here: a handler that panicked) leaves
/// its buffers to the host once the bridge has seen it stop.
#[test]
fn a_failed_kernel_s_buffers_are_readable_after_shutdown() {
    let handler = RustHandler::new(|_, _, _| panic!("boom"));
    let bridge = host()
        .kernel(Kernel::RustHandler(handler))
        .buffer(BufferInit::from_bytes(vec![9; 32]))
        .launch()
        .unwrap();
    assert!(bridge.round_trip(b"x").is_err());
    bridge.shutdown().unwrap();
    assert_eq!(bridge.download(0).unwrap(), vec![9; 32]);
}

/// On a GPU: device memory, uploaded before the launch, read back after.
#[test]
fn gpu_buffers_round_trip_through_device_memory() {
    let Some(_turn) = common::gpu_or_skip("gpu_buffers_round_trip_through_device_memory") else {
        return;
    };
    let data: Vec<u64> = (0..4096).map(|i| i * 3).collect();
    let bridge = Bridge::builder()
        .backend(Backend::Cuda)
        .buffer(BufferInit::from_pod(&data))
        .buffer(BufferInit::zeroed(1 << 20))
        .launch()
        .unwrap();
    let args = *bridge.launch_args();
    assert_eq!(args.buffer_count, 2);
    assert_eq!(
        (args.buffers[0].bytes, args.buffers[1].bytes),
        (32768, 1 << 20)
    );
    assert!(matches!(
        bridge.download(0),
        Err(Error::BufferInUse { index: 0 })
    ));
    assert_eq!(bridge.round_trip(b"x").unwrap().payload, b"y");
    bridge.shutdown().unwrap();
    assert_eq!(bridge.download_pod::<u64>(0).unwrap(), data);
    assert!(bridge.download(1).unwrap().iter().all(|&b| b == 0));
    bridge.upload(1, b"hello").unwrap();
    assert_eq!(&bridge.download(1).unwrap()[..6], b"hello\0");
}
