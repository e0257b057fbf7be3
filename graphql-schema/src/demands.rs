//! Forms, workflows and demands over GraphQL: definitions (administrators, with versions),
//! submission, actions, history, tracking codes, and a live subscription per demand.

use std::sync::Arc;

use actors::Services;
use actors::access::{Action, Principal, authorize};
use actors::demands::data_source::{DataSourceDef, DataSourceKind};
use actors::demands::form::{
    Choice, Choices, Field, FieldKind, FormDef, FormKind, Prefill, ProfileField, Required,
    Validation,
};
use actors::demands::model::{HistoryEntry, HistoryKind, Operation, SubmissionChannel, Trigger};
use actors::demands::workflow::{
    ActionItem, Anchor, Assignment, DocumentFormat, GlobalAction, ItemKind, Recipient, StatusDef,
    TimeoutTrigger, Visibility, WebhookTrigger, Who, WorkflowDef,
};
use actors::demands::{DemandView, OfferedKind, Submission, acting};
use actors::ids::{AccountId, DataSourceId, DemandId, FormId, WorkflowId};
use async_graphql::{
    Context, Enum, ID, InputObject, Json, Object, OneofObject, SimpleObject, Subscription,
};
use futures_util::stream::{self, Stream, StreamExt};
use tokio_stream::wrappers::BroadcastStream;

use crate::context::Caller;
use crate::error::{BadInput, GqlResultExt, coded};
use crate::query::parse_id;
use crate::scalars::DateTime;
use crate::subscription::{Open, until_session_ends};

// ---- definitions: inputs -----------------------------------------------------------------------

/// Field types (w.c.s. field kinds).
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum FieldType {
    /// One line of text.
    String,
    /// Several lines.
    Text,
    /// An email address.
    Email,
    /// A phone number (stored in E.164).
    Phone,
    /// A number (`min`, `max`).
    Number,
    /// A date, `YYYY-MM-DD`.
    Date,
    /// A check box (required: must be ticked).
    Bool,
    /// One choice (`choices`, `agenda`, or `webService`).
    Item,
    /// Several choices (also `minChoices`, `maxChoices`).
    Items,
    /// A file (`maxBytes`, `fileTypes`), answered with the id `uploadFile` gave.
    File,
    /// A value computed by `template` at submission.
    Computed,
    /// A repeatable block of `fields` (`maxItems`).
    Block,
    /// A page break.
    Page,
    /// A title.
    Title,
    /// A comment between fields.
    Comment,
}

/// When a field must be answered.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug, Default)]
pub enum Requirement {
    /// Never.
    #[default]
    Optional,
    /// Always.
    Required,
    /// By citizens on the web only; agents may leave it empty.
    FrontOffice,
}

/// A choice of a list.
#[derive(InputObject, SimpleObject, Clone)]
#[graphql(input_name = "ChoiceInput")]
pub struct ChoiceItem {
    /// Stored value.
    pub id: String,
    /// Shown text.
    pub text: String,
    /// Shown but not selectable.
    #[graphql(default)]
    pub disabled: bool,
}

/// A regular expression an answer must match, with the message shown otherwise.
#[derive(InputObject, SimpleObject, Clone)]
#[graphql(input_name = "ValidationInput")]
pub struct FieldValidation {
    /// The pattern (the whole answer must match).
    pub regex: String,
    /// The message.
    pub message: String,
}

/// Profile fields a form may be prefilled with.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum ProfileFieldName {
    /// Given name.
    FirstName,
    /// Family name.
    LastName,
    /// Email.
    Email,
    /// Phone.
    Phone,
}

/// Where a field's initial value comes from: one of the two.
#[derive(OneofObject, Clone)]
pub enum PrefillInput {
    /// A profile field of the person the demand is for.
    User(ProfileFieldName),
    /// A text or template.
    Template(String),
    /// A field of the person's newest card of a card model.
    Card(CardPrefillInput),
}

/// A prefill from the person's card.
#[derive(InputObject, Clone)]
pub struct CardPrefillInput {
    /// The card model's slug.
    pub model: String,
    /// The card's field.
    pub field: String,
}

/// One field of a form (type-specific settings are ignored by other types).
#[derive(InputObject, Clone)]
pub struct FieldInput {
    /// Variable name (`form_var_<id>` in templates), unique in the form.
    pub id: String,
    /// Label.
    pub label: String,
    /// Help text.
    #[graphql(default)]
    pub hint: String,
    /// Type.
    #[graphql(name = "type")]
    pub field_type: FieldType,
    /// When it must be answered.
    #[graphql(default)]
    pub required: Requirement,
    /// Display condition over previous fields (`form_var_kind_raw == "noise"`).
    pub condition: Option<String>,
    /// Pattern and message.
    pub validation: Option<FieldValidation>,
    /// Initial value.
    pub prefill: Option<PrefillInput>,
    /// Not editable: the prefill is the value.
    #[graphql(default)]
    pub read_only: bool,
    /// A column of back-office listings.
    #[graphql(default)]
    pub in_listing: bool,
    /// NUMBER: smallest value.
    pub min: Option<f64>,
    /// NUMBER: largest value.
    pub max: Option<f64>,
    /// ITEMS: fewest choices.
    pub min_choices: Option<u32>,
    /// ITEMS: most choices.
    pub max_choices: Option<u32>,
    /// ITEM, ITEMS: a list of choices.
    pub choices: Option<Vec<ChoiceItem>>,
    /// ITEM, ITEMS: the events or slots of this agenda (slug).
    pub agenda: Option<String>,
    /// ITEM, ITEMS with a meetings agenda: the meeting type's slug.
    pub meeting_type: Option<String>,
    /// ITEM, ITEMS: a JSON web service answering `{"data": [{"id", "text"}]}`.
    pub web_service: Option<String>,
    /// ITEM, ITEMS: the cards of this card model (slug), shown by their digest.
    pub card_model: Option<String>,
    /// ITEM, ITEMS: this named data source (slug).
    pub data_source: Option<String>,
    /// FILE: largest file in bytes (default 10 MiB, at most 25 MiB).
    pub max_bytes: Option<u64>,
    /// FILE: accepted types (`application/pdf`, `image/*`); any when empty.
    pub file_types: Option<Vec<String>>,
    /// COMPUTED: the template.
    pub template: Option<String>,
    /// BLOCK: its fields.
    pub fields: Option<Vec<FieldInput>>,
    /// BLOCK: most repetitions.
    pub max_items: Option<u32>,
}

fn choices_of(f: &FieldInput) -> async_graphql::Result<Choices> {
    let given = [
        f.choices.is_some(),
        f.agenda.is_some(),
        f.web_service.is_some(),
        f.card_model.is_some(),
        f.data_source.is_some(),
    ];
    if given.iter().filter(|g| **g).count() != 1 {
        return Err(BadInput(format!(
            "field {:?}: give exactly one of choices, agenda, webService, cardModel, dataSource",
            f.id
        )))
        .gql();
    }
    Ok(if let Some(items) = &f.choices {
        Choices::Static {
            items: items
                .iter()
                .map(|c| Choice { id: c.id.clone(), text: c.text.clone(), disabled: c.disabled })
                .collect(),
        }
    } else if let Some(agenda) = &f.agenda {
        Choices::Agenda { agenda: agenda.clone(), meeting_type: f.meeting_type.clone() }
    } else if let Some(model) = &f.card_model {
        Choices::Cards { model: model.clone() }
    } else if let Some(slug) = &f.data_source {
        Choices::DataSource { slug: slug.clone() }
    } else {
        Choices::WebService { url: f.web_service.clone().unwrap_or_default() }
    })
}

fn field_of(f: FieldInput) -> async_graphql::Result<Field> {
    let kind = match f.field_type {
        FieldType::String => FieldKind::String,
        FieldType::Text => FieldKind::Text,
        FieldType::Email => FieldKind::Email,
        FieldType::Phone => FieldKind::Phone,
        FieldType::Number => FieldKind::Number { min: f.min, max: f.max },
        FieldType::Date => FieldKind::Date,
        FieldType::Bool => FieldKind::Bool,
        FieldType::Item => FieldKind::Item { choices: choices_of(&f)? },
        FieldType::Items => {
            FieldKind::Items { choices: choices_of(&f)?, min: f.min_choices, max: f.max_choices }
        }
        FieldType::File => FieldKind::File {
            max_bytes: f.max_bytes.unwrap_or(actors::demands::attachments::DEFAULT_FIELD_BYTES),
            types: f.file_types.clone().unwrap_or_default(),
        },
        FieldType::Computed => FieldKind::Computed {
            template: f
                .template
                .clone()
                .ok_or_else(|| {
                    BadInput(format!("field {:?}: a computed field needs a template", f.id))
                })
                .gql()?,
        },
        FieldType::Block => FieldKind::Block {
            fields: f
                .fields
                .clone()
                .unwrap_or_default()
                .into_iter()
                .map(field_of)
                .collect::<Result<_, _>>()?,
            max_items: f.max_items.unwrap_or(1),
        },
        FieldType::Page => FieldKind::Page,
        FieldType::Title => FieldKind::Title,
        FieldType::Comment => FieldKind::Comment,
    };
    Ok(Field {
        id: f.id,
        label: f.label,
        hint: f.hint,
        kind,
        required: match f.required {
            Requirement::Optional => Required::Optional,
            Requirement::Required => Required::Always,
            Requirement::FrontOffice => Required::FrontOffice,
        },
        condition: f.condition,
        validation: f.validation.map(|v| Validation { regex: v.regex, message: v.message }),
        prefill: f.prefill.map(|p| match p {
            PrefillInput::User(u) => Prefill::User(match u {
                ProfileFieldName::FirstName => ProfileField::FirstName,
                ProfileFieldName::LastName => ProfileField::LastName,
                ProfileFieldName::Email => ProfileField::Email,
                ProfileFieldName::Phone => ProfileField::Phone,
            }),
            PrefillInput::Template(t) => Prefill::Template(t),
            PrefillInput::Card(c) => Prefill::Card { model: c.model, field: c.field },
        }),
        read_only: f.read_only,
        in_listing: f.in_listing,
    })
}

