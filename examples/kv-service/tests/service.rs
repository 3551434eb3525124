//! The service on the fallback, with a short load: every answer checked.

use kv_service::{Store, load, serve};
use ringbridge::Backend;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_is_right_through_http_and_the_bridge() {
    for store in [Store::Bridge, Store::Mutex] {
        let server = serve(store, Backend::Fallback, ringbridge::WaitPolicy::LowPower)
            .await
            .unwrap();
        let report = load(server.addr, 32, 4_000, 11).await.unwrap();
        assert_eq!(report.requests, 4_000, "{}", store.name());
        server.stop().await.unwrap();
    }
}

/// Every variant of the no-HTTP comparison, briefly: each checks every answer.
#[test]
fn the_pipeline_variants_check_every_answer() {
    let bridge = ringbridge::AsyncBridge::new(
        kv_service::pipeline::filled_bridge(Backend::Fallback, ringbridge::WaitPolicy::default())
            .unwrap(),
    );
    for which in 0..kv_service::pipeline::VARIANTS.len() {
        let run = kv_service::pipeline::run(&bridge, which, 16, 100).unwrap();
        assert!(run.rate > 0.0);
    }
    bridge.bridge().shutdown().unwrap();
}
