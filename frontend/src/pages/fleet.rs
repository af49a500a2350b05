//! Every agent instance of every service: its agent and policy versions,
//! when it was last heard from, and who lags behind the version it should
//! enforce.

use crate::api;
use crate::components::instances_table::InstancesTable;
use crate::layout::{LoadError, Loading, PageHeader};
use crate::live::{LiveFleet, LiveStatus};
use crate::remote::Remote;
use leptos::prelude::*;
use leptos_meta::Title;
use shared::api::{InstanceStatus, InstanceView};

#[component]
pub fn FleetPage() -> impl IntoView {
    let instances = Remote::new(api::fleet_instances);
    let live = LiveFleet::streamed();
    // The stream says when instances come, go, change state or start or
    // stop lagging; the table then asks again. The interval keeps "last
    // seen" fresh when nothing else moves. Effects only run in the browser.
    let shape = Memo::new(move |_| {
        live.fleet.with(|f| {
            f.iter()
                .flat_map(|f| &f.services)
                .map(|s| {
                    (
                        s.service.clone(),
                        s.environment.clone(),
                        s.instances.clone(),
                    )
                })
                .collect::<Vec<_>>()
        })
    });
    Effect::new(move |previous: Option<()>| {
        shape.track();
        if previous.is_some() {
            instances.reload();
        }
    });
    Effect::new(move |_| {
        if let Ok(handle) = set_interval_with_handle(
            move || instances.reload(),
            std::time::Duration::from_secs(5),
        ) {
            on_cleanup(move || handle.clear());
        }
    });
    let lagging_only = RwSignal::new(false);
    view! {
        <Title text="Fleet" />
        <PageHeader
            title="Fleet"
            lede="Every agent instance: the policy version it enforces against the one it should, its agent version, and when it was last heard from."
        >
            <LiveStatus link=live.link />
        </PageHeader>
        <section class="panel" aria-labelledby="fleet-title">
            <div class="panel-header">
                <h2 id="fleet-title">"Instances"</h2>
                <label class="checkbox">
                    <input
                        type="checkbox"
                        data-test="fleet-lagging-only"
                        prop:checked=move || lagging_only.get()
                        on:change=move |ev| lagging_only.set(event_target_checked(&ev))
                    />
                    " Lagging only"
                </label>
            </div>
            {move || match instances.get() {
                None => view! { <Loading label="Loading instances…" /> }.into_any(),
                Some(Err(e)) => {
                    view! { <LoadError message=e.message() retry=Callback::new(move |()| instances.reload()) /> }
                        .into_any()
                }
                Some(Ok(list)) => {
                    let summary = summary(&list);
                    let shown = if lagging_only.get() {
                        list.into_iter().filter(|i| i.lagging).collect()
                    } else {
                        list
                    };
                    view! {
                        <p class="fleet-summary" aria-live="polite" data-test="fleet-instances-summary">
                            {summary}
                        </p>
                        <InstancesTable instances=shown fleet=true />
                    }
                        .into_any()
                }
            }}
        </section>
    }
    .into_any()
}

/// One sentence on the whole fleet: how many instances, how many are up,
/// and how many lag.
fn summary(list: &[InstanceView]) -> String {
    let count = |status| list.iter().filter(|i| i.status == status).count();
    let lagging = list.iter().filter(|i| i.lagging).count();
    let noun = if list.len() == 1 {
        "instance"
    } else {
        "instances"
    };
    let lag = match lagging {
        0 => "none lags behind its desired policy".to_owned(),
        1 => "1 lags behind its desired policy and is listed first".to_owned(),
        n => format!("{n} lag behind their desired policy and are listed first"),
    };
    format!(
        "{} {noun}: {} up, {} stale, {} down; {lag}.",
        list.len(),
        count(InstanceStatus::Up),
        count(InstanceStatus::Stale),
        count(InstanceStatus::Down),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(status: InstanceStatus, lagging: bool) -> InstanceView {
        InstanceView {
            service: "rag-answer".into(),
            environment: "prod".into(),
            instance_id: "pod-1".into(),
            agent_version: "0.1.0".into(),
            policy_version: Some(1),
            policy_source: "server".into(),
            desired_version: Some(if lagging { 2 } else { 1 }),
            lagging,
            status,
            last_seen_at_ms: 0,
            started_at_ms: 0,
            refused_policy: None,
        }
    }

    #[test]
    fn the_summary_counts_states_and_laggards() {
        assert_eq!(
            summary(&[
                instance(InstanceStatus::Up, true),
                instance(InstanceStatus::Up, false),
                instance(InstanceStatus::Down, false),
            ]),
            "3 instances: 2 up, 0 stale, 1 down; 1 lags behind its desired policy and is listed first."
        );
        assert_eq!(
            summary(&[instance(InstanceStatus::Stale, false)]),
            "1 instance: 0 up, 1 stale, 0 down; none lags behind its desired policy."
        );
    }
}
