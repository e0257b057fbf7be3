//! A demand (w.c.s. `formdata`) and the workflow engine that moves it: submission, buttons,
//! comments, global actions and timed jumps. Everything here is pure: a step takes the demand
//! and returns the demand after it, the history entries it adds and the effects (mails, timed
//! jumps) to write in the same transaction.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::form::{FieldErrors, FormDef, template_variables};
use super::template;
use super::workflow::{
    ActionItem, Anchor, DocumentFormat, GlobalAction, ItemKind, MAX_CHAINED_JUMPS, Recipient,
    TimeoutTrigger, Visibility, Who, WorkflowDef,
};
use crate::error::{ErrorCode, HasErrorCode};
use crate::ids::{AccountId, DemandId, FormId, WorkflowId};

/// How a demand reached the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubmissionChannel {
    /// The citizen, on the web.
    Web,
    /// By phone, entered by an agent.
    Phone,
    /// By post.
    Mail,
    /// At the counter.
    Counter,
    /// By email.
    Email,
    /// Through a social network.
    SocialNetwork,
}

impl SubmissionChannel {
    /// True for channels where an agent enters the demand.
    pub fn is_back_office(self) -> bool {
        self != SubmissionChannel::Web
    }

    /// Storage and template name.
    pub fn as_str(self) -> &'static str {
        match self {
            SubmissionChannel::Web => "web",
            SubmissionChannel::Phone => "phone",
            SubmissionChannel::Mail => "mail",
            SubmissionChannel::Counter => "counter",
            SubmissionChannel::Email => "email",
            SubmissionChannel::SocialNetwork => "social-network",
        }
    }
}

/// A demand's state, as its actor holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Demand {
    /// Identifier.
    pub id: DemandId,
    /// Its form.
    pub form_id: FormId,
    /// The form's version it was submitted with.
    pub form_version: u32,
    /// Its workflow.
    pub workflow_id: WorkflowId,
    /// The workflow's version it follows.
    pub workflow_version: u32,
    /// The person it is for, when known (may be linked later).
    pub submitter: Option<AccountId>,
    /// Their name as shown to agents (`Camille Martin`), kept from submission.
    pub user_label: String,
    /// The agent who entered it on someone's behalf.
    pub entered_by: Option<AccountId>,
    /// How it arrived.
    pub channel: SubmissionChannel,
    /// Current status.
    pub status: String,
    /// The last status the submitter may see.
    pub visible_status: String,
    /// Counts arrivals in a status: a timed jump fires only if the demand has not moved since.
    pub arrival: u64,
    /// When it arrived in the current status.
    pub status_since: Timestamp,
    /// Answers and workflow data, by field id.
    pub data: Map<String, Value>,
    /// Functions given to roles for this demand (dispatch), over the form's.
    pub function_roles: BTreeMap<String, String>,
    /// Agents given access by the citizen's tracking code.
    pub granted: Vec<AccountId>,
    /// The summary shown in listings.
    pub digest: String,
    /// Submission.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
    /// Grows with every change; the store refuses a write based on an older one.
    pub version: u64,
    /// Entries in the history.
    pub history_len: u64,
    /// Timeout global actions already run, as `<action>@<due second>`: each runs once for each
    /// time its anchor gives.
    #[serde(default)]
    pub fired_timeouts: Vec<String>,
}

/// One entry of a demand's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// Position, from 0.
    pub seq: u64,
    /// When.
    pub at: Timestamp,
    /// Who (nobody for the workflow itself: jumps, timeouts).
    pub by: Option<AccountId>,
    /// The status after it.
    pub status: String,
    /// What happened.
    pub kind: HistoryKind,
}

/// What a history entry records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum HistoryKind {
    /// Submitted through a channel.
    Submitted {
        /// The channel.
        channel: SubmissionChannel,
    },
    /// Moved from a status to another.
    StatusChanged {
        /// Former status.
        from: String,
        /// New status.
        to: String,
        /// Why: a button's label, "jump", "timeout", a global action's label.
        cause: String,
    },
    /// A comment (with a button, or through a comment form).
    Comment {
        /// Its text.
        text: String,
    },
    /// A message written by the workflow.
    Message {
        /// Its text.
        text: String,
    },
    /// A notification was queued.
    Notified {
        /// Subject.
        subject: String,
        /// How many recipients.
        recipients: u32,
    },
    /// A function was given to a role.
    Dispatched {
        /// Function.
        function: String,
        /// Role.
        role: String,
    },
    /// Fields were set by the workflow.
    FieldsSet {
        /// Their ids.
        fields: Vec<String>,
    },
    /// Answers were changed through an edit form.
    Edited {
        /// The ids of the fields whose answer changed.
        fields: Vec<String>,
    },
    /// A file was attached through an attachment form.
    FileAttached {
        /// Its file name.
        filename: String,
        /// The data key it is kept under.
        field: String,
    },
    /// A demand entered for an unknown person was linked to their account.
    UserLinked {
        /// The account.
        account: AccountId,
    },
    /// An agent was given access through the tracking code.
    AccessGranted,
    /// A document was generated and attached.
    DocumentGenerated {
        /// Its file name.
        filename: String,
    },
    /// A web service call was queued.
    WebhookQueued {
        /// Where.
        url: String,
    },
    /// A web service answered (or was given up on).
    WebhookCalled {
        /// Where.
        url: String,
        /// Its HTTP status; none when it could not be reached.
        status: Option<u16>,
        /// Attempts made.
        attempts: u32,
    },
    /// A demand of another form was created from this one.
    DemandCreated {
        /// The new demand.
        id: DemandId,
        /// Its form.
        form: String,
    },
    /// A global action ran.
    GlobalAction {
        /// Its label.
        label: String,
        /// By hand, on a timeout, or on a webhook call.
        trigger: Trigger,
        /// What it was given: the answers of an interactive action, the body of a webhook.
        #[serde(default)]
        input: Map<String, Value>,
    },
    /// This demand was created by another one's workflow.
    CreatedFrom {
        /// The demand that created it.
        parent: DemandId,
    },
    /// A workflow step failed (a template that errs at runtime); the demand stays where it is.
    Error {
        /// What failed.
        message: String,
    },
}

