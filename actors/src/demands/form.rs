//! Form definitions (w.c.s. `FormDef`) and the validation of what is submitted through them.
//!
//! A form is a list of fields. Fields carry their value (string, email, date, choice, a
//! repeatable block of sub-fields...) or only structure the form (page, title, comment).
//! Submitted values are checked field by field, in order: a field whose display condition is
//! false is skipped and its value dropped, so a condition may depend on the fields before it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::str::FromStr;
use std::sync::{Arc, LazyLock, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::template::{self, TemplateError};
use crate::ids::{FormId, WorkflowId};

/// Most fields a form may have, blocks included (the w.c.s. hard limit).
pub const MAX_FIELDS: usize = 400;
/// Longest one-line answer.
pub const MAX_STRING_CHARS: usize = 2_000;
/// Longest text answer.
pub const MAX_TEXT_CHARS: usize = 100_000;
/// Days a draft lives when the form does not say (as in w.c.s.).
pub const DEFAULT_DRAFT_DAYS: u32 = 100;

/// What a definition of fields is: a form citizens (and agents) fill in, or a card model whose
/// demands are cards ("fiches": structured records agents keep, such as equipment, schools or
/// families) that forms list as choices and prefill from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FormKind {
    /// A form.
    #[default]
    Form,
    /// A card model: cards are written by agents of its submission roles (and by workflows),
    /// never submitted on the web.
    CardModel,
}

/// A form as administrators define it. Saving it makes a new version; demands keep theirs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FormDef {
    /// Identifier, stable across versions.
    pub id: FormId,
    /// A form or a card model.
    #[serde(default)]
    pub kind: FormKind,
    /// URL name, unique.
    pub slug: String,
    /// Title shown to citizens.
    pub title: String,
    /// Introduction.
    #[serde(default)]
    pub description: String,
    /// Category slug, for listings.
    #[serde(default)]
    pub category: Option<String>,
    /// The workflow demands of this form follow.
    pub workflow_id: WorkflowId,
    /// Which agent role plays each function of the workflow (`receiver` → `etat-civil`).
    #[serde(default)]
    pub function_roles: BTreeMap<String, String>,
    /// Agent roles that see that demands exist (their summary) without seeing their content.
    #[serde(default)]
    pub summary_roles: Vec<String>,
    /// Agent roles that may submit on behalf of someone (front-office-only requirements do
    /// not apply there).
    #[serde(default)]
    pub backoffice_submission_roles: Vec<String>,
    /// People without an account may submit; they keep a tracking code.
    #[serde(default)]
    pub allow_anonymous: bool,
    /// Fields, in order.
    pub fields: Vec<Field>,
    /// The summary shown in listings (a template); the title and number when empty.
    #[serde(default)]
    pub digest_template: Option<String>,
    /// Days a draft lives.
    #[serde(default = "default_draft_days")]
    pub draft_days: u32,
    /// Version number, from 1.
    #[serde(default = "one")]
    pub version: u32,
}

fn default_draft_days() -> u32 {
    DEFAULT_DRAFT_DAYS
}

fn one() -> u32 {
    1
}

fn default_file_bytes() -> u64 {
    super::attachments::DEFAULT_FIELD_BYTES
}

/// One field of a form or of a block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Field {
    /// Variable name, unique in the form: `form_var_<id>` in templates.
    pub id: String,
    /// Label.
    pub label: String,
    /// Help text.
    #[serde(default)]
    pub hint: String,
    /// Type and type-specific settings.
    pub kind: FieldKind,
    /// Whether an answer is needed.
    #[serde(default)]
    pub required: Required,
    /// Display condition, an expression over the previous fields (`form_var_kind == "noise"`).
    #[serde(default)]
    pub condition: Option<String>,
    /// A regular expression the answer must match, with the message shown when it does not.
    #[serde(default)]
    pub validation: Option<Validation>,
    /// Where an initial value comes from.
    #[serde(default)]
    pub prefill: Option<Prefill>,
    /// Shown but not editable: the value comes from the prefill alone.
    #[serde(default)]
    pub read_only: bool,
    /// Shown as a column of back-office listings.
    #[serde(default)]
    pub in_listing: bool,
}

