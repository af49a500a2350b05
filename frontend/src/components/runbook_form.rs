//! The form that writes a runbook: a new one, which asks for its slug, or
//! the next version of one, which names the version it was edited from so
//! that the server refuses to overwrite a version saved meanwhile.
//!
//! The form only appears after a click, so it is always drawn by the
//! hydrated browser and its fields can live in signals.

use crate::api::{self, ApiError};
use crate::app::Hydrated;
use crate::components::fields::words;
use crate::layout::FieldBlock;
use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos::wasm_bindgen::JsCast;
use leptos::web_sys::HtmlElement;
use shared::api::{RunbookLinks, RunbookView, RunbookWrite};

/// What the form starts with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunbookDraft {
    pub title: String,
    pub body: String,
    pub links: RunbookLinks,
}

/// The fields the server may blame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Slug,
    Title,
    Body,
    Services,
    Dependencies,
    FailureTypes,
    Message,
}

impl Field {
    /// `links.services[2]` → the services field: an item of a list is
    /// reported beside the list it was typed in.
    fn of(path: &str) -> Option<Field> {
        let head = path.split('[').next().unwrap_or(path);
        Some(match head {
            "slug" => Field::Slug,
            "title" => Field::Title,
            "body" => Field::Body,
            "links.services" => Field::Services,
            "links.dependencies" => Field::Dependencies,
            "links.failure_types" => Field::FailureTypes,
            "message" => Field::Message,
            _ => return None,
        })
    }

    fn id(self) -> &'static str {
        match self {
            Field::Slug => "runbook-slug",
            Field::Title => "runbook-title",
            Field::Body => "runbook-body",
            Field::Services => "runbook-services",
            Field::Dependencies => "runbook-dependencies",
            Field::FailureTypes => "runbook-failure-types",
            Field::Message => "runbook-message",
        }
    }
}

/// Why the last save failed, and where to say so.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Problem {
    /// `None`: about the whole form.
    field: Option<Field>,
    message: String,
    /// Someone saved a newer version: the way out is to reload.
    stale: bool,
}

/// Turns the server's answer into words beside the right field. A 409 on
/// `base_version` means two different things: on a new runbook, the slug
/// is taken; on an edit, someone saved a newer version meanwhile.
fn place_error(error: &ApiError, creating: bool, slug: &str) -> Problem {
    if error.status() == Some(409) && error.field() == Some("base_version") {
        return if creating {
            Problem {
                field: Some(Field::Slug),
                message: format!(
                    "A runbook named {slug} already exists. Choose another slug, or open that runbook and edit it."
                ),
                stale: false,
            }
        } else {
            let message = match error.detail_number("latest_version") {
                Some(n) => format!(
                    "Someone saved version {n} meanwhile. Reload to see it, then make your change again (copy your text first: reloading replaces it)."
                ),
                None => error.message(),
            };
            Problem {
                field: None,
                message,
                stale: true,
            }
        };
    }
    Problem {
        field: error.field().and_then(Field::of),
        message: error.message(),
        stale: false,
    }
}

