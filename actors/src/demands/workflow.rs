//! Workflow definitions (w.c.s. `Workflow`): statuses, the action items each status runs or
//! offers, and global actions offered in any (or some) status.
//!
//! On arrival in a status its automatic items run in order (notify, dispatch, set fields,
//! history message, immediate jumps); a jump stops the status's items and chains into the next
//! status. Buttons and comment forms wait for people; timed jumps wait for the scheduler.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::form::{DefinitionError, Field, FieldKind, is_slug};
use super::template;
use crate::ids::WorkflowId;

/// Most status changes one operation may chain before it is refused ("too many jumps").
pub const MAX_CHAINED_JUMPS: usize = 20;
/// Longest timeout of a timed jump (as in w.c.s.: a hundred years is "never").
pub const MAX_TIMEOUT_SECONDS: u64 = 100 * 366 * 24 * 3600;

/// A workflow. Saving it makes a new version; demands keep theirs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowDef {
    /// Identifier, stable across versions.
    pub id: WorkflowId,
    /// Unique name for URLs and bundles.
    pub slug: String,
    /// Name.
    pub name: String,
    /// Functions (`receiver`, `validator`): each form says which agent role plays each one.
    #[serde(default)]
    pub functions: Vec<String>,
    /// Statuses; the first is where submitted demands start.
    pub statuses: Vec<StatusDef>,
    /// Actions offered outside of statuses.
    #[serde(default)]
    pub global_actions: Vec<GlobalAction>,
    /// Version number, from 1.
    #[serde(default = "one")]
    pub version: u32,
}

fn one() -> u32 {
    1
}

/// A status of a workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusDef {
    /// Identifier, unique in the workflow.
    pub id: String,
    /// Name shown to agents (and to the submitter when visible).
    pub name: String,
    /// Who sees that the demand is in this status.
    #[serde(default)]
    pub visibility: Visibility,
    /// A final status even if some action could leave it.
    #[serde(default)]
    pub endpoint: bool,
    /// Items, in order.
    #[serde(default)]
    pub items: Vec<ActionItem>,
}

/// Who sees a status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    /// Everyone who sees the demand.
    #[default]
    All,
    /// Agents only: the submitter keeps seeing the last status visible to them.
    Restricted,
}

/// One item of a status or of a global action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionItem {
    /// Identifier, unique in the workflow (buttons are triggered by it).
    pub id: String,
    /// The item runs (or is offered) only when this expression holds.
    #[serde(default)]
    pub condition: Option<String>,
    /// What it does.
    pub kind: ItemKind,
}

