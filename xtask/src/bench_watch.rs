//! `cargo xtask bench watch`: one watch tick (`dockhand_jobs::update::watch_look`, what the
//! scheduler runs) over 500 watched services on 20 repositories, on the private engine,
//! against a loop of `docker manifest inspect` for the same 20 repositories, in the same
//! run. The registry is local and without authentication; its access log counts the
//! requests each tick makes. One watcher serves every tick, as the scheduler keeps one:
//! the first tick is reported on its own (nothing learnt yet), the median is of the ticks
//! after it. Prints the times, their ratio, the requests per tick and the memory the ticks
//! added to this process.

use std::time::{Duration, Instant};

use anyhow::bail;
use dockhand_engine::{Client, Endpoint, Filters, ServiceSpec};

use crate::engine;
use crate::images::ImageHost;
use crate::local_registry::LocalRegistry;

const SERVICES: usize = 500;
const REPOSITORIES: usize = 20;
const ROUNDS: usize = 5;
const LABEL: &str = "dockhand.bench";

pub(crate) fn run() -> anyhow::Result<()> {
    crate::tools::ensure_bench()?;
    let layout = engine::up()?;
    let registry = LocalRegistry::start(&layout.scratch().join("bench-registry"))?;
    let reference = |i: usize| format!("{}/bench/r{i:02}:live", registry.address);
    for i in 0..REPOSITORIES {
        registry.push(|| layout.docker(), crate::images::BUSYBOX_IMAGE, &reference(i))?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let client = Client::new(Endpoint::unix(layout.socket()))?;
    runtime.block_on(remove(&client))?;
    let result = runtime.block_on(async {
        let mut pinned = Vec::new();
        for i in 0..REPOSITORIES {
            let found = client.distribution(&reference(i), None).await?;
            pinned.push(format!("{}@{}", reference(i), found.descriptor.digest));
        }
        create(&client, &pinned).await?;
        let services = client.services(&Filters::new().with("label", format!("{LABEL}=watch"))).await?;
        if services.len() != SERVICES {
            bail!("created {SERVICES} services but the engine lists {}", services.len());
        }
        let registries = dockhand_jobs::update::Registries::none();
        let dir = tempfile::tempdir()?;
        let store = dockhand_jobs::store::SqliteStore::open(&dir.path().join("jobs.db"))?;
        let (defaults, prefixes) =
            (dockhand_policy::Defaults::default(), dockhand_policy::LabelPrefixes::default());
        let heads = || {
            (0..REPOSITORIES)
                .map(|i| registry.manifest_heads(&format!("bench/r{i:02}"), "live"))
                .sum::<usize>()
        };
        let rss_before = rss_kib();
        let mut ticks = Vec::new();
        let mut requests = Vec::new();
        let watcher = dockhand_jobs::update::Watcher::new()?;
        for _ in 0..=ROUNDS {
            let before = heads();
            let start = Instant::now();
            let look = dockhand_jobs::update::watch_look(
                &client,
                &registries,
                &store,
                &services,
                &defaults,
                &prefixes,
                &watcher,
            )
            .await;
            ticks.push(start.elapsed());
            if look.rows.len() != SERVICES || look.rows.iter().any(|r| r.next != "current") {
                bail!("the tick did not see {SERVICES} current services: {:?}", look.rows.first());
            }
            requests.push(heads() - before);
        }
        let rss_added = rss_kib().saturating_sub(rss_before);
        // The floor: the engine's `/distribution` for the 20 references alone, 8 at once as
        // the tick asks.
        let mut floors = Vec::new();
        for _ in 0..ROUNDS {
            use futures_util::StreamExt;
            let start = Instant::now();
            let answers: Vec<_> = futures_util::stream::iter(0..REPOSITORIES)
                .map(|i| {
                    let (client, reference) = (client.clone(), reference(i));
                    async move { client.distribution(&reference, None).await }
                })
                .buffer_unordered(8)
                .collect()
                .await;
            floors.push(start.elapsed());
            for answer in answers {
                answer?;
            }
        }
        let mut loops = Vec::new();
        for _ in 0..ROUNDS {
            let start = Instant::now();
            for i in 0..REPOSITORIES {
                crate::proc::output(layout.docker()?.args([
                    "manifest",
                    "inspect",
                    "--insecure",
                    &reference(i),
                ]))?;
            }
            loops.push(start.elapsed());
        }
        Ok::<_, anyhow::Error>((ticks, loops, floors, requests, rss_added))
    });
    runtime.block_on(remove(&client))?;
    let (mut ticks, loops, floors, requests, rss_added) = result?;
    let first = ticks.remove(0);
    let (tick, baseline) = (median(ticks), median(loops));
    println!(
        "\n== watch mode: one tick over {SERVICES} services on {REPOSITORIES} repositories (median of {ROUNDS})"
    );
    println!(
        "{:<40} {:>9.1} ms vs {:>9.1} ms (docker manifest inspect x{REPOSITORIES})  ratio {:.2}",
        "one watch tick",
        tick.as_secs_f64() * 1e3,
        baseline.as_secs_f64() * 1e3,
        tick.as_secs_f64() / baseline.as_secs_f64()
    );
    println!(
        "{:<40} {:>9.1} ms vs {:>9.1} ms (docker manifest inspect x{REPOSITORIES})  ratio {:.2}",
        "the first tick (nothing learnt yet)",
        first.as_secs_f64() * 1e3,
        baseline.as_secs_f64() * 1e3,
        first.as_secs_f64() / baseline.as_secs_f64()
    );
    let floor = median(floors);
    println!(
        "{:<40} {:>9.1} ms vs {:>9.1} ms (the engine's /distribution x{REPOSITORIES} alone, 8 at once)  ratio {:.2}",
        "one watch tick",
        tick.as_secs_f64() * 1e3,
        floor.as_secs_f64() * 1e3,
        tick.as_secs_f64() / floor.as_secs_f64()
    );
    println!("registry requests per tick: {requests:?} (distinct repositories: {REPOSITORIES})");
    println!("memory added by {} ticks: {:.1} MiB", ROUNDS + 1, rss_added as f64 / 1024.0);
    Ok(())
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// This process's resident memory, in KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("VmRSS:").and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
            })
        })
        .unwrap_or(0)
}

/// 500 watched services of no replicas, spread over the pinned references.
async fn create(client: &Client, pinned: &[String]) -> anyhow::Result<()> {
    let mut pending = Vec::new();
    for i in 0..SERVICES {
        let c = client.clone();
        let spec = ServiceSpec::new(format!("dh-bench-watch-{i:03}"), &pinned[i % pinned.len()])
            .with_label(LABEL, "watch")
            .with_label("dockhand.update.enable", "true")
            .with_label("dockhand.update.auto", "true")
            .with_replicas(0);
        pending.push(tokio::spawn(async move { c.create_service(&spec).await }));
        if pending.len() == 8 {
            for p in pending.drain(..) {
                p.await??;
            }
        }
    }
    for p in pending {
        p.await??;
    }
    Ok(())
}

async fn remove(client: &Client) -> anyhow::Result<()> {
    for service in client.services(&Filters::new().with("label", format!("{LABEL}=watch"))).await? {
        client.remove_service(&service.id).await?;
    }
    Ok(())
}
