//! Rows picked by checkbox for an action on all of them at once, with a
//! "select all" box in the header.

use leptos::prelude::*;
use std::collections::BTreeSet;

/// Which of the rows on show are picked. The rows change on every reload;
/// [`Selection::show`] drops picks that are no longer on show, so a bulk
/// action never touches a row the person cannot see.
#[derive(Clone, Copy)]
pub struct Selection {
    shown: RwSignal<Vec<String>>,
    picked: RwSignal<BTreeSet<String>>,
}

impl Default for Selection {
    fn default() -> Self {
        Selection {
            shown: RwSignal::new(Vec::new()),
            picked: RwSignal::new(BTreeSet::new()),
        }
    }
}

impl Selection {
    /// The rows now on show, by id.
    pub fn show(self, ids: Vec<String>) {
        self.picked
            .update(|p| p.retain(|id| ids.iter().any(|i| i == id)));
        self.shown.set(ids);
    }

    /// The picked ids, in order.
    pub fn ids(self) -> Vec<String> {
        self.picked.with(|p| p.iter().cloned().collect())
    }

    pub fn count(self) -> usize {
        self.picked.with(BTreeSet::len)
    }

    pub fn clear(self) {
        self.picked.update(BTreeSet::clear);
    }

    fn all_picked(self) -> bool {
        self.shown
            .with(|s| !s.is_empty() && self.picked.with(|p| s.iter().all(|id| p.contains(id))))
    }

    fn some_picked(self) -> bool {
        self.count() > 0 && !self.all_picked()
    }
}

/// The header's box: picks every row on show, or none.
#[component]
pub fn SelectAll(selection: Selection, label: &'static str, test: &'static str) -> impl IntoView {
    let toggle = move |ev| {
        let on = event_target_checked(&ev);
        let all = selection.shown.get_untracked();
        selection.picked.set(if on {
            all.into_iter().collect()
        } else {
            BTreeSet::new()
        });
    };
    view! {
        <input
            type="checkbox"
            aria-label=label
            data-test=test
            prop:checked=move || selection.all_picked()
            prop:indeterminate=move || selection.some_picked()
            on:change=toggle
        />
    }
}

/// One row's box.
#[component]
pub fn SelectRow(
    selection: Selection,
    id: String,
    #[prop(into)] label: String,
    #[prop(into)] test: String,
) -> impl IntoView {
    let key = id.clone();
    let toggle = move |ev| {
        let on = event_target_checked(&ev);
        let id = id.clone();
        selection.picked.update(move |p| {
            if on {
                p.insert(id);
            } else {
                p.remove(&id);
            }
        });
    };
    view! {
        <input
            type="checkbox"
            aria-label=label
            data-test=test
            prop:checked=move || selection.picked.with(|p| p.contains(&key))
            on:change=toggle
        />
    }
}

/// A row's first cell: its box, or nothing for a row that cannot be picked
/// (`selection` is `None`).
pub fn select_cell(
    selection: Option<Selection>,
    id: &str,
    label: String,
    test: String,
) -> impl IntoView + use<> {
    let id = id.to_owned();
    view! {
        <td>
            {selection.map(|selection| view! { <SelectRow selection id label test /> })}
        </td>
    }
}