/// What made a global action run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// Someone, by hand.
    Manual,
    /// Its timeout.
    Timeout,
    /// A call of its webhook.
    Webhook,
}

/// A timeout global action to schedule (replacing the demand's previous job for it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobalTimer {
    /// The action.
    pub action_id: String,
    /// When it is due.
    pub due_at: Timestamp,
}

/// A mail a step asks for; recipients by function are resolved to accounts by the actor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyIntent {
    /// The submitter (an account), when the notification goes to them.
    pub submitter: Option<AccountId>,
    /// Agent roles whose members receive it.
    pub roles: Vec<String>,
    /// Fixed addresses.
    pub addresses: Vec<String>,
    /// Subject.
    pub subject: String,
    /// Body.
    pub body: String,
    /// Also by text message.
    pub sms: bool,
}

/// A timed jump to schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimedJump {
    /// The jump item.
    pub item_id: String,
    /// The arrival it belongs to.
    pub arrival: u64,
    /// When it is due.
    pub due_at: Timestamp,
}

/// A document a step generates: written as a file before the step, attached by it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedDocument {
    /// The data key it is attached under.
    pub field: String,
    /// File name.
    pub filename: String,
    /// HTML or PDF.
    pub format: DocumentFormat,
    /// The bytes.
    pub content: Vec<u8>,
}

/// A web service call a step asks for, made after it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookCall {
    /// Where.
    pub url: String,
    /// The JSON body.
    pub body: String,
    /// The history entry that queued it (keys the job).
    pub seq: u64,
}

/// A demand a step creates (its answers are checked, and its workflow started, by the actor
/// before the step is written).
#[derive(Debug, Clone, PartialEq)]
pub struct ChildDemand {
    /// Its id, already in the parent's history.
    pub id: DemandId,
    /// Its form's slug.
    pub form: String,
    /// Its answers, mapped from the parent.
    pub data: Map<String, Value>,
}

/// What one step did.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The demand after it.
    pub demand: Demand,
    /// History entries it added.
    pub history: Vec<HistoryEntry>,
    /// Mails to queue.
    pub notifications: Vec<NotifyIntent>,
    /// Timed jumps to schedule.
    pub timers: Vec<TimedJump>,
    /// Timeout global actions to schedule.
    pub global_timers: Vec<GlobalTimer>,
    /// Demands to create with it.
    pub children: Vec<ChildDemand>,
    /// Web services to call once it is written.
    pub webhooks: Vec<WebhookCall>,
    /// Documents to store and attach.
    pub documents: Vec<GeneratedDocument>,
}

/// Errors of demands.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DemandError {
    /// Answers refused, every one with its reason.
    #[error("{0}")]
    InvalidAnswers(FieldErrors),
    /// A definition (form or workflow) cannot be saved.
    #[error("{0}")]
    InvalidDefinition(String),
    /// Input breaks a rule.
    #[error("{0}")]
    Invalid(String),
    /// No such demand, form, workflow or action (or hidden from the caller).
    #[error("{0} not found")]
    NotFound(String),
    /// The caller may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// The caller must sign in.
    #[error("authentication required")]
    Unauthenticated,
    /// A slug is taken, or the definition changed since it was read.
    #[error("{0}")]
    Conflict(String),
    /// Too many lookups of tracking codes from this client.
    #[error("too many tracking code lookups, try again in a minute")]
    RateLimited,
    /// The actor or the store is out of reach.
    #[error("demands unavailable: {0}")]
    Unavailable(String),
}

impl HasErrorCode for DemandError {
    fn code(&self) -> ErrorCode {
        match self {
            DemandError::InvalidAnswers(_)
            | DemandError::InvalidDefinition(_)
            | DemandError::Invalid(_) => ErrorCode::BadUserInput,
            DemandError::NotFound(_) => ErrorCode::NotFound,
            DemandError::Forbidden(_) => ErrorCode::Forbidden,
            DemandError::Unauthenticated => ErrorCode::Unauthenticated,
            DemandError::Conflict(_) => ErrorCode::Conflict,
            DemandError::RateLimited => ErrorCode::RateLimited,
            DemandError::Unavailable(_) => ErrorCode::Unavailable,
        }
    }

