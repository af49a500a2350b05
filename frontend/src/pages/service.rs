//! One service in one environment: its rollout, and tabs for the policy
//! editor, the objectives and canary analysis, live telemetry, the published
//! versions and the fleet of instances.

mod objectives;
mod policy_editor;

use crate::api::{self, ApiError};
use crate::app::Hydrated;
use crate::components::diff_list::{DiffList, outcome_text};
use crate::components::instances_table::{InstancesTable, version_label};
use crate::components::telemetry::Telemetry;
use crate::layout::{Crumbs, LoadError, Loading};
use crate::remote::Remote;
use crate::session::Session;
use crate::time::Utc;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;
use policy_editor::PolicyEditor;
use shared::api::{DiffView, RollbackRequest, RolloutAction, ServiceView, VersionView};
use shared::role::{Permission, Role};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tab {
    Editor,
    Objectives,
    Telemetry,
    Versions,
    Instances,
}

impl Tab {
    /// In the order the tabs are shown.
    const ALL: [Tab; 5] = [
        Tab::Editor,
        Tab::Objectives,
        Tab::Telemetry,
        Tab::Versions,
        Tab::Instances,
    ];

    fn from_query(value: Option<&str>) -> Tab {
        match value {
            Some("objectives") => Tab::Objectives,
            Some("telemetry") => Tab::Telemetry,
            Some("versions") => Tab::Versions,
            Some("instances") => Tab::Instances,
            _ => Tab::Editor,
        }
    }

    fn query(self) -> &'static str {
        match self {
            Tab::Editor => "editor",
            Tab::Objectives => "objectives",
            Tab::Telemetry => "telemetry",
            Tab::Versions => "versions",
            Tab::Instances => "instances",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Tab::Editor => "Policy editor",
            Tab::Objectives => "Objectives",
            Tab::Telemetry => "Telemetry",
            Tab::Versions => "Versions",
            Tab::Instances => "Instances",
        }
    }
}

#[component]
pub fn ServicePage() -> impl IntoView {
    let target = super::service_in_path();
    let session = Session::expect();
    view! {
        <Title text=move || target.with(|(n, e)| format!("{n} in {e}")) />
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                let role = match session.me().await {
                    Ok(Some(me)) => me.role,
                    _ => Role::Viewer,
                };
                let (name, env) = target.get();
                view! { <ServiceBody name env role /> }
            })}
        </Suspense>
    }
    .into_any()
}

#[component]
fn ServiceBody(name: String, env: String, role: Role) -> impl IntoView {
    let query = use_query_map();
    let tab = Memo::new(move |_| query.with(|q| Tab::from_query(q.get("tab").as_deref())));
    let (n, e) = (name.clone(), env.clone());
    let service = Remote::new(move || {
        let (n, e) = (n.clone(), e.clone());
        async move { api::get_service(&n, &e).await }
    });
    let active_version = Signal::derive(move || {
        service
            .get()
            .and_then(|s| s.ok())
            .and_then(|s| s.rollout.active_version)
    });
    let base = format!(
        "/services/{}/{}",
        shared::paths::segment(&name),
        shared::paths::segment(&env)
    );
    let tabs = Tab::ALL
        .into_iter()
        .map(|t| {
            let href = format!("{base}?tab={}", t.query());
            // A plain link: the router still navigates in the page, and
            // unlike `<A>` it does not mark every tab current (they share a
            // path and differ only in the query).
            view! {
                <a
                    href=href
                    class="tab"
                    data-test=format!("tab-{}", t.query())
                    aria-current=move || (tab.get() == t).then_some("page")
                >
                    {t.label()}
                </a>
            }
        })
        .collect_view();
    let reload = Callback::new(move |()| service.reload());
    // Outlives the rollout panel, which re-renders with the reloaded service.
    let rollout_result = RwSignal::new(None::<Result<String, String>>);
    let can_publish = role.allows(Permission::PublishLowRisk);
    let (n, e) = (name.clone(), env.clone());
    view! {
        <div class="page-header">
            <div>
                <Crumbs />
                <h1>
                    <span data-test="service-name">{name.clone()}</span>
                    " "
                    <span class="env-badge env-badge-large">{env.clone()}</span>
                </h1>
                <p class="lede">
                    {move || match service.get() {
                        Some(Ok(s)) => format!("Owned by {}.", s.owner),
                        _ => "\u{a0}".to_owned(),
                    }}
                </p>
            </div>
            <div class="page-actions">
                <a class="button" href=format!("{base}/dead-letters") data-test="service-dead-letters">
                    "Dead letters"
                </a>
                <ReportLinks name=name.clone() env=env.clone() />
            </div>
        </div>
        {move || match service.get() {
            None => view! { <div class="rollout rollout-placeholder" aria-hidden="true"></div> }.into_any(),
            Some(Ok(s)) => {
                view! {
                    <RolloutPanel
                        service=s
                        name=n.clone()
                        env=e.clone()
                        can_publish
                        result=rollout_result
                        on_changed=reload
                    />
                }
                    .into_any()
            }
            Some(Err(err)) => {
                view! { <LoadError message=err.message() retry=Callback::new(move |()| service.reload()) /> }
                    .into_any()
            }
        }}
        <nav class="tabs" aria-label="Service sections">
            {tabs}
        </nav>
        {move || {
            let (name, env) = (name.clone(), env.clone());
            match tab.get() {
                Tab::Editor => {
                    view! {
                        <PolicyEditor
                            name
                            env
                            can_edit=role.allows(Permission::Edit)
                            can_publish
                            active_version
                            on_published=reload
                        />
                    }
                        .into_any()
                }
                Tab::Versions => {
                    view! { <Versions name env can_publish active_version on_changed=reload /> }
                        .into_any()
                }
                Tab::Objectives => {
                    view! { <objectives::Objectives name env on_canary_ended=reload /> }.into_any()
                }
                Tab::Telemetry => view! { <Telemetry name env /> }.into_any(),
                Tab::Instances => view! { <Instances name env /> }.into_any(),
            }
        }}
    }
    .into_any()
}