/// A function played by an agent role.
#[derive(InputObject, SimpleObject, Clone)]
#[graphql(input_name = "FunctionRoleInput")]
pub struct FunctionRole {
    /// The workflow's function (`receiver`).
    pub function: String,
    /// The agent role playing it (`etat-civil`).
    pub role: String,
}

/// What a definition of fields is.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug, Default)]
pub enum FormKindName {
    /// A form citizens and agents fill in.
    #[default]
    Form,
    /// A card model: its demands are cards that agents keep (and workflows create), listed by
    /// `cards`, offered as choices (`cardModel` of a field) and prefilling forms.
    CardModel,
}

/// A form (or a card model).
#[derive(InputObject)]
pub struct FormInput {
    /// A form or a card model.
    #[graphql(default)]
    pub kind: FormKindName,
    /// URL name, unique among forms and card models.
    pub slug: String,
    /// Title.
    pub title: String,
    /// Introduction.
    #[graphql(default)]
    pub description: String,
    /// Category slug.
    pub category: Option<String>,
    /// The workflow its demands follow.
    pub workflow_id: ID,
    /// Which role plays each function of the workflow: their agents see and process demands.
    #[graphql(default)]
    pub function_roles: Vec<FunctionRole>,
    /// Roles whose agents see that demands exist (their summary), not their content.
    #[graphql(default)]
    pub summary_roles: Vec<String>,
    /// Roles whose agents may submit it on someone's behalf (phone, counter...).
    #[graphql(default)]
    pub backoffice_submission_roles: Vec<String>,
    /// People without an account may submit (they keep the tracking code).
    #[graphql(default)]
    pub allow_anonymous: bool,
    /// Fields, in order.
    pub fields: Vec<FieldInput>,
    /// Summary shown in listings (a template).
    pub digest_template: Option<String>,
    /// Days a draft lives (default 100).
    pub draft_days: Option<u32>,
}

fn form_of(id: FormId, input: FormInput) -> async_graphql::Result<FormDef> {
    Ok(FormDef {
        id,
        kind: match input.kind {
            FormKindName::Form => FormKind::Form,
            FormKindName::CardModel => FormKind::CardModel,
        },
        slug: input.slug,
        title: input.title,
        description: input.description,
        category: input.category,
        workflow_id: parse_id(&input.workflow_id, "workflow")?,
        function_roles: input.function_roles.into_iter().map(|f| (f.function, f.role)).collect(),
        summary_roles: input.summary_roles,
        backoffice_submission_roles: input.backoffice_submission_roles,
        allow_anonymous: input.allow_anonymous,
        fields: input.fields.into_iter().map(field_of).collect::<Result<_, _>>()?,
        digest_template: input.digest_template,
        draft_days: input.draft_days.unwrap_or(actors::demands::form::DEFAULT_DRAFT_DAYS),
        version: 1,
    })
}

/// Who may use a button, a comment form or a global action: one of the three.
#[derive(OneofObject, Clone)]
pub enum WhoInput {
    /// The person the demand is for (`true`).
    Submitter(bool),
    /// Agents of the role playing this function for the demand.
    Function(String),
    /// Agents of this role.
    Role(String),
}

/// Who receives a notification: one of the three.
#[derive(OneofObject, Clone)]
pub enum RecipientInput {
    /// The person the demand is for (`true`).
    Submitter(bool),
    /// Agents of the role playing this function.
    Function(String),
    /// An address.
    Address(String),
}

/// Kinds of workflow items.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum ItemType {
    /// A manual button (`label`, `by`, `target`, `withComment`).
    Button,
    /// An automatic jump (`target`; `afterSeconds` for a timeout; `condition`).
    Jump,
    /// A comment form (`label`, `by`).
    Comment,
    /// A form changing the demand's answers (`label`, `by`; `fields`: the field ids it opens,
    /// all when absent; `target`: the status after it). Performed with `input`: the changed
    /// answers, checked as on submission.
    Edit,
    /// A form attaching a file (`label`, `by`; `field`: the key it is kept under, each file
    /// apart when absent; `fileTypes`, `maxBytes`). Performed with `input: {"upload": <id>}`
    /// and an optional `comment`.
    Attach,
    /// An email, and optionally a text message (`to`, `subject`, `body`, `sms`).
    Notify,
    /// Gives a function to a role for the demand (`function`, `role`).
    Dispatch,
    /// Sets fields from templates (`values`).
    SetFields,
    /// Writes a message into the history (`template`).
    HistoryMessage,
    /// Creates a demand of another form (`form`), its fields from templates (`values`), in the
    /// same transaction.
    CreateDemand,
    /// POSTs the demand as JSON, or `payload` (a template of JSON), to `url` once the step is
    /// written; retried with backoff, the outcome kept in the history.
    Webhook,
    /// Generates a document from `template`, named by `filename` (a template), attached to the
    /// demand under `field`: HTML (values escaped) or, with `format: PDF`, a PDF typeset from
    /// text (`# ` starts a title, `## ` a heading, an empty line a paragraph).
    Document,
}

/// What a generated document is.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug, Default)]
pub enum DocumentFormatInput {
    /// HTML page.
    #[default]
    Html,
    /// PDF on A4 pages.
    Pdf,
}

/// A field value set by a workflow.
#[derive(InputObject, Clone)]
pub struct AssignmentInput {
    /// Field id.
    pub field: String,
    /// Template of the value.
    pub template: String,
}

/// One item of a status or a global action (settings of other types are ignored).
#[derive(InputObject, Clone)]
pub struct ItemInput {
    /// Identifier, unique in the workflow.
    pub id: String,
    /// Type.
    #[graphql(name = "type")]
    pub item_type: ItemType,
    /// Runs (or is offered) only when this expression holds.
    pub condition: Option<String>,
    /// BUTTON, COMMENT, EDIT, ATTACH: text.
    pub label: Option<String>,
    /// BUTTON, COMMENT, EDIT, ATTACH: who may use it.
    pub by: Option<Vec<WhoInput>>,
    /// BUTTON, JUMP, EDIT: the status it leads to.
    pub target: Option<String>,
    /// BUTTON: takes a comment.
    #[graphql(default)]
    pub with_comment: bool,
    /// JUMP: waits this long after arrival in the status.
    pub after_seconds: Option<u64>,
    /// NOTIFY: recipients.
    pub to: Option<Vec<RecipientInput>>,
    /// NOTIFY: subject template.
    pub subject: Option<String>,
    /// NOTIFY: body template.
    pub body: Option<String>,
    /// NOTIFY: also as a text message.
    #[graphql(default)]
    pub sms: bool,
    /// DISPATCH: the function.
    pub function: Option<String>,
    /// DISPATCH: the role (a template).
    pub role: Option<String>,
    /// SET_FIELDS: values.
    pub values: Option<Vec<AssignmentInput>>,
    /// HISTORY_MESSAGE: the template.
    pub template: Option<String>,
    /// CREATE_DEMAND: the form's slug.
    pub form: Option<String>,
    /// DOCUMENT, ATTACH: the data key it is attached under.
    pub field: Option<String>,
    /// EDIT: the ids of the fields it opens (all when absent).
    pub fields: Option<Vec<String>>,
    /// ATTACH: accepted types (`application/pdf`, `image/*`), any when absent.
    pub file_types: Option<Vec<String>>,
    /// ATTACH: largest file in bytes (10 MiB when absent).
    pub max_bytes: Option<u64>,
    /// DOCUMENT: its file name (a template).
    pub filename: Option<String>,
    /// DOCUMENT: HTML or PDF.
    #[graphql(default)]
    pub format: DocumentFormatInput,
    /// WEBHOOK: where to POST.
    pub url: Option<String>,
    /// WEBHOOK: the body, a template rendering JSON (the demand when absent).
    pub payload: Option<String>,
}

fn who_of(by: Option<Vec<WhoInput>>) -> Vec<Who> {
    by.unwrap_or_default()
        .into_iter()
        .filter_map(|w| match w {
            WhoInput::Submitter(true) => Some(Who::Submitter),
            WhoInput::Submitter(false) => None,
            WhoInput::Function(f) => Some(Who::Function(f)),
            WhoInput::Role(r) => Some(Who::Role(r)),
        })
        .collect()
}

