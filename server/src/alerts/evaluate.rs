//! The evaluator: every few seconds, on whichever replica holds the lease,
//! computes each enabled rule's metric and moves alerts along
//! `pending` → `firing` → `resolved`.
//!
//! The lease keeps the work to one replica at a time, but correctness does
//! not rest on it: a lease can run out under a slow evaluation, and then two
//! replicas evaluate at once. Each move is a conditional update that queues
//! its notifications in the same transaction, and a live alert is unique per
//! (rule, service, dependency), so the loser of a race changes nothing.

use super::metrics::{Sample, Window, day_start, window_start};
use super::{notify, rules, silences};
use crate::app::App;
use crate::error::ApiResult;
use crate::store::{AlertRow, NewAlert, NewNotification, ServiceRow};
use shared::api::{AlertMetric, AlertRuleWrite, AlertState, Comparison};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// The lease's name.
pub const LEASE: &str = "alert-evaluator";

/// What one evaluation did, for tests and logs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Evaluation {
    /// Alerts that began to hold (pending).
    pub opened: usize,
    /// Alerts that fired.
    pub fired: usize,
    /// Alerts that resolved (or, still pending, stopped holding).
    pub resolved: usize,
}

/// Runs the evaluator on this replica, every `settings.alert_interval`,
/// while it holds the lease.
pub fn start(app: &Arc<App>) {
    let Some(every) = app.settings.alert_interval else {
        return;
    };
    let weak = Arc::downgrade(app);
    let holder = format!("evaluator-{}", crate::auth::random_hex(8));
    let ttl_ms = i64::try_from(every.as_millis().saturating_mul(3)).unwrap_or(i64::MAX);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(app) = weak.upgrade() else { return };
            let now = app.clock.now_ms();
            match app.store.try_lease(LEASE, &holder, now, ttl_ms).await {
                Ok(true) => {
                    if let Err(e) = evaluate(&app, now).await {
                        tracing::warn!(error = %e.message, "alert evaluation failed");
                    }
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "cannot take the alert evaluator's lease"),
            }
        }
    });
}

fn breaches(rule: &AlertRuleWrite, sample: &Sample) -> bool {
    if rule.metric.is_rate() && sample.calls < i64::from(rule.min_calls) {
        // Too few calls to judge: a rate of 1 failure in 2 calls is noise.
        return false;
    }
    match rule.comparison {
        Comparison::Above => sample.value > rule.threshold,
        Comparison::Below => sample.value < rule.threshold,
    }
}

fn summary(name: &str, rule: &AlertRuleWrite, service: &ServiceRow, sample: &Sample) -> String {
    if let Some(note) = &sample.note {
        return format!("{name}: {note}");
    }
    let what = if sample.dependency.is_empty() {
        format!("{}/{}", service.name, service.environment)
    } else {
        format!(
            "{} on {}/{}",
            sample.dependency, service.name, service.environment
        )
    };
    let value = if rule.metric.is_rate() || rule.metric == AlertMetric::CostBudget {
        format!("{:.1}%", sample.value * 100.0)
    } else {
        format!("{}", sample.value.round())
    };
    let threshold = if rule.metric.is_rate() || rule.metric == AlertMetric::CostBudget {
        format!("{:.1}%", rule.threshold * 100.0)
    } else {
        format!("{}", rule.threshold)
    };
    format!(
        "{name}: {} of {what} is {value}, {} {threshold} over {} min",
        rule.metric.label(),
        rule.comparison.as_str(),
        rule.window_s.div_ceil(60)
    )
}

/// What the evaluation needs to know about the world, read once per run.
struct Inputs {
    windows: HashMap<i64, Window>,
    spend_today: HashMap<i64, i64>,
    budgets: HashMap<i64, Option<u64>>,
    dlq_depth: HashMap<i64, (i64, Option<i64>)>,
    dlq_growth: HashMap<i64, HashMap<i64, i64>>,
    objectives: HashMap<i64, crate::objectives::rules::Inputs>,
}