/// The active version and the canary, with the canary's controls.
#[component]
fn RolloutPanel(
    service: ServiceView,
    name: String,
    env: String,
    can_publish: bool,
    result: RwSignal<Option<Result<String, String>>>,
    on_changed: Callback<()>,
) -> impl IntoView {
    let hydrated = Hydrated::expect();
    let rollout = service.rollout;
    let percent = RwSignal::new(rollout.canary_percent.unwrap_or(10).to_string());
    let target = StoredValue::new((name, env));
    let act = Action::new_local(move |action: &RolloutAction| {
        let action = action.clone();
        async move {
            let (n, e) = target.get_value();
            let outcome = api::rollout(&n, &e, &action).await;
            match outcome {
                Ok(view) => {
                    let text = match action {
                        RolloutAction::Promote => format!(
                            "Promoted: every instance runs {}.",
                            version_label(view.active_version)
                        ),
                        RolloutAction::Abort => format!(
                            "Canary aborted: every instance runs {}.",
                            version_label(view.active_version)
                        ),
                        RolloutAction::SetPercent { percent } => {
                            format!("The canary now takes {percent} % of instances.")
                        }
                    };
                    result.try_set(Some(Ok(text)));
                    on_changed.run(());
                }
                Err(e) => {
                    result.try_set(Some(Err(e.message())));
                }
            }
        }
    });
    let pending = act.pending();
    let disabled = move || pending.get() || !hydrated.get();
    let set_percent = move |_| match percent.get_untracked().trim().parse::<u8>() {
        Ok(p) if (1..=99).contains(&p) => {
            act.dispatch(RolloutAction::SetPercent { percent: p });
        }
        _ => result.set(Some(Err(
            "A canary takes 1 to 99 percent of instances.".into()
        ))),
    };
    let canary = rollout.canary_version.map(|v| {
        let share = rollout.canary_percent.unwrap_or(0);
        view! {
            <div class="rollout-item rollout-canary" data-test="canary">
                <span class="rollout-label">"Canary"</span>
                <span class="rollout-value">{format!("v{v} on {share} % of instances")}</span>
            </div>
            {can_publish
                .then(|| {
                    view! {
                        <div class="rollout-controls">
                            <button
                                type="button"
                                class="button button-primary button-small"
                                data-test="canary-promote"
                                disabled=disabled
                                on:click=move |_| {
                                    act.dispatch(RolloutAction::Promote);
                                }
                            >
                                "Promote to all"
                            </button>
                            <button
                                type="button"
                                class="button button-small"
                                data-test="canary-abort"
                                disabled=disabled
                                on:click=move |_| {
                                    act.dispatch(RolloutAction::Abort);
                                }
                            >
                                "Abort canary"
                            </button>
                            <label for="canary-percent" class="inline-label">
                                "Share (%)"
                            </label>
                            <input
                                id="canary-percent"
                                type="text"
                                inputmode="numeric"
                                class="numeric input-small"
                                data-test="canary-percent"
                                prop:value=move || percent.get()
                                on:input=move |ev| percent.set(event_target_value(&ev))
                            />
                            <button
                                type="button"
                                class="button button-small"
                                data-test="canary-set-percent"
                                disabled=disabled
                                on:click=set_percent
                            >
                                "Set share"
                            </button>
                        </div>
                    }
                })}
        }
    });
    view! {
        <section class="rollout" aria-label="Rollout" data-test="rollout">
            <div class="rollout-item">
                <span class="rollout-label">"Active version"</span>
                <span class="rollout-value" data-test="active-version">
                    {version_label(rollout.active_version)}
                </span>
            </div>
            {canary}
            <p class="rollout-result" role="status" data-test="rollout-result">
                {move || match result.get() {
                    Some(Ok(m)) => view! { <span class="ok">{m}</span> }.into_any(),
                    Some(Err(m)) => view! { <span class="bad">{m}</span> }.into_any(),
                    None => ().into_any(),
                }}
            </p>
        </section>
    }
    .into_any()
}