/// When a field must be answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Required {
    /// Never.
    #[default]
    Optional,
    /// Always, front and back office.
    Always,
    /// By citizens on the web; agents submitting on someone's behalf may leave it empty.
    FrontOffice,
}

/// A regular expression with its message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Validation {
    /// The pattern, matched against the whole answer.
    pub regex: String,
    /// Shown when the answer does not match.
    pub message: String,
}

/// Where a field's initial value comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "source", content = "value")]
pub enum Prefill {
    /// A field of the user's profile.
    User(ProfileField),
    /// A fixed text or a template.
    Template(String),
    /// A field of the user's card of a card model (the newest card linked to them).
    Card {
        /// The card model's slug.
        model: String,
        /// The card's field.
        field: String,
    },
}

/// The profile fields a form may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProfileField {
    /// Given name.
    FirstName,
    /// Family name.
    LastName,
    /// Email.
    Email,
    /// Phone.
    Phone,
}

/// Type of a field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum FieldKind {
    /// One line of text.
    String,
    /// Several lines.
    Text,
    /// An email address.
    Email,
    /// A phone number, stored in E.164.
    Phone,
    /// A number, optionally bounded.
    Number {
        /// Smallest accepted.
        #[serde(default)]
        min: Option<f64>,
        /// Largest accepted.
        #[serde(default)]
        max: Option<f64>,
    },
    /// A calendar date (`YYYY-MM-DD`).
    Date,
    /// A check box; when required it must be ticked.
    Bool,
    /// One choice.
    Item {
        /// Where the choices come from.
        choices: Choices,
    },
    /// Several choices.
    Items {
        /// Where the choices come from.
        choices: Choices,
        /// Fewest choices (when answered).
        #[serde(default)]
        min: Option<u32>,
        /// Most choices.
        #[serde(default)]
        max: Option<u32>,
    },
    /// A file, uploaded first (`uploadFile`), answered with its upload id.
    File {
        /// Largest file accepted, in bytes.
        #[serde(default = "default_file_bytes")]
        max_bytes: u64,
        /// Accepted types (`application/pdf`, `image/*`); any when empty.
        #[serde(default)]
        types: Vec<String>,
    },
    /// A value computed from a template when the demand is submitted.
    Computed {
        /// The template.
        template: String,
    },
    /// A block of sub-fields, repeated one or more times.
    Block {
        /// The sub-fields.
        fields: Vec<Field>,
        /// Most repetitions.
        #[serde(default = "one")]
        max_items: u32,
    },
    /// Starts a new page; holds no value.
    Page,
    /// A title; holds no value.
    Title,
    /// A text shown between fields; holds no value.
    Comment,
}

impl FieldKind {
    /// True for the kinds that hold a value.
    pub fn holds_value(&self) -> bool {
        !matches!(self, FieldKind::Page | FieldKind::Title | FieldKind::Comment)
    }

    /// The kind's name, as in definitions.
    pub fn name(&self) -> &'static str {
        match self {
            FieldKind::String => "string",
            FieldKind::Text => "text",
            FieldKind::Email => "email",
            FieldKind::Phone => "phone",
            FieldKind::Number { .. } => "number",
            FieldKind::Date => "date",
            FieldKind::Bool => "bool",
            FieldKind::Item { .. } => "item",
            FieldKind::Items { .. } => "items",
            FieldKind::File { .. } => "file",
            FieldKind::Computed { .. } => "computed",
            FieldKind::Block { .. } => "block",
            FieldKind::Page => "page",
            FieldKind::Title => "title",
            FieldKind::Comment => "comment",
        }
    }
}

