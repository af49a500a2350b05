//! Pieces that more than one page shows, or that a page is made of. A page
//! imports these, never another page.

pub mod budget;
pub mod checklists;
pub mod data_table;
pub mod diff_list;
pub mod dlq;
pub mod fields;
pub mod firing_alerts;
pub mod instances_table;
pub mod keyed_table;
pub mod runbook_form;
pub mod selection;
pub mod telemetry;
