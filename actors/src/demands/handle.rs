//! How the rest of Guichet reaches demands: [`Demands`] saves definitions (with versions),
//! validates and submits demands, finds or starts the actor of a demand and routes each
//! operation to it. Nothing outside this module names an actix type.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::{Addr, Handler, MailboxError, Message};
use jiff::Timestamp;
use jiff::civil::Date;
use serde_json::{Map, Value};
use tokio::sync::broadcast;

use super::actor::{
    Create, DemandActor, Get, GlobalTimeout, Grant, LinkUser, Parts, Perform, SubmissionWrites,
    Timeout, WebhookDone,
};
use super::attachments::{self, Attachment, Files, Upload};
use super::bundle::{Bundle, ImportReport};
use super::data_source::DataSourceDef;
use super::draft::{self, Draft};
use super::form::{
    Choice, Choices, DefinitionError, Field, FieldKind, FormDef, FormKind, Prefill, Profile,
    SubmissionContext,
};
use super::model::{
    self, Demand, DemandError, HistoryEntry, NewDemand, Operation, SubmissionChannel,
};
use super::tracking::{self, LookupLimiter};
use super::workflow::{ItemKind, Visibility, WorkflowDef};
use crate::access::{Action, Principal, authorize};
use crate::agenda::AgendaRegistry;
use crate::ids::{AccountId, DataSourceId, DemandId, DraftId, FormId, WorkflowId};
use crate::live::{DemandChanged, LiveHub};
use crate::mail::MailNotifier;
use crate::meetings::MeetingsRegistry;
use crate::metrics::ActorMetrics;
use crate::runtime::ActorRuntime;
use crate::store::{DefinitionKind, Store, StoreError, StoredVersion, WebNotification};

/// Deepest chain of demands creating demands in one step.
pub const MAX_CREATION_DEPTH: usize = 5;
/// How long a demand's actor lives without messages.
pub const DEFAULT_IDLE: Duration = Duration::from_secs(300);
/// Days of an agenda offered as choices to a form.
const AGENDA_CHOICE_DAYS: i32 = 92;
/// Most cards a field lists as choices.
const MAX_CARD_CHOICES: u32 = 5_000;

/// A demand as read by the API, with the definitions (versions) it follows.
#[derive(Debug, Clone)]
pub struct DemandView {
    /// The demand.
    pub demand: Arc<Demand>,
    /// Its form, at the version it was submitted with.
    pub form: Arc<FormDef>,
    /// Its workflow, at its version.
    pub workflow: Arc<WorkflowDef>,
}

/// An action offered to someone on a demand.
#[derive(Debug, Clone, PartialEq)]
pub struct OfferedAction {
    /// Its id, to perform it.
    pub id: String,
    /// Its text.
    pub label: String,
    /// Button, comment form or global action.
    pub kind: OfferedKind,
    /// A button that takes a comment.
    pub with_comment: bool,
    /// The fields an interactive global action asks, or an edit form opens.
    pub input: Vec<Field>,
}

/// Kinds of offered actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfferedKind {
    /// A status button.
    Button,
    /// A comment form.
    Comment,
    /// A global action.
    Global,
    /// An edit form (its `input` lists the fields it opens).
    Edit,
    /// An attachment form.
    Attach,
}

impl DemandView {
    /// The name of a status of its workflow.
    pub fn status_name(&self, id: &str) -> String {
        self.workflow.status(id).map_or_else(|| id.to_owned(), |s| s.name.clone())
    }

    /// The status as `viewer` may see it: the current one for agents, the last visible one for
    /// the submitter.
    pub fn status_for(&self, agent: bool) -> &str {
        if agent { &self.demand.status } else { &self.demand.visible_status }
    }

    /// Roles whose agents see the content.
    pub fn content_roles(&self) -> Vec<String> {
        self.demand.content_roles(&self.form)
    }

    /// The access facts of this demand, for [`authorize`].
    pub fn see<'a>(&'a self, roles: &'a [String]) -> Action<'a> {
        Action::SeeDemand {
            submitter: self.demand.submitter,
            content_roles: roles,
            granted: &self.demand.granted,
        }
    }

    /// True in a final status.
    pub fn is_endpoint(&self) -> bool {
        self.workflow.is_endpoint(&self.demand.status)
    }

    /// History entries `viewer` may read: agents all, the submitter those of visible statuses.
    pub fn visible_entry(&self, entry: &HistoryEntry, agent: bool) -> bool {
        agent || self.workflow.status(&entry.status).is_none_or(|s| s.visibility == Visibility::All)
    }

    /// The actions `actor` may take now.
    pub fn actions_for(&self, actor: &model::Actor) -> Vec<OfferedAction> {
        let d = &self.demand;
        let ctx = d.template_context(&self.form, &self.workflow);
        let holds = |c: &Option<String>| {
            c.as_deref().is_none_or(|c| super::template::condition(c, &ctx).unwrap_or(false))
        };
        let mut out = Vec::new();
        if let Some(status) = self.workflow.status(&d.status) {
            for item in status.items.iter().filter(|i| holds(&i.condition)) {
                match &item.kind {
                    ItemKind::Button { label, by, with_comment, .. }
                        if d.may_use(&self.form, by, actor) =>
                    {
                        out.push(OfferedAction {
                            id: item.id.clone(),
                            label: label.clone(),
                            kind: OfferedKind::Button,
                            with_comment: *with_comment,
                            input: Vec::new(),
                        });
                    }
                    ItemKind::Comment { label, by } if d.may_use(&self.form, by, actor) => {
                        out.push(OfferedAction {
                            id: item.id.clone(),
                            label: label.clone(),
                            kind: OfferedKind::Comment,
                            with_comment: true,
                            input: Vec::new(),
                        });
                    }
                    ItemKind::Edit { label, by, fields, .. }
                        if d.may_use(&self.form, by, actor) =>
                    {
                        // The fields it opens: answers, and the pages and titles around them.
                        let open = |f: &Field| fields.is_empty() || fields.contains(&f.id);
                        let input = self
                            .form
                            .fields
                            .iter()
                            .filter(|f| {
                                !f.kind.holds_value()
                                    || (open(f)
                                        && !f.read_only
                                        && !matches!(f.kind, FieldKind::Computed { .. }))
                            })
                            .cloned()
                            .collect();
                        out.push(OfferedAction {
                            id: item.id.clone(),
                            label: label.clone(),
                            kind: OfferedKind::Edit,
                            with_comment: false,
                            input,
                        });
                    }
                    ItemKind::Attach { label, by, .. } if d.may_use(&self.form, by, actor) => {
                        out.push(OfferedAction {
                            id: item.id.clone(),
                            label: label.clone(),
                            kind: OfferedKind::Attach,
                            with_comment: true,
                            input: Vec::new(),
                        });
                    }
                    _ => {}
                }
            }
        }
        for g in &self.workflow.global_actions {
            let here = g.applies_in(&self.workflow, &d.status, false);
            if here && !g.by.is_empty() && d.may_use(&self.form, &g.by, actor) {
                out.push(OfferedAction {
                    id: g.id.clone(),
                    label: g.label.clone(),
                    kind: OfferedKind::Global,
                    with_comment: false,
                    input: g.input.clone(),
                });
            }
        }
        out
    }
}

/// The addresses of running demand actors.
#[derive(Clone, Default)]
pub(super) struct Registry(Arc<Mutex<HashMap<DemandId, Addr<DemandActor>>>>);

impl Registry {
    fn get(&self, id: DemandId) -> Option<Addr<DemandActor>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).get(&id).cloned()
    }

    /// Keeps `addr` unless another actor was registered first; returns the one to use.
    fn insert(&self, id: DemandId, addr: Addr<DemandActor>) -> Addr<DemandActor> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(id).or_insert(addr).clone()
    }

    /// Called by a stopping actor: removes it, not a successor.
    pub(super) fn forget(&self, id: DemandId, addr: &Addr<DemandActor>) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if map.get(&id).is_some_and(|a| a == addr) {
            map.remove(&id);
        }
    }

    fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// A submission.
#[derive(Debug, Clone)]
pub struct Submission {
    /// The form's slug.
    pub form_slug: String,
    /// Answers by field id.
    pub answers: Map<String, Value>,
    /// How it arrived.
    pub channel: SubmissionChannel,
    /// Back office: the known person it is for.
    pub on_behalf_of: Option<AccountId>,
    /// The caller's draft it completes (deleted with the submission); its answers are used
    /// when `answers` is empty.
    pub draft: Option<DraftId>,
}

/// A definition's saved version, parsed.
#[derive(Debug, Clone)]
pub struct Definition {
    /// The saved version.
    pub stored: StoredVersion,
    /// Its body as JSON.
    pub body: Value,
}

type Cache<K, V> = Mutex<HashMap<K, Arc<V>>>;

