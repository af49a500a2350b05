//! The alert rules: what each watches, where, when it fires and which
//! runbook it leads to; engineers write, edit and disable them.

use super::form::{FormError, LineField, Problem, SelectField};
use crate::api;
use crate::app::Hydrated;
use crate::components::data_table::{DataTable, Head};
use crate::components::fields::{from_wire, words};
use crate::components::firing_alerts::runbook_href;
use crate::layout::{LoadError, Loading, Outcome, Panel};
use crate::remote::Remote;
use crate::time::age;
use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use shared::api::{AlertMetric, AlertRuleView, AlertRuleWrite, AlertScope, Comparison, Severity};

#[component]
pub fn RulesPanel(can_edit: bool) -> impl IntoView {
    let hydrated = Hydrated::expect();
    let rules = Remote::new(api::alert_rules);
    // The rule being written: `Some(None)` a new one, `Some(Some(rule))` an
    // edit of that rule.
    let editing = RwSignal::new(None::<Option<AlertRuleView>>);
    let outcome = RwSignal::new(None::<Result<String, String>>);
    let saved = Callback::new(move |view: AlertRuleView| {
        editing.set(None);
        outcome.set(Some(Ok(format!("Saved rule {}.", view.name))));
        rules.reload();
    });
    let toggle = Action::new_local(move |rule: &AlertRuleView| {
        let mut write = rule.rule.clone();
        write.enabled = !write.enabled;
        let name = rule.name.clone();
        async move {
            let result = api::put_alert_rule(&name, &write).await;
            outcome.try_set(Some(match result {
                Ok(v) if v.rule.enabled => Ok(format!("Enabled rule {name}.")),
                Ok(_) => Ok(format!("Disabled rule {name}: its firing alerts resolve.")),
                Err(e) => Err(e.message()),
            }));
            rules.reload();
        }
    });
    let ctx = RuleActions {
        can_edit,
        edit: Callback::new(move |rule| editing.set(Some(Some(rule)))),
        toggle: Callback::new(move |rule| {
            toggle.dispatch(rule);
        }),
        pending: toggle.pending().into(),
    };
    view! {
        <Panel
            id="alert-rules-title"
            title="Rules"
            about="Built-in rules cover the reliability figures every service reports; they can be edited or disabled like any other. Windows are rounded up to whole minutes."
            test="alert-rules"
        >
            {can_edit
                .then(|| {
                    view! {
                        <div class="panel-body button-row">
                            <button
                                type="button"
                                class="button button-primary"
                                data-test="rule-new"
                                disabled=move || !hydrated.get()
                                on:click=move |_| editing.set(Some(None))
                            >
                                "New rule"
                            </button>
                        </div>
                    }
                })}
            <Outcome result=outcome test="rule-outcome" />
            {move || {
                editing
                    .get()
                    .map(|rule| {
                        view! { <RuleForm rule on_saved=saved on_cancel=Callback::new(move |()| editing.set(None)) /> }
                    })
            }}
            {move || match rules.get() {
                None => view! { <Loading label="Loading rules…" /> }.into_any(),
                Some(Err(e)) => {
                    view! { <LoadError message=e.message() retry=Callback::new(move |()| rules.reload()) /> }.into_any()
                }
                Some(Ok(list)) => {
                    let rows = list.into_iter().map(|r| rule_row(r, ctx)).collect();
                    view! {
                        <DataTable
                            caption="Alert rules"
                            test="alert-rules-table"
                            heads=HEADS
                            empty="No rule yet."
                            rows
                        />
                    }
                        .into_any()
                }
            }}
        </Panel>
    }
}

#[derive(Clone, Copy)]
struct RuleActions {
    can_edit: bool,
    edit: Callback<AlertRuleView>,
    toggle: Callback<AlertRuleView>,
    pending: Signal<bool>,
}

const HEADS: &[Head] = &[
    ("Rule", ""),
    ("Metric", ""),
    ("Condition", ""),
    ("Window", ""),
    ("For", ""),
    ("Severity", ""),
    ("Runbook", ""),
    ("State", ""),
];

/// Where a rule applies, in words.
fn scope_words(s: &AlertScope) -> String {
    let parts: Vec<String> = [
        ("service", &s.service),
        ("env", &s.environment),
        ("dependency", &s.dependency),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k} {v}")))
    .collect();
    if parts.is_empty() {
        "everywhere".to_owned()
    } else {
        parts.join(", ")
    }
}

