//! Store write latency and throughput on the real disk (`cargo bench -p kubeport-store`).
//!
//! 1. Paced: single-object writes issued at 200/s for 5 s, each on its own schedule slot (a late
//!    write does not delay the next one, so queueing shows up in the latency); p50/p99/max.
//! 2. Concurrent: 32 writers each updating their own object in a loop for 5 s; writes/s and
//!    latency percentiles.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kubeport_store::{Store, StoreOptions};

const PACED_RATE: u64 = 200;
const PACED_SECONDS: u64 = 5;
const CONCURRENT_WRITERS: usize = 32;
const CONCURRENT_SECONDS: u64 = 5;
/// Objects created before measuring, updated by the paced run.
const POOL: usize = 50;

/// A value of the size of a typical Service object as JSON.
fn service_json(name: &str, generation: u64) -> Bytes {
    let mut json = format!(
        "{{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{{\"name\":\"{name}\",\
         \"namespace\":\"default\",\"generation\":{generation},\"labels\":{{\"app\":\"{name}\"}}}},\
         \"spec\":{{\"type\":\"ClusterIP\",\"selector\":{{\"app\":\"{name}\"}},\
         \"ports\":[{{\"name\":\"http\",\"protocol\":\"TCP\",\"port\":80,\"targetPort\":8080}}],\
         \"clusterIP\":\"10.96.12.34\",\"clusterIPs\":[\"10.96.12.34\"]}},\"status\":{{}}}}"
    );
    json.push_str(&" ".repeat(1024usize.saturating_sub(json.len())));
    Bytes::from(json)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn report(label: &str, mut latencies: Vec<Duration>) {
    latencies.sort();
    println!(
        "{label}: n={} p50={:.2}ms p90={:.2}ms p99={:.2}ms max={:.2}ms",
        latencies.len(),
        ms(percentile(&latencies, 50.0)),
        ms(percentile(&latencies, 90.0)),
        ms(percentile(&latencies, 99.0)),
        ms(latencies.last().copied().unwrap_or_default()),
    );
}

async fn paced(store: &Store) {
    let interval = Duration::from_nanos(1_000_000_000 / PACED_RATE);
    let total = PACED_RATE * PACED_SECONDS;
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        tokio::time::sleep_until(start + interval * i as u32).await;
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            // Half creates of new objects, half updates of existing ones.
            let began = Instant::now();
            if i % 2 == 0 {
                let name = format!("paced-{i}");
                let key = format!("/registry/services/default/{name}");
                store.create(&key, service_json(&name, 1)).await.unwrap();
            } else {
                let name = format!("pool-{}", i % POOL as u64);
                let key = format!("/registry/services/default/{name}");
                store
                    .update(&key, service_json(&name, i), None)
                    .await
                    .unwrap();
            }
            began.elapsed()
        }));
    }
    let mut latencies = Vec::with_capacity(tasks.len());
    for task in tasks {
        latencies.push(task.await.unwrap());
    }
    let elapsed = start.elapsed();
    println!(
        "paced {PACED_RATE} writes/s for {PACED_SECONDS}s ({} writes in {:.2}s)",
        latencies.len(),
        elapsed.as_secs_f64()
    );
    report("  single-write latency", latencies);
}

async fn concurrent(store: &Store) {
    let deadline = Instant::now() + Duration::from_secs(CONCURRENT_SECONDS);
    let start = Instant::now();
    let latencies = Arc::new(std::sync::Mutex::new(Vec::new()));
    let writers: Vec<_> = (0..CONCURRENT_WRITERS)
        .map(|writer| {
            let store = store.clone();
            let latencies = latencies.clone();
            tokio::spawn(async move {
                let name = format!("concurrent-{writer}");
                let key = format!("/registry/services/default/{name}");
                let mut mine = Vec::new();
                let began = Instant::now();
                let mut record = store.create(&key, service_json(&name, 0)).await.unwrap();
                mine.push(began.elapsed());
                let mut generation = 1;
                while Instant::now() < deadline {
                    let began = Instant::now();
                    record = store
                        .update(
                            &key,
                            service_json(&name, generation),
                            Some(record.mod_revision),
                        )
                        .await
                        .unwrap();
                    mine.push(began.elapsed());
                    generation += 1;
                }
                latencies.lock().unwrap().extend(mine);
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let elapsed = start.elapsed();
    let latencies = std::mem::take(&mut *latencies.lock().unwrap());
    println!(
        "{CONCURRENT_WRITERS} concurrent writers for {CONCURRENT_SECONDS}s: {} writes, {:.0} writes/s",
        latencies.len(),
        latencies.len() as f64 / elapsed.as_secs_f64()
    );
    report("  write latency", latencies);
}

fn main() {
    // `cargo bench` passes `--bench`; any other argument is ignored.
    let dir = tempfile::tempdir_in(std::env::temp_dir()).expect("temporary directory");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        let store = Store::open(dir.path(), StoreOptions::default()).expect("open store");
        println!(
            "store in {} (durable, fsync per commit)",
            dir.path().display()
        );
        // Warm up: file growth and first allocations are not part of the figures.
        for i in 0..POOL {
            let name = format!("pool-{i}");
            store
                .create(
                    &format!("/registry/services/default/{name}"),
                    service_json(&name, 0),
                )
                .await
                .unwrap();
        }
        paced(&store).await;
        concurrent(&store).await;
        println!(
            "final revision {}, {} records",
            store.revision(),
            store.count("")
        );
        store.close().await;
    });
}