/// Where the choices of an item field come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "source")]
pub enum Choices {
    /// A list written in the form.
    Static {
        /// The choices.
        items: Vec<Choice>,
    },
    /// The bookable events or slots of an agenda (its data source).
    Agenda {
        /// The agenda's slug.
        agenda: String,
        /// For meetings agendas, the meeting type's slug.
        #[serde(default)]
        meeting_type: Option<String>,
    },
    /// A JSON web service answering `{"data": [{"id": …, "text": …}]}` (the Publik format).
    WebService {
        /// Its URL (http or https).
        url: String,
    },
    /// The cards of a card model: the card's id, shown by its digest.
    Cards {
        /// The card model's slug.
        model: String,
    },
    /// A named data source defined once and shared by forms (kept with its versions).
    DataSource {
        /// Its slug.
        slug: String,
    },
}

/// One choice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Choice {
    /// Stored value.
    pub id: String,
    /// Shown text.
    pub text: String,
    /// Shown but not selectable.
    #[serde(default)]
    pub disabled: bool,
}

/// A definition that cannot be saved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DefinitionError(pub String);

impl From<TemplateError> for DefinitionError {
    fn from(e: TemplateError) -> Self {
        Self(e.message)
    }
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && s.len() <= 64
}

/// True for slugs: lowercase letters, digits and dashes, starting with a letter.
pub fn is_slug(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && s.len() <= 64
}

impl FormDef {
    /// Checks the definition: slug, unique field identifiers, patterns and templates that
    /// compile, non-empty choices, coherent bounds. `functions` are those of the form's workflow.
    pub fn check(&self, functions: &[String]) -> Result<(), DefinitionError> {
        if !is_slug(&self.slug) {
            return Err(DefinitionError(format!(
                "slug {:?}: lowercase letters, digits and dashes, starting with a letter",
                self.slug
            )));
        }
        if self.title.trim().is_empty() {
            return Err(DefinitionError("a form needs a title".into()));
        }
        if self.kind == FormKind::CardModel && self.allow_anonymous {
            return Err(DefinitionError(
                "cards are written by agents: a card model takes no anonymous submissions".into(),
            ));
        }
        for function in self.function_roles.keys() {
            if !functions.contains(function) {
                return Err(DefinitionError(format!(
                    "function {function:?} is not one of the workflow's ({})",
                    functions.join(", ")
                )));
            }
        }
        let mut seen = BTreeSet::new();
        let count = check_fields(&self.fields, &mut seen, 0)?;
        if count > MAX_FIELDS {
            return Err(DefinitionError(format!("{count} fields: at most {MAX_FIELDS}")));
        }
        if let Some(t) = &self.digest_template {
            template::check_template(t)
                .map_err(|e| DefinitionError(format!("digest template: {e}")))?;
        }
        if self.draft_days == 0 || self.draft_days > 3_650 {
            return Err(DefinitionError("draft lifetime: 1 to 3,650 days".into()));
        }
        Ok(())
    }

    /// The data sources and the card models its fields name (choices, prefills), each with
    /// the field naming it.
    pub fn references(&self) -> References {
        let mut refs = References::default();
        let mut stack: Vec<&Field> = self.fields.iter().collect();
        while let Some(f) = stack.pop() {
            match &f.kind {
                FieldKind::Block { fields, .. } => stack.extend(fields.iter()),
                FieldKind::Item { choices } | FieldKind::Items { choices, .. } => match choices {
                    Choices::Cards { model } => {
                        refs.card_models.push((f.id.clone(), model.clone()));
                    }
                    Choices::DataSource { slug } => {
                        refs.data_sources.push((f.id.clone(), slug.clone()));
                    }
                    _ => {}
                },
                _ => {}
            }
            if let Some(Prefill::Card { model, .. }) = &f.prefill {
                refs.card_models.push((f.id.clone(), model.clone()));
            }
        }
        refs
    }

    /// Every field holding a value, blocks' sub-fields not included.
    pub fn value_fields(&self) -> impl Iterator<Item = &Field> {
        self.fields.iter().filter(|f| f.kind.holds_value())
    }
}

/// Checks fields asked outside of a form (the input of an interactive global action).
pub fn check_input_fields(fields: &[Field]) -> Result<(), DefinitionError> {
    let count = check_fields(fields, &mut BTreeSet::new(), 0)?;
    if count > MAX_FIELDS {
        return Err(DefinitionError(format!("{count} fields: at most {MAX_FIELDS}")));
    }
    Ok(())
}