    fn extensions(&self) -> Vec<(&'static str, Vec<String>)> {
        match self {
            DemandError::InvalidAnswers(errors) => vec![
                ("invalidFields", errors.0.iter().map(|e| e.field.clone()).collect()),
                ("fieldMessages", errors.0.iter().map(|e| e.message.clone()).collect()),
            ],
            _ => Vec::new(),
        }
    }
}

/// The agent roles of someone acting, as the engine needs them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The account.
    pub account: AccountId,
    /// Administrators may use every button.
    pub admin: bool,
    /// Agent roles.
    pub roles: Vec<String>,
}

impl Demand {
    /// The role playing `function` for this demand: dispatched, or the form's.
    pub fn function_role<'a>(&'a self, form: &'a FormDef, function: &str) -> Option<&'a str> {
        self.function_roles
            .get(function)
            .or_else(|| form.function_roles.get(function))
            .map(String::as_str)
    }

    /// Every role playing a function: their agents see the demand's content.
    pub fn content_roles(&self, form: &FormDef) -> Vec<String> {
        let mut roles: Vec<String> = form
            .function_roles
            .iter()
            .filter(|(f, _)| !self.function_roles.contains_key(*f))
            .map(|(_, r)| r.clone())
            .chain(self.function_roles.values().cloned())
            .collect();
        roles.sort();
        roles.dedup();
        roles
    }

    /// May `actor` use an item open to `who`?
    pub fn may_use(&self, form: &FormDef, who: &[Who], actor: &Actor) -> bool {
        actor.admin
            || who.iter().any(|w| match w {
                Who::Submitter => self.submitter == Some(actor.account),
                Who::Function(f) => self
                    .function_role(form, f)
                    .is_some_and(|r| actor.roles.iter().any(|mine| mine == r)),
                Who::Role(r) => actor.roles.contains(r),
            })
    }

    /// When a timeout counting from its anchor falls for this demand; `None` when the anchor
    /// is a field left empty or not a date.
    pub fn timeout_due(&self, trigger: &TimeoutTrigger) -> Option<Timestamp> {
        let anchor = match &trigger.anchor {
            Anchor::Creation => self.created_at,
            Anchor::StatusArrival => self.status_since,
            Anchor::Field(f) => {
                let text = self.data.get(f)?.as_str()?.trim();
                if let Ok(t) = text.parse::<Timestamp>() {
                    t
                } else if let Ok(dt) = text.parse::<jiff::civil::DateTime>() {
                    dt.to_zoned(crate::time::paris()).ok()?.timestamp()
                } else {
                    let date = text.parse::<jiff::civil::Date>().ok()?;
                    date.to_zoned(crate::time::paris()).ok()?.timestamp()
                }
            }
        };
        anchor.checked_add(SignedDuration::from_secs(trigger.after_seconds)).ok()
    }

    /// The variables templates see: answers, and `form_*` facts about the demand.
    pub fn template_context(&self, form: &FormDef, workflow: &WorkflowDef) -> Value {
        let mut vars = Map::new();
        template_variables(&self.data, &mut vars);
        let status_name =
            workflow.status(&self.status).map_or_else(|| self.status.clone(), |s| s.name.clone());
        vars.insert("form_id".into(), self.id.to_string().into());
        vars.insert("form_name".into(), form.title.clone().into());
        vars.insert("form_slug".into(), form.slug.clone().into());
        vars.insert("form_status".into(), status_name.into());
        vars.insert("form_status_id".into(), self.status.clone().into());
        vars.insert("form_channel".into(), self.channel.as_str().into());
        vars.insert("form_user_display_name".into(), self.user_label.clone().into());
        vars.insert("form_digest".into(), self.digest.clone().into());
        let receipt = self.created_at.to_zoned(crate::time::paris());
        vars.insert("form_receipt_date".into(), receipt.date().to_string().into());
        vars.insert(
            "form_receipt_datetime".into(),
            receipt.strftime("%Y-%m-%d %H:%M").to_string().into(),
        );
        Value::Object(vars)
    }

    /// Renders the digest: the form's template, or its title.
    pub fn render_digest(&self, form: &FormDef, workflow: &WorkflowDef) -> String {
        match &form.digest_template {
            Some(t) => {
                template::render(t, &self.template_context(form, workflow)).unwrap_or_else(|e| {
                    tracing::warn!(demand = %self.id, error = %e, "digest template failed");
                    "ERROR".to_owned()
                })
            }
            None => form.title.clone(),
        }
    }
}

/// A new demand, ready for [`submit`].
#[derive(Debug, Clone)]
pub struct NewDemand {
    /// Identifier.
    pub id: DemandId,
    /// Validated answers.
    pub data: Map<String, Value>,
    /// The person it is for.
    pub submitter: Option<AccountId>,
    /// Their name.
    pub user_label: String,
    /// The agent entering it.
    pub entered_by: Option<AccountId>,
    /// Channel.
    pub channel: SubmissionChannel,
    /// The demand whose workflow creates this one.
    pub parent: Option<DemandId>,
}

