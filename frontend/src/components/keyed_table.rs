//! One editor for every table of a policy document: rows keyed by a map key
//! (a dependency, a bulkhead) or a list index (a stage, a fallback row),
//! each row's cells bound to one field of its item. A table is a [`Table`]
//! value: its columns, how to find a row's item, and how to remove it.
//!
//! Columns marked `below` go on a second line under the row, with visible
//! labels: that keeps wide tables inside their card without cutting any
//! value short.

use super::fields::{
    Check, Choice, Doc, Field, Find, FindMut, GetBool, Getter, Issues, Options, RemoveButton,
    SetBool, Setter, lens, lens_bool,
};
use leptos::html;
use leptos::prelude::*;
use shared::policy::Policy;
use std::sync::Arc;

/// How one cell edits its row's item.
pub enum Input<T: 'static> {
    /// Free text; an empty field is whatever `set` makes of it.
    Text(fn(&T) -> String, fn(&mut T, &str) -> Result<(), String>),
    /// A number, right-aligned and short.
    Number(fn(&T) -> String, fn(&mut T, &str) -> Result<(), String>),
    /// One of an enum's values.
    Choice(
        fn(&T) -> String,
        fn(&mut T, &str) -> Result<(), String>,
        Options,
    ),
    /// Yes or no.
    Check(fn(&T) -> bool, fn(&mut T, bool)),
    /// Anything else, drawn by the section.
    Custom(fn(Doc, &Row) -> AnyView),
}

/// One column of a table.
pub struct Column<T: 'static> {
    /// The header, and the start of each cell's label.
    pub title: &'static str,
    /// The field's path below the row's, such as `max_attempts`.
    pub field: &'static str,
    pub input: Input<T>,
    /// What an empty field means, such as `inherit`.
    pub placeholder: &'static str,
    /// On the row's second line rather than in a column of its own.
    pub below: bool,
}

impl<T> Column<T> {
    /// A column with no placeholder, in the row's first line.
    pub const fn new(title: &'static str, field: &'static str, input: Input<T>) -> Self {
        Column {
            title,
            field,
            input,
            placeholder: "",
            below: false,
        }
    }

    /// A column on the row's second line.
    pub const fn below(title: &'static str, field: &'static str, input: Input<T>) -> Self {
        Column {
            title,
            field,
            input,
            placeholder: "",
            below: true,
        }
    }
}

/// A table of a policy document.
pub struct Table<T: 'static> {
    /// `data-test` of the table.
    pub test: &'static str,
    /// `data-test` of each row is this and the key (`editor-retry-embedding`);
    /// empty for none.
    pub row_test: &'static str,
    /// The first column's header: what the key is. Lists show the row's
    /// number instead.
    pub key_title: &'static str,
    /// What a row is called in labels, before its name: `stage` gives
    /// "Budget (ms) for stage 2".
    pub noun: &'static str,
    /// The rows' keys, in order.
    pub keys: fn(&Policy) -> Vec<String>,
    /// A row's document path.
    pub path: fn(&str) -> String,
    /// A row's name in labels: the key, or for a list its number.
    pub name: fn(&str) -> String,
    pub find: Find<T>,
    pub find_mut: FindMut<T>,
    pub remove: fn(&mut Policy, &str),
    /// Paths below a row whose findings show beside the row's name, and
    /// whether findings inside them count too.
    pub row_issues: &'static [(&'static str, bool)],
    pub columns: &'static [Column<T>],
    /// What an empty table says.
    pub empty: &'static str,
    /// More rows under each row, such as a bulkhead's overrides.
    pub extra: Option<fn(Doc, &Row, usize) -> AnyView>,
    /// The table's footer, such as a running total.
    pub footer: Option<fn(Doc, usize) -> AnyView>,
}

/// Keys of a map section.
pub fn map_keys<V>(map: &std::collections::BTreeMap<String, V>) -> Vec<String> {
    map.keys().cloned().collect()
}

/// Keys of a list section: its indices as text.
pub fn list_keys<V>(list: &[V]) -> Vec<String> {
    (0..list.len()).map(|i| i.to_string()).collect()
}