#[component]
fn Versions(
    name: String,
    env: String,
    can_publish: bool,
    active_version: Signal<Option<u64>>,
    on_changed: Callback<()>,
) -> impl IntoView {
    let target = StoredValue::new((name, env));
    let versions = Remote::new(move || {
        let (n, e) = target.get_value();
        async move { api::list_versions(&n, &e).await }
    });
    let diff = RwSignal::new(None::<(u64, Result<DiffView, String>)>);
    let rollback_to = RwSignal::new(None::<u64>);
    let show_diff = Callback::new(move |version: u64| {
        let (n, e) = target.get_value();
        leptos::task::spawn_local(async move {
            let result = api::diff(&n, &e, &(version - 1).to_string(), &version.to_string())
                .await
                .map_err(|e| e.message());
            diff.try_set(Some((version, result)));
        });
    });
    let after_rollback = Callback::new(move |()| {
        versions.reload();
        on_changed.run(());
    });
    view! {
        <section class="panel" aria-labelledby="versions-title">
            <div class="panel-header">
                <h2 id="versions-title">"Published versions"</h2>
                <p class="muted">"Immutable; newest first. Times in UTC."</p>
            </div>
            {move || match versions.get() {
                None => view! { <Loading label="Loading versions…" /> }.into_any(),
                Some(Err(e)) => {
                    view! { <LoadError message=e.message() retry=Callback::new(move |()| versions.reload()) /> }
                        .into_any()
                }
                Some(Ok(list)) => {
                    view! {
                        <VersionsTable
                            versions=list
                            can_publish
                            active_version
                            show_diff
                            rollback_to
                        />
                    }
                        .into_any()
                }
            }}
        </section>
        {move || {
            rollback_to
                .get()
                .map(|version| {
                    view! {
                        <RollbackForm
                            target
                            version
                            on_done=after_rollback
                            on_cancel=Callback::new(move |()| rollback_to.set(None))
                        />
                    }
                })
        }}
        {move || {
            diff.get()
                .map(|(version, result)| {
                    view! {
                        <section class="panel" aria-labelledby="version-diff-title">
                            <div class="panel-header">
                                <h2 id="version-diff-title">
                                    {format!("Changes from v{} to v{version}", version - 1)}
                                </h2>
                            </div>
                            <div class="panel-body">
                                {match result {
                                    Ok(view) => view! { <DiffList changes=view.changes /> }.into_any(),
                                    Err(m) => view! { <p class="alert alert-error">{m}</p> }.into_any(),
                                }}
                            </div>
                        </section>
                    }
                })
        }}
    }
    .into_any()
}