/// Submits a demand: it enters the workflow's first status, whose automatic items run.
pub fn submit(
    form: &FormDef,
    workflow: &WorkflowDef,
    new: NewDemand,
    now: Timestamp,
) -> Result<Step, DemandError> {
    let initial = workflow
        .initial_status()
        .ok_or_else(|| DemandError::InvalidDefinition("the workflow has no status".into()))?;
    let demand = Demand {
        id: new.id,
        form_id: form.id,
        form_version: form.version,
        workflow_id: workflow.id,
        workflow_version: workflow.version,
        submitter: new.submitter,
        user_label: new.user_label,
        entered_by: new.entered_by,
        channel: new.channel,
        status: initial.id.clone(),
        visible_status: initial.id.clone(),
        arrival: 0,
        status_since: now,
        data: new.data,
        function_roles: BTreeMap::new(),
        // The agent who typed it in knows its content already.
        granted: new.entered_by.into_iter().collect(),
        digest: String::new(),
        created_at: now,
        updated_at: now,
        version: 0,
        history_len: 0,
        fired_timeouts: Vec::new(),
    };
    let mut run = Run::new(form, workflow, demand, now, new.entered_by.or(new.submitter));
    run.demand.digest = run.demand.render_digest(form, workflow);
    run.record(HistoryKind::Submitted { channel: new.channel });
    if let Some(parent) = new.parent {
        run.record(HistoryKind::CreatedFrom { parent });
    }
    let first = initial.id.clone();
    run.arrive(&first, 0)?;
    Ok(run.finish())
}

/// What someone does to a demand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    /// Press a button of the current status.
    Button {
        /// The button's id.
        item_id: String,
        /// A comment, where the button takes one.
        comment: Option<String>,
    },
    /// Write a comment through a comment form of the current status.
    Comment {
        /// The form's id.
        item_id: String,
        /// The text.
        text: String,
    },
    /// Run a global action by hand.
    Global {
        /// The action's id.
        action_id: String,
        /// The answers to its input fields, validated against them (see `Demands::perform`).
        input: Map<String, Value>,
    },
    /// Change answers through an edit form of the current status.
    Edit {
        /// The form's id.
        item_id: String,
        /// Every answer of the form after the edit, checked as a submission's are (see
        /// `Demands::perform`); the answers it lacks are removed.
        data: Map<String, Value>,
        /// The demand's version they were checked on: a demand changed since is refused.
        based_on: u64,
    },
    /// Attach a file through an attachment form of the current status.
    Attach {
        /// The form's id.
        item_id: String,
        /// The stored upload, as a file field keeps it (`upload`, `name`, `type`, `size`).
        file: Map<String, Value>,
        /// A comment kept in the history with it.
        comment: Option<String>,
    },
    /// A system calls a global action's webhook.
    Hook {
        /// The hook's name.
        name: String,
        /// The JSON object it posted.
        payload: Map<String, Value>,
    },
}

/// Longest comment.
pub const MAX_COMMENT_CHARS: usize = 10_000;

