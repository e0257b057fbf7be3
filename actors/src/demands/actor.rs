//! `DemandActor`: owns one live demand. It decides each change with the pure engine of
//! `model`, writes the demand, its history entries, mails and timers in one transaction, and
//! only then answers and publishes. Its handlers run one at a time to the end (`AtomicResponse`),
//! so two agents pressing buttons at once are decided in turn, the second on the first's
//! outcome. It stops after a while without messages and starts again on the next use.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use actix::prelude::*;
use jiff::Timestamp;

use super::form::FormDef;
use super::handle::{DemandView, Demands, Registry};
use super::model::{self, Actor as Acting, Demand, DemandError, NotifyIntent, Operation, Step};
use super::workflow::WorkflowDef;
use crate::access::Principal;
use crate::ids::{AccountId, DraftId, MailId};
use crate::live::{DemandChanged, LiveHub};
use crate::mail::{Channel, MailNotifier, OutgoingMail};
use crate::metrics::ActorMetrics;
use crate::scheduler::{JobKind, ScheduledJob};
use crate::store::{StepWrites, Store, StoreError, WebNotification};

pub(super) struct DemandActor {
    demand: Demand,
    form: Arc<FormDef>,
    workflow: Arc<WorkflowDef>,
    store: Store,
    live: LiveHub,
    mail: MailNotifier,
    metrics: Arc<ActorMetrics>,
    registry: Registry,
    last_used: Instant,
    idle_after: Duration,
    demands: Demands,
}

/// Everything an actor is started with.
pub(super) struct Parts {
    pub(super) demand: Demand,
    pub(super) form: Arc<FormDef>,
    pub(super) workflow: Arc<WorkflowDef>,
    pub(super) store: Store,
    pub(super) live: LiveHub,
    pub(super) mail: MailNotifier,
    pub(super) metrics: Arc<ActorMetrics>,
    pub(super) registry: Registry,
    pub(super) idle_after: Duration,
    /// To create the demands a step creates.
    pub(super) demands: Demands,
}

impl DemandActor {
    pub(super) fn new(p: Parts) -> Self {
        Self {
            demand: p.demand,
            form: p.form,
            workflow: p.workflow,
            store: p.store,
            live: p.live,
            mail: p.mail,
            metrics: p.metrics,
            registry: p.registry,
            last_used: Instant::now(),
            idle_after: p.idle_after,
            demands: p.demands,
        }
    }

    fn view(&self) -> DemandView {
        DemandView {
            demand: Arc::new(self.demand.clone()),
            form: self.form.clone(),
            workflow: self.workflow.clone(),
        }
    }