/// What an item does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum ItemKind {
    /// A manual button moving the demand to `target`.
    Button {
        /// Its text.
        label: String,
        /// Who may press it.
        by: Vec<Who>,
        /// The status it leads to.
        target: String,
        /// Pressing it may carry a comment, kept in the history.
        #[serde(default)]
        with_comment: bool,
    },
    /// An automatic jump to `target`: at once when its condition holds, or `after_seconds` after
    /// the arrival in the status (checked again then).
    Jump {
        /// The status it leads to.
        target: String,
        /// Waiting time; immediate when absent.
        #[serde(default)]
        after_seconds: Option<u64>,
    },
    /// A comment form offered to `by` in this status.
    Comment {
        /// Its title.
        label: String,
        /// Who may comment.
        by: Vec<Who>,
    },
    /// An email (and a text message to those with a phone number when `sms`) from templates.
    Notify {
        /// Recipients.
        to: Vec<Recipient>,
        /// Subject template.
        subject: String,
        /// Body template.
        body: String,
        /// Also send the body as a text message.
        #[serde(default)]
        sms: bool,
    },
    /// Gives a function to an agent role for this demand.
    Dispatch {
        /// The function.
        function: String,
        /// The role (a template may compute it from the demand).
        role: String,
    },
    /// Sets fields of the demand from templates.
    SetFields {
        /// Field id → template.
        values: Vec<Assignment>,
    },
    /// A message written into the history (a template).
    HistoryMessage {
        /// The message.
        template: String,
    },
    /// Generates a document from a template and attaches it to the demand as the file field
    /// `field`: HTML (values escaped), or PDF typeset from text (`# ` titles, `## ` headings).
    Document {
        /// The data key it is attached under (an attachment like an uploaded file).
        field: String,
        /// The file name (a template); the format's extension is added when missing.
        filename: String,
        /// The template.
        template: String,
        /// HTML or PDF.
        #[serde(default)]
        format: DocumentFormat,
    },
    /// Calls a web service: POSTs the demand (or `payload`, a template of JSON) to `url`, after
    /// the step is written, retried with backoff; the outcome goes into the history.
    Webhook {
        /// http or https URL.
        url: String,
        /// The body, a template rendering JSON; the demand as JSON when absent.
        #[serde(default)]
        payload: Option<String>,
    },
    /// A form offered to `by` in this status to change the demand's answers (w.c.s. "edit"):
    /// answers are checked as on submission, the change is kept in the history (which fields,
    /// from what to what), and the demand then goes to `target` when one is set.
    Edit {
        /// Its text.
        label: String,
        /// Who may edit.
        by: Vec<Who>,
        /// The fields it may change (ids of the form's fields); all of them when empty.
        #[serde(default)]
        fields: Vec<String>,
        /// The status after the edit; the demand stays where it is when absent.
        #[serde(default)]
        target: Option<String>,
    },
    /// A form offered to `by` in this status to attach a file to the demand, with an optional
    /// comment (w.c.s. "attach a file"): the file joins the demand's attachments under `field`
    /// (replacing the previous one) or, without a field, beside the others.
    Attach {
        /// Its text.
        label: String,
        /// Who may attach.
        by: Vec<Who>,
        /// The data key it is kept under; each file is kept apart when absent.
        #[serde(default)]
        field: Option<String>,
        /// Accepted types (`application/pdf`, `image/*`); any when empty.
        #[serde(default)]
        types: Vec<String>,
        /// Largest file accepted, in bytes (10 MiB when absent).
        #[serde(default)]
        max_bytes: Option<u64>,
    },
    /// Creates a demand of another form from this one, its fields mapped from templates; it
    /// is for the same person and written in the same transaction.
    CreateDemand {
        /// The form's slug.
        form: String,
        /// Field of the new demand → template over this one.
        values: Vec<Assignment>,
    },
}

impl ItemKind {
    /// True for items that wait for someone (buttons, comment, edit and attachment forms).
    pub fn is_interactive(&self) -> bool {
        matches!(
            self,
            ItemKind::Button { .. }
                | ItemKind::Comment { .. }
                | ItemKind::Edit { .. }
                | ItemKind::Attach { .. }
        )
    }
}

/// What a generated document is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocumentFormat {
    /// An HTML page; the template is HTML and the values it shows are escaped.
    #[default]
    Html,
    /// A PDF; the template is text, typeset on A4 pages.
    Pdf,
}

impl DocumentFormat {
    /// Its media type.
    pub fn content_type(self) -> &'static str {
        match self {
            DocumentFormat::Html => "text/html",
            DocumentFormat::Pdf => "application/pdf",
        }
    }

    /// Its file name extension.
    pub fn extension(self) -> &'static str {
        match self {
            DocumentFormat::Html => "html",
            DocumentFormat::Pdf => "pdf",
        }
    }
}

/// A value given to a field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    /// The field's id (new ids are workflow data, as w.c.s.' back-office fields).
    pub field: String,
    /// The template of its value.
    pub template: String,
}

/// Who may use a button or a comment form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "name")]
pub enum Who {
    /// The person the demand is for.
    Submitter,
    /// The agents of the role playing this function for the demand.
    Function(String),
    /// The agents of this role.
    Role(String),
}

/// Who receives a notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "value")]
pub enum Recipient {
    /// The person the demand is for (nothing when unknown).
    Submitter,
    /// The agents of the role playing this function.
    Function(String),
    /// A fixed address.
    Address(String),
}

