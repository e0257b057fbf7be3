//! Drafts (w.c.s. drafts): answers autosaved before submission, kept a number of days the form
//! sets, at most [`MAX_DRAFTS_PER_FORM`] per person and form (the oldest go first), purged
//! by the scheduler once expired and deleted in the transaction that submits them.

use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value};

use super::form::{Field, FieldKind, FormDef};
use super::model::DemandError;
use crate::ids::{AccountId, DraftId, FormId};

/// Drafts a person keeps per form (as in w.c.s.).
pub const MAX_DRAFTS_PER_FORM: usize = 5;
/// Largest draft, as JSON.
pub const MAX_DRAFT_BYTES: usize = 200 * 1024;

/// A draft.
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    /// Identifier.
    pub id: DraftId,
    /// Its owner.
    pub account: AccountId,
    /// Its form.
    pub form_id: FormId,
    /// The form's slug when saved.
    pub form_slug: String,
    /// The form's version when saved.
    pub form_version: u32,
    /// Answers so far, unchecked but for their field ids.
    pub answers: Map<String, Value>,
    /// The page the person was on.
    pub page: u32,
    /// First save.
    pub created_at: Timestamp,
    /// Last save.
    pub updated_at: Timestamp,
    /// When it is purged.
    pub expires_at: Timestamp,
}

/// Checks answers to keep as a draft: an object of the form's field ids, not too large.
/// Nothing else is checked: a draft is work in progress.
pub fn check_answers(form: &FormDef, answers: &Map<String, Value>) -> Result<(), DemandError> {
    let size = serde_json::to_vec(answers).map_or(usize::MAX, |v| v.len());
    if size > MAX_DRAFT_BYTES {
        return Err(DemandError::Invalid(format!("a draft holds at most {MAX_DRAFT_BYTES} bytes")));
    }
    let unknown: Vec<&str> =
        answers.keys().filter(|k| !has_field(&form.fields, k)).map(String::as_str).collect();
    if !unknown.is_empty() {
        return Err(DemandError::Invalid(format!("no such fields: {}", unknown.join(", "))));
    }
    Ok(())
}

fn has_field(fields: &[Field], id: &str) -> bool {
    fields.iter().any(|f| {
        f.kind.holds_value() && f.id == id && !matches!(f.kind, FieldKind::Computed { .. })
    })
}

/// When a draft saved at `at` expires.
pub fn expiry(form: &FormDef, at: Timestamp) -> Timestamp {
    at + SignedDuration::from_hours(24 * i64::from(form.draft_days))
}
