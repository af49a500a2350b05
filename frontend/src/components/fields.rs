//! Labelled fields bound to one value of a policy document, with the
//! findings about that value beside them.
//!
//! A field reads its value through a memo, so typing in one field re-renders
//! only that field, and writes the parsed value back into the document. A
//! value the field cannot parse (letters in a number) is the field's own
//! complaint and leaves the document as it was.

use leptos::prelude::*;
use serde::{Serialize, de::DeserializeOwned};
use shared::policy::{Policy, Severity, ValidationReport};
use std::sync::Arc;

/// The document being edited and what validation says about it.
#[derive(Clone, Copy)]
pub struct Doc {
    pub policy: RwSignal<Policy>,
    pub report: Memo<ValidationReport>,
}

impl Doc {
    pub fn edit(self, f: impl FnOnce(&mut Policy)) {
        self.policy.update(f);
    }
}

/// Reads one value of the document as text.
pub type Getter = Arc<dyn Fn(&Policy) -> String + Send + Sync>;
/// Parses text into one value of the document, or says why it cannot.
pub type Setter = Arc<dyn Fn(&mut Policy, &str) -> Result<(), String> + Send + Sync>;
/// Reads a yes/no value of the document.
pub type GetBool = Arc<dyn Fn(&Policy) -> bool + Send + Sync>;
/// Writes a yes/no value of the document.
pub type SetBool = Arc<dyn Fn(&mut Policy, bool) + Send + Sync>;
/// Reads which of an enum's values a list holds, by wire name.
pub type GetList = Arc<dyn Fn(&Policy) -> Vec<String> + Send + Sync>;
/// Turns one value (by wire name) on or off in a list.
pub type SetInList = Arc<dyn Fn(&mut Policy, &str, bool) + Send + Sync>;
/// Finds an item of the document by its key (a map key, or a list index as
/// text).
pub type Find<T> = for<'a> fn(&'a Policy, &str) -> Option<&'a T>;
/// The same, for writing.
pub type FindMut<T> = for<'a> fn(&'a mut Policy, &str) -> Option<&'a mut T>;
/// An enum's choices: wire name and words.
pub type Options = &'static [(&'static str, &'static str)];

/// The id of the control for a document path, so that a finding can take
/// the keyboard to its field.
pub fn field_id(path: &str) -> String {
    format!("f-{path}")
}

/// `retry.model.max_attempts` → `editor-retry-model-max_attempts`.
pub fn test_id(path: &str) -> String {
    format!("editor-{}", path.replace('.', "-"))
}

/// Whether a finding at `finding` belongs beside the field at `field`:
/// the same path, or (for a group such as a list) a path inside it.
pub fn covers(field: &str, finding: &str, inside: bool) -> bool {
    finding == field
        || (inside
            && finding
                .strip_prefix(field)
                .is_some_and(|rest| rest.starts_with('.')))
}

pub fn num(text: &str) -> Result<u64, String> {
    text.trim()
        .parse()
        .map_err(|_| "enter a whole number, 0 or more".to_owned())
}

pub fn num32(text: &str) -> Result<u32, String> {
    num(text).and_then(|n| u32::try_from(n).map_err(|_| "that number is too large".to_owned()))
}

pub fn opt_num(text: &str) -> Result<Option<u64>, String> {
    if text.trim().is_empty() {
        Ok(None)
    } else {
        num(text).map(Some)
    }
}

pub fn opt_num32(text: &str) -> Result<Option<u32>, String> {
    if text.trim().is_empty() {
        Ok(None)
    } else {
        num32(text).map(Some)
    }
}

pub fn opt_text(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_owned())
}

pub fn show_opt<T: ToString>(value: Option<T>) -> String {
    value.map(|v| v.to_string()).unwrap_or_default()
}