fn check_fields(
    fields: &[Field],
    seen: &mut BTreeSet<String>,
    depth: u32,
) -> Result<usize, DefinitionError> {
    let mut count = 0;
    for f in fields {
        count += 1;
        let at = |m: String| DefinitionError(format!("field {:?}: {m}", f.id));
        if !is_identifier(&f.id) {
            return Err(at("identifiers are lowercase letters, digits and _".into()));
        }
        if !seen.insert(f.id.clone()) {
            return Err(at("identifier used twice".into()));
        }
        if let Some(c) = &f.condition {
            template::check_condition(c).map_err(|e| at(format!("condition: {e}")))?;
        }
        if let Some(v) = &f.validation {
            regex::Regex::new(&v.regex).map_err(|e| at(format!("regular expression: {e}")))?;
        }
        match &f.prefill {
            Some(Prefill::Template(t)) => {
                template::check_template(t).map_err(|e| at(format!("prefill: {e}")))?;
            }
            Some(Prefill::Card { model, field }) if !is_slug(model) || !is_identifier(field) => {
                return Err(at(format!("prefill from card {model:?}, field {field:?}")));
            }
            _ => {}
        }
        if f.read_only && f.prefill.is_none() {
            return Err(at("a read-only field needs a prefill".into()));
        }
        match &f.kind {
            FieldKind::Number { min: Some(lo), max: Some(hi) } if lo > hi => {
                return Err(at("min is above max".into()));
            }
            FieldKind::Item { choices } => check_choices(choices).map_err(at)?,
            FieldKind::Items { choices, min, max } => {
                check_choices(choices).map_err(at)?;
                if let (Some(lo), Some(hi)) = (min, max)
                    && lo > hi
                {
                    return Err(at("min is above max".into()));
                }
            }
            FieldKind::Computed { template: t } => {
                template::check_template(t).map_err(|e| at(format!("template: {e}")))?;
            }
            FieldKind::File { max_bytes, .. }
                if *max_bytes == 0 || *max_bytes > super::attachments::MAX_UPLOAD_BYTES =>
            {
                return Err(at(format!(
                    "a file field accepts 1 byte to {} MiB",
                    super::attachments::MAX_UPLOAD_BYTES >> 20
                )));
            }
            FieldKind::Block { fields, max_items } => {
                if depth > 0 {
                    return Err(at("blocks do not nest".into()));
                }
                if fields.iter().all(|f| !f.kind.holds_value()) {
                    return Err(at("a block needs fields".into()));
                }
                if *max_items == 0 || *max_items > 100 {
                    return Err(at("a block repeats 1 to 100 times".into()));
                }
                count += check_fields(fields, seen, depth + 1)?;
            }
            _ => {}
        }
    }
    Ok(count)
}

pub(super) fn check_choices(choices: &Choices) -> Result<(), String> {
    match choices {
        Choices::Static { items } => {
            if items.is_empty() {
                return Err("a list of choices needs choices".into());
            }
            let ids: BTreeSet<&str> = items.iter().map(|c| c.id.as_str()).collect();
            if ids.len() != items.len() {
                return Err("two choices share an id".into());
            }
            Ok(())
        }
        Choices::Agenda { agenda, .. } if !is_slug(agenda) => {
            Err(format!("agenda {agenda:?} is not a slug"))
        }
        Choices::WebService { url }
            if !(url.starts_with("http://") || url.starts_with("https://")) =>
        {
            Err(format!("web service {url:?}: an http or https URL"))
        }
        Choices::Cards { model } if !is_slug(model) => {
            Err(format!("card model {model:?} is not a slug"))
        }
        Choices::DataSource { slug } if !is_slug(slug) => {
            Err(format!("data source {slug:?} is not a slug"))
        }
        _ => Ok(()),
    }
}

/// What a form names elsewhere: `(field, slug)` pairs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct References {
    /// Named data sources.
    pub data_sources: Vec<(String, String)>,
    /// Card models (choices and prefills).
    pub card_models: Vec<(String, String)>,
}