/// An action offered outside of statuses (w.c.s. global actions). Three triggers, any of them
/// or several: by hand (`by`, optionally asking `input`), on a timeout, on a webhook call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GlobalAction {
    /// Identifier, unique in the workflow.
    pub id: String,
    /// Its text.
    pub label: String,
    /// Who may run it by hand; nobody when empty (it then needs another trigger).
    #[serde(default)]
    pub by: Vec<Who>,
    /// The statuses it applies in; when empty, every status (but for a timeout, every status
    /// that is not an endpoint).
    #[serde(default)]
    pub statuses: Vec<String>,
    /// May run on many demands at once from a listing.
    #[serde(default)]
    pub mass: bool,
    /// Fields asked of whoever runs it by hand (an interactive action); the answers are
    /// `action_var_<id>` in the items' templates and conditions.
    #[serde(default)]
    pub input: Vec<Field>,
    /// Runs by itself some time after an anchor.
    #[serde(default)]
    pub timeout: Option<TimeoutTrigger>,
    /// Runs when a system calls `POST /api/demands/<id>/hooks/<name>`; the posted JSON object
    /// is `webhook` in the items' templates.
    #[serde(default)]
    pub webhook: Option<WebhookTrigger>,
    /// Items run in order (a jump ends the action).
    pub items: Vec<ActionItem>,
}

/// When a global action runs by itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeoutTrigger {
    /// What the delay counts from.
    pub anchor: Anchor,
    /// The delay; negative (before the anchor) for a date field only.
    pub after_seconds: i64,
}

/// What a timeout counts from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "field")]
pub enum Anchor {
    /// The submission.
    Creation,
    /// The latest arrival in the current status.
    StatusArrival,
    /// A date field of the demand (midnight in Europe/Paris), or a date and time.
    Field(String),
}

/// Who may call a global action's webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookTrigger {
    /// The hook's name in the URL.
    pub name: String,
    /// Accounts of these roles may call it (administrators always may).
    pub roles: Vec<String>,
}

impl GlobalAction {
    /// True when it applies to a demand in `status` through `trigger`.
    pub fn applies_in(&self, workflow: &WorkflowDef, status: &str, by_timeout: bool) -> bool {
        if self.statuses.is_empty() {
            !by_timeout || !workflow.is_endpoint(status)
        } else {
            self.statuses.iter().any(|s| s == status)
        }
    }
}

impl WorkflowDef {
    /// The forms this workflow creates demands of.
    pub fn created_forms(&self) -> BTreeSet<&str> {
        self.statuses
            .iter()
            .flat_map(|s| s.items.iter())
            .chain(self.global_actions.iter().flat_map(|g| g.items.iter()))
            .filter_map(|i| match &i.kind {
                ItemKind::CreateDemand { form, .. } => Some(form.as_str()),
                _ => None,
            })
            .collect()
    }

    /// One status.
    pub fn status(&self, id: &str) -> Option<&StatusDef> {
        self.statuses.iter().find(|s| s.id == id)
    }

    /// Where submitted demands start.
    pub fn initial_status(&self) -> Option<&StatusDef> {
        self.statuses.first()
    }

    /// True when no action can leave the status (or it is marked final).
    pub fn is_endpoint(&self, status: &str) -> bool {
        self.status(status).is_none_or(|s| {
            s.endpoint
                || !s
                    .items
                    .iter()
                    .any(|i| matches!(i.kind, ItemKind::Button { .. } | ItemKind::Jump { .. }))
        })
    }