    /// Writes a step, then makes it current, publishes it and answers with the new view.
    fn commit(
        &mut self,
        step: Step,
        mut submission: Option<SubmissionWrites>,
    ) -> ResponseActFuture<Self, Result<DemandView, DemandError>> {
        let store = self.store.clone();
        let demands = self.demands.clone();
        // Every file the step's demand holds and the demand before it did not (the answers of a
        // submission, an edit or an attachment form, a generated document) is claimed with the
        // step. A new demand's actor starts with the demand it creates: it held nothing before.
        let held: std::collections::HashSet<String> = if submission.is_some() {
            std::collections::HashSet::new()
        } else {
            super::attachments::attachments_of(&self.demand.data)
                .into_iter()
                .map(|a| a.upload)
                .collect()
        };
        let write = async move {
            let now = Timestamp::now();
            // The demands this step creates are checked first: all are written, or none.
            let mut step = step;
            // Generated documents are files first (synced), then attached by the step, which
            // claims them in its transaction like uploads.
            for doc in std::mem::take(&mut step.documents) {
                let upload = demands
                    .upload(
                        &Principal::Anonymous,
                        &doc.filename,
                        Some(doc.format.content_type()),
                        doc.content,
                    )
                    .await
                    .map_err(Failure::Refused)?;
                step.demand.data.insert(doc.field, super::attachments::field_value(&upload));
            }
            let children = demands.children_of(&step, now).await.map_err(Failure::Refused)?;
            let mut all = Vec::with_capacity(1 + children.len());
            for (i, s) in std::iter::once(&step).chain(children.iter()).enumerate() {
                let mut writes = writes_of(&store, s, now).await?;
                if i == 0 {
                    if let Some(sub) = submission.take() {
                        writes.tracking_hash = Some(sub.tracking_hash);
                        writes.submitted_draft = sub.draft;
                    }
                    writes.claimed_uploads = super::attachments::attachments_of(&s.demand.data)
                        .into_iter()
                        .map(|a| a.upload)
                        .filter(|u| !held.contains(u))
                        .collect();
                }
                all.push(writes);
            }
            let mailed = all.iter().any(|w| !w.mails.is_empty());
            let owned: Vec<(Step, StepWrites)> =
                std::iter::once(step.clone()).chain(children.iter().cloned()).zip(all).collect();
            store.commit_demand_steps(owned).await?;
            Ok::<_, Failure>((step, children, mailed))
        };
        Box::pin(write.into_actor(self).map(|result, act, ctx| {
            match result {
                Ok((step, children, mailed)) => {
                    act.demand = step.demand.clone();
                    if mailed {
                        act.mail.wake();
                    }
                    for s in std::iter::once(step).chain(children) {
                        act.live.publish_demand(DemandChanged {
                            demand: Arc::new(s.demand),
                            history: Arc::new(s.history),
                        });
                    }
                    Ok(act.view())
                }
                // A demand it creates is refused: nothing was written.
                Err(Failure::Refused(e)) => Err(e),
                Err(Failure::Store(StoreError::Conflict(reason))) if reason.contains("upload") => {
                    ctx.stop();
                    Err(DemandError::Conflict(
                        "a file was attached to another demand meanwhile: upload it again".into(),
                    ))
                }
                Err(Failure::Store(StoreError::Conflict(reason))) => {
                    // Another process moved it: take the store's state before anything else.
                    tracing::info!(demand = %act.demand.id, %reason, "demand changed elsewhere");
                    ctx.stop();
                    Err(DemandError::Conflict(
                        "the demand changed meanwhile; look at it again and retry".into(),
                    ))
                }
                Err(Failure::Store(StoreError::Duplicate(_))) => {
                    ctx.stop();
                    Err(DemandError::Conflict("this demand exists already".into()))
                }
                Err(Failure::Store(e)) => {
                    tracing::error!(demand = %act.demand.id, error = %e, "demand step not stored");
                    // The outcome is unknown: the next use reloads from the store.
                    ctx.stop();
                    Err(DemandError::Unavailable(
                        "the change could not be stored, try again".into(),
                    ))
                }
            }
        }))
    }
}

/// Why a step was not written.
enum Failure {
    /// A demand it creates is refused.
    Refused(DemandError),
    /// The store failed or refused.
    Store(StoreError),
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Store(e)
    }
}

/// The mails and jobs of a step.
async fn writes_of(store: &Store, step: &Step, now: Timestamp) -> Result<StepWrites, StoreError> {
    let (mails, web_notifications) = resolve_notifications(store, step, now).await?;
    let timers = step.timers.iter().map(|t| ScheduledJob {
        kind: JobKind::DemandTimeout {
            demand: step.demand.id,
            item: t.item_id.clone(),
            arrival: t.arrival,
        },
        due_at: t.due_at,
    });
    let global_timers = step.global_timers.iter().map(|t| ScheduledJob {
        kind: JobKind::DemandGlobalTimeout { demand: step.demand.id, action: t.action_id.clone() },
        due_at: t.due_at,
    });
    // Web service calls are jobs written with the step: made once it is durable, retried.
    let calls = step.webhooks.iter().map(|w| ScheduledJob {
        kind: JobKind::DemandWebhook {
            demand: step.demand.id,
            seq: w.seq,
            url: w.url.clone(),
            body: w.body.clone(),
            attempts: 0,
        },
        due_at: now,
    });
    let jobs = timers.chain(global_timers).chain(calls).collect();
    Ok(StepWrites { mails, jobs, web_notifications, ..StepWrites::default() })
}