#[component]
fn VersionsTable(
    versions: Vec<VersionView>,
    can_publish: bool,
    active_version: Signal<Option<u64>>,
    show_diff: Callback<u64>,
    rollback_to: RwSignal<Option<u64>>,
) -> impl IntoView {
    if versions.is_empty() {
        return view! {
            <div class="empty-state empty-state-flat" data-test="versions-empty">
                <h2>"Nothing published yet."</h2>
                <p>"Publish from the policy editor; every publish makes a version here."</p>
            </div>
        }
        .into_any();
    }
    let rows = versions
        .into_iter()
        .map(|v| {
            let at = Utc::from_millis(v.created_at_ms);
            let version = v.version;
            view! {
                <tr data-test=format!("version-row-{version}")>
                    <td class="num">
                        <strong>{format!("v{version}")}</strong>
                        {move || {
                            (active_version.get() == Some(version))
                                .then(|| view! { <span class="badge badge-ok">"active"</span> })
                        }}
                    </td>
                    <td>
                        <code>{v.author}</code>
                    </td>
                    <td>
                        {match v.approver {
                            Some(a) => view! { <code>{a}</code> }.into_any(),
                            None => view! { <span class="muted">"—"</span> }.into_any(),
                        }}
                    </td>
                    <td class="wrap">{v.message}</td>
                    <td class="nowrap">
                        <time datetime=at.iso()>{at.display()}</time>
                    </td>
                    <td class="row-actions">
                        {(version > 1)
                            .then(|| {
                                view! {
                                    <button
                                        type="button"
                                        class="button button-small"
                                        data-test=format!("diff-previous-{version}")
                                        on:click=move |_| show_diff.run(version)
                                    >
                                        "Diff with previous"
                                    </button>
                                }
                            })}
                        {can_publish
                            .then(|| {
                                view! {
                                    <button
                                        type="button"
                                        class="button button-small"
                                        data-test=format!("rollback-{version}")
                                        disabled=move || active_version.get() == Some(version)
                                        on:click=move |_| rollback_to.set(Some(version))
                                    >
                                        "Roll back to this"
                                    </button>
                                }
                            })}
                    </td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <div class="table-scroll">
            <table class="table" data-test="versions-table">
                <thead>
                    <tr>
                        <th scope="col" class="num">"Version"</th>
                        <th scope="col">"Author"</th>
                        <th scope="col">"Approver"</th>
                        <th scope="col">"Message"</th>
                        <th scope="col">"Published"</th>
                        <th scope="col">
                            <span class="visually-hidden">"Actions"</span>
                        </th>
                    </tr>
                </thead>
                <tbody>{rows}</tbody>
            </table>
        </div>
    }
    .into_any()
}

#[component]
fn RollbackForm(
    target: StoredValue<(String, String)>,
    version: u64,
    on_done: Callback<()>,
    on_cancel: Callback<()>,
) -> impl IntoView {
    let hydrated = Hydrated::expect();
    let message = RwSignal::new(String::new());
    let result = RwSignal::new(None::<Result<String, String>>);
    let act = Action::new_local(move |request: &RollbackRequest| {
        let request = request.clone();
        async move {
            let (n, e) = target.get_value();
            match api::rollback(&n, &e, &request).await {
                Ok(outcome) => {
                    result.try_set(Some(Ok(outcome_text(&outcome))));
                    on_done.run(());
                }
                Err(e) => {
                    result.try_set(Some(Err(describe(&e))));
                }
            }
        }
    });
    let pending = act.pending();
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let text = message.get_untracked();
        if text.trim().is_empty() {
            result.set(Some(Err("Say why you roll back.".into())));
            return;
        }
        act.dispatch(RollbackRequest {
            to_version: version,
            message: text.trim().to_owned(),
        });
    };
    view! {
        <section class="panel" aria-labelledby="rollback-title" data-test="rollback-form">
            <div class="panel-header">
                <h2 id="rollback-title">{format!("Roll back to v{version}")}</h2>
                <p class="muted">"Publishes v" {version} "'s content again as a new version, with the same checks and approvals as any publish."</p>
            </div>
            <form class="form inline-form" novalidate on:submit=submit>
                <div class="cell-field">
                    <label for="rollback-message">"Why"</label>
                    <input
                        id="rollback-message"
                        type="text"
                        autocomplete="off"
                        data-test="rollback-message"
                        prop:value=move || message.get()
                        on:input=move |ev| message.set(event_target_value(&ev))
                    />
                </div>
                <div class="button-row">
                    <button
                        type="submit"
                        class="button button-primary"
                        data-test="rollback-confirm"
                        disabled=move || pending.get() || !hydrated.get()
                    >
                        "Roll back"
                    </button>
                    <button type="button" class="button" on:click=move |_| on_cancel.run(())>
                        "Cancel"
                    </button>
                </div>
                <div role="status" data-test="rollback-result">
                    {move || match result.get() {
                        Some(Ok(m)) => view! { <p class="alert alert-success">{m}</p> }.into_any(),
                        Some(Err(m)) => view! { <p class="alert alert-error">{m}</p> }.into_any(),
                        None => ().into_any(),
                    }}
                </div>
            </form>
        </section>
    }
    .into_any()
}

fn describe(error: &ApiError) -> String {
    match error.field() {
        Some(field) if !field.is_empty() => format!("{} (at {field})", error.message()),
        _ => error.message(),
    }
}

#[component]
fn Instances(name: String, env: String) -> impl IntoView {
    let target = StoredValue::new((name, env));
    let instances = Remote::new(move || {
        let (n, e) = target.get_value();
        async move { api::instances(&n, &e).await }
    });
    // The fleet changes by itself; look again every few seconds while the
    // tab is open. Effects only run in the browser.
    Effect::new(move |_| {
        if let Ok(handle) = set_interval_with_handle(
            move || instances.reload(),
            std::time::Duration::from_secs(5),
        ) {
            on_cleanup(move || handle.clear());
        }
    });
    view! {
        <section class="panel" aria-labelledby="instances-title">
            <div class="panel-header">
                <h2 id="instances-title">"Instances"</h2>
                <p class="muted">"What each agent enforces against what it should. Refreshes every 5 s."</p>
            </div>
            {move || match instances.get() {
                None => view! { <Loading label="Loading instances…" /> }.into_any(),
                Some(Err(e)) => {
                    view! { <LoadError message=e.message() retry=Callback::new(move |()| instances.reload()) /> }
                        .into_any()
                }
                Some(Ok(list)) => view! { <InstancesTable instances=list fleet=false /> }.into_any(),
            }}
        </section>
    }
    .into_any()
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::api::PublishOutcome;

    #[test]
    fn tabs_come_from_the_query() {
        assert_eq!(Tab::from_query(Some("versions")), Tab::Versions);
        assert_eq!(Tab::from_query(Some("instances")), Tab::Instances);
        assert_eq!(Tab::from_query(Some("telemetry")), Tab::Telemetry);
        assert_eq!(Tab::from_query(Some("objectives")), Tab::Objectives);
        assert_eq!(Tab::from_query(None), Tab::Editor);
        assert_eq!(Tab::from_query(Some("junk")), Tab::Editor);
    }

    #[test]
    fn outcomes_read_as_sentences() {
        let published = PublishOutcome::Published {
            version: 4,
            canary: false,
            report: Default::default(),
        };
        assert_eq!(outcome_text(&published), "Published v4.");
        let pending = PublishOutcome::PendingApproval {
            request_id: "abc".into(),
            reasons: vec!["the service's risk tier is high".into()],
            report: Default::default(),
        };
        assert!(outcome_text(&pending).starts_with("Waiting for approval: request abc."));
    }
}

/// The service's reliability report, which the server renders from the
/// active policy and live figures: to read in a new tab, or to download.
/// Plain links to the API (the browser's session cookie authenticates
/// them); `rel="external"` keeps the router from handling them as pages.
#[component]
fn ReportLinks(name: String, env: String) -> impl IntoView {
    let report = shared::paths::service(&name, &env).report();
    view! {
        <div class="report-links" role="group" aria-label="Reliability report" data-test="service-report">
            <a
                class="button"
                href=format!("{report}?format=html")
                target="_blank"
                rel="external noopener"
                data-test="service-report-html"
            >
                "Reliability report"
                <span class="visually-hidden">" (opens in a new tab)"</span>
            </a>
            <a
                class="button button-quiet"
                href=format!("{report}?format=markdown&download=true")
                rel="external"
                download
                data-test="service-report-download-markdown"
            >
                "Download Markdown"
            </a>
            <a
                class="button button-quiet"
                href=format!("{report}?format=html&download=true")
                rel="external"
                download
                data-test="service-report-download-html"
            >
                "Download HTML"
            </a>
        </div>
    }
}