impl Inputs {
    async fn read(
        app: &App,
        now: i64,
        rules: &[(String, AlertRuleWrite)],
        services: &[ServiceRow],
    ) -> ApiResult<Inputs> {
        let mut inputs = Inputs {
            windows: HashMap::new(),
            spend_today: HashMap::new(),
            budgets: HashMap::new(),
            dlq_depth: HashMap::new(),
            dlq_growth: HashMap::new(),
            objectives: HashMap::new(),
        };
        for (_, rule) in rules {
            let since = window_start(now, rule.window_s);
            match rule.metric {
                AlertMetric::CostBudget => {
                    if inputs.budgets.is_empty() {
                        let today = Window::new(app.store.rollup_sums(day_start(now)).await?);
                        inputs.spend_today = today.spend();
                        for s in services {
                            // From the hub's snapshot, which holds it parsed:
                            // no document is read or parsed on this 5-second path.
                            let budget = app
                                .hub
                                .snapshot(s.id)
                                .await?
                                .active
                                .as_ref()
                                .and_then(|p| p.cost_budget_usd_micros);
                            inputs.budgets.insert(s.id, budget);
                        }
                    }
                }
                AlertMetric::DlqDepth | AlertMetric::DlqOldestAge => {
                    if inputs.dlq_depth.is_empty() {
                        for d in app.store.dead_letter_depths().await? {
                            inputs.dlq_depth.insert(d.service_id, (d.depth, d.oldest));
                        }
                    }
                }
                AlertMetric::DlqGrowth => {
                    if let std::collections::hash_map::Entry::Vacant(e) =
                        inputs.dlq_growth.entry(since)
                    {
                        e.insert(
                            app.store
                                .dead_letters_received_since(since)
                                .await?
                                .into_iter()
                                .collect(),
                        );
                    }
                }
                m if m.from_objectives() => {
                    for s in services.iter().filter(|s| rules::applies_to(rule, s)) {
                        if let std::collections::hash_map::Entry::Vacant(e) =
                            inputs.objectives.entry(s.id)
                            && let Some(read) =
                                crate::objectives::rules::Inputs::read(app, s, now).await?
                        {
                            e.insert(read);
                        }
                    }
                }
                _ => {
                    if let std::collections::hash_map::Entry::Vacant(e) =
                        inputs.windows.entry(since)
                    {
                        e.insert(Window::new(app.store.rollup_sums(since).await?));
                    }
                }
            }
        }
        Ok(inputs)
    }

    fn samples(&self, now: i64, rule: &AlertRuleWrite, service_id: i64) -> Vec<Sample> {
        let since = window_start(now, rule.window_s);
        let one = |value: f64| {
            vec![Sample {
                service_id,
                dependency: String::new(),
                value,
                calls: 0,
                note: None,
            }]
        };
        if rule.metric.from_objectives() {
            return self
                .objectives
                .get(&service_id)
                .and_then(|inputs| inputs.sample(rule, service_id, now))
                .into_iter()
                .collect();
        }
        match rule.metric {
            AlertMetric::CostBudget => match self.budgets.get(&service_id).copied().flatten() {
                Some(budget) if budget > 0 => {
                    let spent = self.spend_today.get(&service_id).copied().unwrap_or(0);
                    one(spent as f64 / budget as f64)
                }
                // No budget in the policy: nothing to be near.
                _ => Vec::new(),
            },
            AlertMetric::DlqDepth => one(self
                .dlq_depth
                .get(&service_id)
                .map_or(0.0, |(d, _)| *d as f64)),
            AlertMetric::DlqOldestAge => one(self
                .dlq_depth
                .get(&service_id)
                .and_then(|(_, oldest)| *oldest)
                .map_or(0.0, |t| ((now - t).max(0) / 1000) as f64)),
            AlertMetric::DlqGrowth => one(self
                .dlq_growth
                .get(&since)
                .and_then(|m| m.get(&service_id))
                .map_or(0.0, |n| *n as f64)),
            _ => self
                .windows
                .get(&since)
                .map(|w| w.samples(rule.metric, service_id))
                .unwrap_or_default()
                .into_iter()
                .filter(|s| {
                    rule.scope
                        .dependency
                        .as_ref()
                        .is_none_or(|d| *d == s.dependency)
                })
                .collect(),
        }
    }
}

type Key = (String, i64, String);

