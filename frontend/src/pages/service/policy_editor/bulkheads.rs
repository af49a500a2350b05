//! Bulkheads: concurrency and queue limits per partition, with overrides
//! for particular keys.

use super::options::PARTITIONS;
use crate::components::fields::{
    Doc, Field, Issues, RemoveButton, Section, from_wire, lens, num, num32, opt_num, opt_num32,
    opt_text, show_opt, wire,
};
use crate::components::keyed_table::{
    AddNamed, Column, Input, KeyedTable, Row, Table, map_keys, same,
};
use leptos::html;
use leptos::prelude::*;
use shared::policy::{Bulkhead, BulkheadOverride, PartitionKey, Policy};
use std::collections::BTreeMap;

static BULKHEADS: Table<Bulkhead> = Table {
    test: "editor-bulkheads",
    row_test: "editor-bulkhead",
    key_title: "Bulkhead",
    noun: "",
    keys: |p| map_keys(&p.bulkheads),
    path: |k| format!("bulkheads.{k}"),
    name: same,
    find: |p, k| p.bulkheads.get(k),
    find_mut: |p, k| p.bulkheads.get_mut(k),
    remove: |p, k| {
        p.bulkheads.remove(k);
    },
    row_issues: &[],
    columns: &[
        Column::new(
            "Partition by",
            "partition",
            Input::Choice(
                |b| wire(&b.partition),
                |b, t| {
                    b.partition = from_wire(t)?;
                    Ok(())
                },
                PARTITIONS,
            ),
        ),
        Column {
            title: "Dependency",
            field: "dependency",
            input: Input::Text(
                |b| b.dependency.clone().unwrap_or_default(),
                |b, t| {
                    b.dependency = opt_text(t.trim());
                    Ok(())
                },
            ),
            placeholder: "the service itself",
            below: false,
        },
        Column::new(
            "Max concurrent",
            "max_concurrent",
            Input::Number(
                |b| b.max_concurrent.to_string(),
                |b, t| {
                    b.max_concurrent = num32(t)?;
                    Ok(())
                },
            ),
        ),
        Column::new(
            "Max queued",
            "max_queued",
            Input::Number(
                |b| b.max_queued.to_string(),
                |b, t| {
                    b.max_queued = num32(t)?;
                    Ok(())
                },
            ),
        ),
        Column::new(
            "Queue timeout (ms)",
            "queue_timeout_ms",
            Input::Number(
                |b| b.queue_timeout_ms.to_string(),
                |b, t| {
                    b.queue_timeout_ms = num(t)?;
                    Ok(())
                },
            ),
        ),
    ],
    empty: "No bulkheads.",
    extra: Some(overrides),
    footer: None,
};

/// `bulkhead/override` as a lens key.
fn find_override<'a>(p: &'a Policy, k: &str) -> Option<&'a BulkheadOverride> {
    let (b, o) = k.split_once('/')?;
    p.bulkheads.get(b)?.overrides.get(o)
}

fn find_override_mut<'a>(p: &'a mut Policy, k: &str) -> Option<&'a mut BulkheadOverride> {
    let (b, o) = k.split_once('/')?;
    p.bulkheads.get_mut(b)?.overrides.get_mut(o)
}