/// A list row's name: its number, counted from one.
pub fn row_number(key: &str) -> String {
    key.parse::<usize>()
        .map_or_else(|_| key.to_owned(), |i| (i + 1).to_string())
}

/// A map row's name: its key.
pub fn same(key: &str) -> String {
    key.to_owned()
}

/// Removes the list item with index `key`.
pub fn remove_at<V>(list: &mut Vec<V>, key: &str) {
    if let Ok(i) = key.parse::<usize>()
        && i < list.len()
    {
        list.remove(i);
    }
}

/// The row a cell is drawn for.
pub struct Row {
    pub key: String,
    pub path: String,
    /// The row's name in labels, as in "stage 2" or "embedding".
    pub name: String,
    /// The row's position in the table.
    pub index: usize,
}

impl Row {
    /// A cell's label: the column's title and the row's name.
    pub fn label(&self, title: &str) -> String {
        format!("{title} for {}", self.name)
    }
}

/// A cell with its item's type erased: what the row draws.
enum Bound {
    Text(Getter, Setter, bool),
    Choice(Getter, Setter, Options),
    Check(GetBool, SetBool),
    Custom(fn(Doc, &Row) -> AnyView),
}

struct Cell {
    title: &'static str,
    field: &'static str,
    placeholder: &'static str,
    below: bool,
    bound: Bound,
}

/// The only part that knows the item type: binds each column to the row.
fn bind<T: 'static>(table: &'static Table<T>, key: &str) -> Vec<Cell> {
    table
        .columns
        .iter()
        .map(|c| Cell {
            title: c.title,
            field: c.field,
            placeholder: c.placeholder,
            below: c.below,
            bound: match &c.input {
                Input::Text(get, set) => {
                    let (g, s) = lens(key, table.find, table.find_mut, *get, *set);
                    Bound::Text(g, s, false)
                }
                Input::Number(get, set) => {
                    let (g, s) = lens(key, table.find, table.find_mut, *get, *set);
                    Bound::Text(g, s, true)
                }
                Input::Choice(get, set, options) => {
                    let (g, s) = lens(key, table.find, table.find_mut, *get, *set);
                    Bound::Choice(g, s, options)
                }
                Input::Check(get, set) => {
                    let (g, s) = lens_bool(key, table.find, table.find_mut, *get, *set);
                    Bound::Check(g, s)
                }
                Input::Custom(draw) => Bound::Custom(*draw),
            },
        })
        .collect()
}

/// What [`KeyedTable`] needs of a [`Table`], without its item type.
struct Shape {
    test: &'static str,
    row_test: &'static str,
    key_title: &'static str,
    noun: &'static str,
    path: fn(&str) -> String,
    name: fn(&str) -> String,
    remove: fn(&mut Policy, &str),
    row_issues: &'static [(&'static str, bool)],
    titles: Vec<&'static str>,
    empty: &'static str,
    extra: Option<fn(Doc, &Row, usize) -> AnyView>,
    footer: Option<fn(Doc, usize) -> AnyView>,
    has_below: bool,
}

/// A table of the document, one row per key.
#[component]
pub fn KeyedTable<T: Send + Sync + 'static>(
    ed: Doc,
    table: &'static Table<T>,
    /// The table's accessible name, when a heading above it gives one.
    #[prop(optional)]
    labelled_by: Option<&'static str>,
) -> impl IntoView {
    let keys_of = table.keys;
    let keys = Memo::new(move |_| ed.policy.with(keys_of));
    let titles = table
        .columns
        .iter()
        .filter(|c| !c.below)
        .map(|c| c.title)
        .collect();
    let shape = Shape {
        test: table.test,
        row_test: table.row_test,
        key_title: table.key_title,
        noun: table.noun,
        path: table.path,
        name: table.name,
        remove: table.remove,
        row_issues: table.row_issues,
        titles,
        empty: table.empty,
        extra: table.extra,
        footer: table.footer,
        has_below: table.columns.iter().any(|c| c.below),
    };
    let bind_row = move |key: &str| bind(table, key);
    table_view(ed, Arc::new(shape), keys, labelled_by, Arc::new(bind_row))
}

type Binder = Arc<dyn Fn(&str) -> Vec<Cell> + Send + Sync>;