/// Who submits, and what the form may read about them.
#[derive(Debug, Clone, Default)]
pub struct SubmissionContext {
    /// An agent submits on someone's behalf: front-office-only requirements are lifted.
    pub back_office: bool,
    /// The profile of the person the demand is for, when known.
    pub profile: Option<Profile>,
    /// The choices of fields whose list is not in the form (agendas, web services), by field id.
    pub external_choices: HashMap<String, Vec<Choice>>,
    /// Who submits (uploads are theirs to attach).
    pub uploader: Option<crate::ids::AccountId>,
    /// The uploads the answers name, by id.
    pub uploads: HashMap<String, super::attachments::Upload>,
    /// The data of the person's cards that fields prefill from, by card model slug.
    pub cards: HashMap<String, Map<String, Value>>,
    /// An edit: the demand's current answers. An answer given back as it is stored is kept
    /// as it is (a slot since taken by this very demand, a file it holds), and read-only
    /// fields keep theirs.
    pub kept: Map<String, Value>,
    /// An edit: the demand edited, whose own files may be given again.
    pub editing: Option<crate::ids::DemandId>,
}

/// Profile values forms may be prefilled with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profile {
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
    /// Email.
    pub email: String,
    /// Phone.
    pub phone: Option<String>,
}

impl Profile {
    fn get(&self, f: ProfileField) -> Option<String> {
        match f {
            ProfileField::FirstName => Some(self.first_name.clone()),
            ProfileField::LastName => Some(self.last_name.clone()),
            ProfileField::Email => Some(self.email.clone()),
            ProfileField::Phone => self.phone.clone(),
        }
    }
}

/// Why one answer was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// The field's path: `email`, or `children.1.name` inside a block.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// Every refused answer of a submission.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", describe(.0))]
pub struct FieldErrors(pub Vec<FieldError>);

fn describe(errors: &[FieldError]) -> String {
    let parts: Vec<String> = errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect();
    format!("invalid answers: {}", parts.join("; "))
}

/// The variables a template sees for form data: `form_var_<id>` (the text of a choice, the
/// name of a file) and `form_var_<id>_raw` (its stored id); blocks as lists of objects.
pub fn template_variables(data: &Map<String, Value>, into: &mut Map<String, Value>) {
    for (k, v) in data {
        match v {
            Value::Object(o) if o.contains_key("id") && o.contains_key("text") => {
                into.insert(format!("form_var_{k}"), o["text"].clone());
                into.insert(format!("form_var_{k}_raw"), o["id"].clone());
            }
            Value::Object(o) if o.contains_key("upload") => {
                into.insert(format!("form_var_{k}"), o.get("name").cloned().unwrap_or_default());
                into.insert(format!("form_var_{k}_raw"), o["upload"].clone());
            }
            Value::Array(items) if items.iter().all(is_choice) && !items.is_empty() => {
                let texts: Vec<Value> = items.iter().map(|i| i["text"].clone()).collect();
                let ids: Vec<Value> = items.iter().map(|i| i["id"].clone()).collect();
                into.insert(format!("form_var_{k}"), Value::Array(texts));
                into.insert(format!("form_var_{k}_raw"), Value::Array(ids));
            }
            other => {
                into.insert(format!("form_var_{k}"), other.clone());
            }
        }
    }
}

fn is_choice(v: &Value) -> bool {
    v.as_object().is_some_and(|o| o.len() == 2 && o.contains_key("id") && o.contains_key("text"))
}

/// The upload ids `input` gives to file fields (blocks included), to look up before
/// [`validate`].
pub fn upload_ids(fields: &[Field], input: &Map<String, Value>) -> Vec<String> {
    let mut out = Vec::new();
    for f in fields {
        match (&f.kind, input.get(&f.id)) {
            (FieldKind::File { .. }, Some(Value::String(id))) => out.push(id.trim().to_owned()),
            (FieldKind::File { .. }, Some(Value::Object(o))) => {
                if let Some(id) = o.get("upload").and_then(Value::as_str) {
                    out.push(id.to_owned());
                }
            }
            (FieldKind::Block { fields, .. }, Some(Value::Array(rows))) => {
                for row in rows.iter().filter_map(Value::as_object) {
                    out.extend(upload_ids(fields, row));
                }
            }
            _ => {}
        }
    }
    out
}

