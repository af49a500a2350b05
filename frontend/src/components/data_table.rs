//! A read-only table of API data: a caption, column headers, and rows, or
//! one sentence when there are none. Pages draw their rows; the skeleton
//! around them, and its accessibility, is written once here.

use leptos::prelude::*;

/// A column header: its words and its cell class (`num` for figures, or
/// empty).
pub type Head = (&'static str, &'static str);

#[component]
pub fn DataTable(
    /// What the table is, for screen readers (the heading above usually
    /// says it for everyone else).
    #[prop(into)]
    caption: String,
    /// `data-test` of the table.
    test: &'static str,
    heads: &'static [Head],
    /// A first header cell of its own, such as a "select all" checkbox.
    #[prop(default = None)]
    lead: Option<AnyView>,
    /// What an empty table says.
    empty: &'static str,
    rows: Vec<AnyView>,
) -> impl IntoView {
    let span = heads.len() + usize::from(lead.is_some());
    let body = if rows.is_empty() {
        view! {
            <tr>
                <td colspan=span class="table-empty" data-test=format!("{test}-empty")>
                    {empty}
                </td>
            </tr>
        }
        .into_any()
    } else {
        rows.into_any()
    };
    view! {
        <div class="table-scroll">
            <table class="table" data-test=test>
                <caption class="visually-hidden">{caption}</caption>
                <thead>
                    <tr>
                        {lead.map(|lead| view! { <th scope="col">{lead}</th> })}
                        {heads
                            .iter()
                            .map(|(title, class)| {
                                view! {
                                    <th scope="col" class=*class>
                                        {*title}
                                    </th>
                                }
                            })
                            .collect_view()}
                    </tr>
                </thead>
                <tbody>{body}</tbody>
            </table>
        </div>
    }
    .into_any()
}
