//! The whole document as YAML.
//!
//! The server reads YAML, through the REST API: the view checks the text
//! with `POST …/validate` as it is typed, and "Save as draft" sends it with
//! `PUT …/draft`, which parses it exactly as `ballast policy apply` does and
//! answers with the document. The browser carries no YAML parser: it was
//! the largest single part of the wasm bundle. Writing YAML needs no parser,
//! so the view writes the document itself, from its JSON form (see
//! [`to_yaml`]); a test holds that what it writes reads back as the same
//! policy.

use super::actions::describe;
use super::{Saved, Source};
use crate::api;
use crate::components::fields::Doc;
use leptos::html;
use leptos::prelude::*;
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use shared::policy::Policy;
use std::fmt::{self, Write};

/// Where the YAML view stands.
#[derive(Debug, Clone, PartialEq)]
enum Status {
    /// The text is the editor's document.
    Unchanged,
    /// The server is reading the text.
    Checking,
    /// The text is a policy with these many errors and warnings; not saved.
    Checked(usize, usize),
    /// Saved as the draft; the form shows it.
    Saved,
    /// The text is not a policy: the message and the path it blames.
    Invalid(String, Option<String>),
}

#[component]
pub fn YamlView(ed: Doc, saved: Saved, target: StoredValue<(String, String)>) -> impl IntoView {
    let text = RwSignal::new(ed.policy.with_untracked(to_yaml));
    let status = RwSignal::new(Status::Unchanged);
    let textarea = NodeRef::<html::Textarea>::new();
    // Answers can overtake each other; only the newest request's counts.
    let latest = StoredValue::new(0_u64);
    let next_request = move || {
        let generation = latest.get_value() + 1;
        latest.set_value(generation);
        generation
    };
    let is_latest = move |generation| latest.try_get_value() == Some(generation);

    let on_input = move |ev| {
        let value = event_target_value(&ev);
        text.set(value.clone());
        status.set(Status::Checking);
        let generation = next_request();
        leptos::task::spawn_local(async move {
            let (n, e) = target.get_value();
            let answer = api::validate_yaml(&n, &e, &value).await;
            if !is_latest(generation) {
                return;
            }
            status.try_set(match answer {
                Ok(view) => {
                    Status::Checked(view.report.errors().count(), view.report.warnings().count())
                }
                Err(error) => Status::Invalid(describe(&error), error.field().map(str::to_owned)),
            });
        });
    };
    let save = Action::new_local(move |source: &String| {
        let source = source.clone();
        let generation = next_request();
        async move {
            let (n, e) = target.get_value();
            let answer = api::save_draft_yaml(&n, &e, &source).await;
            if !is_latest(generation) {
                return;
            }
            match answer {
                Ok(draft) => {
                    text.try_set(to_yaml(&draft.policy));
                    ed.policy.try_set(draft.policy.clone());
                    saved.policy.try_set(draft.policy);
                    saved.source.try_set(Source::Draft {
                        by: draft.updated_by,
                        at_ms: draft.updated_at_ms,
                    });
                    status.try_set(Status::Saved);
                }
                Err(error) => {
                    status.try_set(Status::Invalid(
                        describe(&error),
                        error.field().map(str::to_owned),
                    ));
                    if let Some(t) = textarea.get_untracked() {
                        let _ = t.focus();
                    }
                }
            }
        }
    });
    view! {
        <section class="panel editor-section" aria-labelledby="yaml-title">
            <div class="panel-header">
                <h2 id="yaml-title">"The whole document as YAML"</h2>
                <p class="muted">
                    "Checked by the server as you type. Save it as the draft to use it in the form."
                </p>
            </div>
            <div class="yaml-body">
                <label for="yaml-editor" class="visually-hidden">
                    "Policy YAML"
                </label>
                <textarea
                    id="yaml-editor"
                    class="yaml-editor"
                    data-test="yaml-editor"
                    spellcheck="false"
                    autocomplete="off"
                    autocapitalize="none"
                    rows="28"
                    aria-describedby="yaml-status"
                    aria-invalid=move || {
                        status.with(|s| matches!(s, Status::Invalid(..))).then_some("true")
                    }
                    prop:value=move || text.get()
                    node_ref=textarea
                    on:input=on_input
                ></textarea>
                <div class="yaml-actions">
                    <button
                        type="button"
                        class="button"
                        data-test="yaml-apply"
                        disabled=move || save.pending().get()
                        on:click=move |_| {
                            save.dispatch(text.get_untracked());
                        }
                    >
                        "Save as draft"
                    </button>
                    <div id="yaml-status" class="yaml-status" aria-live="polite">
                        {move || match status.get() {
                            Status::Invalid(message, path) => {
                                view! {
                                    <p class="issue issue-error" data-test="yaml-error" data-path=path>
                                        {message}
                                    </p>
                                }
                                    .into_any()
                            }
                            Status::Saved => {
                                view! {
                                    <p class="muted" data-test="yaml-applied">
                                        "Saved as the draft."
                                    </p>
                                }
                                    .into_any()
                            }
                            Status::Checking => view! { <p class="muted">"Checking…"</p> }.into_any(),
                            Status::Checked(errors, warnings) => {
                                view! {
                                    <p class="muted" data-test="yaml-checked">
                                        {format!(
                                            "A policy with {errors} errors and {warnings} warnings; not saved yet.",
                                        )}
                                    </p>
                                }
                                    .into_any()
                            }
                            Status::Unchanged => {
                                view! { <p class="muted">"The editor's document."</p> }.into_any()
                            }
                        }}
                    </div>
                </div>
            </div>
        </section>
    }
    .into_any()
}

