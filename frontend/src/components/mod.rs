//! Pieces that more than one page shows, or that a page is made of. A page
//! imports these, never another page.

pub mod diff_list;
pub mod fields;
pub mod instances_table;
pub mod keyed_table;
pub mod telemetry;