fn rule_row(r: AlertRuleView, ctx: RuleActions) -> AnyView {
    let hydrated = Hydrated::expect();
    let test = format!("rule-row-{}", r.name);
    let w = &r.rule;
    let condition = format!(
        "{} {} ({})",
        w.comparison.label(),
        w.threshold,
        scope_words(&w.scope)
    );
    let window = age(i64::from(w.window_s) * 1000);
    let hold = if w.for_s == 0 {
        "at once".to_owned()
    } else {
        age(i64::from(w.for_s) * 1000)
    };
    let enabled = w.enabled;
    let actions = ctx.can_edit.then(|| {
        let (for_edit, for_toggle) = (r.clone(), r.clone());
        view! {
            <div class="row-actions">
                <button
                    type="button"
                    class="button button-small"
                    data-test=format!("rule-edit-{}", r.name)
                    disabled=move || !hydrated.get()
                    on:click=move |_| ctx.edit.run(for_edit.clone())
                >
                    "Edit"
                </button>
                <button
                    type="button"
                    class="button button-small button-quiet"
                    data-test=format!("rule-toggle-{}", r.name)
                    disabled=move || ctx.pending.get() || !hydrated.get()
                    on:click=move |_| ctx.toggle.run(for_toggle.clone())
                >
                    {if enabled { "Disable" } else { "Enable" }}
                </button>
            </div>
        }
    });
    view! {
        <tr data-test=test data-enabled=enabled.to_string()>
            <td class="wrap">
                <strong>{r.name.clone()}</strong>
                {r.builtin.then(|| view! { " " <span class="badge badge-info">"built-in"</span> })}
                <p class="muted small">{w.description.clone()}</p>
            </td>
            <td>{w.metric.label()}</td>
            <td class="wrap">{condition}</td>
            <td class="nowrap">{window}</td>
            <td class="nowrap">{hold}</td>
            <td>{w.severity.label()}</td>
            <td>
                <a href=runbook_href(&w.runbook)>{w.runbook.clone()}</a>
            </td>
            <td>
                {if enabled { "Enabled" } else { "Disabled" }}
                {actions}
            </td>
        </tr>
    }
    .into_any()
}

/// The fields the form shows the server's complaints beside.
const FIELDS: &[&str] = &[
    "name",
    "description",
    "metric",
    "scope.service",
    "scope.environment",
    "scope.dependency",
    "comparison",
    "threshold",
    "window_s",
    "for_s",
    "severity",
    "runbook",
    "min_calls",
    "notify",
];