/// Validates submitted `input` (field id → answer) against `fields`, returning the stored data
/// or every refused answer at once. `base` holds the variables templates also see (the user).
pub fn validate(
    fields: &[Field],
    input: &Map<String, Value>,
    ctx: &SubmissionContext,
    base: &Map<String, Value>,
) -> Result<Map<String, Value>, FieldErrors> {
    let mut errors = Vec::new();
    let data = validate_level(fields, input, ctx, base, "", &mut errors);
    let known: BTreeSet<&str> = all_ids(fields);
    for key in input.keys() {
        if !known.contains(key.as_str()) {
            errors.push(FieldError { field: key.clone(), message: "no such field".into() });
        }
    }
    if errors.is_empty() { Ok(data) } else { Err(FieldErrors(errors)) }
}

fn all_ids(fields: &[Field]) -> BTreeSet<&str> {
    fields.iter().filter(|f| f.kind.holds_value()).map(|f| f.id.as_str()).collect()
}

fn validate_level(
    fields: &[Field],
    input: &Map<String, Value>,
    ctx: &SubmissionContext,
    base: &Map<String, Value>,
    prefix: &str,
    errors: &mut Vec<FieldError>,
) -> Map<String, Value> {
    let mut data = Map::new();
    for field in fields.iter().filter(|f| f.kind.holds_value()) {
        let path = format!("{prefix}{}", field.id);
        let mut vars = base.clone();
        template_variables(&data, &mut vars);
        let vars = Value::Object(vars);
        if let Some(c) = &field.condition {
            match template::condition(c, &vars) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    errors.push(FieldError { field: path, message: format!("condition: {e}") });
                    continue;
                }
            }
        }
        // An edit keeps a read-only answer, and one given back as stored, as it is. Only
        // top-level answers are kept whole (a block is kept or checked entire).
        if let Some(kept) = ctx.kept.get(&field.id).filter(|_| prefix.is_empty())
            && !matches!(field.kind, FieldKind::Computed { .. })
            && (field.read_only || input.get(&field.id) == Some(kept))
        {
            data.insert(field.id.clone(), kept.clone());
            continue;
        }
        let given = if field.read_only {
            prefilled(field, ctx, &vars)
        } else {
            input.get(&field.id).cloned().filter(|v| !is_empty(v))
        };
        let required = match field.required {
            Required::Optional => false,
            Required::Always => true,
            Required::FrontOffice => !ctx.back_office,
        };
        let value = match (&field.kind, given) {
            // A computed value that fails (on data it did not expect) is left empty: the
            // citizen is not to blame. The definition was checked when saved.
            (FieldKind::Computed { template: t }, _) => match template::render(t, &vars) {
                Ok(s) => Some(Value::String(s)),
                Err(e) => {
                    tracing::warn!(field = %path, error = %e, "computed field failed");
                    None
                }
            },
            (FieldKind::Block { fields: sub, max_items }, Some(v)) => {
                let Value::Array(rows) = v else {
                    errors.push(FieldError { field: path, message: "a list of entries".into() });
                    continue;
                };
                if rows.len() > *max_items as usize {
                    errors.push(FieldError {
                        field: path,
                        message: format!("at most {max_items} entries"),
                    });
                    continue;
                }
                let mut out = Vec::new();
                for (i, row) in rows.iter().enumerate() {
                    let row_path = format!("{path}.{i}.");
                    let Some(row) = row.as_object() else {
                        errors.push(FieldError { field: row_path, message: "an object".into() });
                        continue;
                    };
                    for key in row.keys() {
                        if !all_ids(sub).contains(key.as_str()) {
                            errors.push(FieldError {
                                field: format!("{row_path}{key}"),
                                message: "no such field".into(),
                            });
                        }
                    }
                    let before = errors.len();
                    let checked = validate_level(sub, row, ctx, base, &row_path, errors);
                    if errors.len() == before && !checked.is_empty() {
                        out.push(Value::Object(checked));
                    }
                }
                (!out.is_empty()).then_some(Value::Array(out))
            }
            (_, None) => None,
            (kind, Some(v)) => match check_value(field, kind, v, ctx) {
                Ok(v) => Some(v),
                Err(message) => {
                    errors.push(FieldError { field: path, message });
                    continue;
                }
            },
        };
        match value {
            Some(v) => {
                data.insert(field.id.clone(), v);
            }
            None if required => {
                errors.push(FieldError { field: path, message: "required".into() });
            }
            None => {}
        }
    }
    data
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