/// Turns the notifications of a step into mails: roles become their agents' accounts.
async fn resolve_notifications(
    store: &Store,
    step: &Step,
    now: Timestamp,
) -> Result<(Vec<OutgoingMail>, Vec<WebNotification>), StoreError> {
    let mut mails = Vec::new();
    let mut inbox = Vec::new();
    let mail =
        |channel, to: Vec<String>, to_accounts: Vec<AccountId>, n: &NotifyIntent| OutgoingMail {
            id: MailId::new(),
            channel,
            to,
            to_accounts,
            subject: n.subject.clone(),
            body: n.body.clone(),
            created_at: now,
        };
    for n in &step.notifications {
        let submitter: Vec<AccountId> = n.submitter.into_iter().collect();
        let mut recipients = store.notification_channels(&submitter).await?;
        for role in &n.roles {
            recipients.extend(store.accounts_with_role(role).await?);
        }
        recipients.sort();
        recipients.dedup_by_key(|(account, _)| *account);
        // Every account notified finds it in its inbox, and gets it by the channel it prefers
        // (email unless it chose text messages or the inbox alone).
        let mut by_email = Vec::new();
        let mut by_sms = Vec::new();
        for (account, channel) in recipients {
            inbox.push(WebNotification {
                id: uuid::Uuid::now_v7().simple().to_string(),
                account: account.to_string(),
                title: n.subject.clone(),
                body: n.body.clone(),
                demand: Some(step.demand.id.to_string()),
                created_us: crate::time::to_micros(now),
                read: false,
            });
            match channel.as_str() {
                "web" => {}
                "sms" => by_sms.push(account),
                _ => by_email.push(account),
            }
            if n.sms && channel != "sms" {
                by_sms.push(account);
            }
        }
        if !by_email.is_empty() || !n.addresses.is_empty() {
            mails.push(mail(Channel::Email, n.addresses.clone(), by_email, n));
        }
        if !by_sms.is_empty() {
            mails.push(mail(Channel::Sms, Vec::new(), by_sms, n));
        }
    }
    Ok((mails, inbox))
}

impl Actor for DemandActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.metrics.live_actors.fetch_add(1, Ordering::Relaxed);
        let every = (self.idle_after / 4).max(Duration::from_millis(50));
        ctx.run_interval(every, |act, ctx| {
            if act.last_used.elapsed() >= act.idle_after {
                ctx.stop();
            }
        });
    }

    fn stopped(&mut self, ctx: &mut Self::Context) {
        self.metrics.live_actors.fetch_sub(1, Ordering::Relaxed);
        self.registry.forget(self.demand.id, &ctx.address());
    }
}

/// What a submission writes besides the demand.
pub(super) struct SubmissionWrites {
    /// The tracking code's hash.
    pub(super) tracking_hash: String,
    /// The draft it came from, deleted with it.
    pub(super) draft: Option<DraftId>,
}

/// Submission: the actor was started with the new demand; this writes it.
#[derive(Message)]
#[rtype(result = "Result<DemandView, DemandError>")]
pub(super) struct Create {
    pub(super) step: Step,
    pub(super) writes: SubmissionWrites,
}

impl Handler<Create> for DemandActor {
    type Result = AtomicResponse<Self, Result<DemandView, DemandError>>;

    fn handle(&mut self, msg: Create, _: &mut Context<Self>) -> Self::Result {
        self.last_used = Instant::now();
        AtomicResponse::new(self.commit(msg.step, Some(msg.writes)))
    }
}

/// The demand as it stands.
#[derive(Message, Clone)]
#[rtype(result = "DemandView")]
pub(super) struct Get;

impl Handler<Get> for DemandActor {
    type Result = MessageResult<Get>;

    fn handle(&mut self, _: Get, _: &mut Context<Self>) -> Self::Result {
        self.last_used = Instant::now();
        MessageResult(self.view())
    }
}

/// Someone acts on the demand.
#[derive(Message, Clone)]
#[rtype(result = "Result<DemandView, DemandError>")]
pub(super) struct Perform {
    pub(super) op: Operation,
    pub(super) actor: Acting,
}

impl Handler<Perform> for DemandActor {
    type Result = AtomicResponse<Self, Result<DemandView, DemandError>>;

    fn handle(&mut self, msg: Perform, _: &mut Context<Self>) -> Self::Result {
        self.last_used = Instant::now();
        let now = Timestamp::now();
        match model::perform(&self.form, &self.workflow, &self.demand, &msg.op, &msg.actor, now) {
            Ok(step) => AtomicResponse::new(self.commit(step, None)),
            Err(e) => AtomicResponse::new(Box::pin(fut::ready(Err(e)))),
        }
    }
}

/// A timed jump is due.
#[derive(Message, Clone)]
#[rtype(result = "Result<(), DemandError>")]
pub(super) struct Timeout {
    pub(super) item: String,
    pub(super) arrival: u64,
}

impl Handler<Timeout> for DemandActor {
    type Result = AtomicResponse<Self, Result<(), DemandError>>;