    /// Checks the definition: unique ids, jumps to existing statuses, known functions, templates
    /// and conditions that compile.
    pub fn check(&self) -> Result<(), DefinitionError> {
        if !is_slug(&self.slug) {
            return Err(DefinitionError(format!(
                "slug {:?}: lowercase letters, digits and dashes, starting with a letter",
                self.slug
            )));
        }
        if self.name.trim().is_empty() {
            return Err(DefinitionError("a workflow needs a name".into()));
        }
        if self.statuses.is_empty() {
            return Err(DefinitionError("a workflow needs at least one status".into()));
        }
        let statuses: BTreeSet<&str> = self.statuses.iter().map(|s| s.id.as_str()).collect();
        if statuses.len() != self.statuses.len() {
            return Err(DefinitionError("two statuses share an id".into()));
        }
        let functions: BTreeSet<&str> = self.functions.iter().map(String::as_str).collect();
        if functions.len() != self.functions.len() {
            return Err(DefinitionError("two functions share a name".into()));
        }
        let mut item_ids = BTreeSet::new();
        for s in &self.statuses {
            if s.id.trim().is_empty() || s.name.trim().is_empty() {
                return Err(DefinitionError("a status needs an id and a name".into()));
            }
            for item in &s.items {
                self.check_item(item, &format!("status {:?}", s.id), &statuses, &mut item_ids)?;
            }
        }
        let mut hooks = BTreeSet::new();
        for g in &self.global_actions {
            let at = format!("global action {:?}", g.id);
            if !item_ids.insert(g.id.clone()) {
                return Err(DefinitionError(format!("{at}: id used twice")));
            }
            if g.label.trim().is_empty() {
                return Err(DefinitionError(format!("{at}: a global action needs a label")));
            }
            if g.by.is_empty() && g.timeout.is_none() && g.webhook.is_none() {
                return Err(DefinitionError(format!(
                    "{at}: nothing triggers it (nobody may run it, no timeout, no webhook)"
                )));
            }
            if !g.by.is_empty() {
                self.check_who(&g.by, &at)?;
            }
            self.check_trigger(g, &at, &mut hooks)?;
            for s in &g.statuses {
                if !statuses.contains(s.as_str()) {
                    return Err(DefinitionError(format!("{at}: no status {s:?}")));
                }
            }
            for item in &g.items {
                if item.kind.is_interactive() {
                    return Err(DefinitionError(format!(
                        "{at}: item {:?} waits for someone; global actions run at once",
                        item.id
                    )));
                }
                self.check_item(item, &at, &statuses, &mut item_ids)?;
            }
        }
        Ok(())
    }

    fn check_trigger(
        &self,
        g: &GlobalAction,
        at: &str,
        hooks: &mut BTreeSet<String>,
    ) -> Result<(), DefinitionError> {
        if !g.input.is_empty() {
            if g.by.is_empty() {
                return Err(DefinitionError(format!(
                    "{at}: only an action run by hand asks for input"
                )));
            }
            super::form::check_input_fields(&g.input)
                .map_err(|e| DefinitionError(format!("{at}, input: {}", e.0)))?;
            if g.input.iter().any(|f| matches!(f.kind, FieldKind::File { .. })) {
                return Err(DefinitionError(format!("{at}: input takes no files")));
            }
        }
        if let Some(t) = &g.timeout {
            if t.after_seconds.unsigned_abs() > MAX_TIMEOUT_SECONDS {
                return Err(DefinitionError(format!("{at}: a timeout is at most 100 years")));
            }
            match &t.anchor {
                Anchor::Field(f) if f.trim().is_empty() => {
                    return Err(DefinitionError(format!("{at}: the anchor needs a field")));
                }
                Anchor::Field(_) => {}
                Anchor::Creation | Anchor::StatusArrival if t.after_seconds < 0 => {
                    return Err(DefinitionError(format!(
                        "{at}: only a date field may be counted back from"
                    )));
                }
                _ => {}
            }
        }
        if let Some(h) = &g.webhook {
            if !is_slug(&h.name) {
                return Err(DefinitionError(format!(
                    "{at}: hook name {:?}: lowercase letters, digits and dashes",
                    h.name
                )));
            }
            if !hooks.insert(h.name.clone()) {
                return Err(DefinitionError(format!("{at}: hook {:?} used twice", h.name)));
            }
        }
        Ok(())
    }

    /// The global action a webhook named `name` runs.
    pub fn hook(&self, name: &str) -> Option<&GlobalAction> {
        self.global_actions.iter().find(|g| g.webhook.as_ref().is_some_and(|h| h.name == name))
    }

    fn check_who(&self, who: &[Who], at: &str) -> Result<(), DefinitionError> {
        if who.is_empty() {
            return Err(DefinitionError(format!("{at}: nobody may use it")));
        }
        for w in who {
            if let Who::Function(f) = w
                && !self.functions.contains(f)
            {
                return Err(DefinitionError(format!("{at}: no function {f:?}")));
            }
        }
        Ok(())
    }