// ----- Writing YAML -------------------------------------------------------

/// A JSON value that keeps its keys in the order they came in, which is the
/// order of the model's fields.
enum Node {
    Null,
    Scalar(String),
    Text(String),
    List(Vec<Node>),
    Map(Vec<(String, Node)>),
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Scalar(v.to_string()))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Scalar(v.to_string()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
        Ok(Node::Scalar(v.to_string()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Node, E> {
        Ok(Node::Scalar(v.to_string()))
    }

    fn visit_str<E>(self, v: &str) -> Result<Node, E> {
        Ok(Node::Text(v.to_owned()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::List(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry()? {
            entries.push(entry);
        }
        Ok(Node::Map(entries))
    }
}

/// The policy as block-style YAML, in the model's field order.
pub fn to_yaml(policy: &Policy) -> String {
    let node = serde_json::to_string(policy)
        .ok()
        .and_then(|json| serde_json::from_str::<Node>(&json).ok());
    let mut out = String::new();
    if let Some(Node::Map(entries)) = node {
        write_map(&mut out, &entries, 0, false);
    }
    out
}

fn write_map(out: &mut String, entries: &[(String, Node)], indent: usize, inline_first: bool) {
    for (i, (key, value)) in entries.iter().enumerate() {
        if i > 0 || !inline_first {
            pad(out, indent);
        }
        out.push_str(&scalar_text(key));
        out.push(':');
        match value {
            Node::Map(inner) if !inner.is_empty() => {
                out.push('\n');
                write_map(out, inner, indent + 2, false);
            }
            Node::List(items) if !items.is_empty() => {
                out.push('\n');
                write_list(out, items, indent);
            }
            other => {
                out.push(' ');
                write_inline(out, other);
            }
        }
    }
}

fn write_list(out: &mut String, items: &[Node], indent: usize) {
    for item in items {
        pad(out, indent);
        out.push('-');
        match item {
            Node::Map(inner) if !inner.is_empty() => {
                out.push(' ');
                write_map(out, inner, indent + 2, true);
            }
            Node::List(inner) if !inner.is_empty() => {
                out.push('\n');
                write_list(out, inner, indent + 2);
            }
            other => {
                out.push(' ');
                write_inline(out, other);
            }
        }
    }
}

/// A scalar, or an empty map or list, and the end of its line.
fn write_inline(out: &mut String, node: &Node) {
    match node {
        Node::Null => out.push_str("null"),
        Node::Scalar(s) => out.push_str(s),
        Node::Text(s) => out.push_str(&scalar_text(s)),
        Node::List(_) => out.push_str("[]"),
        Node::Map(_) => out.push_str("{}"),
    }
    out.push('\n');
}

fn pad(out: &mut String, indent: usize) {
    let _ = write!(out, "{:indent$}", "");
}

/// A string as YAML: bare when it cannot be read as anything else, else
/// double-quoted (JSON's escapes are YAML's).
fn scalar_text(s: &str) -> String {
    let plain = s
        .chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_' || c == '/')
        && !s.ends_with(' ')
        && s.chars().all(|c| {
            c.is_alphanumeric() || matches!(c, ' ' | '_' | '-' | '.' | '/' | '(' | ')' | ',')
        })
        && !matches!(
            s.to_ascii_lowercase().as_str(),
            "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "y" | "n" | "nan" | "inf"
        );
    if plain {
        s.to_owned()
    } else {
        serde_json::to_string(s).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(name: &str) -> Policy {
        let path = format!("{}/../examples/policies/{name}", env!("CARGO_MANIFEST_DIR"));
        Policy::from_yaml(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn what_the_view_writes_reads_back_as_the_same_policy() {
        for name in ["rag-answer.yaml", "case-review-agent.yaml"] {
            let policy = example(name);
            let text = to_yaml(&policy);
            assert_eq!(Policy::from_yaml(&text).unwrap(), policy, "{name}:\n{text}");
            assert!(text.starts_with("service:\n  name: "), "{text}");
        }
    }

    #[test]
    fn strings_that_would_read_as_something_else_are_quoted() {
        for s in [
            "true", "No", "123", "1.5", "", " lead", "a: b", "#x", "- x", "é\"q",
        ] {
            assert!(scalar_text(s).starts_with('"'), "{s}");
        }
        assert_eq!(scalar_text("query_planner"), "query_planner");
        assert_eq!(
            scalar_text("This is unavailable right now."),
            "This is unavailable right now."
        );
    }
}