struct Inner {
    store: Store,
    runtime: ActorRuntime,
    live: LiveHub,
    mail: MailNotifier,
    metrics: Arc<ActorMetrics>,
    agendas: AgendaRegistry,
    meetings: MeetingsRegistry,
    registry: Registry,
    forms: Cache<(FormId, u32), FormDef>,
    workflows: Cache<(WorkflowId, u32), WorkflowDef>,
    limiter: LookupLimiter,
    idle_after: Duration,
    http: reqwest::Client,
    files: Option<Files>,
}

/// Forms, workflows and demands.
#[derive(Clone)]
pub struct Demands {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Demands {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Demands").field("live", &self.inner.registry.len()).finish()
    }
}

fn store_error(e: StoreError) -> DemandError {
    match e {
        StoreError::Duplicate(_) => DemandError::Conflict("the slug is taken".into()),
        StoreError::Conflict(_) => {
            DemandError::Conflict("saved by someone else in between: reload and retry".into())
        }
        e => {
            tracing::error!(error = %e, "demands store error");
            DemandError::Unavailable("storage unavailable".into())
        }
    }
}

fn agenda_error(e: crate::agenda::model::AgendaError) -> DemandError {
    use crate::error::HasErrorCode;
    match e.code() {
        crate::error::ErrorCode::NotFound => DemandError::NotFound(e.to_string()),
        crate::error::ErrorCode::BadUserInput => DemandError::Invalid(e.to_string()),
        _ => DemandError::Unavailable(format!("agendas: {e}")),
    }
}

fn unavailable(e: MailboxError) -> DemandError {
    DemandError::Unavailable(format!("demand actor: {e}"))
}

fn parse<T: serde::de::DeserializeOwned>(body: &str) -> Result<T, DemandError> {
    serde_json::from_str(body).map_err(|e| {
        tracing::error!(error = %e, "stored definition does not decode");
        DemandError::Unavailable("a stored definition does not decode".into())
    })
}