    fn handle(&mut self, msg: Timeout, _: &mut Context<Self>) -> Self::Result {
        self.last_used = Instant::now();
        let now = Timestamp::now();
        let fired =
            model::timeout(&self.form, &self.workflow, &self.demand, &msg.item, msg.arrival, now);
        match fired {
            Ok(Some(step)) => {
                AtomicResponse::new(Box::pin(self.commit(step, None).map(|r, _, _| r.map(drop))))
            }
            Ok(None) => AtomicResponse::new(Box::pin(fut::ready(Ok(())))),
            Err(e) => {
                // A broken workflow must not retry forever: say so in the log and drop it.
                tracing::warn!(demand = %self.demand.id, error = %e, "timed jump failed");
                AtomicResponse::new(Box::pin(fut::ready(Ok(()))))
            }
        }
    }
}

/// A timeout global action is due.
#[derive(Message, Clone)]
#[rtype(result = "Result<(), DemandError>")]
pub(super) struct GlobalTimeout {
    pub(super) action: String,
    pub(super) due: Timestamp,
}

impl Handler<GlobalTimeout> for DemandActor {
    type Result = AtomicResponse<Self, Result<(), DemandError>>;

    fn handle(&mut self, msg: GlobalTimeout, _: &mut Context<Self>) -> Self::Result {
        self.last_used = Instant::now();
        let now = Timestamp::now();
        let fired = model::global_timeout(
            &self.form,
            &self.workflow,
            &self.demand,
            &msg.action,
            msg.due,
            now,
        );
        match fired {
            Ok(Some(step)) => {
                AtomicResponse::new(Box::pin(self.commit(step, None).map(|r, _, _| r.map(drop))))
            }
            Ok(None) => AtomicResponse::new(Box::pin(fut::ready(Ok(())))),
            Err(e) => {
                tracing::warn!(demand = %self.demand.id, error = %e, "timeout action failed");
                AtomicResponse::new(Box::pin(fut::ready(Ok(()))))
            }
        }
    }
}

/// A web service call ended.
#[derive(Message, Clone)]
#[rtype(result = "Result<(), DemandError>")]
pub(super) struct WebhookDone {
    pub(super) url: String,
    pub(super) status: Option<u16>,
    pub(super) attempts: u32,
}

impl Handler<WebhookDone> for DemandActor {
    type Result = AtomicResponse<Self, Result<(), DemandError>>;

    fn handle(&mut self, msg: WebhookDone, _: &mut Context<Self>) -> Self::Result {
        self.last_used = Instant::now();
        let step = model::webhook_done(
            &self.form,
            &self.workflow,
            &self.demand,
            &msg.url,
            msg.status,
            msg.attempts,
            Timestamp::now(),
        );
        AtomicResponse::new(Box::pin(self.commit(step, None).map(|r, _, _| r.map(drop))))
    }
}

/// An agent was given the tracking code.
#[derive(Message, Clone)]
#[rtype(result = "Result<DemandView, DemandError>")]
pub(super) struct Grant {
    pub(super) agent: AccountId,
}

impl Handler<Grant> for DemandActor {
    type Result = AtomicResponse<Self, Result<DemandView, DemandError>>;

    fn handle(&mut self, msg: Grant, _: &mut Context<Self>) -> Self::Result {
        self.last_used = Instant::now();
        match model::grant(&self.form, &self.workflow, &self.demand, msg.agent, Timestamp::now()) {
            Some(step) => AtomicResponse::new(self.commit(step, None)),
            None => AtomicResponse::new(Box::pin(fut::ready(Ok(self.view())))),
        }
    }
}

/// A demand entered for an unknown person is linked to their account.
#[derive(Message, Clone)]
#[rtype(result = "Result<DemandView, DemandError>")]
pub(super) struct LinkUser {
    pub(super) account: AccountId,
    pub(super) label: String,
    pub(super) by: AccountId,
}

impl Handler<LinkUser> for DemandActor {
    type Result = AtomicResponse<Self, Result<DemandView, DemandError>>;

    fn handle(&mut self, msg: LinkUser, _: &mut Context<Self>) -> Self::Result {
        self.last_used = Instant::now();
        let now = Timestamp::now();
        let d = &self.demand;
        match model::link_user(&self.form, &self.workflow, d, msg.account, msg.label, msg.by, now) {
            Ok(step) => AtomicResponse::new(self.commit(step, None)),
            Err(e) => AtomicResponse::new(Box::pin(fut::ready(Err(e)))),
        }
    }
}