/// Applies an operation by `actor`.
pub fn perform(
    form: &FormDef,
    workflow: &WorkflowDef,
    demand: &Demand,
    op: &Operation,
    actor: &Actor,
    now: Timestamp,
) -> Result<Step, DemandError> {
    let mut run = Run::new(form, workflow, demand.clone(), now, Some(actor.account));
    let ctx = demand.template_context(form, workflow);
    let status = workflow
        .status(&demand.status)
        .ok_or_else(|| DemandError::Invalid(format!("status {:?} is gone", demand.status)))?;
    let offered = |id: &str| -> Result<&ActionItem, DemandError> {
        let item = status
            .items
            .iter()
            .find(|i| i.id == id && i.kind.is_interactive())
            .ok_or_else(|| DemandError::NotFound(format!("action {id:?} in this status")))?;
        if !holds(item.condition.as_deref(), &ctx) {
            return Err(DemandError::NotFound(format!("action {id:?} in this status")));
        }
        Ok(item)
    };
    match op {
        Operation::Button { item_id, comment } => {
            let item = offered(item_id)?;
            let ItemKind::Button { label, by, target, with_comment } = &item.kind else {
                return Err(DemandError::NotFound(format!("button {item_id:?}")));
            };
            if !demand.may_use(form, by, actor) {
                return Err(DemandError::Forbidden(format!("you may not use {label:?}")));
            }
            if let Some(text) = comment.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
                if !with_comment {
                    return Err(DemandError::Invalid(format!("{label:?} takes no comment")));
                }
                run.record(HistoryKind::Comment { text: checked_comment(text)? });
            }
            run.jump(target, label, 0)?;
        }
        Operation::Comment { item_id, text } => {
            let item = offered(item_id)?;
            let ItemKind::Comment { by, .. } = &item.kind else {
                return Err(DemandError::NotFound(format!("comment form {item_id:?}")));
            };
            if !demand.may_use(form, by, actor) {
                return Err(DemandError::Forbidden("you may not comment here".into()));
            }
            let text = checked_comment(text.trim())?;
            if text.is_empty() {
                return Err(DemandError::Invalid("an empty comment".into()));
            }
            run.record(HistoryKind::Comment { text });
        }
        Operation::Edit { item_id, data, based_on } => {
            let item = offered(item_id)?;
            let ItemKind::Edit { label, by, fields, target } = &item.kind else {
                return Err(DemandError::NotFound(format!("edit form {item_id:?}")));
            };
            if !demand.may_use(form, by, actor) {
                return Err(DemandError::Forbidden(format!("you may not use {label:?}")));
            }
            if demand.version != *based_on {
                return Err(DemandError::Conflict(
                    "the demand changed meanwhile; look at it again and retry".into(),
                ));
            }
            let answers = form.fields.iter().filter(|f| f.kind.holds_value());
            let mut changed = Vec::new();
            for f in answers {
                if demand.data.get(&f.id) == data.get(&f.id) {
                    continue;
                }
                // Computed answers follow the others; the rest must be open to this form.
                let computed = matches!(f.kind, super::form::FieldKind::Computed { .. });
                if !computed && !fields.is_empty() && !fields.contains(&f.id) {
                    return Err(DemandError::Invalid(format!(
                        "{:?} cannot be changed through {label:?}",
                        f.id
                    )));
                }
                match data.get(&f.id) {
                    Some(v) => run.demand.data.insert(f.id.clone(), v.clone()),
                    None => run.demand.data.remove(&f.id),
                };
                changed.push(f.id.clone());
            }
            run.record(HistoryKind::Edited { fields: changed });
            if let Some(target) = target {
                run.jump(target, label, 0)?;
            }
        }
        Operation::Attach { item_id, file, comment } => {
            let item = offered(item_id)?;
            let ItemKind::Attach { label, by, field, types, max_bytes } = &item.kind else {
                return Err(DemandError::NotFound(format!("attachment form {item_id:?}")));
            };
            if !demand.may_use(form, by, actor) {
                return Err(DemandError::Forbidden(format!("you may not use {label:?}")));
            }
            super::attachments::check_limits(
                file.get("size").and_then(Value::as_u64).unwrap_or_default(),
                file.get("type").and_then(Value::as_str).unwrap_or_default(),
                max_bytes.unwrap_or(super::attachments::DEFAULT_FIELD_BYTES),
                types,
            )
            .map_err(DemandError::Invalid)?;
            if let Some(text) = comment.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
                run.record(HistoryKind::Comment { text: checked_comment(text)? });
            }
            let key = field.clone().unwrap_or_else(|| format!("{item_id}_{}", demand.history_len));
            let filename = file.get("name").and_then(Value::as_str).unwrap_or("file").to_owned();
            run.demand.data.insert(key.clone(), Value::Object(file.clone()));
            run.record(HistoryKind::FileAttached { filename, field: key });
        }
        Operation::Global { action_id, input } => {
            let action = workflow
                .global_actions
                .iter()
                .find(|g| &g.id == action_id && !g.by.is_empty())
                .filter(|g| g.applies_in(workflow, &demand.status, false))
                .ok_or_else(|| DemandError::NotFound(format!("action {action_id:?}")))?;
            if !demand.may_use(form, &action.by, actor) {
                return Err(DemandError::Forbidden(format!("you may not use {:?}", action.label)));
            }
            if action.input.is_empty() && !input.is_empty() {
                return Err(DemandError::Invalid(format!("{:?} asks for nothing", action.label)));
            }
            run.global(action, Trigger::Manual, input.clone(), "action_var_")?;
        }
        Operation::Hook { name, payload } => {
            let action = workflow
                .hook(name)
                .ok_or_else(|| DemandError::NotFound(format!("hook {name:?}")))?;
            let allowed = action
                .webhook
                .as_ref()
                .is_some_and(|h| actor.admin || h.roles.iter().any(|r| actor.roles.contains(r)));
            if !allowed {
                return Err(DemandError::Forbidden(format!("you may not call hook {name:?}")));
            }
            if !action.applies_in(workflow, &demand.status, false) {
                return Err(DemandError::Conflict(format!(
                    "hook {name:?} does not apply in status {:?}",
                    demand.status
                )));
            }
            run.global(action, Trigger::Webhook, payload.clone(), "webhook")?;
        }
    }
    Ok(run.finish())
}

fn checked_comment(text: &str) -> Result<String, DemandError> {
    if text.chars().count() > MAX_COMMENT_CHARS {
        return Err(DemandError::Invalid(format!(
            "a comment has at most {MAX_COMMENT_CHARS} characters"
        )));
    }
    Ok(text.to_owned())
}

/// Fires a timed jump if the demand is still where the jump was scheduled and its condition
/// holds; `None` when it no longer applies.
pub fn timeout(
    form: &FormDef,
    workflow: &WorkflowDef,
    demand: &Demand,
    item_id: &str,
    arrival: u64,
    now: Timestamp,
) -> Result<Option<Step>, DemandError> {
    if demand.arrival != arrival {
        return Ok(None);
    }
    let Some(item) =
        workflow.status(&demand.status).and_then(|s| s.items.iter().find(|i| i.id == item_id))
    else {
        return Ok(None);
    };
    let ItemKind::Jump { target, after_seconds: Some(_) } = &item.kind else { return Ok(None) };
    if !holds(item.condition.as_deref(), &demand.template_context(form, workflow)) {
        return Ok(None);
    }
    let mut run = Run::new(form, workflow, demand.clone(), now, None);
    run.jump(target, "timeout", 0)?;
    Ok(Some(run.finish()))
}