fn prefilled(field: &Field, ctx: &SubmissionContext, vars: &Value) -> Option<Value> {
    match field.prefill.as_ref()? {
        Prefill::User(p) => ctx.profile.as_ref()?.get(*p).map(Value::String),
        Prefill::Template(t) => template::render(t, vars).ok().map(Value::String),
        Prefill::Card { model, field: from } => match ctx.cards.get(model)?.get(from)? {
            // A choice of the card prefills with its id, which the field checks again.
            Value::Object(o) if o.contains_key("id") => o.get("id").cloned(),
            v => Some(v.clone()),
        },
    }
    .filter(|v| !is_empty(v))
}

fn text_of(v: Value) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s.trim().to_owned()),
        Value::Number(n) => Ok(n.to_string()),
        _ => Err("a text".into()),
    }
}

/// A choice answered by its id, or given back as stored (`{"id", "text"}`).
fn choice_id(v: Value) -> Result<String, String> {
    match v {
        Value::Object(mut o) => text_of(o.remove("id").ok_or("a choice's id")?),
        v => text_of(v),
    }
}

fn check_value(
    field: &Field,
    kind: &FieldKind,
    v: Value,
    ctx: &SubmissionContext,
) -> Result<Value, String> {
    let checked = match kind {
        FieldKind::String | FieldKind::Text => {
            let s = text_of(v)?;
            let limit =
                if matches!(kind, FieldKind::String) { MAX_STRING_CHARS } else { MAX_TEXT_CHARS };
            if s.chars().count() > limit {
                return Err(format!("at most {limit} characters"));
            }
            Value::String(s)
        }
        FieldKind::Email => {
            let s = text_of(v)?;
            lettre::Address::from_str(&s).map_err(|_| "not an email address".to_owned())?;
            Value::String(s)
        }
        FieldKind::Phone => {
            let s = text_of(v)?;
            Value::String(
                crate::mail::sms::normalise_phone(&s).ok_or("not a phone number".to_owned())?,
            )
        }
        FieldKind::Number { min, max } => {
            let n = match &v {
                Value::Number(n) => n.as_f64(),
                Value::String(s) => s.trim().replace(',', ".").parse::<f64>().ok(),
                _ => None,
            }
            .filter(|n| n.is_finite())
            .ok_or("not a number".to_owned())?;
            if min.is_some_and(|m| n < m) || max.is_some_and(|m| n > m) {
                return Err(format!(
                    "between {} and {}",
                    min.map_or("-∞".into(), |m| m.to_string()),
                    max.map_or("+∞".into(), |m| m.to_string())
                ));
            }
            serde_json::Number::from_f64(n).map(Value::Number).ok_or("not a number".to_owned())?
        }
        FieldKind::Date => {
            let s = text_of(v)?;
            let d = jiff::civil::Date::from_str(&s).map_err(|_| "a date as YYYY-MM-DD")?;
            Value::String(d.to_string())
        }
        FieldKind::Bool => match v {
            // Values mapped by a workflow arrive as text.
            Value::String(s) if s.trim().eq_ignore_ascii_case("true") => Value::Bool(true),
            Value::String(s) if s.trim().eq_ignore_ascii_case("false") => {
                return check_value(field, kind, Value::Bool(false), ctx);
            }
            Value::Bool(true) => Value::Bool(true),
            Value::Bool(false) if field.required == Required::Optional => Value::Bool(false),
            Value::Bool(false) => return Err("must be ticked".into()),
            _ => return Err("true or false".into()),
        },
        FieldKind::Item { choices } => {
            let id = choice_id(v)?;
            choice(field, choices, ctx, &id)?
        }
        FieldKind::Items { choices, min, max } => {
            let Value::Array(ids) = v else { return Err("a list of choices".into()) };
            let mut out = Vec::new();
            let mut seen = BTreeSet::new();
            for id in ids {
                let id = choice_id(id)?;
                if seen.insert(id.clone()) {
                    out.push(choice(field, choices, ctx, &id)?);
                }
            }
            if min.is_some_and(|m| (out.len() as u32) < m) {
                return Err(format!("at least {} choices", min.unwrap_or_default()));
            }
            if max.is_some_and(|m| out.len() as u32 > m) {
                return Err(format!("at most {} choices", max.unwrap_or_default()));
            }
            Value::Array(out)
        }
        FieldKind::File { max_bytes, types } => {
            let id = match v {
                Value::String(s) => s,
                Value::Object(o) => {
                    o.get("upload").and_then(Value::as_str).unwrap_or_default().to_owned()
                }
                _ => return Err("an upload id (from uploadFile)".into()),
            };
            let upload = ctx
                .uploads
                .get(id.trim())
                .filter(|u| {
                    u.owner == ctx.uploader || (u.demand.is_some() && u.demand == ctx.editing)
                })
                .ok_or("no such upload: upload the file first")?;
            if upload.demand.is_some() && upload.demand != ctx.editing {
                return Err("this upload is attached to another demand".into());
            }
            super::attachments::check_limits(upload.size, &upload.content_type, *max_bytes, types)?;
            super::attachments::field_value(upload)
        }
        FieldKind::Computed { .. }
        | FieldKind::Block { .. }
        | FieldKind::Page
        | FieldKind::Title
        | FieldKind::Comment => return Err("holds no answer".into()),
    };
    if let (Some(rule), Value::String(s)) = (&field.validation, &checked) {
        let re = anchored(&rule.regex).map_err(|e| format!("regular expression: {e}"))?;
        if !re.is_match(s) {
            return Err(rule.message.clone());
        }
    }
    Ok(checked)
}

