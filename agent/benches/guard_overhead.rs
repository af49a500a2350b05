//! The success-path cost of one guarded call with every pattern on
//! (deadline and stage budget, rate limit, token and cost reservation,
//! retry budget, breaker, bulkhead, telemetry), next to tower's own
//! `LoadShed` + `ConcurrencyLimit` + `RateLimit` + `Timeout` stack around
//! the same immediate dependency, and a bare call for the floor. The guard
//! and tower's stack are timed side by side in every sample, one right
//! after the other, so that both see the machine at the same speed (on a
//! shared host it changes during a run, and benchmarks run one after the
//! other can each fall in a different phase). Each is measured on one
//! thread and with two threads calling at once.
//!
//! `cargo bench -p ballast-agent --bench guard_overhead`
//!
//! Criterion runs without its default features (plotters, rayon): the
//! statistics are what the comparison needs. Criterion's line shows the
//! mean (slope) of a sample's whole work; each benchmark also prints the
//! median time per call over its samples, which is the figure the target
//! is stated in.

mod guard_support;

use agent::DependencyError;
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, criterion_group, criterion_main};
use guard_support::{guard, guarded, on_threads};
use std::convert::Infallible;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

/// Samples per benchmark; the median is taken over these.
const SAMPLES: usize = 100;

/// The median of the last `SAMPLES` figures (the ones before are
/// criterion's warm-up), if there are that many.
fn median(figures: &[f64]) -> Option<f64> {
    let mut measured = figures.get(figures.len().checked_sub(SAMPLES)?..)?.to_vec();
    measured.sort_by(f64::total_cmp);
    Some((measured[SAMPLES / 2 - 1] + measured[SAMPLES / 2]) / 2.0)
}

/// Runs one benchmark whose routine times `iters` calls itself, then
/// prints the median time per call over the measured samples.
fn bench_median(
    group: &mut BenchmarkGroup<'_, WallTime>,
    group_name: &str,
    name: &str,
    mut routine: impl FnMut(u64) -> Duration,
) {
    let mut per_call: Vec<f64> = Vec::new();
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let elapsed = routine(iters);
            per_call.push(elapsed.as_nanos() as f64 / iters.max(1) as f64);
            elapsed
        })
    });
    if let Some(median) = median(&per_call) {
        println!("median {group_name}/{name}: {median:.1} ns per call");
    }
}

/// Runs one benchmark whose routine times `iters` calls of the guard and
/// then `iters` of tower's stack, and prints the median time per call of
/// each over the measured samples, and their ratio.
fn bench_side_by_side(
    group: &mut BenchmarkGroup<'_, WallTime>,
    group_name: &str,
    mut routine: impl FnMut(u64) -> (Duration, Duration),
) {
    let (mut guard, mut tower) = (Vec::new(), Vec::new());
    group.bench_function("guard and tower, side by side", |b| {
        b.iter_custom(|iters| {
            let (g, t) = routine(iters);
            let n = iters.max(1) as f64;
            guard.push(g.as_nanos() as f64 / n);
            tower.push(t.as_nanos() as f64 / n);
            g + t
        })
    });
    if let (Some(guard), Some(tower)) = (median(&guard), median(&tower)) {
        println!(
            "median {group_name}/side by side: guard {guard:.1} ns, tower {tower:.1} ns per call, ratio {:.2}",
            guard / tower
        );
    }
}

/// tower's equivalent stack: shed when not ready, at most 1000 in flight
/// (shared by all threads, like the guard's bulkhead), a rate limit as
/// generous as the policy's, and the dependency's 40 s timeout.
fn tower_stack(
    limit: Arc<Semaphore>,
) -> impl Service<u64, Response = u64, Error = tower::BoxError, Future: Send> + Send {
    ServiceBuilder::new()
        .load_shed()
        .layer(GlobalConcurrencyLimitLayer::with_semaphore(limit))
        .rate_limit(1_000_000_000, Duration::from_secs(1))
        .timeout(Duration::from_secs(40))
        .service(service_fn(|x: u64| async move {
            Ok::<_, Infallible>(black_box(x))
        }))
}

async fn towered<S>(svc: &mut S)
where
    S: Service<u64, Response = u64, Error = tower::BoxError>,
{
    let r = svc.ready().await;
    let out = match r {
        Ok(s) => s.call(black_box(1)).await,
        Err(e) => Err(e),
    };
    black_box(out.is_ok());
}

fn single_thread(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    let mut group = c.benchmark_group("1 thread");
    let g = guard();
    bench_median(&mut group, "1 thread", "bare call", |iters| {
        rt.block_on(async {
            let t = Instant::now();
            for _ in 0..iters {
                let r: Result<u64, DependencyError> = async { Ok(black_box(1u64)) }.await;
                black_box(r.is_ok());
            }
            t.elapsed()
        })
    });
    bench_side_by_side(&mut group, "1 thread", |iters| {
        rt.block_on(async {
            let mut svc = tower_stack(Arc::new(Semaphore::new(1000)));
            let t = Instant::now();
            for _ in 0..iters {
                guarded(&g).await;
            }
            let guard = t.elapsed();
            let t = Instant::now();
            for _ in 0..iters {
                towered(&mut svc).await;
            }
            (guard, t.elapsed())
        })
    });
    group.finish();
}

/// Two threads share one guard (or one concurrency limit), each making
/// half the calls; the figure is wall time per call, so contention on the
/// shared state shows.
fn two_threads(c: &mut Criterion) {
    let runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a runtime")
    };
    let runtimes = [runtime(), runtime()];
    let mut group = c.benchmark_group("2 threads");
    let g = guard();
    let limit = Arc::new(Semaphore::new(1000));
    bench_side_by_side(&mut group, "2 threads", |iters| {
        let guard = on_threads(&runtimes, || {
            let g = g.clone();
            async move {
                for _ in 0..iters / 2 {
                    guarded(&g).await;
                }
            }
        });
        // tower's rate limiter is not Clone: each thread has its own, the
        // concurrency limit is shared.
        let tower = on_threads(&runtimes, || {
            let mut svc = tower_stack(limit.clone());
            async move {
                for _ in 0..iters / 2 {
                    towered(&mut svc).await;
                }
            }
        });
        (guard, tower)
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(SAMPLES)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = single_thread, two_threads
}
criterion_main!(benches);