/// Runs a timeout global action if it is due on the demand as it stands (in a status it
/// applies in, its anchor giving `due`, not run yet for it); `None` when it no longer applies.
pub fn global_timeout(
    form: &FormDef,
    workflow: &WorkflowDef,
    demand: &Demand,
    action_id: &str,
    due: Timestamp,
    now: Timestamp,
) -> Result<Option<Step>, DemandError> {
    let Some(action) = workflow.global_actions.iter().find(|g| g.id == action_id) else {
        return Ok(None);
    };
    let Some(trigger) = &action.timeout else { return Ok(None) };
    if !action.applies_in(workflow, &demand.status, true) {
        return Ok(None);
    }
    let Some(expected) = demand.timeout_due(trigger) else { return Ok(None) };
    let key = fired_key(action_id, expected);
    if expected.as_second() != due.as_second()
        || now < expected
        || demand.fired_timeouts.contains(&key)
    {
        return Ok(None);
    }
    let mut run = Run::new(form, workflow, demand.clone(), now, None);
    run.demand.fired_timeouts.push(key);
    run.global(action, Trigger::Timeout, Map::new(), "")?;
    Ok(Some(run.finish()))
}

fn fired_key(action_id: &str, due: Timestamp) -> String {
    format!("{action_id}@{}", due.as_second())
}

/// Records the outcome of a web service call.
pub fn webhook_done(
    form: &FormDef,
    workflow: &WorkflowDef,
    demand: &Demand,
    url: &str,
    status: Option<u16>,
    attempts: u32,
    now: Timestamp,
) -> Step {
    let mut run = Run::new(form, workflow, demand.clone(), now, None);
    run.record(HistoryKind::WebhookCalled { url: url.to_owned(), status, attempts });
    run.finish()
}

/// Links a demand entered for an unknown person to their account (`label`: their name): they
/// see it and follow it as if they had submitted it. A demand that is someone's already is
/// refused.
pub fn link_user(
    form: &FormDef,
    workflow: &WorkflowDef,
    demand: &Demand,
    account: AccountId,
    label: String,
    by: AccountId,
    now: Timestamp,
) -> Result<Step, DemandError> {
    if demand.submitter.is_some() {
        return Err(DemandError::Conflict("this demand is linked to someone already".into()));
    }
    let mut run = Run::new(form, workflow, demand.clone(), now, Some(by));
    run.demand.submitter = Some(account);
    run.demand.user_label = label;
    run.record(HistoryKind::UserLinked { account });
    Ok(run.finish())
}

/// Gives an agent access to the demand (a citizen gave them its tracking code).
pub fn grant(
    form: &FormDef,
    workflow: &WorkflowDef,
    demand: &Demand,
    agent: AccountId,
    now: Timestamp,
) -> Option<Step> {
    if demand.granted.contains(&agent) {
        return None;
    }
    let mut run = Run::new(form, workflow, demand.clone(), now, Some(agent));
    run.demand.granted.push(agent);
    run.record(HistoryKind::AccessGranted);
    Some(run.finish())
}

fn holds(condition: Option<&str>, ctx: &Value) -> bool {
    condition.is_none_or(|c| template::condition(c, ctx).unwrap_or(false))
}

/// One step in progress.
struct Run<'a> {
    form: &'a FormDef,
    workflow: &'a WorkflowDef,
    demand: Demand,
    now: Timestamp,
    by: Option<AccountId>,
    history: Vec<HistoryEntry>,
    notifications: Vec<NotifyIntent>,
    timers: Vec<TimedJump>,
    children: Vec<ChildDemand>,
    webhooks: Vec<WebhookCall>,
    documents: Vec<GeneratedDocument>,
    /// Variables a global action adds to the templates (its input, a webhook's body).
    extra: Map<String, Value>,
}

/// Whether the items of a status went on to the end or jumped away.
enum Flow {
    Continue,
    Jumped,
}

impl<'a> Run<'a> {
    fn new(
        form: &'a FormDef,
        workflow: &'a WorkflowDef,
        demand: Demand,
        now: Timestamp,
        by: Option<AccountId>,
    ) -> Self {
        Self {
            form,
            workflow,
            demand,
            now,
            by,
            history: Vec::new(),
            notifications: Vec::new(),
            timers: Vec::new(),
            children: Vec::new(),
            webhooks: Vec::new(),
            documents: Vec::new(),
            extra: Map::new(),
        }
    }

