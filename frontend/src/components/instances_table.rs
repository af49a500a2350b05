//! The table of agent instances, shared by a service's instances tab and the
//! fleet page: what each agent enforces against what it should.

use crate::time::Utc;
use leptos::prelude::*;
use shared::api::{InstanceStatus, InstanceView};
use shared::paths::segment as escape_segment;

/// `fleet` adds a service column (linking to the service) and words the
/// empty state for the whole fleet.
/// "v3", or a dash when there is none.
pub fn version_label(version: Option<u64>) -> String {
    version.map_or_else(|| "—".to_owned(), |v| format!("v{v}"))
}

#[component]
pub fn InstancesTable(instances: Vec<InstanceView>, fleet: bool) -> impl IntoView {
    if instances.is_empty() {
        let hint = if fleet {
            "Instances appear once an agent connects with a service token. Lagging ones are listed first."
        } else {
            "Instances appear once their agent connects with a service token for this service and environment."
        };
        return view! {
            <div class="empty-state empty-state-flat" data-test="instances-empty">
                <h2>"No instance has reported."</h2>
                <p>{hint}</p>
            </div>
        }
        .into_any();
    }
    let rows = instances
        .into_iter()
        .map(|i| view! { <InstanceRow i fleet /> })
        .collect_view();
    view! {
        <div class="table-scroll">
            <table class="table" data-test="instances-table">
                <thead>
                    <tr>
                        {fleet.then(|| view! { <th scope="col">"Service"</th> })}
                        <th scope="col">"Instance"</th>
                        <th scope="col">"Agent"</th>
                        <th scope="col" class="num">"Applied"</th>
                        <th scope="col" class="num">"Desired"</th>
                        <th scope="col">"Drift"</th>
                        <th scope="col">"Status"</th>
                        <th scope="col">"Last seen"</th>
                    </tr>
                </thead>
                <tbody>{rows}</tbody>
            </table>
        </div>
    }
    .into_any()
}

#[component]
fn InstanceRow(i: InstanceView, fleet: bool) -> impl IntoView {
    let seen = Utc::from_millis(i.last_seen_at_ms);
    let (status, class) = match i.status {
        InstanceStatus::Up => ("up", "status status-on"),
        InstanceStatus::Stale => ("stale", "status status-warn"),
        InstanceStatus::Down => ("down", "status status-bad"),
    };
    // Instance ids are unique within a service; the fleet page lists many.
    let test = if fleet {
        format!(
            "instance-row-{}-{}-{}",
            i.service, i.environment, i.instance_id
        )
    } else {
        format!("instance-row-{}", i.instance_id)
    };
    let service = fleet.then(|| {
        let href = format!(
            "/services/{}/{}?tab=instances",
            escape_segment(&i.service),
            escape_segment(&i.environment)
        );
        view! {
            <td class="wrap">
                <a href=href>{i.service.clone()}</a>
                " "
                <span class="env-badge">{i.environment.clone()}</span>
            </td>
        }
    });
    view! {
        <tr data-test=test data-lagging=i.lagging.to_string()>
            {service}
            <td class="wrap">
                <code>{i.instance_id}</code>
            </td>
            <td>
                <code>{i.agent_version}</code>
            </td>
            <td class="num" data-test="instance-applied">
                {version_label(i.policy_version)}
                <span class="muted small">{format!(" ({})", i.policy_source)}</span>
            </td>
            <td class="num">{version_label(i.desired_version)}</td>
            <td>
                {if i.lagging {
                    view! {
                        <span class="badge badge-warn" data-test="instance-lagging">
                            "lagging"
                        </span>
                    }
                        .into_any()
                } else {
                    view! { <span class="badge badge-ok">"in sync"</span> }.into_any()
                }}
            </td>
            <td>
                <span class=class>{status}</span>
            </td>
            <td class="nowrap">
                <time datetime=seen.iso()>{seen.display()}</time>
            </td>
        </tr>
    }
    .into_any()
}