/// A new rule (`rule` is `None`: the form asks for its name) or an edit.
#[component]
fn RuleForm(
    rule: Option<AlertRuleView>,
    on_saved: Callback<AlertRuleView>,
    on_cancel: Callback<()>,
) -> impl IntoView {
    let hydrated = Hydrated::expect();
    let creating = rule.is_none();
    let start = rule
        .as_ref()
        .map(|r| r.rule.clone())
        .unwrap_or(AlertRuleWrite {
            description: String::new(),
            metric: AlertMetric::ErrorRate,
            scope: AlertScope::default(),
            comparison: Comparison::Above,
            threshold: 0.1,
            window_s: 300,
            for_s: 60,
            severity: Severity::Ticket,
            runbook: String::new(),
            min_calls: 20,
            notify: Vec::new(),
            enabled: true,
            objective: None,
        });
    let name = RwSignal::new(rule.as_ref().map(|r| r.name.clone()).unwrap_or_default());
    let text = |v: &Option<String>| RwSignal::new(v.clone().unwrap_or_default());
    let description = RwSignal::new(start.description.clone());
    let metric = RwSignal::new(start.metric.as_str().to_owned());
    let service = text(&start.scope.service);
    let environment = text(&start.scope.environment);
    let dependency = text(&start.scope.dependency);
    let comparison = RwSignal::new(start.comparison.as_str().to_owned());
    let threshold = RwSignal::new(start.threshold.to_string());
    let window = RwSignal::new(start.window_s.to_string());
    let hold = RwSignal::new(start.for_s.to_string());
    let severity = RwSignal::new(start.severity.as_str().to_owned());
    let runbook = RwSignal::new(start.runbook.clone());
    let min_calls = RwSignal::new(start.min_calls.to_string());
    let notify = RwSignal::new(start.notify.join(", "));
    let enabled = start.enabled;
    let problem = RwSignal::new(None::<Problem>);

    let save = Action::new_local(move |(name, write): &(String, AlertRuleWrite)| {
        let (name, write) = (name.clone(), write.clone());
        async move {
            match api::put_alert_rule(&name, &write).await {
                Ok(view) => on_saved.run(view),
                Err(e) => {
                    problem.try_set(Some(Problem::of(&e)));
                }
            }
        }
    });
    let pending = save.pending();
    let on_submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        if pending.get_untracked() {
            return;
        }
        match read_form(&FormValues {
            name: name.get_untracked(),
            description: description.get_untracked(),
            metric: metric.get_untracked(),
            service: service.get_untracked(),
            environment: environment.get_untracked(),
            dependency: dependency.get_untracked(),
            comparison: comparison.get_untracked(),
            threshold: threshold.get_untracked(),
            window: window.get_untracked(),
            hold: hold.get_untracked(),
            severity: severity.get_untracked(),
            runbook: runbook.get_untracked(),
            min_calls: min_calls.get_untracked(),
            notify: notify.get_untracked(),
            enabled,
        }) {
            Ok((name, write)) => {
                problem.set(None);
                save.dispatch((name, write));
            }
            Err(p) => problem.set(Some(p)),
        }
    };
    view! {
        <form class="form panel-body" novalidate data-test="rule-form" on:submit=on_submit>
            <h3>{if creating { "New rule".to_owned() } else { format!("Edit rule {}", name.get_untracked()) }}</h3>
            <FormError problem fields=FIELDS test="rule-form-error" />
            {creating
                .then(|| {
                    view! {
                        <LineField
                            id="rule-name"
                            field="name"
                            label="Name"
                            hint="A slug: lower-case letters, digits and hyphens. Policies name rules by it."
                            value=name
                            problem
                            required=true
                        />
                    }
                })}
            <LineField id="rule-description" field="description" label="Description" hint="What the rule is for, in a sentence." value=description problem />
            <SelectField
                id="rule-metric"
                field="metric"
                label="Metric"
                hint="Rates are shares of calls over the window; per-dependency metrics raise one alert per dependency."
                value=metric
                options=metric_options()
                problem
            />
            <fieldset>
                <legend>"Where (empty matches everything)"</legend>
                <LineField id="rule-service" field="scope.service" label="Service" hint="A service's name." value=service problem />
                <LineField id="rule-environment" field="scope.environment" label="Environment" hint="Such as prod." value=environment problem />
                <LineField id="rule-dependency" field="scope.dependency" label="Dependency" hint="As policies name it, such as reranker." value=dependency problem />
            </fieldset>
            <SelectField id="rule-comparison" field="comparison" label="Fires when the value is" hint="Which side of the threshold is bad." value=comparison options=Comparison::OPTIONS.to_vec() problem />
            <LineField id="rule-threshold" field="threshold" label="Threshold" hint="In the metric's unit: 0.1 is 10 % for a rate." value=threshold problem kind="number" />
            <LineField id="rule-window" field="window_s" label="Window (seconds)" hint="60 to 86 400." value=window problem kind="number" />
            <LineField id="rule-for" field="for_s" label="For (seconds)" hint="How long the condition must hold before the alert fires; 0 fires at once." value=hold problem kind="number" />
            <SelectField id="rule-severity" field="severity" label="Severity" hint="Page wakes someone up." value=severity options=Severity::OPTIONS.to_vec() problem />
            <LineField
                id="rule-runbook"
                field="runbook"
                label="Runbook (required)"
                hint="The slug of the runbook the alert leads to: what should the person it wakes do?"
                value=runbook
                problem
                required=true
            />
            <LineField id="rule-min-calls" field="min_calls" label="Minimum calls" hint="Rates are not judged on fewer calls than this in the window." value=min_calls problem kind="number" />
            <LineField id="rule-notify" field="notify" label="Notify webhooks" hint="Webhook ids, comma-separated; empty notifies nobody." value=notify problem />
            <div class="button-row">
                <button
                    type="submit"
                    class="button button-primary"
                    data-test="rule-save"
                    disabled=move || pending.get() || !hydrated.get()
                    aria-busy=move || pending.get().then_some("true")
                >
                    {move || if pending.get() { "Saving…" } else { "Save rule" }}
                </button>
                <button type="button" class="button button-quiet" data-test="rule-cancel" on:click=move |_| on_cancel.run(())>
                    "Cancel"
                </button>
            </div>
        </form>
    }
}