    /// Runs a global action's items, with what it was given as variables: `<prefix><key>` for
    /// each answer (as form fields are), or the whole object as `<prefix>` for a webhook body.
    fn global(
        &mut self,
        action: &GlobalAction,
        trigger: Trigger,
        input: Map<String, Value>,
        prefix: &str,
    ) -> Result<(), DemandError> {
        self.extra.clear();
        if prefix.ends_with('_') {
            let mut vars = Map::new();
            super::form::template_variables(&input, &mut vars);
            for (k, v) in vars {
                let name = k.strip_prefix("form_var_").unwrap_or(&k);
                self.extra.insert(format!("{prefix}{name}"), v);
            }
        } else if !prefix.is_empty() {
            self.extra.insert(prefix.to_owned(), Value::Object(input.clone()));
        }
        self.record(HistoryKind::GlobalAction { label: action.label.clone(), trigger, input });
        let result = self.items(&action.items, &action.label, 0).map(drop);
        self.extra.clear();
        result
    }

    fn record(&mut self, kind: HistoryKind) {
        self.history.push(HistoryEntry {
            seq: self.demand.history_len,
            at: self.now,
            by: self.by,
            status: self.demand.status.clone(),
            kind,
        });
        self.demand.history_len += 1;
    }

    fn context(&self) -> Value {
        let mut ctx = self.demand.template_context(self.form, self.workflow);
        if let Value::Object(vars) = &mut ctx {
            vars.extend(self.extra.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        ctx
    }

    /// Moves to `target` and runs its automatic items.
    fn jump(&mut self, target: &str, cause: &str, depth: usize) -> Result<(), DemandError> {
        if depth >= MAX_CHAINED_JUMPS {
            return Err(DemandError::Invalid(format!(
                "too many jumps: the workflow loops (more than {MAX_CHAINED_JUMPS} in a row)"
            )));
        }
        let status = self
            .workflow
            .status(target)
            .ok_or_else(|| DemandError::Invalid(format!("status {target:?} is gone")))?;
        let from = std::mem::replace(&mut self.demand.status, target.to_owned());
        self.demand.arrival += 1;
        self.demand.status_since = self.now;
        if status.visibility == Visibility::All {
            self.demand.visible_status = target.to_owned();
        }
        self.demand.digest = self.demand.render_digest(self.form, self.workflow);
        self.record(HistoryKind::StatusChanged {
            from,
            to: target.to_owned(),
            cause: cause.into(),
        });
        self.arrive(target, depth + 1)
    }

    /// Runs the automatic items of the status just entered.
    fn arrive(&mut self, status: &str, depth: usize) -> Result<(), DemandError> {
        let Some(def) = self.workflow.status(status) else { return Ok(()) };
        let items = def.items.clone();
        let name = def.name.clone();
        self.items(&items, &name, depth).map(drop)
    }

    fn items(
        &mut self,
        items: &[ActionItem],
        cause: &str,
        depth: usize,
    ) -> Result<Flow, DemandError> {
        for item in items {
            if item.kind.is_interactive() {
                continue;
            }
            if let ItemKind::Jump { after_seconds: Some(secs), .. } = &item.kind {
                // Checked again when due: only the arrival is recorded now.
                let due_at = self.now
                    + SignedDuration::from_secs(i64::try_from(*secs).unwrap_or(i64::MAX / 2));
                self.timers.push(TimedJump {
                    item_id: item.id.clone(),
                    arrival: self.demand.arrival,
                    due_at,
                });
                continue;
            }
            let ctx = self.context();
            if !holds(item.condition.as_deref(), &ctx) {
                continue;
            }
            match &item.kind {
                ItemKind::Jump { target, .. } => {
                    let cause = if cause.is_empty() { "jump" } else { cause };
                    self.jump(target, &format!("{cause} (automatic)"), depth)?;
                    return Ok(Flow::Jumped);
                }
                ItemKind::Notify { to, subject, body, sms } => {
                    self.notify(to, subject, body, *sms, &ctx);
                }
                ItemKind::Dispatch { function, role } => match template::render(role, &ctx) {
                    Ok(role) if !role.trim().is_empty() => {
                        let role = role.trim().to_owned();
                        self.demand.function_roles.insert(function.clone(), role.clone());
                        self.record(HistoryKind::Dispatched { function: function.clone(), role });
                    }
                    Ok(_) => self.record(HistoryKind::Error {
                        message: format!("dispatch of {function:?}: the role is empty"),
                    }),
                    Err(e) => self.record(HistoryKind::Error { message: format!("dispatch: {e}") }),
                },
                ItemKind::SetFields { values } => {
                    let mut set = Vec::new();
                    for a in values {
                        match template::render(&a.template, &ctx) {
                            Ok(v) => {
                                self.demand.data.insert(a.field.clone(), Value::String(v));
                                set.push(a.field.clone());
                            }
                            Err(e) => self.record(HistoryKind::Error {
                                message: format!("field {:?}: {e}", a.field),
                            }),
                        }
                    }
                    if !set.is_empty() {
                        self.record(HistoryKind::FieldsSet { fields: set });
                    }
                }
                ItemKind::HistoryMessage { template: t } => match template::render(t, &ctx) {
                    Ok(text) => self.record(HistoryKind::Message { text }),
                    Err(e) => self.record(HistoryKind::Error { message: format!("message: {e}") }),
                },
                ItemKind::Document { field, filename, template: t, format } => {
                    let name = template::render(filename, &ctx);
                    let content = match format {
                        DocumentFormat::Html => template::render_html(t, &ctx),
                        DocumentFormat::Pdf => template::render(t, &ctx),
                    };
                    match (name, content) {
                        (Ok(name), Ok(content)) => {
                            let mut filename = super::attachments::clean_name(name.trim());
                            let extension = format!(".{}", format.extension());
                            if !filename.to_lowercase().ends_with(&extension) {
                                filename.push_str(&extension);
                            }
                            let content = match format {
                                DocumentFormat::Html => content.into_bytes(),
                                DocumentFormat::Pdf => super::pdf::typeset(&filename, &content),
                            };
                            self.record(HistoryKind::DocumentGenerated {
                                filename: filename.clone(),
                            });
                            self.documents.push(GeneratedDocument {
                                field: field.clone(),
                                filename,
                                format: *format,
                                content,
                            });
                        }
                        (Err(e), _) | (_, Err(e)) => {
                            self.record(HistoryKind::Error {
                                message: format!("document {field}: {e}"),
                            });
                        }
                    }
                }
                ItemKind::Webhook { url, payload } => {
                    let body = match payload {
                        Some(t) => template::render(t, &ctx).map_err(|e| e.message).and_then(|b| {
                            serde_json::from_str::<Value>(&b)
                                .map(|_| b)
                                .map_err(|e| format!("the payload is not JSON: {e}"))
                        }),
                        None => Ok(serde_json::json!({
                            "id": self.demand.id,
                            "form": self.form.slug,
                            "status": self.demand.status,
                            "data": self.demand.data,
                        })
                        .to_string()),
                    };
                    match body {
                        Ok(body) => {
                            let seq = self.demand.history_len;
                            self.record(HistoryKind::WebhookQueued { url: url.clone() });
                            self.webhooks.push(WebhookCall { url: url.clone(), body, seq });
                        }
                        Err(message) => self.record(HistoryKind::Error {
                            message: format!("web service {url}: {message}"),
                        }),
                    }
                }
                ItemKind::CreateDemand { form, values } => {
                    let mut data = Map::new();
                    for a in values {
                        match template::render(&a.template, &ctx) {
                            Ok(v) if v.trim().is_empty() => {}
                            Ok(v) => {
                                data.insert(a.field.clone(), Value::String(v));
                            }
                            Err(e) => self.record(HistoryKind::Error {
                                message: format!("new {form} demand, field {:?}: {e}", a.field),
                            }),
                        }
                    }
                    let id = DemandId::new();
                    self.children.push(ChildDemand { id, form: form.clone(), data });
                    self.record(HistoryKind::DemandCreated { id, form: form.clone() });
                }
                ItemKind::Button { .. }
                | ItemKind::Comment { .. }
                | ItemKind::Edit { .. }
                | ItemKind::Attach { .. } => {}
            }
        }
        Ok(Flow::Continue)
    }

    fn notify(&mut self, to: &[Recipient], subject: &str, body: &str, sms: bool, ctx: &Value) {
        let (subject, body) = match (template::render(subject, ctx), template::render(body, ctx)) {
            (Ok(s), Ok(b)) => (s.trim().replace(['\r', '\n'], " "), b),
            (Err(e), _) | (_, Err(e)) => {
                self.record(HistoryKind::Error { message: format!("notification: {e}") });
                return;
            }
        };
        let mut intent = NotifyIntent {
            submitter: None,
            roles: Vec::new(),
            addresses: Vec::new(),
            subject: subject.clone(),
            body,
            sms,
        };
        for r in to {
            match r {
                Recipient::Submitter => intent.submitter = self.demand.submitter,
                Recipient::Function(f) => {
                    if let Some(role) = self.demand.function_role(self.form, f) {
                        intent.roles.push(role.to_owned());
                    }
                }
                Recipient::Address(a) => intent.addresses.push(a.clone()),
            }
        }
        let recipients = u32::from(intent.submitter.is_some())
            + intent.roles.len() as u32
            + intent.addresses.len() as u32;
        if recipients > 0 {
            self.notifications.push(intent);
        }
        self.record(HistoryKind::Notified { subject, recipients });
    }

    fn finish(mut self) -> Step {
        self.demand.digest = self.demand.render_digest(self.form, self.workflow);
        self.demand.updated_at = self.now;
        self.demand.version += 1;
        // Every step (re)schedules the timeout actions that apply where the demand now is,
        // from their anchors as they now are: a date field changed by this step moves its job.
        let global_timers = self
            .workflow
            .global_actions
            .iter()
            .filter(|g| g.applies_in(self.workflow, &self.demand.status, true))
            .filter_map(|g| {
                let due = self.demand.timeout_due(g.timeout.as_ref()?)?;
                let fired = self.demand.fired_timeouts.contains(&fired_key(&g.id, due));
                (!fired).then(|| GlobalTimer { action_id: g.id.clone(), due_at: due })
            })
            .collect();
        Step {
            demand: self.demand,
            history: self.history,
            notifications: self.notifications,
            timers: self.timers,
            global_timers,
            children: self.children,
            webhooks: self.webhooks,
            documents: self.documents,
        }
    }
}

#[cfg(test)]
mod tests;