impl Demands {
    /// Demands over the running services.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        runtime: ActorRuntime,
        store: Store,
        live: LiveHub,
        mail: MailNotifier,
        metrics: Arc<ActorMetrics>,
        agendas: AgendaRegistry,
        meetings: MeetingsRegistry,
        idle_after: Duration,
        files: Option<Files>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                runtime,
                live,
                mail,
                metrics,
                agendas,
                meetings,
                registry: Registry::default(),
                forms: Mutex::default(),
                workflows: Mutex::default(),
                limiter: LookupLimiter::default(),
                idle_after,
                http: reqwest::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .build()
                    .unwrap_or_default(),
                files,
            }),
        }
    }

    /// Demand actors running now.
    pub fn live_actors(&self) -> usize {
        self.inner.registry.len()
    }

    // ---- definitions ------------------------------------------------------------------------

    /// Saves a workflow: creates it (`expected` none) or makes version `expected + 1`.
    pub async fn save_workflow(
        &self,
        mut def: WorkflowDef,
        expected: Option<u32>,
        by: Option<AccountId>,
    ) -> Result<WorkflowDef, DemandError> {
        def.check().map_err(|e| DemandError::InvalidDefinition(e.0))?;
        self.check_creation_cycles(std::slice::from_ref(&def), &[]).await?;
        def.version = expected.map_or(1, |v| v + 1);
        let body = serde_json::to_string(&def).map_err(|e| DemandError::Invalid(e.to_string()))?;
        let id = def.id.to_string();
        self.inner
            .store
            .save_definition(DefinitionKind::Workflow, &id, &def.slug, expected, &body, by)
            .await
            .map_err(store_error)?;
        Ok(def)
    }

    /// Saves a form: its workflow must exist and play the functions it names.
    pub async fn save_form(
        &self,
        mut def: FormDef,
        expected: Option<u32>,
        by: Option<AccountId>,
    ) -> Result<FormDef, DemandError> {
        let workflow = self.workflow(def.workflow_id).await?;
        def.check(&workflow.functions).map_err(|e| DemandError::InvalidDefinition(e.0))?;
        self.check_references(&def).await?;
        self.check_creation_cycles(&[], std::slice::from_ref(&def)).await?;
        def.version = expected.map_or(1, |v| v + 1);
        let body = serde_json::to_string(&def).map_err(|e| DemandError::Invalid(e.to_string()))?;
        let id = def.id.to_string();
        self.inner
            .store
            .save_definition(DefinitionKind::Form, &id, &def.slug, expected, &body, by)
            .await
            .map_err(store_error)?;
        Ok(def)
    }

    /// Refuses a form naming a data source or a card model that does not exist.
    async fn check_references(&self, def: &FormDef) -> Result<(), DemandError> {
        let refs = def.references();
        for (field, slug) in &refs.data_sources {
            let at = |m: String| DemandError::InvalidDefinition(format!("field {field:?}: {m}"));
            let source = self
                .data_source_by_slug(slug)
                .await
                .map_err(|_| at(format!("no data source {slug:?}")))?;
            if let super::data_source::DataSourceKind::Cards { model } = &source.source {
                self.card_model(model).await.map_err(|e| at(e.to_string()))?;
            }
        }
        for (field, model) in &refs.card_models {
            // A card model may list or prefill from its own cards.
            if *model != def.slug {
                self.card_model(model)
                    .await
                    .map_err(|e| DemandError::InvalidDefinition(format!("field {field:?}: {e}")))?;
            }
        }
        Ok(())
    }

    /// The current version of a card model.
    async fn card_model(&self, slug: &str) -> Result<Arc<FormDef>, DemandError> {
        match self.form_by_slug(slug).await {
            Ok(f) if f.kind == FormKind::CardModel => Ok(f),
            Ok(_) => Err(DemandError::Invalid(format!("{slug:?} is a form, not a card model"))),
            Err(_) => Err(DemandError::Invalid(format!("no card model {slug:?}"))),
        }
    }

    /// Saves a data source: creates it (`expected` none) or makes version `expected + 1`.
    pub async fn save_data_source(
        &self,
        mut def: DataSourceDef,
        expected: Option<u32>,
        by: Option<AccountId>,
    ) -> Result<DataSourceDef, DemandError> {
        def.check().map_err(|e| DemandError::InvalidDefinition(e.0))?;
        if let super::data_source::DataSourceKind::Cards { model } = &def.source {
            self.card_model(model).await?;
        }
        def.version = expected.map_or(1, |v| v + 1);
        let body = serde_json::to_string(&def).map_err(|e| DemandError::Invalid(e.to_string()))?;
        let id = def.id.to_string();
        self.inner
            .store
            .save_definition(DefinitionKind::DataSource, &id, &def.slug, expected, &body, by)
            .await
            .map_err(store_error)?;
        Ok(def)
    }

    /// The current version of a data source.
    pub async fn data_source(&self, id: DataSourceId) -> Result<Arc<DataSourceDef>, DemandError> {
        self.current(&id.to_string(), "data source").await
    }

    /// The current version of the data source with this slug.
    pub async fn data_source_by_slug(&self, slug: &str) -> Result<Arc<DataSourceDef>, DemandError> {
        let id = self
            .inner
            .store
            .definition_id_by_slug(DefinitionKind::DataSource, slug)
            .await
            .map_err(store_error)?
            .ok_or_else(|| DemandError::NotFound(format!("data source {slug:?}")))?;
        self.current(&id, "data source").await
    }

    /// Every data source, by slug.
    pub async fn data_sources(&self) -> Result<Vec<DataSourceDef>, DemandError> {
        let bodies =
            self.inner.store.definitions(DefinitionKind::DataSource).await.map_err(store_error)?;
        bodies.iter().map(|b| parse(b)).collect()
    }

    /// Saves version `version` of a data source again, as its newest version.
    pub async fn restore_data_source(
        &self,
        id: DataSourceId,
        version: u32,
        by: Option<AccountId>,
    ) -> Result<DataSourceDef, DemandError> {
        let current = self.data_source(id).await?;
        let stored = self
            .inner
            .store
            .definition_version(&id.to_string(), version)
            .await
            .map_err(store_error)?
            .ok_or_else(|| DemandError::NotFound(format!("version {version}")))?;
        let old: DataSourceDef = parse(&stored.body)?;
        self.save_data_source(old, Some(current.version), by).await
    }

    /// The current version of a workflow.
    pub async fn workflow(&self, id: WorkflowId) -> Result<Arc<WorkflowDef>, DemandError> {
        self.current(&id.to_string(), "workflow").await
    }

    /// The current version of a form.
    pub async fn form(&self, id: FormId) -> Result<Arc<FormDef>, DemandError> {
        self.current(&id.to_string(), "form").await
    }

    async fn current<V: serde::de::DeserializeOwned>(
        &self,
        id: &str,
        what: &str,
    ) -> Result<Arc<V>, DemandError> {
        let (_, body) = self
            .inner
            .store
            .definition(id)
            .await
            .map_err(store_error)?
            .ok_or_else(|| DemandError::NotFound(format!("{what} {id}")))?;
        Ok(Arc::new(parse(&body)?))
    }

    /// The current version of the form with this slug.
    pub async fn form_by_slug(&self, slug: &str) -> Result<Arc<FormDef>, DemandError> {
        let id = self
            .inner
            .store
            .definition_id_by_slug(DefinitionKind::Form, slug)
            .await
            .map_err(store_error)?
            .ok_or_else(|| DemandError::NotFound(format!("form {slug:?}")))?;
        self.form(id.parse().map_err(|_| DemandError::NotFound(format!("form {slug:?}")))?).await
    }

    /// Every form, by slug.
    pub async fn forms(&self) -> Result<Vec<FormDef>, DemandError> {
        let bodies =
            self.inner.store.definitions(DefinitionKind::Form).await.map_err(store_error)?;
        bodies.iter().map(|b| parse(b)).collect()
    }

    /// Every workflow, by slug.
    pub async fn workflows(&self) -> Result<Vec<WorkflowDef>, DemandError> {
        let bodies =
            self.inner.store.definitions(DefinitionKind::Workflow).await.map_err(store_error)?;
        bodies.iter().map(|b| parse(b)).collect()
    }

    /// Every saved version of a form or workflow, newest first.
    pub async fn versions(&self, id: &str) -> Result<Vec<Definition>, DemandError> {
        let versions = self.inner.store.definition_versions(id).await.map_err(store_error)?;
        versions
            .into_iter()
            .map(|stored| Ok(Definition { body: parse(&stored.body)?, stored }))
            .collect()
    }

    /// The changes of a form or workflow from version `from` to version `to`.
    pub async fn diff(
        &self,
        id: &str,
        from: u32,
        to: u32,
    ) -> Result<Vec<super::diff::Change>, DemandError> {
        let load = |v: u32| async move {
            let stored = self
                .inner
                .store
                .definition_version(id, v)
                .await
                .map_err(store_error)?
                .ok_or_else(|| DemandError::NotFound(format!("version {v}")))?;
            parse::<Value>(&stored.body)
        };
        Ok(super::diff::diff(&load(from).await?, &load(to).await?))
    }

    /// Saves version `version` of a form again, as its newest version.
    pub async fn restore_form(
        &self,
        id: FormId,
        version: u32,
        by: Option<AccountId>,
    ) -> Result<FormDef, DemandError> {
        let current = self.form(id).await?;
        let old = self.form_version(id, version).await?;
        let mut restored = (*old).clone();
        restored.version = current.version;
        self.save_form(restored, Some(current.version), by).await
    }

    /// Saves version `version` of a workflow again, as its newest version.
    pub async fn restore_workflow(
        &self,
        id: WorkflowId,
        version: u32,
        by: Option<AccountId>,
    ) -> Result<WorkflowDef, DemandError> {
        let current = self.workflow(id).await?;
        let old = self.workflow_version(id, version).await?;
        self.save_workflow((*old).clone(), Some(current.version), by).await
    }

    async fn form_version(&self, id: FormId, version: u32) -> Result<Arc<FormDef>, DemandError> {
        self.saved_version(&self.inner.forms, id, version, "form").await
    }

    async fn workflow_version(
        &self,
        id: WorkflowId,
        version: u32,
    ) -> Result<Arc<WorkflowDef>, DemandError> {
        self.saved_version(&self.inner.workflows, id, version, "workflow").await
    }

    /// A saved version of a definition, from the cache (versions never change) or the store.
    async fn saved_version<I, V>(
        &self,
        cache: &Cache<(I, u32), V>,
        id: I,
        version: u32,
        what: &str,
    ) -> Result<Arc<V>, DemandError>
    where
        I: Copy + Eq + std::hash::Hash + std::fmt::Display,
        V: serde::de::DeserializeOwned,
    {
        if let Some(v) = cache.lock().unwrap_or_else(|p| p.into_inner()).get(&(id, version)) {
            return Ok(v.clone());
        }
        let stored = self
            .inner
            .store
            .definition_version(&id.to_string(), version)
            .await
            .map_err(store_error)?
            .ok_or_else(|| DemandError::NotFound(format!("version {version} of {what} {id}")))?;
        let def: Arc<V> = Arc::new(parse(&stored.body)?);
        cache.lock().unwrap_or_else(|p| p.into_inner()).insert((id, version), def.clone());
        Ok(def)
    }

    // ---- bundles ----------------------------------------------------------------------------

    /// Every workflow and form as one application bundle (a zip).
    pub async fn export_bundle(&self) -> Result<Vec<u8>, DemandError> {
        let mut agendas = Vec::new();
        let settings = self.inner.agendas.agendas().await.map_err(agenda_error)?;
        for a in &settings {
            agendas.push(
                crate::agenda_definition::export_agenda(
                    &self.inner.agendas,
                    &self.inner.meetings,
                    a,
                )
                .await
                .map_err(|e| DemandError::Unavailable(format!("agenda {:?}: {e}", a.slug)))?,
            );
        }
        let bundle = Bundle::of(
            self.workflows().await?,
            self.forms().await?,
            self.data_sources().await?,
            agendas,
        );
        let mut out = std::io::Cursor::new(Vec::new());
        bundle.write(&mut out)?;
        Ok(out.into_inner())
    }

    /// Imports a bundle: definitions are matched by slug; identical ones are left, missing ones
    /// created, different ones reported as conflicts (or saved as a new version when
    /// `overwrite`). Every definition and every reference (workflows, data sources, card
    /// models, "create a demand" chains) is checked before anything is written, and
    /// everything is written in one transaction; `dry_run` writes nothing and reports what
    /// would happen.
    pub async fn import_bundle(
        &self,
        zip: Vec<u8>,
        overwrite: bool,
        dry_run: bool,
        by: Option<AccountId>,
    ) -> Result<ImportReport, DemandError> {
        let bundle = Bundle::read(std::io::Cursor::new(zip))?;
        let mut report = ImportReport { dry_run, ..Default::default() };
        let invalid = |what: String, e: DefinitionError| {
            DemandError::InvalidDefinition(format!("{what}: {}", e.0))
        };
        // What each definition becomes here: `(name, kind, definition, current version)`.
        let mut plans: Vec<(String, Planned)> = Vec::new();
        // Card models and data sources as they will be, for the references of the others.
        let mut card_models: std::collections::BTreeSet<String> = self
            .forms()
            .await?
            .into_iter()
            .filter(|f| f.kind == FormKind::CardModel)
            .map(|f| f.slug)
            .collect();
        card_models.extend(
            bundle.forms.iter().filter(|f| f.kind == FormKind::CardModel).map(|f| f.slug.clone()),
        );
        let mut data_sources: std::collections::BTreeSet<String> =
            self.data_sources().await?.into_iter().map(|d| d.slug).collect();
        data_sources.extend(bundle.data_sources.iter().map(|d| d.slug.clone()));

        for d in &bundle.data_sources {
            d.check().map_err(|e| invalid(format!("data source {:?}", d.slug), e))?;
            if let super::data_source::DataSourceKind::Cards { model } = &d.source
                && !card_models.contains(model)
            {
                return Err(DemandError::InvalidDefinition(format!(
                    "data source {:?}: no card model {model:?} here or in the bundle",
                    d.slug
                )));
            }
            let mut wanted = d.clone();
            let plan = match self.local(DefinitionKind::DataSource, &d.slug).await? {
                None => {
                    wanted.id =
                        self.free_id(d.id.0).await?.map_or_else(DataSourceId::new, DataSourceId);
                    Planned::create(DefinitionKind::DataSource, wanted.id.to_string(), &wanted)
                }
                Some((version, body)) => {
                    let current: DataSourceDef = parse(&body)?;
                    wanted.id = current.id;
                    wanted.version = current.version;
                    Planned::update(&wanted, &current, wanted.id.to_string(), version)
                }
            };
            plans.push((format!("data-source:{}", d.slug), plan?));
        }
        // Workflows before forms: forms point at them. Bundle ids map to this instance's ids.
        let mut workflow_ids: HashMap<WorkflowId, WorkflowId> = HashMap::new();
        let mut functions: HashMap<WorkflowId, Vec<String>> = HashMap::new();
        let mut new_workflows = Vec::new();
        for w in &bundle.workflows {
            w.check().map_err(|e| invalid(format!("workflow {:?}", w.slug), e))?;
            let mut wanted = w.clone();
            // The functions forms will be checked against: those of the workflow as it will be.
            let mut effective = wanted.functions.clone();
            let plan = match self.local(DefinitionKind::Workflow, &w.slug).await? {
                None => {
                    wanted.id =
                        self.free_id(w.id.0).await?.map_or_else(WorkflowId::new, WorkflowId);
                    Planned::create(DefinitionKind::Workflow, wanted.id.to_string(), &wanted)?
                }
                Some((version, body)) => {
                    let current: WorkflowDef = parse(&body)?;
                    wanted.id = current.id;
                    wanted.version = current.version;
                    let plan = Planned::update(&wanted, &current, wanted.id.to_string(), version)?;
                    if plan.is_conflict(overwrite) {
                        effective = current.functions.clone();
                    }
                    plan
                }
            };
            if plan.writes(overwrite) {
                new_workflows.push(wanted.clone());
            }
            workflow_ids.insert(w.id, wanted.id);
            functions.insert(wanted.id, effective);
            plans.push((format!("workflow:{}", w.slug), plan));
        }
        let mut new_forms = Vec::new();
        for f in &bundle.forms {
            let mut wanted = f.clone();
            wanted.workflow_id = match workflow_ids.get(&f.workflow_id) {
                Some(id) => *id,
                None => {
                    // Not in the bundle: it must be here already.
                    let here = self.workflow(f.workflow_id).await.map_err(|_| {
                        DemandError::InvalidDefinition(format!(
                            "form {:?}: its workflow is neither in the bundle nor here",
                            f.slug
                        ))
                    })?;
                    functions.insert(here.id, here.functions.clone());
                    here.id
                }
            };
            let fns = functions.get(&wanted.workflow_id).cloned().unwrap_or_default();
            wanted.check(&fns).map_err(|e| invalid(format!("form {:?}", f.slug), e))?;
            let refs = wanted.references();
            if let Some((field, slug)) =
                refs.data_sources.iter().find(|(_, s)| !data_sources.contains(s))
            {
                return Err(DemandError::InvalidDefinition(format!(
                    "form {:?}, field {field:?}: no data source {slug:?} here or in the bundle",
                    f.slug
                )));
            }
            if let Some((field, slug)) =
                refs.card_models.iter().find(|(_, s)| !card_models.contains(s))
            {
                return Err(DemandError::InvalidDefinition(format!(
                    "form {:?}, field {field:?}: no card model {slug:?} here or in the bundle",
                    f.slug
                )));
            }
            let plan = match self.local(DefinitionKind::Form, &f.slug).await? {
                None => {
                    wanted.id = self.free_id(f.id.0).await?.map_or_else(FormId::new, FormId);
                    Planned::create(DefinitionKind::Form, wanted.id.to_string(), &wanted)?
                }
                Some((version, body)) => {
                    let current: FormDef = parse(&body)?;
                    wanted.id = current.id;
                    wanted.version = current.version;
                    Planned::update(&wanted, &current, wanted.id.to_string(), version)?
                }
            };
            if plan.writes(overwrite) {
                new_forms.push(wanted);
            }
            plans.push((format!("form:{}", f.slug), plan));
        }
        self.check_creation_cycles(&new_workflows, &new_forms).await?;
        let new_agendas = self.plan_agendas(&bundle, &mut report).await?;

        let mut writes = Vec::new();
        for (name, plan) in plans {
            match plan {
                Planned::Unchanged => report.unchanged.push(name),
                Planned::Write(w) if w.expected.is_some() && !overwrite => {
                    report.conflicts.push((
                        name,
                        "exists here with other content (import with overwrite to replace it)"
                            .into(),
                    ));
                }
                Planned::Write(w) => {
                    if w.expected.is_some() {
                        report.updated.push(name);
                    } else {
                        report.created.push(name);
                    }
                    writes.push(w);
                }
            }
        }
        if !dry_run {
            // Agendas first: forms name them, and they are created through their actors.
            let mut ids: HashMap<String, crate::ids::AgendaId> = HashMap::new();
            for def in new_agendas {
                for slug in &def.members {
                    if !ids.contains_key(slug) {
                        let id = self.inner.agendas.id_by_slug(slug).await.map_err(agenda_error)?;
                        ids.insert(slug.clone(), id);
                    }
                }
                let created = crate::agenda_definition::import_agenda(
                    &self.inner.agendas,
                    &self.inner.meetings,
                    &def,
                    &ids,
                )
                .await
                .map_err(|e| DemandError::Invalid(format!("agenda {:?}: {e}", def.slug)))?;
                ids.insert(def.slug.clone(), created.id);
            }
            if !writes.is_empty() {
                self.inner.store.save_definitions(&writes, by).await.map_err(store_error)?;
            }
        }
        Ok(report)
    }

    /// The agendas of a bundle to create here (members before the virtual agendas holding
    /// them), each checked first; those here already are unchanged or a conflict, never
    /// replaced (they hold bookings).
    async fn plan_agendas(
        &self,
        bundle: &Bundle,
        report: &mut ImportReport,
    ) -> Result<Vec<crate::agenda_definition::AgendaDefinition>, DemandError> {
        let here = self.inner.agendas.agendas().await.map_err(agenda_error)?;
        let mut slugs: std::collections::BTreeSet<String> =
            here.iter().map(|a| a.slug.clone()).collect();
        slugs.extend(bundle.agendas.iter().map(|a| a.slug.clone()));
        let mut create = Vec::new();
        // Members first.
        let mut ordered: Vec<&crate::agenda_definition::AgendaDefinition> =
            bundle.agendas.iter().collect();
        ordered.sort_by_key(|a| a.is_virtual());
        for def in ordered {
            let name = format!("agenda:{}", def.slug);
            if let Some(member) = def.members.iter().find(|m| !slugs.contains(*m)) {
                return Err(DemandError::InvalidDefinition(format!(
                    "agenda {:?}: no member agenda {member:?} here or in the bundle",
                    def.slug
                )));
            }
            match here.iter().find(|a| a.slug == def.slug) {
                Some(local) => {
                    let current = crate::agenda_definition::export_agenda(
                        &self.inner.agendas,
                        &self.inner.meetings,
                        local,
                    )
                    .await
                    .map_err(|e| DemandError::Unavailable(e.to_string()))?;
                    if current == *def {
                        report.unchanged.push(name);
                    } else {
                        report.conflicts.push((
                            name,
                            "exists here with other settings; an import never replaces an agenda \
                             (it holds bookings): change it here"
                                .into(),
                        ));
                    }
                }
                None => {
                    crate::agenda::model::NewAgenda {
                        slug: def.slug.clone(),
                        label: def.label.clone(),
                        kind: def.kind,
                        fill_notifications: def.fill_notifications.clone(),
                        auto_promote_waiting_list: def.auto_promote_waiting_list,
                        services: def.services.clone(),
                        meetings: def.meetings.clone(),
                        events: def.events.clone(),
                        category: def.category.clone(),
                        resources: Vec::new(),
                    }
                    .validate(crate::ids::AgendaId::new())
                    .map_err(|e| {
                        DemandError::InvalidDefinition(format!("agenda {:?}: {e}", def.slug))
                    })?;
                    report.created.push(name);
                    create.push(def.clone());
                }
            }
        }
        Ok(create)
    }

    async fn local(
        &self,
        kind: DefinitionKind,
        slug: &str,
    ) -> Result<Option<(u32, String)>, DemandError> {
        let Some(id) =
            self.inner.store.definition_id_by_slug(kind, slug).await.map_err(store_error)?
        else {
            return Ok(None);
        };
        self.inner.store.definition(&id).await.map_err(store_error)
    }

    /// `id` when no definition here uses it (keeping the bundle's ids keeps re-imports stable).
    async fn free_id(&self, id: uuid::Uuid) -> Result<Option<uuid::Uuid>, DemandError> {
        let taken = self.inner.store.definition(&id.to_string()).await.map_err(store_error)?;
        Ok(taken.is_none().then_some(id))
    }

    // ---- submission -------------------------------------------------------------------------

    /// Submits a demand; answers with it and, once, its tracking code.
    pub async fn submit(
        &self,
        principal: &Principal,
        sub: Submission,
    ) -> Result<(DemandView, String), DemandError> {
        let form = self.form_by_slug(&sub.form_slug).await?;
        let caller = principal.account_id();
        let mut sub = sub;
        if let Some(id) = sub.draft {
            let draft = self.own_draft(principal, id).await?;
            if draft.form_id != form.id {
                return Err(DemandError::Invalid("the draft is of another form".into()));
            }
            if sub.answers.is_empty() {
                sub.answers = draft.answers;
            }
        }
        // Cards are kept by agents (those the card model lets submit), whatever the channel.
        let back_office = sub.channel.is_back_office() || form.kind == FormKind::CardModel;
        let (submitter, entered_by) = if back_office {
            authorize(
                principal,
                Action::SubmitOnBehalf { roles: &form.backoffice_submission_roles },
            )
            .map_err(access_error)?;
            (sub.on_behalf_of, caller)
        } else {
            if sub.on_behalf_of.is_some() {
                return Err(DemandError::Invalid(
                    "on behalf of someone: choose the channel (phone, counter...)".into(),
                ));
            }
            if caller.is_none() && !form.allow_anonymous {
                return Err(DemandError::Unauthenticated);
            }
            (caller, None)
        };
        let (profile, user_label) = match submitter {
            Some(id) => {
                let account = self.account(id).await?;
                let label = account.display_name();
                let profile = Profile {
                    first_name: account.first_name,
                    last_name: account.last_name,
                    email: account.email,
                    phone: account.phone,
                };
                (Some(profile), label)
            }
            None => (None, String::new()),
        };
        let upload_ids = super::form::upload_ids(&form.fields, &sub.answers);
        let uploads = self.inner.store.uploads(&upload_ids).await.map_err(store_error)?;
        let ctx = SubmissionContext {
            back_office,
            external_choices: self.external_choices(&form.fields).await?,
            profile,
            uploader: caller,
            uploads: uploads.into_iter().map(|u| (u.id.clone(), u)).collect(),
            cards: self.prefill_cards(&form.fields, submitter).await?,
            ..SubmissionContext::default()
        };
        let data = super::form::validate(&form.fields, &sub.answers, &ctx, &Map::new())
            .map_err(DemandError::InvalidAnswers)?;
        let workflow = self.workflow(form.workflow_id).await?;
        let new = NewDemand {
            id: DemandId::new(),
            data,
            submitter,
            user_label,
            entered_by,
            channel: sub.channel,
            parent: None,
        };
        let step = model::submit(&form, &workflow, new, Timestamp::now())?;
        let code = tracking::new_code()
            .map_err(|e| DemandError::Unavailable(format!("no randomness: {e}")))?;
        let hash = tracking::normalise(&code)
            .map(|n| tracking::hash(&n))
            .ok_or_else(|| DemandError::Unavailable("tracking code".into()))?;
        let form_arc = self.cache_form(form);
        let workflow_arc = self.cache_workflow(workflow);
        let id = step.demand.id;
        let addr = self.spawn(step.demand.clone(), form_arc, workflow_arc);
        let writes = SubmissionWrites { tracking_hash: hash, draft: sub.draft };
        let view = addr.send(Create { step, writes }).await.map_err(unavailable)??;
        tracing::info!(demand = %id, form = %sub.form_slug, channel = sub.channel.as_str(), "demand submitted");
        Ok((view, code))
    }

    /// The demands `parent` creates, checked and started in their own workflows (which may
    /// create more, down to [`MAX_CREATION_DEPTH`]): written with the parent or not at all.
    pub(super) async fn children_of(
        &self,
        parent: &model::Step,
        now: Timestamp,
    ) -> Result<Vec<model::Step>, DemandError> {
        let mut out = Vec::new();
        let mut queue: Vec<(model::Step, usize)> = vec![(parent.clone(), 0)];
        while let Some((step, depth)) = queue.pop() {
            for child in &step.children {
                if depth >= MAX_CREATION_DEPTH {
                    return Err(DemandError::Invalid(format!(
                        "demands creating demands {MAX_CREATION_DEPTH} deep: the workflows loop"
                    )));
                }
                let gone = |_| {
                    DemandError::Invalid(format!(
                        "the form {:?} to create a demand of does not exist",
                        child.form
                    ))
                };
                let form = self.form_by_slug(&child.form).await.map_err(gone)?;
                let workflow = self.workflow(form.workflow_id).await?;
                let ctx = SubmissionContext { back_office: true, ..Default::default() };
                let data = super::form::validate(&form.fields, &child.data, &ctx, &Map::new())
                    .map_err(|e| {
                        DemandError::Invalid(format!("the new {:?} demand: {e}", form.slug))
                    })?;
                let new = NewDemand {
                    id: child.id,
                    data,
                    submitter: step.demand.submitter,
                    user_label: step.demand.user_label.clone(),
                    entered_by: None,
                    channel: step.demand.channel,
                    parent: Some(step.demand.id),
                };
                let created = model::submit(&form, &workflow, new, now)?;
                self.cache_form(form);
                self.cache_workflow(workflow);
                queue.push((created.clone(), depth + 1));
                out.push(created);
            }
        }
        Ok(out)
    }

    /// Refuses a set of definitions in which demands would create demands in a loop
    /// (workflow A creates a demand of a form whose workflow creates one of A's forms...).
    async fn check_creation_cycles(
        &self,
        new_workflows: &[WorkflowDef],
        new_forms: &[FormDef],
    ) -> Result<(), DemandError> {
        let mut workflows: HashMap<WorkflowId, WorkflowDef> =
            self.workflows().await?.into_iter().map(|w| (w.id, w)).collect();
        for w in new_workflows {
            workflows.insert(w.id, w.clone());
        }
        let mut form_workflow: HashMap<String, WorkflowId> =
            self.forms().await?.into_iter().map(|f| (f.slug, f.workflow_id)).collect();
        for f in new_forms {
            form_workflow.insert(f.slug.clone(), f.workflow_id);
        }
        // Edges: workflow → workflows of the forms it creates.
        let edges = |w: &WorkflowId| -> Vec<(String, WorkflowId)> {
            workflows.get(w).map_or_else(Vec::new, |def| {
                def.created_forms()
                    .into_iter()
                    .filter_map(|slug| form_workflow.get(slug).map(|t| (slug.to_owned(), *t)))
                    .collect()
            })
        };
        for start in workflows.keys() {
            // Depth-first, with the path for the message.
            let mut stack: Vec<(WorkflowId, Vec<String>)> = vec![(*start, Vec::new())];
            let mut seen = std::collections::HashSet::new();
            while let Some((at, path)) = stack.pop() {
                for (slug, next) in edges(&at) {
                    let mut path = path.clone();
                    path.push(slug);
                    if next == *start {
                        let name = workflows.get(start).map_or("?", |w| w.slug.as_str());
                        return Err(DemandError::InvalidDefinition(format!(
                            "a cyclic \"create a demand\" chain: workflow {name:?} creates {}, which comes back to it",
                            path.join(" → ")
                        )));
                    }
                    if seen.insert(next) {
                        stack.push((next, path));
                    }
                }
            }
        }
        Ok(())
    }

    fn cache_form(&self, form: Arc<FormDef>) -> Arc<FormDef> {
        let mut forms = self.inner.forms.lock().unwrap_or_else(|p| p.into_inner());
        forms.entry((form.id, form.version)).or_insert(form).clone()
    }

    fn cache_workflow(&self, wf: Arc<WorkflowDef>) -> Arc<WorkflowDef> {
        let mut wfs = self.inner.workflows.lock().unwrap_or_else(|p| p.into_inner());
        wfs.entry((wf.id, wf.version)).or_insert(wf).clone()
    }

    /// The choices of fields whose list lives elsewhere: agendas and web services.
    async fn external_choices(
        &self,
        fields: &[Field],
    ) -> Result<HashMap<String, Vec<Choice>>, DemandError> {
        let mut out = HashMap::new();
        let mut stack: Vec<&Field> = fields.iter().collect();
        while let Some(f) = stack.pop() {
            let choices = match &f.kind {
                FieldKind::Item { choices } | FieldKind::Items { choices, .. } => choices,
                FieldKind::Block { fields, .. } => {
                    stack.extend(fields.iter());
                    continue;
                }
                _ => continue,
            };
            let resolved;
            let choices = match choices {
                Choices::DataSource { slug } => {
                    resolved = self.data_source_by_slug(slug).await.map_err(|_| {
                        DemandError::Unavailable(format!("data source {slug:?} is out of reach"))
                    })?;
                    resolved.source.choices()
                }
                other => other.clone(),
            };
            let list = match &choices {
                Choices::Static { items } => items.clone(),
                Choices::Agenda { agenda, meeting_type } => {
                    self.agenda_choices(agenda, meeting_type.as_deref()).await?
                }
                Choices::WebService { url } => self.web_service_choices(url).await?,
                Choices::Cards { model } => self.card_choices(model).await?,
                // Resolved above: a data source names no other data source.
                Choices::DataSource { .. } => continue,
            };
            out.insert(f.id.clone(), list);
        }
        Ok(out)
    }

    /// The choices a field offers now (written, or read from an agenda, a web service, a card
    /// model or a named data source), as a form shows them.
    pub async fn field_choices(
        &self,
        form_slug: &str,
        field_id: &str,
    ) -> Result<Vec<Choice>, DemandError> {
        let form = self.form_by_slug(form_slug).await?;
        let mut stack: Vec<&Field> = form.fields.iter().collect();
        while let Some(f) = stack.pop() {
            if let FieldKind::Block { fields, .. } = &f.kind {
                stack.extend(fields.iter());
            }
            if f.id != field_id {
                continue;
            }
            return match &f.kind {
                FieldKind::Item { choices: Choices::Static { items } }
                | FieldKind::Items { choices: Choices::Static { items }, .. } => Ok(items.clone()),
                FieldKind::Item { .. } | FieldKind::Items { .. } => Ok(self
                    .external_choices(std::slice::from_ref(f))
                    .await?
                    .remove(field_id)
                    .unwrap_or_default()),
                _ => Err(DemandError::Invalid(format!("field {field_id:?} offers no choices"))),
            };
        }
        Err(DemandError::NotFound(format!("field {field_id:?} of {form_slug:?}")))
    }

    /// The cards of a card model as choices, by digest.
    async fn card_choices(&self, model: &str) -> Result<Vec<Choice>, DemandError> {
        let form = self.form_by_slug(model).await.map_err(|_| {
            DemandError::Unavailable(format!("card model {model:?} is out of reach"))
        })?;
        let cards = self
            .inner
            .store
            .cards_of_model(form.id, MAX_CARD_CHOICES)
            .await
            .map_err(store_error)?;
        Ok(cards
            .into_iter()
            .map(|(id, digest)| Choice { id: id.to_string(), text: digest, disabled: false })
            .collect())
    }

    /// The data of `account`'s newest card of each card model the fields prefill from.
    async fn prefill_cards(
        &self,
        fields: &[Field],
        account: Option<AccountId>,
    ) -> Result<HashMap<String, Map<String, Value>>, DemandError> {
        let mut out = HashMap::new();
        let Some(account) = account else { return Ok(out) };
        let mut stack: Vec<&Field> = fields.iter().collect();
        while let Some(f) = stack.pop() {
            if let FieldKind::Block { fields, .. } = &f.kind {
                stack.extend(fields.iter());
            }
            let Some(Prefill::Card { model, .. }) = &f.prefill else { continue };
            if out.contains_key(model) {
                continue;
            }
            // A card model that is gone leaves the field empty, as a missing card does.
            let Ok(form) = self.form_by_slug(model).await else { continue };
            if let Some(card) =
                self.inner.store.card_of(form.id, account).await.map_err(store_error)?
            {
                out.insert(model.clone(), card.data);
            }
        }
        Ok(out)
    }

    async fn agenda_choices(
        &self,
        slug: &str,
        meeting_type: Option<&str>,
    ) -> Result<Vec<Choice>, DemandError> {
        let not_found = |_| DemandError::Unavailable(format!("agenda {slug:?} is out of reach"));
        let agenda = self.inner.agendas.id_by_slug(slug).await.map_err(not_found)?;
        let type_id =
            match meeting_type {
                Some(t) => {
                    let config =
                        self.inner.store.meetings_config(agenda).await.map_err(store_error)?;
                    Some(
                        config.types.iter().find(|m| m.slug == t).map(|m| m.id).ok_or_else(
                            || DemandError::Unavailable(format!("meeting type {t:?}")),
                        )?,
                    )
                }
                None => None,
            };
        let today = Timestamp::now().to_zoned(crate::time::paris()).date();
        let until: Date =
            today.checked_add(jiff::Span::new().days(AGENDA_CHOICE_DAYS)).unwrap_or(today);
        let items = crate::datasource::agenda_items(
            &self.inner.agendas,
            &self.inner.meetings,
            agenda,
            type_id,
            today,
            until,
        )
        .await
        .map_err(|e| DemandError::Unavailable(format!("agenda {slug:?}: {e}")))?;
        Ok(items
            .into_iter()
            .map(|i| Choice { id: i.id, text: i.text, disabled: i.disabled })
            .collect())
    }

    async fn web_service_choices(&self, url: &str) -> Result<Vec<Choice>, DemandError> {
        #[derive(serde::Deserialize)]
        struct Answer {
            data: Vec<Item>,
        }
        #[derive(serde::Deserialize)]
        struct Item {
            id: Value,
            text: String,
            #[serde(default)]
            disabled: bool,
        }
        let failed = |e: reqwest::Error| {
            tracing::warn!(%url, error = %e, "data source web service failed");
            DemandError::Unavailable("a list of choices is out of reach, try again".into())
        };
        let answer: Answer = self
            .inner
            .http
            .get(url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(failed)?
            .json()
            .await
            .map_err(failed)?;
        Ok(answer
            .data
            .into_iter()
            .map(|i| Choice {
                id: match i.id {
                    Value::String(s) => s,
                    other => other.to_string(),
                },
                text: i.text,
                disabled: i.disabled,
            })
            .collect())
    }

    // ---- files ------------------------------------------------------------------------------

    fn files(&self) -> Result<&Files, DemandError> {
        self.inner
            .files
            .as_ref()
            .ok_or_else(|| DemandError::Unavailable("no file storage is configured".into()))
    }

    /// Stores an uploaded file for a later submission by the same person.
    pub async fn upload(
        &self,
        principal: &Principal,
        filename: &str,
        content_type: Option<&str>,
        content: Vec<u8>,
    ) -> Result<Upload, DemandError> {
        let files = self.files()?;
        let upload = files.write(principal.account_id(), filename, content_type, content).await?;
        if let Err(e) = self.inner.store.create_upload(&upload).await {
            // No record, no file: nothing half-kept.
            files.remove(&upload.id)?;
            return Err(store_error(e));
        }
        Ok(upload)
    }

    /// The attachments of a demand, in field order.
    pub fn attachments(&self, view: &DemandView) -> Vec<Attachment> {
        attachments::attachments_of(&view.demand.data)
    }

    /// Opens one attachment of a demand.
    pub fn open_attachment(
        &self,
        view: &DemandView,
        upload: &str,
    ) -> Result<(Attachment, std::fs::File), DemandError> {
        let attachment = self
            .attachments(view)
            .into_iter()
            .find(|a| a.upload == upload)
            .ok_or_else(|| DemandError::NotFound("attachment".into()))?;
        let file = self.files()?.open(&attachment.upload)?;
        Ok((attachment, file))
    }

    /// Writes every attachment of a demand as one zip into `out` (blocking: run it on a
    /// blocking thread).
    pub fn write_zip<W: std::io::Write>(
        &self,
        view: &DemandView,
        out: W,
    ) -> Result<(), DemandError> {
        attachments::write_zip(self.files()?, &self.attachments(view), out)
    }

    /// Deletes uploads nobody attached within a day; returns how many.
    pub async fn purge_unclaimed_uploads(&self, now: Timestamp) -> Result<usize, DemandError> {
        let Ok(files) = self.files() else { return Ok(0) };
        let before = now - jiff::SignedDuration::from_hours(24);
        let ids = self.inner.store.purge_unclaimed_uploads(before).await.map_err(store_error)?;
        for id in &ids {
            files.remove(id)?;
        }
        Ok(ids.len())
    }

    // ---- inbox ------------------------------------------------------------------------------

    /// The caller's in-app notifications, newest first.
    pub async fn notifications(
        &self,
        principal: &Principal,
        unread_only: bool,
        limit: u32,
    ) -> Result<Vec<WebNotification>, DemandError> {
        let me = principal.account_id().ok_or(DemandError::Unauthenticated)?;
        self.inner.store.web_notifications(me, unread_only, limit).await.map_err(store_error)
    }

    /// How workflows notify the caller from now on: `email`, `sms` or `web`.
    pub async fn set_notification_channel(
        &self,
        principal: &Principal,
        channel: &str,
    ) -> Result<(), DemandError> {
        let me = principal.account_id().ok_or(DemandError::Unauthenticated)?;
        self.inner.store.set_notification_channel(me, channel).await.map_err(store_error)
    }

    /// Marks some of the caller's notifications read; how many changed.
    pub async fn mark_notifications_read(
        &self,
        principal: &Principal,
        ids: &[String],
    ) -> Result<usize, DemandError> {
        let me = principal.account_id().ok_or(DemandError::Unauthenticated)?;
        self.inner.store.mark_notifications_read(me, ids).await.map_err(store_error)
    }

    // ---- drafts -----------------------------------------------------------------------------

    async fn own_draft(&self, principal: &Principal, id: DraftId) -> Result<Draft, DemandError> {
        let me = principal.account_id().ok_or(DemandError::Unauthenticated)?;
        let draft = self.inner.store.draft(id, Timestamp::now()).await.map_err(store_error)?;
        // Someone else's draft is not shown to exist.
        draft.filter(|d| d.account == me).ok_or_else(|| DemandError::NotFound("draft".into()))
    }

    /// Saves answers as a draft of the form: a new one, or `id` (the caller's).
    pub async fn save_draft(
        &self,
        principal: &Principal,
        id: Option<DraftId>,
        form_slug: &str,
        answers: Map<String, Value>,
        page: u32,
    ) -> Result<Draft, DemandError> {
        let me = principal.account_id().ok_or(DemandError::Unauthenticated)?;
        let form = self.form_by_slug(form_slug).await?;
        draft::check_answers(&form, &answers)?;
        let now = Timestamp::now();
        let created_at = match id {
            Some(id) => {
                let existing = self.own_draft(principal, id).await?;
                if existing.form_id != form.id {
                    return Err(DemandError::Invalid("the draft is of another form".into()));
                }
                existing.created_at
            }
            None => now,
        };
        let draft = Draft {
            id: id.unwrap_or_default(),
            account: me,
            form_id: form.id,
            form_slug: form.slug.clone(),
            form_version: form.version,
            answers,
            page,
            created_at,
            updated_at: now,
            expires_at: draft::expiry(&form, now),
        };
        self.inner.store.save_draft(&draft).await.map_err(store_error)?;
        Ok(draft)
    }

    /// The caller's drafts, latest first.
    pub async fn drafts(&self, principal: &Principal) -> Result<Vec<Draft>, DemandError> {
        let me = principal.account_id().ok_or(DemandError::Unauthenticated)?;
        self.inner.store.drafts_of(me, Timestamp::now()).await.map_err(store_error)
    }

    /// One of the caller's drafts.
    pub async fn draft(&self, principal: &Principal, id: DraftId) -> Result<Draft, DemandError> {
        self.own_draft(principal, id).await
    }

    /// Deletes one of the caller's drafts.
    pub async fn discard_draft(
        &self,
        principal: &Principal,
        id: DraftId,
    ) -> Result<(), DemandError> {
        let me = principal.account_id().ok_or(DemandError::Unauthenticated)?;
        if self.inner.store.delete_draft(id, me).await.map_err(store_error)? {
            Ok(())
        } else {
            Err(DemandError::NotFound("draft".into()))
        }
    }

    // ---- live demands -----------------------------------------------------------------------

    fn spawn(
        &self,
        demand: Demand,
        form: Arc<FormDef>,
        workflow: Arc<WorkflowDef>,
    ) -> Addr<DemandActor> {
        let id = demand.id;
        let parts = Parts {
            demand,
            form,
            workflow,
            store: self.inner.store.clone(),
            live: self.inner.live.clone(),
            mail: self.inner.mail.clone(),
            metrics: self.inner.metrics.clone(),
            registry: self.inner.registry.clone(),
            idle_after: self.inner.idle_after,
            demands: self.clone(),
        };
        let addr = self.inner.runtime.spawn(move |_| DemandActor::new(parts));
        self.inner.registry.insert(id, addr)
    }

    /// The actor of a demand, started from the store if it is not running.
    async fn actor(&self, id: DemandId) -> Result<Addr<DemandActor>, DemandError> {
        if let Some(addr) = self.inner.registry.get(id) {
            return Ok(addr);
        }
        let demand = self
            .inner
            .store
            .demand(id)
            .await
            .map_err(store_error)?
            .ok_or_else(|| DemandError::NotFound("demand".into()))?;
        let form = self.form_version(demand.form_id, demand.form_version).await?;
        let workflow = self.workflow_version(demand.workflow_id, demand.workflow_version).await?;
        Ok(self.spawn(demand, form, workflow))
    }

    /// Sends `msg` to the demand's actor, starting it again if it stopped in between.
    async fn ask<M>(&self, id: DemandId, msg: M) -> Result<M::Result, DemandError>
    where
        M: Message + Send + Clone + 'static,
        M::Result: Send,
        DemandActor: Handler<M>,
    {
        let addr = self.actor(id).await?;
        match addr.send(msg.clone()).await {
            Ok(r) => Ok(r),
            Err(MailboxError::Closed) => {
                self.inner.registry.forget(id, &addr);
                self.actor(id).await?.send(msg).await.map_err(unavailable)
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    /// A demand.
    pub async fn get(&self, id: DemandId) -> Result<DemandView, DemandError> {
        self.ask(id, Get).await
    }

    /// Someone acts on a demand (a button, a comment, a global action).
    pub async fn perform(
        &self,
        id: DemandId,
        principal: &Principal,
        op: Operation,
    ) -> Result<DemandView, DemandError> {
        let actor = acting(principal)?;
        let op = match op {
            Operation::Global { action_id, input } => {
                let input = self.action_input(id, &action_id, &actor, input).await?;
                Operation::Global { action_id, input }
            }
            Operation::Edit { item_id, data, .. } => {
                let (data, based_on) = self.edit_input(id, &item_id, &actor, data).await?;
                Operation::Edit { item_id, data, based_on }
            }
            Operation::Attach { item_id, file, comment } => {
                let file = self.attached_file(&actor, &file).await?;
                Operation::Attach { item_id, file, comment }
            }
            op => op,
        };
        self.ask(id, Perform { op, actor }).await?
    }

    /// Checks the answers given to an interactive global action against its fields, as a
    /// submission's are (every refused answer at once); what the action's items then see.
    async fn action_input(
        &self,
        id: DemandId,
        action_id: &str,
        actor: &model::Actor,
        input: Map<String, Value>,
    ) -> Result<Map<String, Value>, DemandError> {
        let view = self.get(id).await?;
        let Some(action) = view.workflow.global_actions.iter().find(|g| g.id == action_id) else {
            // The actor says which: unknown, or not offered here.
            return Ok(input);
        };
        if action.input.is_empty() {
            return Ok(input);
        }
        let ctx = SubmissionContext {
            back_office: actor.admin || !actor.roles.is_empty(),
            external_choices: self.external_choices(&action.input).await?,
            ..SubmissionContext::default()
        };
        let Value::Object(base) = view.demand.template_context(&view.form, &view.workflow) else {
            return Err(DemandError::Invalid("no template context".into()));
        };
        super::form::validate(&action.input, &input, &ctx, &base)
            .map_err(DemandError::InvalidAnswers)
    }

    /// The answers of a demand after an edit: the changed `answers` over the current ones,
    /// every answer checked as on submission (by an agent, front-office-only requirements are
    /// lifted), with the demand's version they were checked on. An answer given back as it is
    /// stored stays as it is.
    async fn edit_input(
        &self,
        id: DemandId,
        item_id: &str,
        actor: &model::Actor,
        answers: Map<String, Value>,
    ) -> Result<(Map<String, Value>, u64), DemandError> {
        let view = self.get(id).await?;
        let form = &view.form;
        let mut current = Map::new();
        for f in form.fields.iter().filter(|f| f.kind.holds_value()) {
            if let Some(v) = view.demand.data.get(&f.id) {
                current.insert(f.id.clone(), v.clone());
            }
        }
        let is_edit = view.workflow.status(&view.demand.status).is_some_and(|s| {
            s.items.iter().any(|i| i.id == item_id && matches!(i.kind, ItemKind::Edit { .. }))
        });
        if !is_edit {
            // The actor says why: not offered here, or not an edit form.
            return Ok((current, view.demand.version));
        }
        let mut input = current.clone();
        input.extend(answers);
        let upload_ids = super::form::upload_ids(&form.fields, &input);
        let uploads = self.inner.store.uploads(&upload_ids).await.map_err(store_error)?;
        let ctx = SubmissionContext {
            back_office: actor.admin || !actor.roles.is_empty(),
            external_choices: self.external_choices(&form.fields).await?,
            uploader: Some(actor.account),
            uploads: uploads.into_iter().map(|u| (u.id.clone(), u)).collect(),
            kept: current,
            editing: Some(id),
            ..SubmissionContext::default()
        };
        let data = super::form::validate(&form.fields, &input, &ctx, &Map::new())
            .map_err(DemandError::InvalidAnswers)?;
        Ok((data, view.demand.version))
    }

    /// The file an attachment form is given (`{"upload": <id>}`): an upload of the caller's
    /// not attached anywhere yet, as a file field keeps it.
    async fn attached_file(
        &self,
        actor: &model::Actor,
        file: &Map<String, Value>,
    ) -> Result<Map<String, Value>, DemandError> {
        let id = file.get("upload").and_then(Value::as_str).unwrap_or_default().trim();
        if id.is_empty() {
            return Err(DemandError::Invalid("a file is needed: its upload id".into()));
        }
        let uploads = self.inner.store.uploads(&[id.to_owned()]).await.map_err(store_error)?;
        let upload = uploads
            .into_iter()
            .find(|u| u.owner == Some(actor.account))
            .ok_or_else(|| DemandError::Invalid("no such upload: upload the file first".into()))?;
        if upload.demand.is_some() {
            return Err(DemandError::Invalid("this upload is attached to a demand already".into()));
        }
        match attachments::field_value(&upload) {
            Value::Object(o) => Ok(o),
            _ => Err(DemandError::Unavailable("an upload's description".into())),
        }
    }

    /// A timed jump is due (from the scheduler).
    pub async fn timeout(&self, id: DemandId, item: &str, arrival: u64) -> Result<(), DemandError> {
        match self.ask(id, Timeout { item: item.to_owned(), arrival }).await {
            // A demand that no longer exists has nothing to do.
            Err(DemandError::NotFound(_)) => Ok(()),
            other => other?,
        }
    }

    /// A timeout global action is due (from the scheduler).
    pub async fn global_timeout(
        &self,
        id: DemandId,
        action: &str,
        due: Timestamp,
    ) -> Result<(), DemandError> {
        match self.ask(id, GlobalTimeout { action: action.to_owned(), due }).await {
            Err(DemandError::NotFound(_)) => Ok(()),
            other => other?,
        }
    }

    /// A system calls the webhook `name` of a demand's workflow with a JSON object, which the
    /// action's items see as `webhook`.
    pub async fn call_hook(
        &self,
        id: DemandId,
        principal: &Principal,
        name: &str,
        payload: Map<String, Value>,
    ) -> Result<DemandView, DemandError> {
        let actor = acting(principal)?;
        let op = Operation::Hook { name: name.to_owned(), payload };
        self.ask(id, Perform { op, actor }).await?
    }

    /// Records how a web service call of a demand's workflow ended (from the scheduler).
    pub async fn webhook_done(
        &self,
        id: DemandId,
        url: &str,
        status: Option<u16>,
        attempts: u32,
    ) -> Result<(), DemandError> {
        let done = WebhookDone { url: url.to_owned(), status, attempts };
        match self.ask(id, done).await {
            Err(DemandError::NotFound(_)) => Ok(()),
            other => other?,
        }
    }

    /// A page of a demand's history.
    pub async fn history(
        &self,
        id: DemandId,
        from: u64,
        limit: u32,
    ) -> Result<Vec<HistoryEntry>, DemandError> {
        self.inner.store.demand_history(id, from, limit).await.map_err(store_error)
    }

    /// The demand a tracking code opens, for anyone holding it; an agent holding it is given
    /// access to the demand from then on. `client` keys the rate limit (the caller's address).
    pub async fn by_tracking_code(
        &self,
        code: &str,
        client: &str,
        principal: &Principal,
    ) -> Result<DemandView, DemandError> {
        if !self.inner.limiter.allow(client, Instant::now()) {
            return Err(DemandError::RateLimited);
        }
        let not_found = || DemandError::NotFound("demand with this tracking code".into());
        let normalised = tracking::normalise(code).ok_or_else(not_found)?;
        let id = self
            .inner
            .store
            .demand_by_tracking_hash(&tracking::hash(&normalised))
            .await
            .map_err(store_error)?
            .ok_or_else(not_found)?;
        let view = self.get(id).await?;
        match principal {
            Principal::Account { id: agent, roles }
                if (roles.is_agent() || roles.admin) && view.demand.submitter != Some(*agent) =>
            {
                self.ask(id, Grant { agent: *agent }).await?
            }
            _ => Ok(view),
        }
    }

    /// Links a demand entered for an unknown person (at the counter, by phone) to the account
    /// of that person, found since: they see it among theirs from then on.
    pub async fn link_user(
        &self,
        id: DemandId,
        principal: &Principal,
        account: AccountId,
    ) -> Result<DemandView, DemandError> {
        let by = principal.account_id().ok_or(DemandError::Unauthenticated)?;
        let view = self.get(id).await?;
        let content_roles = view.content_roles();
        authorize(
            principal,
            Action::LinkDemandUser {
                content_roles: &content_roles,
                submission_roles: &view.form.backoffice_submission_roles,
                granted: &view.demand.granted,
            },
        )
        .map_err(|e| match e {
            crate::access::AccessError::Unauthenticated => DemandError::Unauthenticated,
            _ => DemandError::Forbidden("you may not link this demand to someone".into()),
        })?;
        let label = self.account(account).await?.display_name();
        let linked = self.ask(id, LinkUser { account, label, by }).await??;
        tracing::info!(demand = %id, "demand linked to its person");
        Ok(linked)
    }

    /// The account a demand is for (`NOT_FOUND` when there is none).
    async fn account(&self, id: AccountId) -> Result<crate::store::AccountRecord, DemandError> {
        self.inner
            .store
            .account(id)
            .await
            .map_err(store_error)?
            .ok_or_else(|| DemandError::NotFound(format!("account {id}")))
    }

    /// The demands of an account, newest first.
    pub async fn of_account(
        &self,
        account: AccountId,
        limit: u32,
    ) -> Result<Vec<DemandView>, DemandError> {
        let demands = self.inner.store.demands_of(account, limit).await.map_err(store_error)?;
        let mut out = Vec::with_capacity(demands.len());
        for d in demands {
            let form = self.form_version(d.form_id, d.form_version).await?;
            let workflow = self.workflow_version(d.workflow_id, d.workflow_version).await?;
            out.push(DemandView { demand: Arc::new(d), form, workflow });
        }
        Ok(out)
    }

    /// The cards of a card model, by digest (access is the caller's to check, card by card).
    pub async fn cards(&self, model: &str, limit: u32) -> Result<Vec<DemandView>, DemandError> {
        let model =
            self.card_model(model).await.map_err(|e| DemandError::NotFound(e.to_string()))?;
        let cards = self.inner.store.demands_of_form(model.id, limit).await.map_err(store_error)?;
        let mut out = Vec::with_capacity(cards.len());
        for d in cards {
            let form = self.form_version(d.form_id, d.form_version).await?;
            let workflow = self.workflow_version(d.workflow_id, d.workflow_version).await?;
            out.push(DemandView { demand: Arc::new(d), form, workflow });
        }
        Ok(out)
    }

    /// Receives the changes of a demand from now on.
    pub fn subscribe(&self, id: DemandId) -> broadcast::Receiver<DemandChanged> {
        self.inner.live.subscribe_demand(id)
    }
}

/// What an import does with one definition.
enum Planned {
    /// Identical here.
    Unchanged,
    /// Created (`expected` none) or saved as a new version.
    Write(crate::store::DefinitionWrite),
}

impl Planned {
    fn create<D: serde::Serialize + Versioned>(
        kind: DefinitionKind,
        id: String,
        def: &D,
    ) -> Result<Self, DemandError> {
        let mut body =
            serde_json::to_value(def).map_err(|e| DemandError::Invalid(e.to_string()))?;
        body["version"] = 1.into();
        Ok(Planned::Write(crate::store::DefinitionWrite {
            kind,
            id,
            slug: def.slug().to_owned(),
            expected: None,
            body: body.to_string(),
        }))
    }

    fn update<D: serde::Serialize + PartialEq + Versioned>(
        wanted: &D,
        current: &D,
        id: String,
        version: u32,
    ) -> Result<Self, DemandError> {
        if wanted == current {
            return Ok(Planned::Unchanged);
        }
        let mut body =
            serde_json::to_value(wanted).map_err(|e| DemandError::Invalid(e.to_string()))?;
        body["version"] = (version + 1).into();
        Ok(Planned::Write(crate::store::DefinitionWrite {
            kind: D::KIND,
            id,
            slug: wanted.slug().to_owned(),
            expected: Some(version),
            body: body.to_string(),
        }))
    }

    /// True for a definition that exists here with other content.
    fn is_conflict(&self, overwrite: bool) -> bool {
        matches!(self, Planned::Write(w) if w.expected.is_some() && !overwrite)
    }

    /// True when the import writes it.
    fn writes(&self, overwrite: bool) -> bool {
        matches!(self, Planned::Write(_)) && !self.is_conflict(overwrite)
    }
}

/// Definitions kept with versions.
trait Versioned {
    const KIND: DefinitionKind;
    fn slug(&self) -> &str;
}

impl Versioned for FormDef {
    const KIND: DefinitionKind = DefinitionKind::Form;
    fn slug(&self) -> &str {
        &self.slug
    }
}

impl Versioned for WorkflowDef {
    const KIND: DefinitionKind = DefinitionKind::Workflow;
    fn slug(&self) -> &str {
        &self.slug
    }
}

impl Versioned for DataSourceDef {
    const KIND: DefinitionKind = DefinitionKind::DataSource;
    fn slug(&self) -> &str {
        &self.slug
    }
}

/// The account acting, with its roles, as the workflow engine needs it.
pub fn acting(principal: &Principal) -> Result<model::Actor, DemandError> {
    match principal {
        Principal::Anonymous => Err(DemandError::Unauthenticated),
        Principal::Account { id, roles } => {
            Ok(model::Actor { account: *id, admin: roles.admin, roles: roles.agent_roles.clone() })
        }
    }
}

fn access_error(e: crate::access::AccessError) -> DemandError {
    match e {
        crate::access::AccessError::Unauthenticated => DemandError::Unauthenticated,
        crate::access::AccessError::Forbidden => {
            DemandError::Forbidden("you may not submit this form on someone's behalf".into())
        }
        crate::access::AccessError::Hidden => DemandError::NotFound("form".into()),
    }
}
