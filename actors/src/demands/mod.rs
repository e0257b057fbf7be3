//! Demands: forms, workflows, and the demands citizens and agents file through them (w.c.s.).
//!
//! - `template`: minijinja templates and conditions.
//! - `form`: form definitions and the validation of answers.
//! - `workflow`: workflow definitions.
//! - `attachments`: uploaded files, their checks, and zips of a demand's files.
//! - `bundle`: application bundles (workflows and forms as a zip of JSON), export and import.
//! - `diff`: the changes between two versions of a definition.
//! - `draft`: drafts, autosaved answers before submission.
//! - `model`: a demand and the workflow engine that moves it (pure).
//! - `actor`: `DemandActor`, owner of one live demand.
//! - `handle`: [`Demands`], the way in: definitions, submission, actions, lookups.
//! - `tracking`: tracking codes and their rate limit.
//!
//! Invariant: every change of a demand goes through its actor and is acknowledged once its
//! record, its history entries, its mails and its timers are written in one transaction.

mod actor;
pub mod attachments;
pub mod bundle;
pub mod data_source;
pub mod diff;
pub mod draft;
pub mod form;
mod handle;
pub mod model;
pub mod pdf;
pub mod template;
pub mod tracking;
pub mod workflow;

#[cfg(test)]
mod tests;

pub use handle::{
    DEFAULT_IDLE, Definition, DemandView, Demands, MAX_CREATION_DEPTH, OfferedAction, OfferedKind,
    Submission, acting,
};

/// Settings of demands.
#[derive(Debug, Clone)]
pub struct DemandsSettings {
    /// Where uploaded files live; uploads are refused without it.
    pub files: Option<attachments::Files>,
    /// How long a demand's actor stays without messages.
    pub idle_after: std::time::Duration,
}

impl Default for DemandsSettings {
    fn default() -> Self {
        Self { files: None, idle_after: DEFAULT_IDLE }
    }
}