/// `a, b` → `["a", "b"]`: a list typed as comma-separated words.
pub fn words(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The wire name of an enum value, such as `rate_limited`.
pub fn wire<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

pub fn from_wire<T: DeserializeOwned>(name: &str) -> Result<T, String> {
    serde_json::from_value(serde_json::Value::String(name.to_owned()))
        .map_err(|_| format!("`{name}` is not one of the choices"))
}

/// Runs `f` on an optional section, creating it, and drops the section
/// again when nothing is left in it.
pub fn in_section<T: Default + PartialEq>(
    slot: &mut Option<T>,
    f: impl FnOnce(&mut T) -> Result<(), String>,
) -> Result<(), String> {
    let section = slot.get_or_insert_with(T::default);
    let result = f(section);
    if *section == T::default() {
        *slot = None;
    }
    result
}

/// Runs `f` on an optional section if it is there (a form shows only
/// while it is).
pub fn in_present<T>(
    slot: &mut Option<T>,
    f: impl FnOnce(&mut T) -> Result<(), String>,
) -> Result<(), String> {
    slot.as_mut().map_or(Ok(()), f)
}

/// A getter and setter for one field of an item that `find` locates by
/// `key`.
pub fn lens<T: 'static>(
    key: &str,
    find: Find<T>,
    find_mut: FindMut<T>,
    get: fn(&T) -> String,
    set: fn(&mut T, &str) -> Result<(), String>,
) -> (Getter, Setter) {
    let (k1, k2) = (key.to_owned(), key.to_owned());
    (
        Arc::new(move |p| find(p, &k1).map(get).unwrap_or_default()),
        Arc::new(move |p, text| match find_mut(p, &k2) {
            Some(item) => set(item, text),
            None => Ok(()),
        }),
    )
}

/// The same for a yes/no field.
pub fn lens_bool<T: 'static>(
    key: &str,
    find: Find<T>,
    find_mut: FindMut<T>,
    get: fn(&T) -> bool,
    set: fn(&mut T, bool),
) -> (GetBool, SetBool) {
    let (k1, k2) = (key.to_owned(), key.to_owned());
    (
        Arc::new(move |p| find(p, &k1).is_some_and(get)),
        Arc::new(move |p, on| {
            if let Some(item) = find_mut(p, &k2) {
                set(item, on);
            }
        }),
    )
}

/// A lens on a value outside any keyed item.
pub fn top(
    get: fn(&Policy) -> String,
    set: fn(&mut Policy, &str) -> Result<(), String>,
) -> (Getter, Setter) {
    (Arc::new(get), Arc::new(set))
}

/// Findings at a path, beside its field. `local` is a complaint of the
/// field itself, such as text that is not a number.
#[component]
pub fn Issues(
    ed: Doc,
    #[prop(into)] path: String,
    #[prop(optional)] inside: bool,
    #[prop(optional)] local: Option<RwSignal<Option<String>>>,
    #[prop(optional, into)] id: Option<String>,
) -> impl IntoView {
    let found = Memo::new(move |_| {
        ed.report.with(|r| {
            r.findings
                .iter()
                .filter(|f| covers(&path, &f.path, inside))
                .map(|f| (f.severity, f.path.clone(), f.message.clone()))
                .collect::<Vec<_>>()
        })
    });
    view! {
        <div class="issues" id=id aria-live="polite">
            {move || {
                local
                    .and_then(|l| l.get())
                    .map(|message| {
                        view! {
                            <p class="issue issue-error" data-test="editor-error">
                                {message}
                            </p>
                        }
                    })
            }}
            {move || {
                found
                    .get()
                    .into_iter()
                    .map(|(severity, path, message)| {
                        let (class, test) = match severity {
                            Severity::Error => ("issue issue-error", "editor-error"),
                            Severity::Warning => ("issue issue-warning", "editor-warning"),
                        };
                        view! {
                            <p class=class data-test=test data-path=path>
                                {message}
                            </p>
                        }
                    })
                    .collect_view()
            }}
        </div>
    }
    .into_any()
}