#[component]
pub fn RunbookForm(
    /// The runbook's slug, or `None` for a new runbook: the form then asks
    /// for one.
    slug: Option<String>,
    draft: RunbookDraft,
    /// The version being edited; `None` creates.
    base_version: Option<u64>,
    on_saved: Callback<RunbookView>,
    on_cancel: Callback<()>,
    /// Shows the latest version again, after a save was refused because
    /// someone else saved first.
    #[prop(optional)]
    on_reload: Option<Callback<()>>,
) -> impl IntoView {
    let hydrated = Hydrated::expect();
    let creating = slug.is_none();
    let slug_value = RwSignal::new(slug.unwrap_or_default());
    let title = RwSignal::new(draft.title);
    let body = RwSignal::new(draft.body);
    let services = RwSignal::new(draft.links.services.join(", "));
    let dependencies = RwSignal::new(draft.links.dependencies.join(", "));
    let failure_types = RwSignal::new(draft.links.failure_types.join(", "));
    let message = RwSignal::new(String::new());
    let problem = RwSignal::new(None::<Problem>);

    let save = Action::new_local(move |(slug, write): &(String, RunbookWrite)| {
        let (slug, write) = (slug.clone(), write.clone());
        async move {
            match api::write_runbook(&slug, &write).await {
                Ok(view) => on_saved.run(view),
                Err(e) => {
                    let placed = place_error(&e, creating, &slug);
                    let target = placed.field.map(Field::id);
                    problem.try_set(Some(placed));
                    // Take the keyboard to the field at fault.
                    if let Some(input) = target
                        .and_then(|id| document().get_element_by_id(id))
                        .and_then(|e| e.dyn_into::<HtmlElement>().ok())
                    {
                        // Focus is a courtesy; failing to move it changes nothing.
                        let _ = input.focus();
                    }
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
        let slug = slug_value.get_untracked().trim().to_owned();
        if slug.is_empty() {
            problem.set(Some(Problem {
                field: Some(Field::Slug),
                message: "Give the runbook a slug: policies and alerts refer to it by that name."
                    .to_owned(),
                stale: false,
            }));
            return;
        }
        problem.set(None);
        let write = RunbookWrite {
            title: title.get_untracked().trim().to_owned(),
            body: body.get_untracked(),
            links: RunbookLinks {
                services: words(&services.get_untracked()),
                dependencies: words(&dependencies.get_untracked()),
                failure_types: words(&failure_types.get_untracked()),
            },
            base_version,
            message: message.get_untracked().trim().to_owned(),
        };
        save.dispatch((slug, write));
    };
    let error_of = move |field: Field| {
        Signal::derive(move || {
            problem.with(|p| match p {
                Some(p) if p.field == Some(field) => Some(p.message.clone()),
                _ => None,
            })
        })
    };
    let invalid = move |field: Field| move || error_of(field).get().map(|_| "true");
    let line =
        move |field: Field, label: &'static str, hint: &'static str, value: RwSignal<String>| {
            let id = field.id();
            view! {
                <FieldBlock id label hint error=error_of(field)>
                    <input
                        id=id
                        type="text"
                        autocomplete="off"
                        spellcheck="false"
                        data-test=id
                        aria-describedby=format!("{id}-hint {id}-error")
                        aria-invalid=invalid(field)
                        prop:value=move || value.get()
                        on:input=move |ev| value.set(event_target_value(&ev))
                    />
                </FieldBlock>
            }
        };
    let button = match base_version {
        Some(v) => format!("Save as version {}", v + 1),
        None => "Create runbook".to_owned(),
    };
    view! {
        <form class="form runbook-form" novalidate data-test="runbook-form" on:submit=on_submit>
            {move || {
                problem
                    .get()
                    .filter(|p| p.field.is_none())
                    .map(|p| {
                        let reload = on_reload.filter(|_| p.stale);
                        view! {
                            <div class="alert alert-error" role="alert" data-test="runbook-form-error">
                                <p>{p.message}</p>
                                {reload
                                    .map(|reload| {
                                        view! {
                                            <button
                                                type="button"
                                                class="button button-small"
                                                data-test="runbook-reload"
                                                on:click=move |_| reload.run(())
                                            >
                                                "Reload the latest version"
                                            </button>
                                        }
                                    })}
                            </div>
                        }
                    })
            }}
            {creating
                .then(|| {
                    line(
                        Field::Slug,
                        "Slug",
                        "The name policies and alert rules use: lower-case letters, digits and single hyphens. It cannot change later.",
                        slug_value,
                    )
                })}
            {line(Field::Title, "Title", "One line.", title)}
            <FieldBlock
                id="runbook-body"
                label="Text (Markdown)"
                hint="Task-list items (- [ ] step) become the steps of the incident checklist."
                error=error_of(Field::Body)
            >
                <textarea
                    id="runbook-body"
                    class="runbook-editor"
                    data-test="runbook-body"
                    rows="24"
                    spellcheck="true"
                    aria-describedby="runbook-body-hint runbook-body-error"
                    aria-invalid=invalid(Field::Body)
                    prop:value=move || body.get()
                    on:input=move |ev| body.set(event_target_value(&ev))
                ></textarea>
            </FieldBlock>
            <fieldset class="runbook-links">
                <legend>"What it is about (comma-separated)"</legend>
                {line(Field::Services, "Services", "Service names, any environment.", services)}
                {line(
                    Field::Dependencies,
                    "Dependencies",
                    "As policies name them, such as model_provider.",
                    dependencies,
                )}
                {line(
                    Field::FailureTypes,
                    "Failure types",
                    "Alert metrics such as breaker_open, or words your team agrees on.",
                    failure_types,
                )}
            </fieldset>
            {line(Field::Message, "Why this change", "Kept with the version, in its history.", message)}
            <div class="button-row">
                <button
                    type="submit"
                    class="button button-primary"
                    data-test="runbook-save"
                    disabled=move || pending.get() || !hydrated.get()
                    aria-busy=move || pending.get().then_some("true")
                >
                    {move || if pending.get() { "Saving…".to_owned() } else { button.clone() }}
                </button>
                <button
                    type="button"
                    class="button button-quiet"
                    data-test="runbook-cancel"
                    on:click=move |_| on_cancel.run(())
                >
                    "Cancel"
                </button>
            </div>
        </form>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::api::ErrorDetail;

    fn error(status: u16, field: &str, details: Option<serde_json::Value>) -> ApiError {
        ApiError::Status {
            status,
            detail: Some(ErrorDetail {
                code: "x".into(),
                message: "the server's words".into(),
                field: Some(field.into()),
                details,
            }),
            retry_after_secs: None,
        }
    }

    #[test]
    fn a_newer_version_saved_meanwhile_says_which_and_offers_a_reload() {
        let e = error(
            409,
            "base_version",
            Some(serde_json::json!({ "latest_version": 4 })),
        );
        let p = place_error(&e, false, "dlq-growth");
        assert_eq!(p.field, None);
        assert!(p.stale);
        assert!(
            p.message.starts_with("Someone saved version 4 meanwhile"),
            "{}",
            p.message
        );
    }

    #[test]
    fn a_taken_slug_is_blamed_on_the_slug() {
        let p = place_error(&error(409, "base_version", None), true, "dlq-growth");
        assert_eq!(p.field, Some(Field::Slug));
        assert!(p.message.contains("dlq-growth"), "{}", p.message);
        assert!(!p.stale);
    }

    #[test]
    fn list_items_are_blamed_on_their_list() {
        let p = place_error(&error(422, "links.failure_types[2]", None), false, "x");
        assert_eq!(p.field, Some(Field::FailureTypes));
        assert_eq!(p.message, "The server's words");
        assert_eq!(
            place_error(&error(422, "title", None), false, "x").field,
            Some(Field::Title)
        );
        assert_eq!(place_error(&ApiError::Network, false, "x").field, None);
    }
}