fn table_view(
    ed: Doc,
    shape: Arc<Shape>,
    keys: Memo<Vec<String>>,
    labelled_by: Option<&'static str>,
    bind_row: Binder,
) -> AnyView {
    // Key column, the first-line columns, and the remove button.
    let span = shape.titles.len() + 2;
    let key_header = if shape.key_title.is_empty() {
        view! { <th scope="col" class="num">"#"</th> }.into_any()
    } else {
        view! { <th scope="col">{shape.key_title}</th> }.into_any()
    };
    let header = shape.titles.clone();
    let footer = shape.footer.map(|footer| footer(ed, span));
    let (test, has_below) = (shape.test, shape.has_below);
    let rows = move || {
        let shape = shape.clone();
        let keys = keys.get();
        if keys.is_empty() {
            return view! {
                <tbody>
                    <tr>
                        <td colspan=span class="table-empty">
                            {shape.empty}
                        </td>
                    </tr>
                </tbody>
            }
            .into_any();
        }
        keys.into_iter()
            .enumerate()
            .map(|(index, key)| {
                let row = Row {
                    path: (shape.path)(&key),
                    name: if shape.noun.is_empty() {
                        (shape.name)(&key)
                    } else {
                        format!("{} {}", shape.noun, (shape.name)(&key))
                    },
                    key,
                    index,
                };
                let cells = bind_row(&row.key);
                row_view(ed, &shape, row, cells, span)
            })
            .collect_view()
            .into_any()
    };
    view! {
        <div class="table-scroll">
            <table
                class="table table-edit"
                class:table-two-line=has_below
                aria-labelledby=labelled_by
                data-test=test
            >
                <thead>
                    <tr>
                        {key_header}
                        {header
                            .into_iter()
                            .map(|t| view! { <th scope="col">{t}</th> })
                            .collect_view()}
                        <th scope="col">
                            <span class="visually-hidden">"Actions"</span>
                        </th>
                    </tr>
                </thead>
                {rows}
                {footer}
            </table>
        </div>
    }
    .into_any()
}

fn row_view(ed: Doc, shape: &Shape, row: Row, cells: Vec<Cell>, span: usize) -> AnyView {
    let key_cell = if shape.key_title.is_empty() {
        view! {
            <td class="num">
                {(shape.name)(&row.key)}
                <Issues ed path=row.path.clone() />
            </td>
        }
        .into_any()
    } else {
        view! {
            <th scope="row">
                <code>{row.key.clone()}</code>
                <Issues ed path=row.path.clone() />
                {shape
                    .row_issues
                    .iter()
                    .map(|(sub, inside)| {
                        view! { <Issues ed path=format!("{}.{sub}", row.path) inside=*inside /> }
                    })
                    .collect_view()}
            </th>
        }
        .into_any()
    };
    let (first, second): (Vec<Cell>, Vec<Cell>) = cells.into_iter().partition(|c| !c.below);
    let first = first
        .into_iter()
        .map(|c| view! { <td>{cell_view(ed, &row, c, false)}</td> })
        .collect_view();
    let second = (!second.is_empty()).then(|| {
        let fields = second
            .into_iter()
            .map(|c| cell_view(ed, &row, c, true))
            .collect_view();
        view! {
            <tr class="subrow">
                <td></td>
                <td colspan=span - 1>
                    <div class="row-below">{fields}</div>
                </td>
            </tr>
        }
    });
    let remove_key = row.key.clone();
    let remove = shape.remove;
    let remove_button = view! {
        <RemoveButton
            label=format!("Remove {}", row.name)
            on_remove=Callback::new(move |()| {
                let key = remove_key.clone();
                ed.edit(move |p| remove(p, &key))
            })
        />
    };
    let test = (!shape.row_test.is_empty()).then(|| format!("{}-{}", shape.row_test, row.key));
    let extra = shape.extra.map(|extra| extra(ed, &row, span));
    view! {
        <tbody class="group" data-test=test>
            <tr>
                {key_cell}
                {first}
                <td>{remove_button}</td>
            </tr>
            {second}
            {extra}
        </tbody>
    }
    .into_any()
}