/// A bulkhead's overrides, one row each, and a row that adds one.
fn overrides(ed: Doc, row: &Row, span: usize) -> AnyView {
    let name = row.key.clone();
    let k = name.clone();
    let keys = Memo::new(move |_| {
        ed.policy.with(|p| {
            p.bulkheads
                .get(&k)
                .map(|b| map_keys(&b.overrides))
                .unwrap_or_default()
        })
    });
    let override_input = NodeRef::<html::Input>::new();
    let add_for = name.clone();
    let add_override = move |_| {
        let Some(input) = override_input.get_untracked() else {
            return;
        };
        let key = input.value().trim().to_owned();
        if key.is_empty() {
            return;
        }
        let b = add_for.clone();
        ed.edit(move |p| {
            if let Some(b) = p.bulkheads.get_mut(&b) {
                b.overrides.entry(key).or_default();
            }
        });
        input.set_value("");
    };
    let override_id = format!("add-override-{name}");
    let rows_for = name.clone();
    view! {
        {move || {
            keys.get()
                .into_iter()
                .map(|o| override_row(ed, &rows_for, &o))
                .collect_view()
        }}
        <tr class="subrow">
            <td></td>
            <td colspan=span - 1>
                <div class="add-row add-row-inline">
                    <div class="cell-field">
                        <label for=override_id.clone()>{format!("Override a key of {name}")}</label>
                        <input
                            id=override_id
                            type="text"
                            autocomplete="off"
                            spellcheck="false"
                            placeholder="e.g. tenant-a or batch_eval"
                            node_ref=override_input
                        />
                    </div>
                    <button type="button" class="button button-small" on:click=add_override>
                        "Add override"
                    </button>
                </div>
            </td>
        </tr>
    }
    .into_any()
}

fn override_row(ed: Doc, bulkhead: &str, key_name: &str) -> AnyView {
    let key = format!("{bulkhead}/{key_name}");
    let path = format!("bulkheads.{bulkhead}.overrides.{key_name}");
    let field = |field: &str, label: String, get, set| {
        view! {
            <td>
                <Field
                    ed
                    path=format!("{path}.{field}")
                    label
                    lens=lens(&key, find_override, find_override_mut, get, set)
                    numeric=true
                    placeholder="inherit"
                />
            </td>
        }
    };
    let (b, k) = (bulkhead.to_owned(), key_name.to_owned());
    view! {
        <tr class="subrow">
            <td></td>
            <td colspan="2">
                "override for " <code>{key_name.to_owned()}</code>
                <Issues ed path=path.clone() />
            </td>
            {field(
                "max_concurrent",
                format!("Max concurrent for {key_name}"),
                |o| show_opt(o.max_concurrent),
                |o, t| {
                    o.max_concurrent = opt_num32(t)?;
                    Ok(())
                },
            )}
            {field(
                "max_queued",
                format!("Max queued for {key_name}"),
                |o| show_opt(o.max_queued),
                |o, t| {
                    o.max_queued = opt_num32(t)?;
                    Ok(())
                },
            )}
            {field(
                "queue_timeout_ms",
                format!("Queue timeout for {key_name} in ms"),
                |o| show_opt(o.queue_timeout_ms),
                |o, t| {
                    o.queue_timeout_ms = opt_num(t)?;
                    Ok(())
                },
            )}
            <td>
                <RemoveButton
                    label=format!("Remove the override for {key_name}")
                    on_remove=Callback::new(move |()| {
                        let (b, k) = (b.clone(), k.clone());
                        ed.edit(move |p| {
                            if let Some(b) = p.bulkheads.get_mut(&b) {
                                b.overrides.remove(&k);
                            }
                        })
                    })
                />
            </td>
        </tr>
    }
    .into_any()
}

#[component]
pub fn BulkheadsSection(ed: Doc) -> impl IntoView {
    view! {
        <Section
            ed
            id="bulkheads"
            title="Bulkheads"
            about="Concurrency and queue limits per partition (tenant, tool, model, queue or priority class), with overrides for particular keys."
        >
            <KeyedTable ed table=&BULKHEADS />
            <AddNamed
                id="add-bulkhead"
                label="New bulkhead"
                button="Add bulkhead"
                placeholder="e.g. tenants"
                on_add=Callback::new(move |key: String| {
                    if ed.policy.with_untracked(|p| p.bulkheads.contains_key(&key)) {
                        return Err(format!("`{key}` already exists"));
                    }
                    ed.edit(|p| {
                        p.bulkheads
                            .insert(
                                key,
                                Bulkhead {
                                    partition: PartitionKey::Tenant,
                                    dependency: None,
                                    max_concurrent: 10,
                                    max_queued: 20,
                                    queue_timeout_ms: 500,
                                    overrides: BTreeMap::new(),
                                },
                            );
                    });
                    Ok(())
                })
            />
        </Section>
    }
    .into_any()
}