/// Evaluates every enabled rule at `now`, once.
pub async fn evaluate(app: &App, now: i64) -> ApiResult<Evaluation> {
    // The canary analysis acts first, so that an abort's alert fires in
    // this same evaluation; then the generated rules follow the policies
    // now in force.
    let services = app.store.list_services().await?;
    crate::objectives::canary::act(app, &services, now).await?;
    crate::objectives::rules::sync(app, &services, now).await?;
    let rules: Vec<(String, AlertRuleWrite)> = app
        .store
        .alert_rules()
        .await?
        .iter()
        .map(|row| Ok((row.name.clone(), rules::definition(row)?)))
        .collect::<ApiResult<_>>()?;
    let enabled: Vec<(String, AlertRuleWrite)> =
        rules.iter().filter(|(_, r)| r.enabled).cloned().collect();
    let inputs = Inputs::read(app, now, &enabled, &services).await?;
    let live: HashMap<Key, AlertRow> = app
        .store
        .live_alerts()
        .await?
        .into_iter()
        .map(|a| ((a.rule.clone(), a.service_id, a.dependency.clone()), a))
        .collect();
    let silences = silences::active(app, now).await?;
    let by_id: HashMap<i64, &ServiceRow> = services.iter().map(|s| (s.id, s)).collect();
    let mut seen: HashSet<Key> = HashSet::new();
    let mut out = Evaluation::default();

    for (name, rule) in &enabled {
        for service in services.iter().filter(|s| rules::applies_to(rule, s)) {
            for sample in inputs.samples(now, rule, service.id) {
                let key: Key = (name.clone(), service.id, sample.dependency.clone());
                let text = summary(name, rule, service, &sample);
                let breach = breaches(rule, &sample);
                if breach {
                    seen.insert(key.clone());
                }
                match (breach, live.get(&key)) {
                    (true, None) => {
                        let id = format!("al-{}", crate::auth::random_hex(8));
                        let opened = app
                            .store
                            .open_alert(&NewAlert {
                                id: &id,
                                rule: name,
                                service_id: service.id,
                                dependency: &sample.dependency,
                                value: sample.value,
                                threshold: rule.threshold,
                                summary: &text,
                                now_ms: now,
                            })
                            .await?;
                        if opened {
                            out.opened += 1;
                            if rule.for_s == 0 {
                                let row = app.store.alert(&id).await?;
                                if let Some(row) = row {
                                    out.fired += usize::from(
                                        fire(app, name, rule, row, now, &silences).await?,
                                    );
                                }
                            }
                        }
                    }
                    (true, Some(alert)) => {
                        app.store
                            .update_alert_value(&alert.id, sample.value, &text)
                            .await?;
                        if alert.state == AlertState::Pending.as_str()
                            && now - alert.started_at >= i64::from(rule.for_s) * 1000
                        {
                            let mut row = alert.clone();
                            row.value = sample.value;
                            row.summary = text;
                            out.fired +=
                                usize::from(fire(app, name, rule, row, now, &silences).await?);
                        }
                    }
                    (false, _) => {}
                }
            }
        }
    }

    // Every live alert whose condition no longer holds (or whose rule was
    // disabled, or whose service or dependency stopped reporting) ends.
    let all_rules: HashMap<&str, &AlertRuleWrite> =
        rules.iter().map(|(n, r)| (n.as_str(), r)).collect();
    for (key, alert) in &live {
        if seen.contains(key) {
            continue;
        }
        if alert.state == AlertState::Pending.as_str() {
            app.store.drop_pending_alert(&alert.id).await?;
            out.resolved += 1;
            continue;
        }
        let Some(rule) = all_rules.get(alert.rule.as_str()) else {
            continue;
        };
        let Some(service) = by_id.get(&alert.service_id) else {
            continue;
        };
        let mut row = alert.clone();
        row.resolved_at = Some(now);
        let notes = notify::notifications_for(
            rule,
            &row,
            AlertState::Resolved,
            silenced_by(&silences, &row),
        )?;
        if app
            .store
            .transition_alert(&alert.id, "firing", "resolved", now, &notes)
            .await?
        {
            out.resolved += 1;
            tracing::info!(alert = %alert.id, rule = %alert.rule, service = %service.name, "alert resolved");
        }
    }
    Ok(out)
}

fn silenced_by(silences: &[crate::store::SilenceRow], row: &AlertRow) -> Option<String> {
    silences::matching(silences, &row.rule, &row.service, &row.environment)
}

async fn fire(
    app: &App,
    name: &str,
    rule: &AlertRuleWrite,
    mut row: AlertRow,
    now: i64,
    silences: &[crate::store::SilenceRow],
) -> ApiResult<bool> {
    row.fired_at = Some(now);
    row.state = AlertState::Firing.as_str().to_owned();
    let notes: Vec<NewNotification> =
        notify::notifications_for(rule, &row, AlertState::Firing, silenced_by(silences, &row))?;
    let fired = app
        .store
        .transition_alert(&row.id, "pending", "firing", now, &notes)
        .await?;
    if fired {
        tracing::warn!(alert = %row.id, rule = name, summary = %row.summary, "alert firing");
    }
    Ok(fired)
}