fn cell_view(ed: Doc, row: &Row, cell: Cell, visible_label: bool) -> AnyView {
    let path = format!("{}.{}", row.path, cell.field);
    let label = row.label(cell.title);
    match cell.bound {
        Bound::Text(get, set, numeric) => view! {
            <Field
                ed
                path
                label
                lens=(get, set)
                numeric
                visible_label
                placeholder=cell.placeholder
            />
        }
        .into_any(),
        Bound::Choice(get, set, options) => {
            view! { <Choice ed path label lens=(get, set) options visible_label /> }.into_any()
        }
        Bound::Check(get, set) => {
            view! { <Check ed path label lens=(get, set) visible_label /> }.into_any()
        }
        Bound::Custom(draw) => draw(ed, row),
    }
}

/// A picker of declared dependencies that `taken` does not cover yet, and a
/// button that adds one.
#[component]
pub fn AddForDependency(
    deps: Memo<Vec<String>>,
    taken: Memo<Vec<String>>,
    #[prop(into)] id: String,
    button: &'static str,
    on_add: Callback<String>,
) -> impl IntoView {
    let select = NodeRef::<html::Select>::new();
    let free = Memo::new(move |_| {
        let taken = taken.get();
        deps.get()
            .into_iter()
            .filter(|d| !taken.contains(d))
            .collect::<Vec<_>>()
    });
    let select_id = format!("{id}-dependency");
    view! {
        <div class="add-row">
            {move || {
                let free = free.get();
                if free.is_empty() {
                    return view! {
                        <p class="muted section-note">
                            "Every declared dependency has one. Declare more under Service."
                        </p>
                    }
                        .into_any();
                }
                let select_id = select_id.clone();
                let test = format!("{select_id}-select");
                view! {
                    <div class="cell-field">
                        <label for=select_id.clone()>"Dependency"</label>
                        <select id=select_id data-test=test node_ref=select>
                            {free
                                .into_iter()
                                .map(|d| {
                                    let value = d.clone();
                                    view! { <option value=value>{d}</option> }
                                })
                                .collect_view()}
                        </select>
                    </div>
                    <button
                        type="button"
                        class="button"
                        data-test=id.clone()
                        on:click=move |_| {
                            if let Some(s) = select.get_untracked() {
                                let value = s.value();
                                if !value.is_empty() {
                                    on_add.run(value);
                                }
                            }
                        }
                    >
                        {button}
                    </button>
                }
                    .into_any()
            }}
        </div>
    }
    .into_any()
}

/// A name field and a button that adds an item by that name. `on_add`
/// says why it cannot, such as a name already taken.
#[component]
pub fn AddNamed(
    id: &'static str,
    label: &'static str,
    button: &'static str,
    #[prop(optional)] placeholder: &'static str,
    on_add: Callback<String, Result<(), String>>,
) -> impl IntoView {
    let name = NodeRef::<html::Input>::new();
    let error = RwSignal::new(None::<String>);
    let add = move |_| {
        let Some(input) = name.get_untracked() else {
            return;
        };
        let key = input.value().trim().to_owned();
        if key.is_empty() {
            error.set(Some("enter a name first".into()));
            return;
        }
        match on_add.run(key) {
            Ok(()) => {
                error.set(None);
                input.set_value("");
            }
            Err(message) => error.set(Some(message)),
        }
    };
    let input_id = format!("{id}-name");
    view! {
        <div class="add-row">
            <div class="cell-field">
                <label for=input_id.clone()>{label}</label>
                <input
                    id=input_id.clone()
                    type="text"
                    autocomplete="off"
                    spellcheck="false"
                    placeholder=placeholder
                    data-test=input_id
                    node_ref=name
                />
            </div>
            <button type="button" class="button" data-test=id on:click=add>
                {button}
            </button>
            <p class="field-error" role="alert">
                {move || error.get()}
            </p>
        </div>
    }
    .into_any()
}

/// A button that appends an item to a list section.
#[component]
pub fn AddButton(
    ed: Doc,
    test: &'static str,
    label: &'static str,
    add: fn(&mut Policy),
) -> impl IntoView {
    view! {
        <button
            type="button"
            class="button button-small add-button"
            data-test=test
            on:click=move |_| ed.edit(add)
        >
            {label}
        </button>
    }
    .into_any()
}