fn item_of(i: ItemInput) -> async_graphql::Result<ActionItem> {
    let need = |v: Option<String>, what: &str| {
        v.ok_or_else(|| BadInput(format!("item {:?}: {what} is needed", i.id))).gql()
    };
    let kind = match i.item_type {
        ItemType::Button => ItemKind::Button {
            label: need(i.label.clone(), "label")?,
            by: who_of(i.by.clone()),
            target: need(i.target.clone(), "target")?,
            with_comment: i.with_comment,
        },
        ItemType::Jump => ItemKind::Jump {
            target: need(i.target.clone(), "target")?,
            after_seconds: i.after_seconds,
        },
        ItemType::Comment => {
            ItemKind::Comment { label: need(i.label.clone(), "label")?, by: who_of(i.by.clone()) }
        }
        ItemType::Edit => ItemKind::Edit {
            label: need(i.label.clone(), "label")?,
            by: who_of(i.by.clone()),
            fields: i.fields.clone().unwrap_or_default(),
            target: i.target.clone(),
        },
        ItemType::Attach => ItemKind::Attach {
            label: need(i.label.clone(), "label")?,
            by: who_of(i.by.clone()),
            field: i.field.clone(),
            types: i.file_types.clone().unwrap_or_default(),
            max_bytes: i.max_bytes,
        },
        ItemType::Notify => ItemKind::Notify {
            to: i
                .to
                .clone()
                .unwrap_or_default()
                .into_iter()
                .filter_map(|r| match r {
                    RecipientInput::Submitter(true) => Some(Recipient::Submitter),
                    RecipientInput::Submitter(false) => None,
                    RecipientInput::Function(f) => Some(Recipient::Function(f)),
                    RecipientInput::Address(a) => Some(Recipient::Address(a)),
                })
                .collect(),
            subject: need(i.subject.clone(), "subject")?,
            body: need(i.body.clone(), "body")?,
            sms: i.sms,
        },
        ItemType::Dispatch => ItemKind::Dispatch {
            function: need(i.function.clone(), "function")?,
            role: need(i.role.clone(), "role")?,
        },
        ItemType::Document => ItemKind::Document {
            field: need(i.field.clone(), "field")?,
            filename: need(i.filename.clone(), "filename")?,
            template: need(i.template.clone(), "template")?,
            format: match i.format {
                DocumentFormatInput::Html => DocumentFormat::Html,
                DocumentFormatInput::Pdf => DocumentFormat::Pdf,
            },
        },
        ItemType::Webhook => {
            ItemKind::Webhook { url: need(i.url.clone(), "url")?, payload: i.payload.clone() }
        }
        ItemType::CreateDemand => ItemKind::CreateDemand {
            form: need(i.form.clone(), "form")?,
            values: i
                .values
                .clone()
                .unwrap_or_default()
                .into_iter()
                .map(|a| Assignment { field: a.field, template: a.template })
                .collect(),
        },
        ItemType::SetFields => ItemKind::SetFields {
            values: i
                .values
                .clone()
                .unwrap_or_default()
                .into_iter()
                .map(|a| Assignment { field: a.field, template: a.template })
                .collect(),
        },
        ItemType::HistoryMessage => {
            ItemKind::HistoryMessage { template: need(i.template.clone(), "template")? }
        }
    };
    Ok(ActionItem { id: i.id, condition: i.condition, kind })
}

/// Who sees a status.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug, Default)]
pub enum StatusVisibility {
    /// Everyone who sees the demand.
    #[default]
    All,
    /// Agents only: the submitter keeps seeing the previous visible status.
    Restricted,
}

/// A status.
#[derive(InputObject)]
pub struct StatusInput {
    /// Identifier, unique in the workflow.
    pub id: String,
    /// Name.
    pub name: String,
    /// Who sees it.
    #[graphql(default)]
    pub visibility: StatusVisibility,
    /// Final even if an action could leave it.
    #[graphql(default)]
    pub endpoint: bool,
    /// Items in order.
    #[graphql(default)]
    pub items: Vec<ItemInput>,
}

/// A global action: run by hand (`by`, asking `input` when given), on a timeout, on a webhook
/// call — any of the three.
#[derive(InputObject)]
pub struct GlobalActionInput {
    /// Identifier, unique in the workflow.
    pub id: String,
    /// Text.
    pub label: String,
    /// Who may run it by hand (nobody when empty).
    #[graphql(default)]
    pub by: Vec<WhoInput>,
    /// Statuses where it applies (all when empty; for a timeout, all but endpoints).
    #[graphql(default)]
    pub statuses: Vec<String>,
    /// Runs on many demands from a listing.
    #[graphql(default)]
    pub mass: bool,
    /// Fields asked of whoever runs it by hand: `action_var_<id>` in the items' templates.
    #[graphql(default)]
    pub input: Vec<FieldInput>,
    /// Runs by itself after a delay.
    pub timeout: Option<TimeoutTriggerInput>,
    /// Runs when `POST /api/demands/<id>/hooks/<name>` is called; the posted JSON object is
    /// `webhook` in the items' templates.
    pub webhook: Option<WebhookTriggerInput>,
    /// Items run in order.
    pub items: Vec<ItemInput>,
}

/// What a timeout counts from.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum TimeoutAnchor {
    /// The submission.
    Creation,
    /// The latest arrival in the current status.
    StatusArrival,
    /// A date (or date and time) field of the demand, `anchorField`.
    Field,
}

/// When a global action runs by itself.
#[derive(InputObject)]
pub struct TimeoutTriggerInput {
    /// What the delay counts from.
    pub anchor: TimeoutAnchor,
    /// FIELD: the field's id.
    pub anchor_field: Option<String>,
    /// The delay in seconds; negative (before the date) with a FIELD anchor.
    pub after_seconds: i64,
}

/// Who may call a global action's webhook.
#[derive(InputObject)]
pub struct WebhookTriggerInput {
    /// The name in the URL.
    pub name: String,
    /// Accounts of these roles may call it (administrators always may).
    #[graphql(default)]
    pub roles: Vec<String>,
}

/// A workflow.
#[derive(InputObject)]
pub struct WorkflowInput {
    /// Unique name.
    pub slug: String,
    /// Name.
    pub name: String,
    /// Functions forms give to roles.
    #[graphql(default)]
    pub functions: Vec<String>,
    /// Statuses; the first is where demands start.
    pub statuses: Vec<StatusInput>,
    /// Global actions.
    #[graphql(default)]
    pub global_actions: Vec<GlobalActionInput>,
}

fn workflow_of(id: WorkflowId, input: WorkflowInput) -> async_graphql::Result<WorkflowDef> {
    let statuses = input
        .statuses
        .into_iter()
        .map(|s| {
            Ok(StatusDef {
                id: s.id,
                name: s.name,
                visibility: match s.visibility {
                    StatusVisibility::All => Visibility::All,
                    StatusVisibility::Restricted => Visibility::Restricted,
                },
                endpoint: s.endpoint,
                items: s.items.into_iter().map(item_of).collect::<async_graphql::Result<_>>()?,
            })
        })
        .collect::<async_graphql::Result<_>>()?;
    let global_actions = input
        .global_actions
        .into_iter()
        .map(|g| {
            let timeout = g
                .timeout
                .map(|t| {
                    let anchor = match t.anchor {
                        TimeoutAnchor::Creation => Anchor::Creation,
                        TimeoutAnchor::StatusArrival => Anchor::StatusArrival,
                        TimeoutAnchor::Field => Anchor::Field(t.anchor_field.ok_or_else(|| {
                            BadInput(format!("global action {:?}: anchorField is needed", g.id))
                        })?),
                    };
                    Ok::<_, BadInput>(TimeoutTrigger { anchor, after_seconds: t.after_seconds })
                })
                .transpose()
                .gql()?;
            Ok(GlobalAction {
                id: g.id,
                label: g.label,
                by: who_of(Some(g.by)),
                statuses: g.statuses,
                mass: g.mass,
                input: g.input.into_iter().map(field_of).collect::<async_graphql::Result<_>>()?,
                timeout,
                webhook: g.webhook.map(|h| WebhookTrigger { name: h.name, roles: h.roles }),
                items: g.items.into_iter().map(item_of).collect::<async_graphql::Result<_>>()?,
            })
        })
        .collect::<async_graphql::Result<_>>()?;
    Ok(WorkflowDef {
        id,
        slug: input.slug,
        name: input.name,
        functions: input.functions,
        statuses,
        global_actions,
        version: 1,
    })
}

// ---- definitions: outputs ----------------------------------------------------------------------

/// A field of a form, as clients render it.
#[derive(SimpleObject)]
pub struct FormField {
    /// Variable name.
    pub id: String,
    /// Label.
    pub label: String,
    /// Help text.
    pub hint: String,
    /// Type.
    #[graphql(name = "type")]
    pub field_type: FieldType,
    /// When it must be answered.
    pub required: Requirement,
    /// Display condition.
    pub condition: Option<String>,
    /// Pattern and message.
    pub validation: Option<FieldValidation>,
    /// Not editable.
    pub read_only: bool,
    /// A listing column.
    pub in_listing: bool,
    /// NUMBER bounds.
    pub min: Option<f64>,
    /// NUMBER bounds.
    pub max: Option<f64>,
    /// A written list of choices (lists from agendas and web services are read when the form
    /// is shown).
    pub choices: Option<Vec<ChoiceItem>>,
    /// The agenda whose events or slots are the choices.
    pub agenda: Option<String>,
    /// The web service giving the choices.
    pub web_service: Option<String>,
    /// The card model whose cards are the choices.
    pub card_model: Option<String>,
    /// The named data source giving the choices.
    pub data_source: Option<String>,
    /// FILE: largest file in bytes.
    pub max_bytes: Option<u64>,
    /// FILE: accepted types.
    pub file_types: Option<Vec<String>>,
    /// BLOCK: its fields.
    pub fields: Option<Vec<FormField>>,
    /// BLOCK: most repetitions.
    pub max_items: Option<u32>,
}