/// The pattern anchored (the whole answer must match, as users of w.c.s. expect), compiled once
/// per pattern: a submission checks every validated answer, and compiling costs far more than
/// matching.
fn anchored(pattern: &str) -> Result<Arc<regex::Regex>, regex::Error> {
    static COMPILED: LazyLock<Mutex<HashMap<String, Arc<regex::Regex>>>> =
        LazyLock::new(Mutex::default);
    /// Patterns kept; beyond, the cache starts again (definitions have a few dozen).
    const KEEP: usize = 4_096;
    if let Some(re) = COMPILED.lock().unwrap_or_else(|p| p.into_inner()).get(pattern) {
        return Ok(re.clone());
    }
    let re = Arc::new(regex::Regex::new(&format!("^(?:{pattern})$"))?);
    let mut compiled = COMPILED.lock().unwrap_or_else(|p| p.into_inner());
    if compiled.len() >= KEEP {
        compiled.clear();
    }
    compiled.insert(pattern.to_owned(), re.clone());
    Ok(re)
}

fn choice(
    field: &Field,
    choices: &Choices,
    ctx: &SubmissionContext,
    id: &str,
) -> Result<Value, String> {
    let list: &[Choice] = match choices {
        Choices::Static { items } => items,
        _ => ctx.external_choices.get(&field.id).map_or(&[], Vec::as_slice),
    };
    match list.iter().find(|c| c.id == id) {
        Some(c) if c.disabled => Err(format!("{:?} is no longer available", c.text)),
        Some(c) => Ok(serde_json::json!({"id": c.id, "text": c.text})),
        None => Err(format!("{id:?} is not one of the choices")),
    }
}

#[cfg(test)]
mod tests;