/// The form's text, as typed.
struct FormValues {
    name: String,
    description: String,
    metric: String,
    service: String,
    environment: String,
    dependency: String,
    comparison: String,
    threshold: String,
    window: String,
    hold: String,
    severity: String,
    runbook: String,
    min_calls: String,
    notify: String,
    enabled: bool,
}

const CHOOSE: &str = "Choose one of the options.";

/// The rule the form describes, or the first field that is not a number.
/// Everything else (a missing runbook included) is the server's to judge,
/// so the page shows the same words the API gives.
fn read_form(v: &FormValues) -> Result<(String, AlertRuleWrite), Problem> {
    let blame = |field: &str, message: &str| Problem {
        field: Some(field.to_owned()),
        message: message.to_owned(),
    };
    let opt = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
    let whole = |field: &str, s: &str| {
        s.trim()
            .parse::<u32>()
            .map_err(|_| blame(field, "Enter a whole number."))
    };
    let name = v.name.trim().to_owned();
    if name.is_empty() {
        return Err(blame("name", "Give the rule a name."));
    }
    let threshold = v
        .threshold
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|t| t.is_finite())
        .ok_or_else(|| blame("threshold", "Enter a number."))?;
    Ok((
        name,
        AlertRuleWrite {
            description: v.description.trim().to_owned(),
            metric: from_wire(&v.metric).map_err(|_| blame("metric", CHOOSE))?,
            scope: AlertScope {
                service: opt(&v.service),
                environment: opt(&v.environment),
                dependency: opt(&v.dependency),
            },
            comparison: from_wire(&v.comparison).map_err(|_| blame("comparison", CHOOSE))?,
            threshold,
            window_s: whole("window_s", &v.window)?,
            for_s: whole("for_s", &v.hold)?,
            severity: from_wire(&v.severity).map_err(|_| blame("severity", CHOOSE))?,
            runbook: v.runbook.trim().to_owned(),
            min_calls: whole("min_calls", &v.min_calls)?,
            notify: words(&v.notify),
            enabled: v.enabled,
            objective: None,
        },
    ))
}

/// The metrics a person may write a rule on: burn-rate and safety rules
/// are generated from the policy's objectives instead.
fn metric_options() -> Vec<(&'static str, &'static str)> {
    AlertMetric::ALL
        .iter()
        .filter(|m| !m.from_objectives())
        .map(|m| (m.as_str(), m.label()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> FormValues {
        FormValues {
            name: " slow-reranker ".into(),
            description: "x".into(),
            metric: "timeout_rate".into(),
            service: "rag-answer".into(),
            environment: " ".into(),
            dependency: "reranker".into(),
            comparison: "above".into(),
            threshold: "0.25".into(),
            window: "300".into(),
            hold: "0".into(),
            severity: "page".into(),
            runbook: "".into(),
            min_calls: "20".into(),
            notify: "wh-1, wh-2".into(),
            enabled: true,
        }
    }

    #[test]
    fn the_form_reads_as_a_rule_and_leaves_the_runbook_to_the_server() {
        let (name, rule) = read_form(&values()).unwrap();
        assert_eq!(name, "slow-reranker");
        assert_eq!(rule.metric, AlertMetric::TimeoutRate);
        assert_eq!(rule.scope.environment, None);
        assert_eq!(rule.scope.dependency.as_deref(), Some("reranker"));
        assert_eq!(rule.severity, Severity::Page);
        assert_eq!(rule.notify, vec!["wh-1", "wh-2"]);
        // An empty runbook goes to the server, whose 422 names the field.
        assert_eq!(rule.runbook, "");
    }

    #[test]
    fn a_field_that_is_not_a_number_is_blamed() {
        let mut v = values();
        v.window = "5 min".into();
        assert_eq!(
            read_form(&v).unwrap_err().field.as_deref(),
            Some("window_s")
        );
        let mut v = values();
        v.threshold = "NaN".into();
        assert_eq!(
            read_form(&v).unwrap_err().field.as_deref(),
            Some("threshold")
        );
    }
}