fn field_view(f: &Field) -> FormField {
    let (field_type, min, max, choices, fields, max_items) = match &f.kind {
        FieldKind::String => (FieldType::String, None, None, None, None, None),
        FieldKind::Text => (FieldType::Text, None, None, None, None, None),
        FieldKind::Email => (FieldType::Email, None, None, None, None, None),
        FieldKind::Phone => (FieldType::Phone, None, None, None, None, None),
        FieldKind::Number { min, max } => (FieldType::Number, *min, *max, None, None, None),
        FieldKind::Date => (FieldType::Date, None, None, None, None, None),
        FieldKind::Bool => (FieldType::Bool, None, None, None, None, None),
        FieldKind::Item { choices } => (FieldType::Item, None, None, Some(choices), None, None),
        FieldKind::Items { choices, .. } => {
            (FieldType::Items, None, None, Some(choices), None, None)
        }
        FieldKind::File { .. } => (FieldType::File, None, None, None, None, None),
        FieldKind::Computed { .. } => (FieldType::Computed, None, None, None, None, None),
        FieldKind::Block { fields, max_items } => (
            FieldType::Block,
            None,
            None,
            None,
            Some(fields.iter().map(field_view).collect()),
            Some(*max_items),
        ),
        FieldKind::Page => (FieldType::Page, None, None, None, None, None),
        FieldKind::Title => (FieldType::Title, None, None, None, None, None),
        FieldKind::Comment => (FieldType::Comment, None, None, None, None, None),
    };
    let (card_model, data_source) = match choices {
        Some(Choices::Cards { model }) => (Some(model.clone()), None),
        Some(Choices::DataSource { slug }) => (None, Some(slug.clone())),
        _ => (None, None),
    };
    let (written, agenda, web_service) = match choices {
        Some(Choices::Static { items }) => (
            Some(
                items
                    .iter()
                    .map(|c| ChoiceItem {
                        id: c.id.clone(),
                        text: c.text.clone(),
                        disabled: c.disabled,
                    })
                    .collect(),
            ),
            None,
            None,
        ),
        Some(Choices::Agenda { agenda, .. }) => (None, Some(agenda.clone()), None),
        Some(Choices::WebService { url }) => (None, None, Some(url.clone())),
        Some(Choices::Cards { .. } | Choices::DataSource { .. }) | None => (None, None, None),
    };
    let (max_bytes, file_types) = match &f.kind {
        FieldKind::File { max_bytes, types } => (Some(*max_bytes), Some(types.clone())),
        _ => (None, None),
    };
    FormField {
        max_bytes,
        file_types,
        id: f.id.clone(),
        label: f.label.clone(),
        hint: f.hint.clone(),
        field_type,
        required: match f.required {
            Required::Optional => Requirement::Optional,
            Required::Always => Requirement::Required,
            Required::FrontOffice => Requirement::FrontOffice,
        },
        condition: f.condition.clone(),
        validation: f
            .validation
            .as_ref()
            .map(|v| FieldValidation { regex: v.regex.clone(), message: v.message.clone() }),
        read_only: f.read_only,
        in_listing: f.in_listing,
        min,
        max,
        choices: written,
        agenda,
        web_service,
        card_model,
        data_source,
        fields,
        max_items,
    }
}

/// A form.
pub struct Form(pub Arc<FormDef>);

#[Object]
impl Form {
    /// Identifier.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// URL name.
    async fn slug(&self) -> &str {
        &self.0.slug
    }
    /// A form or a card model.
    async fn kind(&self) -> FormKindName {
        match self.0.kind {
            FormKind::Form => FormKindName::Form,
            FormKind::CardModel => FormKindName::CardModel,
        }
    }
    /// Title.
    async fn title(&self) -> &str {
        &self.0.title
    }
    /// Introduction.
    async fn description(&self) -> &str {
        &self.0.description
    }
    /// Category.
    async fn category(&self) -> Option<&str> {
        self.0.category.as_deref()
    }
    /// Version (grows with every save).
    async fn version(&self) -> u32 {
        self.0.version
    }
    /// Its workflow.
    async fn workflow_id(&self) -> ID {
        ID(self.0.workflow_id.to_string())
    }
    /// Fields, in order.
    async fn fields(&self) -> Vec<FormField> {
        self.0.fields.iter().map(field_view).collect()
    }
    /// People without an account may submit.
    async fn allow_anonymous(&self) -> bool {
        self.0.allow_anonymous
    }
    /// Which role plays each function (administrators).
    async fn function_roles(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<FunctionRole>> {
        ctx.data::<Caller>()?.may(Action::ManageForms)?;
        Ok(self
            .0
            .function_roles
            .iter()
            .map(|(f, r)| FunctionRole { function: f.clone(), role: r.clone() })
            .collect())
    }
    /// The digest template (administrators).
    async fn digest_template(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<String>> {
        ctx.data::<Caller>()?.may(Action::ManageForms)?;
        Ok(self.0.digest_template.clone())
    }
    /// Days a draft lives.
    async fn draft_days(&self) -> u32 {
        self.0.draft_days
    }
}

/// A status of a workflow.
#[derive(SimpleObject)]
pub struct WorkflowStatus {
    /// Identifier.
    pub id: String,
    /// Name.
    pub name: String,
    /// Who sees it.
    pub visibility: StatusVisibility,
    /// Final.
    pub endpoint: bool,
}

/// A workflow (administrators).
#[derive(SimpleObject)]
pub struct Workflow {
    /// Identifier.
    pub id: ID,
    /// Unique name.
    pub slug: String,
    /// Name.
    pub name: String,
    /// Version.
    pub version: u32,
    /// Functions.
    pub functions: Vec<String>,
    /// Statuses, the first being where demands start.
    pub statuses: Vec<WorkflowStatus>,
    /// The whole definition as saved.
    pub definition: Json<serde_json::Value>,
}

impl From<&WorkflowDef> for Workflow {
    fn from(w: &WorkflowDef) -> Self {
        Self {
            id: ID(w.id.to_string()),
            slug: w.slug.clone(),
            name: w.name.clone(),
            version: w.version,
            functions: w.functions.clone(),
            statuses: w
                .statuses
                .iter()
                .map(|s| WorkflowStatus {
                    id: s.id.clone(),
                    name: s.name.clone(),
                    visibility: match s.visibility {
                        Visibility::All => StatusVisibility::All,
                        Visibility::Restricted => StatusVisibility::Restricted,
                    },
                    endpoint: w.is_endpoint(&s.id),
                })
                .collect(),
            definition: Json(serde_json::to_value(w).unwrap_or_default()),
        }
    }
}

/// One change between two versions of a definition.
#[derive(SimpleObject)]
pub struct DefinitionChange {
    /// Where, as a dotted path (`fields.3.label`).
    pub path: String,
    /// Before (null when added).
    pub before: Option<Json<serde_json::Value>>,
    /// After (null when removed).
    pub after: Option<Json<serde_json::Value>>,
}

/// One saved version of a form or workflow.
#[derive(SimpleObject)]
pub struct DefinitionVersion {
    /// Its number.
    pub version: u32,
    /// When it was saved.
    pub saved_at: DateTime,
    /// By whom.
    pub saved_by: Option<ID>,
    /// The definition as saved then.
    pub definition: Json<serde_json::Value>,
}

// ---- demands ---------------------------------------------------------------------------------

/// How a demand arrived.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug, Default)]
pub enum Channel {
    /// The citizen, on the web.
    #[default]
    Web,
    /// By phone.
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

impl From<Channel> for SubmissionChannel {
    fn from(c: Channel) -> Self {
        match c {
            Channel::Web => SubmissionChannel::Web,
            Channel::Phone => SubmissionChannel::Phone,
            Channel::Mail => SubmissionChannel::Mail,
            Channel::Counter => SubmissionChannel::Counter,
            Channel::Email => SubmissionChannel::Email,
            Channel::SocialNetwork => SubmissionChannel::SocialNetwork,
        }
    }
}

impl From<SubmissionChannel> for Channel {
    fn from(c: SubmissionChannel) -> Self {
        match c {
            SubmissionChannel::Web => Channel::Web,
            SubmissionChannel::Phone => Channel::Phone,
            SubmissionChannel::Mail => Channel::Mail,
            SubmissionChannel::Counter => Channel::Counter,
            SubmissionChannel::Email => Channel::Email,
            SubmissionChannel::SocialNetwork => Channel::SocialNetwork,
        }
    }
}

/// A status as a viewer sees it.
#[derive(SimpleObject)]
pub struct DemandStatus {
    /// Identifier.
    pub id: String,
    /// Name.
    pub name: String,
}

/// Kinds of actions offered on a demand.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum ActionKind {
    /// A status button.
    Button,
    /// A comment form.
    Comment,
    /// A global action.
    Global,
    /// An edit form: `inputFields` are the fields it opens.
    Edit,
    /// An attachment form.
    Attach,
}

/// An action the viewer may take now.
#[derive(SimpleObject)]
pub struct DemandAction {
    /// Its id, for `performAction`.
    pub id: String,
    /// Its text.
    pub label: String,
    /// Kind.
    pub kind: ActionKind,
    /// Takes a comment (`comment` of `performAction`).
    pub with_comment: bool,
    /// What an interactive global action asks, or the fields an edit form opens (`input` of
    /// `performAction`, by field id).
    pub input_fields: Vec<FormField>,
}

/// One entry of a demand's history.
#[derive(SimpleObject)]
pub struct HistoryItem {
    /// Position.
    pub seq: u64,
    /// When.
    pub at: DateTime,
    /// Who (none: the workflow itself).
    pub by: Option<ID>,
    /// Status after it.
    pub status: String,
    /// `submitted`, `status_changed`, `comment`, `message`, `notified`, `dispatched`,
    /// `fields_set`, `edited` (text: the changed fields), `file_attached` (text: file name and
    /// field), `user_linked` (text: the account's id), `access_granted`, `demand_created` (text: form and id), `created_from` (text: the
    /// parent's id), `webhook_queued`, `webhook_called`, `document_generated`, `global_action`
    /// (text: its label and trigger), `error`.
    pub kind: String,
    /// Human text: the comment, the message, `new → in-progress (Take)`...
    pub text: String,
}

fn history_item(h: &HistoryEntry) -> HistoryItem {
    let (kind, text) = match &h.kind {
        HistoryKind::Submitted { channel } => {
            ("submitted", format!("submitted ({})", channel.as_str()))
        }
        HistoryKind::StatusChanged { from, to, cause } => {
            ("status_changed", format!("{from} → {to} ({cause})"))
        }
        HistoryKind::Comment { text } => ("comment", text.clone()),
        HistoryKind::Message { text } => ("message", text.clone()),
        HistoryKind::Notified { subject, recipients } => {
            ("notified", format!("{subject} ({recipients} recipients)"))
        }
        HistoryKind::Dispatched { function, role } => {
            ("dispatched", format!("{function} → {role}"))
        }
        HistoryKind::FieldsSet { fields } => ("fields_set", fields.join(", ")),
        HistoryKind::Edited { fields } => ("edited", fields.join(", ")),
        HistoryKind::FileAttached { filename, field } => {
            ("file_attached", format!("{filename} ({field})"))
        }
        HistoryKind::UserLinked { account } => ("user_linked", account.to_string()),
        HistoryKind::AccessGranted => ("access_granted", "access given by tracking code".into()),
        HistoryKind::DemandCreated { id, form } => ("demand_created", format!("{form} {id}")),
        HistoryKind::CreatedFrom { parent } => ("created_from", parent.to_string()),
        HistoryKind::WebhookQueued { url } => ("webhook_queued", url.clone()),
        HistoryKind::DocumentGenerated { filename } => ("document_generated", filename.clone()),
        HistoryKind::WebhookCalled { url, status, attempts } => (
            "webhook_called",
            match status {
                Some(s) => format!("{url}: HTTP {s} after {attempts} attempt(s)"),
                None => format!("{url}: unreachable after {attempts} attempt(s)"),
            },
        ),
        HistoryKind::GlobalAction { label, trigger, .. } => (
            "global_action",
            format!(
                "{label} ({})",
                match trigger {
                    Trigger::Manual => "by hand",
                    Trigger::Timeout => "timeout",
                    Trigger::Webhook => "webhook",
                }
            ),
        ),
        HistoryKind::Error { message } => ("error", message.clone()),
    };
    HistoryItem {
        seq: h.seq,
        at: DateTime(h.at),
        by: h.by.map(|a| ID(a.to_string())),
        status: h.status.clone(),
        kind: kind.into(),
        text,
    }
}

/// A file attached to a demand.
#[derive(SimpleObject)]
pub struct AttachmentView {
    /// The field it answers (`rooms.0.photo` inside a block).
    pub field: String,
    /// The upload's id.
    pub id: String,
    /// File name.
    pub filename: String,
    /// Type.
    pub content_type: String,
    /// Bytes.
    pub size: u64,
    /// Where to download it (with the same bearer token).
    pub url: String,
}

/// A stored upload, to give as the answer of a file field.
#[derive(SimpleObject)]
pub struct UploadedFile {
    /// Its id: the answer of the file field.
    pub id: String,
    /// File name.
    pub filename: String,
    /// Type, checked against the content where recognisable.
    pub content_type: String,
    /// Bytes.
    pub size: u64,
}

/// How a person prefers to be notified by workflows.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum NotificationChannel {
    /// By email (the default).
    Email,
    /// By text message (to the phone given with `setPhone`).
    Sms,
    /// In the application only (`myNotifications`).
    Web,
}

/// A notification in a person's inbox.
#[derive(SimpleObject)]
pub struct Notification {
    /// Identifier.
    pub id: ID,
    /// Title.
    pub title: String,
    /// Text.
    pub body: String,
    /// The demand it is about.
    pub demand_id: Option<ID>,
    /// When.
    pub created_at: DateTime,
    /// Seen.
    pub read: bool,
}

/// A definition an import left alone.
#[derive(SimpleObject)]
pub struct ImportConflict {
    /// `workflow:<slug>` or `form:<slug>`.
    pub name: String,
    /// Why.
    pub reason: String,
}

/// What an import did.
#[derive(SimpleObject)]
pub struct ImportReport {
    /// Created here.
    pub created: Vec<String>,
    /// Saved as a new version.
    pub updated: Vec<String>,
    /// Already here, identical.
    pub unchanged: Vec<String>,
    /// Here with other content, left alone.
    pub conflicts: Vec<ImportConflict>,
    /// Nothing was written.
    pub dry_run: bool,
}

/// What a viewer may read of a demand.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Sight {
    /// Its existence and summary.
    Summary,
    /// Its content, as the person it is for.
    Submitter,
    /// Its content, as an agent (every status and history entry).
    Agent,
}

