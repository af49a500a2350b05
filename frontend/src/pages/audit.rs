use crate::api::{self, AUDIT_PAGE_SIZE};
use crate::layout::{LoadError, Loading, PageHeader, RequirePermission};
use crate::remote::Remote;
use crate::time::Utc;
use leptos::prelude::*;
use leptos_meta::Title;
use shared::api::AuditEntryView;
use shared::role::Permission;

#[component]
pub fn AuditPage() -> impl IntoView {
    view! {
        <Title text="Audit log" />
        <RequirePermission permission=Permission::ReadAudit purpose="read the audit log">
            <AuditLog />
        </RequirePermission>
    }
}

#[component]
fn AuditLog() -> impl IntoView {
    let entries = Remote::new(api::recent_audit);
    let refresh = move |_| entries.reload();
    view! {
        <PageHeader
            title="Audit log"
            lede="Every change to users, tokens, policy and dead letters, and every sign-in. Entries are hash-chained: each commits to the one before, so an edit anywhere breaks the chain."
        >
            <button type="button" class="button" on:click=refresh>
                "Refresh"
            </button>
        </PageHeader>
        <section class="panel" aria-labelledby="audit-title">
            <div class="panel-header">
                <h2 id="audit-title">"Latest entries"</h2>
                <p class="muted">{format!("The newest {AUDIT_PAGE_SIZE}, newest first. Times in UTC.")}</p>
            </div>
            {move || match entries.get() {
                None => view! { <Loading label="Loading the audit log…" /> }.into_any(),
                Some(Ok(list)) => view! { <AuditTable entries=list /> }.into_any(),
                Some(Err(e)) => {
                    view! {
                        <LoadError
                            message=e.message()
                            retry=Callback::new(move |()| entries.reload())
                        />
                    }
                        .into_any()
                }
            }}
        </section>
    }
}

#[component]
fn AuditTable(entries: Vec<AuditEntryView>) -> impl IntoView {
    let empty = entries.is_empty();
    let rows = entries
        .into_iter()
        .map(|entry| view! { <AuditRow entry /> })
        .collect_view();
    view! {
        <div class="table-scroll">
            <table class="table" data-test="audit-table">
                <thead>
                    <tr>
                        <th scope="col" class="num">"#"</th>
                        <th scope="col">"When"</th>
                        <th scope="col">"Who"</th>
                        <th scope="col">"Action"</th>
                        <th scope="col">"Target"</th>
                        <th scope="col">"Details"</th>
                        <th scope="col">"Hash"</th>
                    </tr>
                </thead>
                <tbody>
                    {empty
                        .then(|| {
                            view! {
                                <tr>
                                    <td colspan="7" class="table-empty" data-test="audit-empty">
                                        "Nothing has been recorded yet."
                                    </td>
                                </tr>
                            }
                        })}
                    {rows}
                </tbody>
            </table>
        </div>
    }
}

#[component]
fn AuditRow(entry: AuditEntryView) -> impl IntoView {
    let at = Utc::from_millis(entry.at_ms);
    let detail = detail_text(&entry.detail);
    let short_hash: String = entry.hash.chars().take(12).collect();
    view! {
        <tr>
            <td class="num">{entry.seq}</td>
            <td class="nowrap">
                <time datetime=at.iso()>{at.display()}</time>
            </td>
            <td>
                <code>{entry.actor}</code>
            </td>
            <td>
                <code>{entry.action}</code>
            </td>
            <td class="wrap">
                <code>{entry.target}</code>
            </td>
            <td class="wrap-anywhere">
                {match detail {
                    Some(text) => view! { <code class="detail">{text}</code> }.into_any(),
                    None => view! { <span class="muted">"—"</span> }.into_any(),
                }}
            </td>
            <td>
                <code class="hash" title=entry.hash>
                    {short_hash}
                </code>
            </td>
        </tr>
    }
}

/// The detail JSON as one line, or `None` when there is nothing in it.
fn detail_text(detail: &serde_json::Value) -> Option<String> {
    use serde_json::Value;
    match detail {
        Value::Null => None,
        Value::Object(map) if map.is_empty() => None,
        Value::Array(items) if items.is_empty() => None,
        Value::String(text) if text.is_empty() => None,
        other => Some(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::detail_text;
    use serde_json::json;

    #[test]
    fn empty_details_show_as_nothing() {
        assert_eq!(detail_text(&json!(null)), None);
        assert_eq!(detail_text(&json!({})), None);
        assert_eq!(detail_text(&json!([])), None);
        assert_eq!(detail_text(&json!("")), None);
    }

    #[test]
    fn details_show_as_compact_json() {
        assert_eq!(
            detail_text(&json!({"role": "engineer"})).as_deref(),
            Some(r#"{"role":"engineer"}"#)
        );
        assert_eq!(detail_text(&json!(false)).as_deref(), Some("false"));
    }
}