/// The label of a control: above it in forms; for screen readers only in
/// table cells, whose column header says it.
fn label_class(visible: bool, shown: &'static str) -> &'static str {
    if visible { shown } else { "visually-hidden" }
}

/// A text or number input bound to one value of the document.
#[component]
pub fn Field(
    ed: Doc,
    #[prop(into)] path: String,
    #[prop(into)] label: String,
    lens: (Getter, Setter),
    #[prop(optional)] numeric: bool,
    #[prop(optional)] visible_label: bool,
    #[prop(optional, into)] placeholder: String,
    #[prop(optional)] wide: bool,
) -> impl IntoView {
    let (get, set) = lens;
    let id = field_id(&path);
    let issues_id = format!("{id}-issues");
    let local = RwSignal::new(None::<String>);
    let value = Memo::new(move |_| ed.policy.with(|p| get(p)));
    let error_path = path.clone();
    let invalid = move || {
        local.with(Option::is_some)
            || ed
                .report
                .with(|r| r.errors().any(|f| covers(&error_path, &f.path, false)))
    };
    let on_input = move |ev| {
        let text = event_target_value(&ev);
        let next = ed.policy.with_untracked(|p| {
            let mut next = p.clone();
            set(&mut next, &text).map(|()| next)
        });
        match next {
            Ok(next) => {
                local.set(None);
                if ed.policy.with_untracked(|p| *p != next) {
                    ed.policy.set(next);
                }
            }
            Err(message) => local.set(Some(message)),
        }
    };
    view! {
        <div class="cell-field" class:cell-wide=wide>
            <label for=id.clone() class=label_class(visible_label, "")>
                {label}
            </label>
            <input
                id=id
                type="text"
                class:numeric=numeric
                inputmode=numeric.then_some("numeric")
                autocomplete="off"
                spellcheck="false"
                placeholder=placeholder
                data-test=test_id(&path)
                aria-describedby=issues_id.clone()
                aria-invalid=move || invalid().then_some("true")
                prop:value=move || value.get()
                on:input=on_input
            />
            <Issues ed path local id=issues_id />
        </div>
    }
    .into_any()
}

/// A choice among an enum's values, bound to one value of the document.
#[component]
pub fn Choice(
    ed: Doc,
    #[prop(into)] path: String,
    #[prop(into)] label: String,
    lens: (Getter, Setter),
    options: Options,
    #[prop(optional)] visible_label: bool,
) -> impl IntoView {
    let (get, set) = lens;
    let id = field_id(&path);
    let issues_id = format!("{id}-issues");
    let value = Memo::new(move |_| ed.policy.with(|p| get(p)));
    let on_change = move |ev| {
        let text = event_target_value(&ev);
        ed.edit(|p| {
            let _ = set(p, &text);
        });
    };
    view! {
        <div class="cell-field">
            <label for=id.clone() class=label_class(visible_label, "")>
                {label}
            </label>
            <select
                id=id
                data-test=test_id(&path)
                aria-describedby=issues_id.clone()
                on:change=on_change
            >
                {options
                    .iter()
                    .map(|(wire, text)| {
                        view! {
                            <option value=*wire selected=move || value.with(|v| v == wire)>
                                {*text}
                            </option>
                        }
                    })
                    .collect_view()}
            </select>
            <Issues ed path id=issues_id />
        </div>
    }
    .into_any()
}

/// A yes/no value of the document.
#[component]
pub fn Check(
    ed: Doc,
    #[prop(into)] path: String,
    #[prop(into)] label: String,
    lens: (GetBool, SetBool),
    #[prop(optional)] visible_label: bool,
) -> impl IntoView {
    let (get, set) = lens;
    let id = field_id(&path);
    let value = Memo::new(move |_| ed.policy.with(|p| get(p)));
    view! {
        <div class="cell-field cell-check">
            <input
                id=id.clone()
                type="checkbox"
                data-test=test_id(&path)
                prop:checked=move || value.get()
                on:change=move |ev| {
                    let on = event_target_checked(&ev);
                    ed.edit(|p| set(p, on));
                }
            />
            <label for=id class=label_class(visible_label, "check-label")>
                {label}
            </label>
            <Issues ed path />
        </div>
    }
    .into_any()
}

/// A set of an enum's values (such as the retried error classes) as
/// checkboxes, folded into a summary line. `get` lists the chosen wire
/// names; `set` turns one on or off.
#[component]
pub fn CheckList(
    ed: Doc,
    #[prop(into)] path: String,
    #[prop(into)] label: String,
    options: Options,
    get: GetList,
    set: SetInList,
    /// Choices shown greyed out (allowed, but rarely right).
    #[prop(optional)]
    muted: Option<fn(&str) -> bool>,
) -> impl IntoView {
    let chosen = Memo::new(move |_| ed.policy.with(|p| get(p)));
    let summary = move || {
        let chosen = chosen.get();
        if chosen.is_empty() {
            "nothing".to_owned()
        } else {
            chosen.join(", ")
        }
    };
    let test = test_id(&path);
    let boxes = options
        .iter()
        .map(|(name, text)| {
            let id = format!("{}-{name}", field_id(&path));
            let set = set.clone();
            view! {
                <li>
                    <input
                        id=id.clone()
                        type="checkbox"
                        data-test=format!("{test}-{name}")
                        prop:checked=move || chosen.with(|c| c.iter().any(|v| v == name))
                        on:change=move |ev| {
                            let on = event_target_checked(&ev);
                            ed.edit(|p| set(p, name, on));
                        }
                    />
                    <label for=id class:muted=muted.is_some_and(|m| m(name))>
                        {*text}
                    </label>
                </li>
            }
        })
        .collect_view();
    view! {
        <details class="multi" id=field_id(&path)>
            <summary>
                <span class="visually-hidden">{label}": "</span>
                {summary}
            </summary>
            <ul class="check-list">{boxes}</ul>
        </details>
        <Issues ed path inside=true />
    }
    .into_any()
}

/// Turns `name` on or off in a list of enum values, keeping it sorted.
pub fn toggle_in<T: Ord + DeserializeOwned>(list: &mut Vec<T>, name: &str, on: bool) {
    let Ok(value) = from_wire::<T>(name) else {
        return;
    };
    list.retain(|v| *v != value);
    if on {
        list.push(value);
        list.sort();
    }
}

#[component]
pub fn RemoveButton(#[prop(into)] label: String, on_remove: Callback<()>) -> impl IntoView {
    view! {
        <button
            type="button"
            class="button button-quiet button-small"
            aria-label=label.clone()
            title=label
            on:click=move |_| on_remove.run(())
        >
            "Remove"
        </button>
    }
    .into_any()
}

/// A panel for one section of the document, with the findings about the
/// section as a whole. Its id is what the section index jumps to.
#[component]
pub fn Section(
    ed: Doc,
    #[prop(into)] id: String,
    title: &'static str,
    about: &'static str,
    children: Children,
) -> impl IntoView {
    let heading = format!("{id}-title");
    let labelled_by = heading.clone();
    let test = format!("editor-section-{id}");
    let issues_id = field_id(&id);
    let anchor = section_anchor(&id);
    view! {
        <section
            class="panel editor-section"
            id=anchor
            aria-labelledby=labelled_by
            data-test=test
        >
            <div class="panel-header">
                <h2 id=heading>{title}</h2>
                <p class="muted">{about}</p>
            </div>
            <div class="section-issues" id=issues_id tabindex="-1">
                <Issues ed path=id />
            </div>
            {children()}
        </section>
    }
    .into_any()
}

/// The element id of a section, for the section index.
pub fn section_anchor(id: &str) -> String {
    format!("section-{id}")
}

/// A section the document may leave out: a switch that adds it (with
/// `add`'s defaults) or drops it, and its form while it is there.
#[component]
pub fn OptionalSection(
    ed: Doc,
    id: &'static str,
    title: &'static str,
    about: &'static str,
    /// The switch's words, such as "Set a retry budget".
    switch: &'static str,
    present: fn(&Policy) -> bool,
    add: fn(&mut Policy),
    remove: fn(&mut Policy),
    children: ChildrenFn,
) -> impl IntoView {
    let enabled = Memo::new(move |_| ed.policy.with(present));
    let toggle = move |ev| {
        let on = event_target_checked(&ev);
        ed.edit(|p| if on { add(p) } else { remove(p) });
    };
    let switch_id = format!("{id}-enabled");
    view! {
        <Section ed id title about>
            <div class="section-toggle">
                <input
                    id=switch_id.clone()
                    type="checkbox"
                    data-test=format!("editor-{switch_id}")
                    prop:checked=move || enabled.get()
                    on:change=toggle
                />
                <label for=switch_id>{switch}</label>
            </div>
            {move || enabled.get().then(|| children())}
        </Section>
    }
    .into_any()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn findings_sit_beside_the_field_they_name() {
        assert!(covers(
            "retry.model.max_attempts",
            "retry.model.max_attempts",
            false
        ));
        assert!(!covers("retry.model", "retry.model.max_attempts", false));
        assert!(covers(
            "retry.model.retry_on",
            "retry.model.retry_on.2",
            true
        ));
        assert!(!covers("retry.model", "retry.model-b.jitter", true));
        assert_eq!(
            test_id("retry.model.max_attempts"),
            "editor-retry-model-max_attempts"
        );
    }

    #[test]
    fn numbers_parse_or_explain() {
        assert_eq!(num(" 120 "), Ok(120));
        assert!(num("12a").is_err());
        assert_eq!(opt_num(""), Ok(None));
        assert!(num32("99999999999").is_err());
    }

    #[test]
    fn an_emptied_section_is_dropped() {
        let mut goals: Option<shared::policy::Goals> = None;
        in_section(&mut goals, |g| {
            g.timeout_ms = Some(5);
            Ok(())
        })
        .unwrap();
        assert_eq!(goals.as_ref().and_then(|g| g.timeout_ms), Some(5));
        in_section(&mut goals, |g| {
            g.timeout_ms = None;
            Ok(())
        })
        .unwrap();
        assert_eq!(goals, None);
    }
}