/// Decides what `principal` sees of a demand, in the single access policy; `NOT_FOUND` when
/// nothing.
fn sight(principal: &Principal, view: &DemandView) -> async_graphql::Result<Sight> {
    let roles = view.content_roles();
    let content = authorize(principal, view.see(&roles));
    let me = principal.account_id();
    match content {
        Ok(()) => {
            let agent_side = me != view.demand.submitter
                || principal.is_admin()
                || authorize(
                    principal,
                    Action::SeeDemand { submitter: None, content_roles: &roles, granted: &[] },
                )
                .is_ok();
            Ok(if agent_side { Sight::Agent } else { Sight::Submitter })
        }
        Err(e) => {
            let summary = Action::SeeDemandSummary {
                submitter: view.demand.submitter,
                content_roles: &roles,
                summary_roles: &view.form.summary_roles,
                granted: &view.demand.granted,
            };
            match authorize(principal, summary) {
                Ok(()) => Ok(Sight::Summary),
                Err(_) => Err(e).gql(),
            }
        }
    }
}

/// A demand.
pub struct Demand {
    view: DemandView,
    sight: Sight,
    principal: Principal,
}

impl Demand {
    fn content(&self) -> async_graphql::Result<()> {
        if self.sight == Sight::Summary {
            return Err(coded(
                actors::ErrorCode::Forbidden,
                "you see that this demand exists, not its content",
            ));
        }
        Ok(())
    }
}