    fn check_item(
        &self,
        item: &ActionItem,
        at: &str,
        statuses: &BTreeSet<&str>,
        ids: &mut BTreeSet<String>,
    ) -> Result<(), DefinitionError> {
        let at = format!("{at}, item {:?}", item.id);
        let err = |m: String| DefinitionError(format!("{at}: {m}"));
        if item.id.trim().is_empty() || !ids.insert(item.id.clone()) {
            return Err(err("item ids are unique and not empty".into()));
        }
        if let Some(c) = &item.condition {
            template::check_condition(c).map_err(|e| err(format!("condition: {e}")))?;
        }
        let target_exists = |t: &str| {
            if statuses.contains(t) {
                Ok(())
            } else {
                Err(err(format!("jumps to {t:?}, which is not a status")))
            }
        };
        match &item.kind {
            ItemKind::Button { label, by, target, .. } => {
                if label.trim().is_empty() {
                    return Err(err("a button needs a label".into()));
                }
                self.check_who(by, &at)?;
                target_exists(target)?;
            }
            ItemKind::Jump { target, after_seconds } => {
                target_exists(target)?;
                if after_seconds.is_some_and(|s| s == 0 || s > MAX_TIMEOUT_SECONDS) {
                    return Err(err("a timeout is 1 second to 100 years".into()));
                }
                if after_seconds.is_none() && item.condition.is_none() {
                    // Not an error in w.c.s., but everything after it is dead: say so.
                    tracing::debug!(%at, "unconditional immediate jump");
                }
            }
            ItemKind::Comment { by, .. } => self.check_who(by, &at)?,
            ItemKind::Edit { label, by, fields, target } => {
                if label.trim().is_empty() {
                    return Err(err("an edit form needs a label".into()));
                }
                self.check_who(by, &at)?;
                if let Some(t) = target {
                    target_exists(t)?;
                }
                if fields.iter().any(|f| f.trim().is_empty()) {
                    return Err(err("an empty field id".into()));
                }
            }
            ItemKind::Attach { label, by, field, max_bytes, .. } => {
                if label.trim().is_empty() {
                    return Err(err("an attachment form needs a label".into()));
                }
                self.check_who(by, &at)?;
                if field.as_deref().is_some_and(|f| f.trim().is_empty()) {
                    return Err(err("an empty field id".into()));
                }
                if max_bytes.is_some_and(|b| b == 0 || b > super::attachments::MAX_UPLOAD_BYTES) {
                    return Err(err(format!(
                        "a file limit is 1 byte to {} MiB",
                        super::attachments::MAX_UPLOAD_BYTES >> 20
                    )));
                }
            }
            ItemKind::Notify { to, subject, body, .. } => {
                if to.is_empty() {
                    return Err(err("a notification needs recipients".into()));
                }
                for r in to {
                    match r {
                        Recipient::Function(f) if !self.functions.contains(f) => {
                            return Err(err(format!("no function {f:?}")));
                        }
                        Recipient::Address(a) if a.parse::<lettre::Address>().is_err() => {
                            return Err(err(format!("{a:?} is not an email address")));
                        }
                        _ => {}
                    }
                }
                template::check_template(subject).map_err(|e| err(format!("subject: {e}")))?;
                template::check_template(body).map_err(|e| err(format!("body: {e}")))?;
            }
            ItemKind::Dispatch { function, role } => {
                if !self.functions.contains(function) {
                    return Err(err(format!("no function {function:?}")));
                }
                template::check_template(role).map_err(|e| err(format!("role: {e}")))?;
            }
            ItemKind::SetFields { values } => {
                for a in values {
                    template::check_template(&a.template)
                        .map_err(|e| err(format!("field {:?}: {e}", a.field)))?;
                }
            }
            ItemKind::HistoryMessage { template: t } => {
                template::check_template(t).map_err(|e| err(format!("message: {e}")))?;
            }
            ItemKind::Document { field, filename, template: t, .. } => {
                if field.trim().is_empty() {
                    return Err(err("a document needs a field to attach it to".into()));
                }
                template::check_template(filename).map_err(|e| err(format!("file name: {e}")))?;
                template::check_template(t).map_err(|e| err(format!("document: {e}")))?;
            }
            ItemKind::Webhook { url, payload } => {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(err(format!("{url:?}: an http or https URL")));
                }
                if let Some(p) = payload {
                    template::check_template(p).map_err(|e| err(format!("payload: {e}")))?;
                }
            }
            ItemKind::CreateDemand { form, values } => {
                if !is_slug(form) {
                    return Err(err(format!("{form:?} is not a form slug")));
                }
                for a in values {
                    template::check_template(&a.template)
                        .map_err(|e| err(format!("field {:?}: {e}", a.field)))?;
                }
            }
        }
        Ok(())
    }
}