#[Object]
impl Demand {
    /// Identifier.
    async fn id(&self) -> ID {
        ID(self.view.demand.id.to_string())
    }
    /// Its form's slug.
    async fn form_slug(&self) -> &str {
        &self.view.form.slug
    }
    /// Its form's title.
    async fn form_title(&self) -> &str {
        &self.view.form.title
    }
    /// The form version it was submitted with.
    async fn form_version(&self) -> u32 {
        self.view.demand.form_version
    }
    /// The summary shown in listings.
    async fn digest(&self) -> &str {
        &self.view.demand.digest
    }
    /// Its status, as the viewer may see it.
    async fn status(&self) -> DemandStatus {
        let id = self.view.status_for(self.sight != Sight::Submitter).to_owned();
        DemandStatus { name: self.view.status_name(&id), id }
    }
    /// In a final status.
    async fn is_endpoint(&self) -> bool {
        self.view.is_endpoint()
    }
    /// How it arrived.
    async fn channel(&self) -> Channel {
        self.view.demand.channel.into()
    }
    /// Submission.
    async fn created_at(&self) -> DateTime {
        DateTime(self.view.demand.created_at)
    }
    /// Last change.
    async fn updated_at(&self) -> DateTime {
        DateTime(self.view.demand.updated_at)
    }
    /// Grows with every change.
    async fn version(&self) -> u64 {
        self.view.demand.version
    }
    /// The person it is for (agents).
    async fn user_label(&self) -> async_graphql::Result<&str> {
        self.content()?;
        Ok(&self.view.demand.user_label)
    }
    /// Answers and workflow data by field id (content).
    async fn data(
        &self,
    ) -> async_graphql::Result<Json<serde_json::Map<String, serde_json::Value>>> {
        self.content()?;
        Ok(Json(self.view.demand.data.clone()))
    }
    /// History entries from `from`, at most `first` (content); the submitter does not see
    /// entries of restricted statuses.
    async fn history(
        &self,
        ctx: &Context<'_>,
        #[graphql(default)] from: u64,
        #[graphql(default = 100)] first: u32,
    ) -> async_graphql::Result<Vec<HistoryItem>> {
        self.content()?;
        let services = ctx.data::<Services>()?;
        let entries =
            services.demands.history(self.view.demand.id, from, first.min(1_000)).await.gql()?;
        let agent = self.sight == Sight::Agent;
        Ok(entries.iter().filter(|h| self.view.visible_entry(h, agent)).map(history_item).collect())
    }
    /// Its files (content); `attachmentsZipUrl` downloads them all at once.
    async fn attachments(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<AttachmentView>> {
        self.content()?;
        let services = ctx.data::<Services>()?;
        let id = self.view.demand.id;
        Ok(services
            .demands
            .attachments(&self.view)
            .into_iter()
            .map(|a| AttachmentView {
                url: format!("/api/demands/{id}/attachments/{}", a.upload),
                field: a.field,
                id: a.upload,
                filename: a.filename,
                content_type: a.content_type,
                size: a.size,
            })
            .collect())
    }
    /// Where to download every file of the demand as one zip (with the same bearer token).
    async fn attachments_zip_url(&self) -> async_graphql::Result<String> {
        self.content()?;
        Ok(format!("/api/demands/{}/attachments.zip", self.view.demand.id))
    }
    /// The actions the viewer may take now.
    async fn actions(&self) -> Vec<DemandAction> {
        if self.sight == Sight::Summary {
            return Vec::new();
        }
        let Ok(actor) = acting(&self.principal) else { return Vec::new() };
        self.view
            .actions_for(&actor)
            .into_iter()
            .map(|a| DemandAction {
                id: a.id,
                label: a.label,
                kind: match a.kind {
                    OfferedKind::Button => ActionKind::Button,
                    OfferedKind::Comment => ActionKind::Comment,
                    OfferedKind::Global => ActionKind::Global,
                    OfferedKind::Edit => ActionKind::Edit,
                    OfferedKind::Attach => ActionKind::Attach,
                },
                with_comment: a.with_comment,
                input_fields: a.input.iter().map(field_view).collect(),
            })
            .collect()
    }
}

/// The demand as `caller` may see it; `NOT_FOUND` when they may not.
pub(crate) fn demand_for(caller: &Caller, view: DemandView) -> async_graphql::Result<Demand> {
    let sight = sight(&caller.principal, &view)?;
    Ok(Demand { view, sight, principal: caller.principal.clone() })
}

/// Input of `submitDemand`.
#[derive(InputObject)]
pub struct SubmitDemandInput {
    /// The form's slug.
    pub form: String,
    /// Answers by field id: text, numbers, booleans, choice ids, lists of them, and lists of
    /// objects for blocks.
    pub answers: Json<serde_json::Map<String, serde_json::Value>>,
    /// How it arrived (agents: phone, counter...).
    #[graphql(default)]
    pub channel: Channel,
    /// Agents: the known person it is for.
    pub on_behalf_of: Option<ID>,
    /// The caller's draft this completes: deleted with the submission; its answers are used
    /// when `answers` is empty.
    pub draft_id: Option<ID>,
}

/// Answers saved before submission.
#[derive(SimpleObject)]
pub struct Draft {
    /// Identifier.
    pub id: ID,
    /// The form's slug.
    pub form: String,
    /// The form version it was saved with.
    pub form_version: u32,
    /// Answers so far.
    pub answers: Json<serde_json::Map<String, serde_json::Value>>,
    /// The page the person was on.
    pub page: u32,
    /// Last save.
    pub updated_at: DateTime,
    /// When it will be deleted.
    pub expires_at: DateTime,
}

impl From<actors::demands::draft::Draft> for Draft {
    fn from(d: actors::demands::draft::Draft) -> Self {
        Self {
            id: ID(d.id.to_string()),
            form: d.form_slug,
            form_version: d.form_version,
            answers: Json(d.answers),
            page: d.page,
            updated_at: DateTime(d.updated_at),
            expires_at: DateTime(d.expires_at),
        }
    }
}

/// Input of `saveDraft`.
#[derive(InputObject)]
pub struct SaveDraftInput {
    /// The draft to replace; a new one when absent.
    pub id: Option<ID>,
    /// The form's slug.
    pub form: String,
    /// Answers so far (only field ids are checked).
    pub answers: Json<serde_json::Map<String, serde_json::Value>>,
    /// The page the person is on.
    #[graphql(default)]
    pub page: u32,
}

/// A submitted demand and its tracking code, shown only now.
#[derive(SimpleObject)]
pub struct SubmittedDemand {
    /// The demand.
    pub demand: Demand,
    /// Opens this demand alone; given once, stored only hashed.
    pub tracking_code: String,
}

// ---- operations --------------------------------------------------------------------------------

/// Queries of forms and demands.
#[derive(Default)]
pub struct DemandsQuery;

#[Object]
impl DemandsQuery {
    /// Every form (`kind: CARD_MODEL`: every card model).
    async fn forms(
        &self,
        ctx: &Context<'_>,
        #[graphql(default)] kind: FormKindName,
    ) -> async_graphql::Result<Vec<Form>> {
        let services = ctx.data::<Services>()?;
        let wanted = match kind {
            FormKindName::Form => FormKind::Form,
            FormKindName::CardModel => FormKind::CardModel,
        };
        Ok(services
            .demands
            .forms()
            .await
            .gql()?
            .into_iter()
            .filter(|f| f.kind == wanted)
            .map(|f| Form(Arc::new(f)))
            .collect())
    }

    /// The choices a field of a form offers now: its written list, or the events or slots of
    /// its agenda, its web service's list, the cards of its card model, its data source's.
    async fn field_choices(
        &self,
        ctx: &Context<'_>,
        form: String,
        field: String,
    ) -> async_graphql::Result<Vec<ChoiceItem>> {
        let services = ctx.data::<Services>()?;
        Ok(services
            .demands
            .field_choices(&form, &field)
            .await
            .gql()?
            .into_iter()
            .map(|c| ChoiceItem { id: c.id, text: c.text, disabled: c.disabled })
            .collect())
    }

    /// The cards of a card model the caller may see, by digest.
    async fn cards(
        &self,
        ctx: &Context<'_>,
        model: String,
        #[graphql(default = 100)] first: u32,
    ) -> async_graphql::Result<Vec<Demand>> {
        let caller = ctx.data::<Caller>()?;
        caller.account()?;
        let services = ctx.data::<Services>()?;
        let views = services.demands.cards(&model, first.min(1_000)).await.gql()?;
        Ok(views.into_iter().filter_map(|v| demand_for(caller, v).ok()).collect())
    }

    /// Every named data source (administrators).
    async fn data_sources(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<DataSource>> {
        ctx.data::<Caller>()?.may(Action::ManageForms)?;
        let services = ctx.data::<Services>()?;
        Ok(services.demands.data_sources().await.gql()?.into_iter().map(DataSource).collect())
    }

    /// One form by slug.
    async fn form(&self, ctx: &Context<'_>, slug: String) -> async_graphql::Result<Form> {
        let services = ctx.data::<Services>()?;
        Ok(Form(services.demands.form_by_slug(&slug).await.gql()?))
    }

    /// Every workflow (administrators).
    async fn workflows(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Workflow>> {
        ctx.data::<Caller>()?.may(Action::ManageForms)?;
        let services = ctx.data::<Services>()?;
        Ok(services.demands.workflows().await.gql()?.iter().map(Workflow::from).collect())
    }

    /// Every saved version of a form or workflow, newest first (administrators).
    async fn definition_versions(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<Vec<DefinitionVersion>> {
        ctx.data::<Caller>()?.may(Action::ManageForms)?;
        let services = ctx.data::<Services>()?;
        // Forms and workflows share the shape of their ids.
        let _: FormId = parse_id(&id, "definition")?;
        let versions = services.demands.versions(id.as_str()).await.gql()?;
        Ok(versions
            .into_iter()
            .map(|v| DefinitionVersion {
                version: v.stored.version,
                saved_at: DateTime(v.stored.saved_at),
                saved_by: v.stored.saved_by.map(|a| ID(a.to_string())),
                definition: Json(v.body),
            })
            .collect())
    }

    /// The changes of a form or workflow from version `from` to version `to` (administrators).
    async fn definition_diff(
        &self,
        ctx: &Context<'_>,
        id: ID,
        from: u32,
        to: u32,
    ) -> async_graphql::Result<Vec<DefinitionChange>> {
        ctx.data::<Caller>()?.may(Action::ManageForms)?;
        let services = ctx.data::<Services>()?;
        let _: FormId = parse_id(&id, "definition")?;
        let changes = services.demands.diff(id.as_str(), from, to).await.gql()?;
        Ok(changes
            .into_iter()
            .map(|c| DefinitionChange {
                path: c.path,
                before: c.before.map(Json),
                after: c.after.map(Json),
            })
            .collect())
    }

    /// A demand: its content for its submitter, the agents of its roles and those given its
    /// tracking code; its summary for the form's summary roles.
    async fn demand(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Demand> {
        let caller = ctx.data::<Caller>()?;
        caller.account()?;
        let services = ctx.data::<Services>()?;
        let id: DemandId = parse_id(&id, "demand")?;
        demand_for(caller, services.demands.get(id).await.gql()?)
    }

    /// The caller's own demands, newest first.
    async fn my_demands(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 50)] first: u32,
    ) -> async_graphql::Result<Vec<Demand>> {
        let caller = ctx.data::<Caller>()?;
        let me = caller.account()?;
        let services = ctx.data::<Services>()?;
        let views = services.demands.of_account(me, first.min(500)).await.gql()?;
        views.into_iter().map(|v| demand_for(caller, v)).collect()
    }

    /// The caller's notifications, newest first: every workflow notification lands here, and
    /// also goes by the channel the person prefers.
    async fn my_notifications(
        &self,
        ctx: &Context<'_>,
        #[graphql(default)] unread_only: bool,
        #[graphql(default = 50)] first: u32,
    ) -> async_graphql::Result<Vec<Notification>> {
        let caller = ctx.data::<Caller>()?;
        let services = ctx.data::<Services>()?;
        let rows = services
            .demands
            .notifications(&caller.principal, unread_only, first.min(500))
            .await
            .gql()?;
        Ok(rows
            .into_iter()
            .map(|n| Notification {
                id: ID(n.id),
                title: n.title,
                body: n.body,
                demand_id: n.demand.map(ID),
                created_at: DateTime(actors::time::from_micros(n.created_us)),
                read: n.read,
            })
            .collect())
    }

    /// The caller's drafts, latest first (expired ones are gone).
    async fn my_drafts(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Draft>> {
        let caller = ctx.data::<Caller>()?;
        let services = ctx.data::<Services>()?;
        Ok(services
            .demands
            .drafts(&caller.principal)
            .await
            .gql()?
            .into_iter()
            .map(Draft::from)
            .collect())
    }

    /// One of the caller's drafts.
    async fn draft(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Draft> {
        let caller = ctx.data::<Caller>()?;
        let services = ctx.data::<Services>()?;
        let id = parse_id(&id, "draft")?;
        Ok(services.demands.draft(&caller.principal, id).await.gql()?.into())
    }

    /// The demand a tracking code opens (rate-limited per client). An agent given a code by a
    /// citizen sees that demand from then on.
    async fn demand_by_tracking_code(
        &self,
        ctx: &Context<'_>,
        code: String,
    ) -> async_graphql::Result<Demand> {
        let caller = ctx.data::<Caller>()?;
        let services = ctx.data::<Services>()?;
        let client = caller.client.as_deref().unwrap_or("unknown");
        let view =
            services.demands.by_tracking_code(&code, client, &caller.principal).await.gql()?;
        // Holding the code is the access: show the content as its kind of viewer would see it.
        let sight = match sight(&caller.principal, &view) {
            Ok(Sight::Agent) => Sight::Agent,
            _ if caller.principal.account_id().is_some()
                && caller.principal.account_id() != view.demand.submitter
                && (caller.principal.is_admin() || caller.principal.is_agent_for(&[])) =>
            {
                Sight::Agent
            }
            _ => Sight::Submitter,
        };
        Ok(Demand { view, sight, principal: caller.principal.clone() })
    }
}

/// Mutations of forms and demands.
#[derive(Default)]
pub struct DemandsMutation;

#[Object]
impl DemandsMutation {
    /// Creates a workflow (administrators).
    async fn create_workflow(
        &self,
        ctx: &Context<'_>,
        input: WorkflowInput,
    ) -> async_graphql::Result<Workflow> {
        let caller = ctx.data::<Caller>()?;
        caller.may(Action::ManageForms)?;
        let services = ctx.data::<Services>()?;
        let def = workflow_of(WorkflowId::new(), input)?;
        let saved =
            services.demands.save_workflow(def, None, caller.principal.account_id()).await.gql()?;
        Ok(Workflow::from(&saved))
    }

    /// Saves a new version of a workflow (administrators). `version` is the one edited:
    /// `CONFLICT` if someone saved since.
    async fn update_workflow(
        &self,
        ctx: &Context<'_>,
        id: ID,
        version: u32,
        input: WorkflowInput,
    ) -> async_graphql::Result<Workflow> {
        let caller = ctx.data::<Caller>()?;
        caller.may(Action::ManageForms)?;
        let services = ctx.data::<Services>()?;
        let def = workflow_of(parse_id(&id, "workflow")?, input)?;
        let saved = services
            .demands
            .save_workflow(def, Some(version), caller.principal.account_id())
            .await
            .gql()?;
        Ok(Workflow::from(&saved))
    }

    /// Creates a form (administrators).
    async fn create_form(
        &self,
        ctx: &Context<'_>,
        input: FormInput,
    ) -> async_graphql::Result<Form> {
        let caller = ctx.data::<Caller>()?;
        caller.may(Action::ManageForms)?;
        let services = ctx.data::<Services>()?;
        let def = form_of(FormId::new(), input)?;
        let saved =
            services.demands.save_form(def, None, caller.principal.account_id()).await.gql()?;
        Ok(Form(Arc::new(saved)))
    }

    /// Saves a new version of a form (administrators); demands keep the version they were
    /// submitted with.
    async fn update_form(
        &self,
        ctx: &Context<'_>,
        id: ID,
        version: u32,
        input: FormInput,
    ) -> async_graphql::Result<Form> {
        let caller = ctx.data::<Caller>()?;
        caller.may(Action::ManageForms)?;
        let services = ctx.data::<Services>()?;
        let def = form_of(parse_id(&id, "form")?, input)?;
        let saved = services
            .demands
            .save_form(def, Some(version), caller.principal.account_id())
            .await
            .gql()?;
        Ok(Form(Arc::new(saved)))
    }

    /// Imports an application bundle (the zip `GET /api/bundle.zip` exports) as a GraphQL
    /// multipart upload (administrators). Definitions match by slug: importing twice changes
    /// nothing; different content is a conflict unless `overwrite`. Everything is checked
    /// before anything is written; `dryRun` only reports.
    async fn import_bundle(
        &self,
        ctx: &Context<'_>,
        file: async_graphql::Upload,
        #[graphql(default)] overwrite: bool,
        #[graphql(default)] dry_run: bool,
    ) -> async_graphql::Result<ImportReport> {
        let caller = ctx.data::<Caller>()?;
        caller.may(Action::ManageForms)?;
        let services = ctx.data::<Services>()?;
        let value = file
            .value(ctx)
            .map_err(|e| BadInput(format!("the file could not be read: {e}")))
            .gql()?;
        let report = services
            .demands
            .import_bundle(
                value.content.to_vec(),
                overwrite,
                dry_run,
                caller.principal.account_id(),
            )
            .await
            .gql()?;
        Ok(ImportReport {
            created: report.created,
            updated: report.updated,
            unchanged: report.unchanged,
            conflicts: report
                .conflicts
                .into_iter()
                .map(|(name, reason)| ImportConflict { name, reason })
                .collect(),
            dry_run: report.dry_run,
        })
    }

    /// Saves an old version of a form again as its newest (administrators).
    async fn restore_form(
        &self,
        ctx: &Context<'_>,
        id: ID,
        version: u32,
    ) -> async_graphql::Result<Form> {
        let caller = ctx.data::<Caller>()?;
        caller.may(Action::ManageForms)?;
        let services = ctx.data::<Services>()?;
        let id: FormId = parse_id(&id, "form")?;
        let saved = services
            .demands
            .restore_form(id, version, caller.principal.account_id())
            .await
            .gql()?;
        Ok(Form(Arc::new(saved)))
    }

    /// Creates a named data source (administrators).
    async fn create_data_source(
        &self,
        ctx: &Context<'_>,
        input: DataSourceInput,
    ) -> async_graphql::Result<DataSource> {
        let caller = ctx.data::<Caller>()?;
        caller.may(Action::ManageForms)?;
        let services = ctx.data::<Services>()?;
        let def = data_source_of(DataSourceId::new(), input)?;
        let saved = services
            .demands
            .save_data_source(def, None, caller.principal.account_id())
            .await
            .gql()?;
        Ok(DataSource(saved))
    }

    /// Saves a new version of a data source (administrators): every form naming it follows.
    /// `version` is the one edited: `CONFLICT` if someone saved since.
    async fn update_data_source(
        &self,
        ctx: &Context<'_>,
        id: ID,
        version: u32,
        input: DataSourceInput,
    ) -> async_graphql::Result<DataSource> {
        let caller = ctx.data::<Caller>()?;
        caller.may(Action::ManageForms)?;
        let services = ctx.data::<Services>()?;
        let def = data_source_of(parse_id(&id, "data source")?, input)?;
        let saved = services
            .demands
            .save_data_source(def, Some(version), caller.principal.account_id())
            .await
            .gql()?;
        Ok(DataSource(saved))
    }

    /// Saves an old version of a data source again as its newest (administrators).
    async fn restore_data_source(
        &self,
        ctx: &Context<'_>,
        id: ID,
        version: u32,
    ) -> async_graphql::Result<DataSource> {
        let caller = ctx.data::<Caller>()?;
        caller.may(Action::ManageForms)?;
        let services = ctx.data::<Services>()?;
        let saved = services
            .demands
            .restore_data_source(
                parse_id(&id, "data source")?,
                version,
                caller.principal.account_id(),
            )
            .await
            .gql()?;
        Ok(DataSource(saved))
    }

    /// Saves an old version of a workflow again as its newest (administrators).
    async fn restore_workflow(
        &self,
        ctx: &Context<'_>,
        id: ID,
        version: u32,
    ) -> async_graphql::Result<Workflow> {
        let caller = ctx.data::<Caller>()?;
        caller.may(Action::ManageForms)?;
        let services = ctx.data::<Services>()?;
        let id: WorkflowId = parse_id(&id, "workflow")?;
        let saved = services
            .demands
            .restore_workflow(id, version, caller.principal.account_id())
            .await
            .gql()?;
        Ok(Workflow::from(&saved))
    }

    /// Submits a demand: citizens on the web (or anonymously where the form allows), agents
    /// on someone's behalf through another channel. Every refused answer is listed at once in
    /// `extensions.invalidFields` and `extensions.fieldMessages`; nothing is saved then.
    async fn submit_demand(
        &self,
        ctx: &Context<'_>,
        input: SubmitDemandInput,
    ) -> async_graphql::Result<SubmittedDemand> {
        let caller = ctx.data::<Caller>()?;
        let services = ctx.data::<Services>()?;
        let on_behalf_of: Option<AccountId> =
            input.on_behalf_of.as_ref().map(|id| parse_id(id, "account")).transpose()?;
        let submission = Submission {
            form_slug: input.form,
            answers: input.answers.0,
            channel: input.channel.into(),
            on_behalf_of,
            draft: input.draft_id.as_ref().map(|id| parse_id(id, "draft")).transpose()?,
        };
        let (view, code) = services.demands.submit(&caller.principal, submission).await.gql()?;
        let sight = sight(&caller.principal, &view).unwrap_or(Sight::Submitter);
        Ok(SubmittedDemand {
            demand: Demand { view, sight, principal: caller.principal.clone() },
            tracking_code: code,
        })
    }

    /// Stores a file for a later submission (GraphQL multipart request): its id is the
    /// answer of a file field. Files are at most 25 MiB; a declared PDF or image must be one.
    async fn upload_file(
        &self,
        ctx: &Context<'_>,
        file: async_graphql::Upload,
    ) -> async_graphql::Result<UploadedFile> {
        let caller = ctx.data::<Caller>()?;
        let services = ctx.data::<Services>()?;
        let value = file
            .value(ctx)
            .map_err(|e| BadInput(format!("the file could not be read: {e}")))
            .gql()?;
        let upload = services
            .demands
            .upload(
                &caller.principal,
                &value.filename,
                value.content_type.as_deref(),
                value.content.to_vec(),
            )
            .await
            .gql()?;
        Ok(UploadedFile {
            id: upload.id,
            filename: upload.filename,
            content_type: upload.content_type,
            size: upload.size,
        })
    }

    /// How workflows notify the caller from now on.
    async fn set_notification_channel(
        &self,
        ctx: &Context<'_>,
        channel: NotificationChannel,
    ) -> async_graphql::Result<NotificationChannel> {
        let caller = ctx.data::<Caller>()?;
        let services = ctx.data::<Services>()?;
        let name = match channel {
            NotificationChannel::Email => "email",
            NotificationChannel::Sms => "sms",
            NotificationChannel::Web => "web",
        };
        services.demands.set_notification_channel(&caller.principal, name).await.gql()?;
        Ok(channel)
    }

    /// Marks some of the caller's notifications read; returns how many changed.
    async fn mark_notifications_read(
        &self,
        ctx: &Context<'_>,
        ids: Vec<ID>,
    ) -> async_graphql::Result<usize> {
        let caller = ctx.data::<Caller>()?;
        let services = ctx.data::<Services>()?;
        let ids: Vec<String> = ids.into_iter().map(|i| i.0).collect();
        services.demands.mark_notifications_read(&caller.principal, &ids).await.gql()
    }

    /// Saves answers as a draft (autosave), kept the form's number of days; a person keeps
    /// five drafts per form, the oldest going first.
    async fn save_draft(
        &self,
        ctx: &Context<'_>,
        input: SaveDraftInput,
    ) -> async_graphql::Result<Draft> {
        let caller = ctx.data::<Caller>()?;
        let services = ctx.data::<Services>()?;
        let id = input.id.as_ref().map(|id| parse_id(id, "draft")).transpose()?;
        let draft = services
            .demands
            .save_draft(&caller.principal, id, &input.form, input.answers.0, input.page)
            .await
            .gql()?;
        Ok(draft.into())
    }

    /// Deletes one of the caller's drafts.
    async fn discard_draft(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<bool> {
        let caller = ctx.data::<Caller>()?;
        let services = ctx.data::<Services>()?;
        let id = parse_id(&id, "draft")?;
        services.demands.discard_draft(&caller.principal, id).await.gql()?;
        Ok(true)
    }

    /// Links a demand entered for an unknown person (`submitDemand` by an agent without
    /// `onBehalfOf`) to that person's account, found or created since: agents of its
    /// functions' roles, of its form's back-office submission roles, or given its tracking
    /// code. `CONFLICT` when it is someone's already.
    async fn link_demand_user(
        &self,
        ctx: &Context<'_>,
        demand_id: ID,
        user_id: ID,
    ) -> async_graphql::Result<Demand> {
        let caller = ctx.data::<Caller>()?;
        caller.account()?;
        let services = ctx.data::<Services>()?;
        let id: DemandId = parse_id(&demand_id, "demand")?;
        let user: AccountId = parse_id(&user_id, "user")?;
        let view = services.demands.get(id).await.gql()?;
        sight(&caller.principal, &view)?;
        let view = services.demands.link_user(id, &caller.principal, user).await.gql()?;
        demand_for(caller, view)
    }

    /// Takes an action offered on a demand (see `Demand.actions`): a button (with an optional
    /// `comment` where it takes one), a comment form (`comment` is the text), a global action
    /// (`input`: the answers to its `inputFields`, checked as a form's are), an edit form
    /// (`input`: the answers it changes, by field id; `null` empties one; the others stay),
    /// an attachment form (`input: {"upload": <id from uploadFile>}`, an optional `comment`).
    async fn perform_action(
        &self,
        ctx: &Context<'_>,
        demand_id: ID,
        action_id: String,
        comment: Option<String>,
        input: Option<Json<serde_json::Map<String, serde_json::Value>>>,
    ) -> async_graphql::Result<Demand> {
        let caller = ctx.data::<Caller>()?;
        caller.account()?;
        let services = ctx.data::<Services>()?;
        let id: DemandId = parse_id(&demand_id, "demand")?;
        let view = services.demands.get(id).await.gql()?;
        // Those who may not see it may not learn it exists either.
        sight(&caller.principal, &view)?;
        let is_global = view.workflow.global_actions.iter().any(|g| g.id == action_id);
        let item = view
            .workflow
            .status(&view.demand.status)
            .and_then(|s| s.items.iter().find(|i| i.id == action_id))
            .map(|i| &i.kind);
        let input = input.map(|i| i.0).unwrap_or_default();
        let op = match item {
            _ if is_global => Operation::Global { action_id, input },
            Some(ItemKind::Comment { .. }) => {
                Operation::Comment { item_id: action_id, text: comment.unwrap_or_default() }
            }
            Some(ItemKind::Edit { .. }) => {
                Operation::Edit { item_id: action_id, data: input, based_on: 0 }
            }
            Some(ItemKind::Attach { .. }) => {
                Operation::Attach { item_id: action_id, file: input, comment }
            }
            _ => Operation::Button { item_id: action_id, comment },
        };
        let view = services.demands.perform(id, &caller.principal, op).await.gql()?;
        demand_for(caller, view)
    }
}

/// Subscriptions of demands.
#[derive(Default)]
pub struct DemandsSubscription;

#[Subscription]
impl DemandsSubscription {
    /// A demand now, then after every change (status, history, data), for those who see its
    /// content. Ends with the caller's session.
    async fn demand_updated(
        &self,
        ctx: &Context<'_>,
        demand_id: ID,
    ) -> async_graphql::Result<impl Stream<Item = Demand> + use<>> {
        let caller = ctx.data::<Caller>()?.clone();
        caller.account()?;
        let services = ctx.data::<Services>()?.clone();
        let id: DemandId = parse_id(&demand_id, "demand")?;
        // Subscribe before the snapshot, so that nothing falls between them.
        let rx = services.demands.subscribe(id);
        let first = services.demands.get(id).await.gql()?;
        let first = demand_for(&caller, first)?;
        if first.sight == Sight::Summary {
            return Err(coded(actors::ErrorCode::Forbidden, "you may not follow this demand"));
        }
        let open = Open::new(services.metrics.clone(), caller.session.as_ref());
        let mut last = first.view.demand.version;
        let session = caller.session.clone();
        let updates = BroadcastStream::new(rx).filter_map(move |msg| {
            let services = services.clone();
            let caller = caller.clone();
            // The stream owns the counter of open subscriptions.
            let _ = &open;
            let fresh = match msg {
                Ok(change) if change.demand.version > last => {
                    last = change.demand.version;
                    Some(change)
                }
                Ok(_) => None,
                Err(tokio_stream::wrappers::errors::BroadcastStreamRecvError::Lagged(_)) => None,
            };
            async move {
                let change = fresh?;
                // Definitions come from the registry's cache; access is decided again on every
                // change (a dispatch may take the demand away from the viewer).
                let view = services.demands.get(change.demand.id).await.ok()?;
                demand_for(&caller, view).ok().filter(|d| d.sight != Sight::Summary)
            }
        });
        Ok(until_session_ends(stream::once(async move { first }).chain(updates), session))
    }
}

// ---- named data sources ------------------------------------------------------------------------

/// A named data source: exactly one of `choices`, `webService`, `cardModel`.
#[derive(InputObject)]
pub struct DataSourceInput {
    /// Unique name fields refer to (`dataSource` of a field).
    pub slug: String,
    /// Name.
    pub name: String,
    /// A written list.
    pub choices: Option<Vec<ChoiceItem>>,
    /// A JSON web service answering `{"data": [{"id", "text"}]}`.
    pub web_service: Option<String>,
    /// The cards of a card model.
    pub card_model: Option<String>,
}

fn data_source_of(
    id: DataSourceId,
    input: DataSourceInput,
) -> async_graphql::Result<DataSourceDef> {
    let source = match (input.choices, input.web_service, input.card_model) {
        (Some(items), None, None) => DataSourceKind::Static {
            items: items
                .into_iter()
                .map(|c| Choice { id: c.id, text: c.text, disabled: c.disabled })
                .collect(),
        },
        (None, Some(url), None) => DataSourceKind::WebService { url },
        (None, None, Some(model)) => DataSourceKind::Cards { model },
        _ => {
            return Err(BadInput(format!(
                "data source {:?}: give exactly one of choices, webService, cardModel",
                input.slug
            )))
            .gql();
        }
    };
    Ok(DataSourceDef { id, slug: input.slug, name: input.name, source, version: 1 })
}

/// A named data source, shared by the fields that name it.
pub struct DataSource(pub DataSourceDef);

#[Object]
impl DataSource {
    /// Identifier (stable across versions; `definitionVersions` lists them).
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// Unique name.
    async fn slug(&self) -> &str {
        &self.0.slug
    }
    /// Name.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// Version.
    async fn version(&self) -> u32 {
        self.0.version
    }
    /// The written list, when it is one.
    async fn choices(&self) -> Option<Vec<ChoiceItem>> {
        match &self.0.source {
            DataSourceKind::Static { items } => Some(
                items
                    .iter()
                    .map(|c| ChoiceItem {
                        id: c.id.clone(),
                        text: c.text.clone(),
                        disabled: c.disabled,
                    })
                    .collect(),
            ),
            _ => None,
        }
    }
    /// The web service, when it is one.
    async fn web_service(&self) -> Option<&str> {
        match &self.0.source {
            DataSourceKind::WebService { url } => Some(url),
            _ => None,
        }
    }
    /// The card model, when it lists cards.
    async fn card_model(&self) -> Option<&str> {
        match &self.0.source {
            DataSourceKind::Cards { model } => Some(model),
            _ => None,
        }
    }
}
