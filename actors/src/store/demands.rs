//! Definitions (forms, workflows) with every saved version, demands with their history, and
//! tracking codes (by hash).
//!
//! A definition's current body sits in `definition`; each save also writes
//! `definition_version:<id>-<n>`, so history, diff and restore read it back. A demand's record
//! holds its whole state; each history entry is its own record, so a step writes only what it
//! adds. Every write of a demand checks the version it was based on, so two processes sharing
//! the database can never both move one demand.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::records::OutboxRecord;
use super::{Store, StoreError, json, parse_id};
use crate::demands::attachments::Upload;
use crate::demands::draft::{Draft, MAX_DRAFTS_PER_FORM};
use crate::demands::model::{Demand, HistoryEntry, Step};
use crate::ids::{AccountId, DemandId, DraftId, FormId};
use crate::mail::OutgoingMail;
use crate::scheduler::ScheduledJob;
use crate::time::{from_micros, to_micros};

/// The kinds of definitions kept with versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefinitionKind {
    /// A form.
    Form,
    /// A workflow.
    Workflow,
    /// A named data source.
    DataSource,
}

impl DefinitionKind {
    /// Storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            DefinitionKind::Form => "form",
            DefinitionKind::Workflow => "workflow",
            DefinitionKind::DataSource => "data-source",
        }
    }
}

/// One definition to save (see [`Store::save_definitions`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefinitionWrite {
    /// Its kind.
    pub kind: DefinitionKind,
    /// Its id.
    pub id: String,
    /// Its slug, unique per kind.
    pub slug: String,
    /// The version it replaces; `None` creates it.
    pub expected: Option<u32>,
    /// The definition (JSON).
    pub body: String,
}

/// One saved version of a definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredVersion {
    /// Version number, from 1.
    pub version: u32,
    /// The definition as saved (JSON).
    pub body: String,
    /// When.
    pub saved_at: Timestamp,
    /// By whom.
    pub saved_by: Option<AccountId>,
}

#[derive(Debug, Serialize, Deserialize)]
struct VersionRecord {
    version: u32,
    body: String,
    saved_us: i64,
    #[serde(default)]
    saved_by: Option<String>,
}

impl VersionRecord {
    fn into_version(self) -> Result<StoredVersion, StoreError> {
        Ok(StoredVersion {
            version: self.version,
            body: self.body,
            saved_at: from_micros(self.saved_us),
            saved_by: self.saved_by.as_deref().map(parse_id).transpose()?,
        })
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct DemandRecord {
    state: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct HistoryRecord {
    entry: String,
}

fn history_key(demand: DemandId, seq: u64) -> String {
    // Zero-padded so that keys sort by position.
    format!("{demand}-{seq:010}")
}

fn encode<T: Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn decode_str<T: for<'de> Deserialize<'de>>(s: &str) -> Result<T, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// What a demand step writes besides the demand itself.
#[derive(Debug, Default)]
pub struct StepWrites {
    /// Mails to queue.
    pub mails: Vec<OutgoingMail>,
    /// Jobs to schedule.
    pub jobs: Vec<ScheduledJob>,
    /// On submission: the hash of the tracking code.
    pub tracking_hash: Option<String>,
    /// On submission from a draft: the draft, deleted in the same transaction.
    pub submitted_draft: Option<DraftId>,
    /// The uploads it newly attaches (submission, edit, attachment form), claimed for it in the
    /// same transaction: one already attached to a demand fails the whole step.
    pub claimed_uploads: Vec<String>,
    /// In-app notifications to the accounts notified.
    pub web_notifications: Vec<WebNotification>,
}

/// An in-app notification ("web notification").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebNotification {
    /// Identifier.
    pub id: String,
    /// Whose.
    pub account: String,
    /// Title.
    pub title: String,
    /// Text.
    pub body: String,
    /// The demand it is about.
    pub demand: Option<String>,
    /// When.
    pub created_us: i64,
    /// Seen.
    pub read: bool,
}

#[derive(Debug, Serialize, Deserialize)]
struct UploadRecord {
    id: String,
    #[serde(default)]
    owner: Option<String>,
    filename: String,
    content_type: String,
    size: u64,
    created_us: i64,
    #[serde(default)]
    demand: Option<String>,
}

impl UploadRecord {
    fn into_upload(self) -> Result<Upload, StoreError> {
        Ok(Upload {
            id: self.id,
            owner: self.owner.as_deref().map(parse_id).transpose()?,
            filename: self.filename,
            content_type: self.content_type,
            size: self.size,
            created_at: from_micros(self.created_us),
            demand: self.demand.as_deref().map(parse_id).transpose()?,
        })
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct DraftRecord {
    id: String,
    account: String,
    form: String,
    form_slug: String,
    form_version: u32,
    answers: String,
    page: u32,
    created_us: i64,
    updated_us: i64,
    expires_us: i64,
}

impl DraftRecord {
    fn of(d: &Draft) -> Result<Self, StoreError> {
        Ok(Self {
            id: d.id.to_string(),
            account: d.account.to_string(),
            form: d.form_id.to_string(),
            form_slug: d.form_slug.clone(),
            form_version: d.form_version,
            answers: encode(&d.answers)?,
            page: d.page,
            created_us: to_micros(d.created_at),
            updated_us: to_micros(d.updated_at),
            expires_us: to_micros(d.expires_at),
        })
    }

    fn into_draft(self) -> Result<Draft, StoreError> {
        Ok(Draft {
            id: parse_id(&self.id)?,
            account: parse_id(&self.account)?,
            form_id: parse_id(&self.form)?,
            form_slug: self.form_slug,
            form_version: self.form_version,
            answers: decode_str(&self.answers)?,
            page: self.page,
            created_at: from_micros(self.created_us),
            updated_at: from_micros(self.updated_us),
            expires_at: from_micros(self.expires_us),
        })
    }
}

impl Store {
    /// Saves a definition: creates it when `expected` is `None` (`Duplicate` if the slug is
    /// taken), otherwise replaces version `expected` by `expected + 1` (`Conflict` when someone
    /// saved in between, `Duplicate` when the new slug is taken). Returns the new version.
    pub async fn save_definition(
        &self,
        kind: DefinitionKind,
        id: &str,
        slug: &str,
        expected: Option<u32>,
        body: &str,
        by: Option<AccountId>,
    ) -> Result<u32, StoreError> {
        let write = DefinitionWrite {
            kind,
            id: id.to_owned(),
            slug: slug.to_owned(),
            expected,
            body: body.to_owned(),
        };
        self.save_definitions(std::slice::from_ref(&write), by).await?;
        Ok(expected.map_or(1, |v| v + 1))
    }

    /// Saves several definitions in one transaction (an application bundle): all of them, or
    /// none if one is refused, each as [`Store::save_definition`] would.
    pub async fn save_definitions(
        &self,
        writes: &[DefinitionWrite],
        by: Option<AccountId>,
    ) -> Result<(), StoreError> {
        let rows: Vec<Value> = writes
            .iter()
            .map(|w| {
                let version = w.expected.map_or(1, |v| v + 1);
                serde_json::json!({
                    "id": w.id,
                    "create": w.expected.is_none(),
                    "kind": w.kind.as_str(),
                    "slug": w.slug,
                    "slug_key": format!("{}-{}", w.kind.as_str(), w.slug),
                    "version_key": format!("{}-{version}", w.id),
                    "expected": w.expected.unwrap_or_default(),
                    "new": version,
                    "body": w.body,
                })
            })
            .collect();
        let query = "BEGIN TRANSACTION;
             FOR $d IN $defs {
                IF $d.create {
                    CREATE type::record('definition_slug', $d.slug_key) SET definition = $d.id RETURN NONE;
                    CREATE type::record('definition', $d.id) CONTENT { kind: $d.kind, slug: $d.slug, version: 1, body: $d.body, updated_us: $now } RETURN NONE;
                } ELSE {
                    LET $cur = (SELECT VALUE [version, slug] FROM ONLY type::record('definition', $d.id));
                    IF $cur == NONE { THROW 'stale definition: it does not exist' };
                    IF $cur[0] != $d.expected { THROW 'stale definition: saved by someone else in between' };
                    IF $cur[1] != $d.slug {
                        DELETE type::record('definition_slug', $d.kind + '-' + $cur[1]);
                        CREATE type::record('definition_slug', $d.slug_key) SET definition = $d.id RETURN NONE;
                    };
                    UPDATE type::record('definition', $d.id) SET slug = $d.slug, version = $d.new, body = $d.body, updated_us = $now RETURN NONE;
                };
                CREATE type::record('definition_version', $d.version_key) CONTENT { definition: $d.id, version: $d.new, body: $d.body, saved_us: $now, saved_by: $by } RETURN NONE;
             };
             COMMIT TRANSACTION;";
        self.write(
            query,
            vec![
                ("defs", Value::Array(rows)),
                ("now", to_micros(Timestamp::now()).into()),
                ("by", by.map(|a| a.to_string()).into()),
            ],
        )
        .await?;
        Ok(())
    }

    /// The current body and version of a definition.
    pub async fn definition(&self, id: &str) -> Result<Option<(u32, String)>, StoreError> {
        #[derive(Deserialize)]
        struct Current {
            version: u32,
            body: String,
        }
        let row: Option<Current> = self
            .row(
                "SELECT version, body FROM type::record('definition', $id)",
                vec![("id", id.into())],
            )
            .await?;
        Ok(row.map(|c| (c.version, c.body)))
    }

    /// The id of the definition with this slug.
    pub async fn definition_id_by_slug(
        &self,
        kind: DefinitionKind,
        slug: &str,
    ) -> Result<Option<String>, StoreError> {
        self.row(
            "SELECT VALUE definition FROM type::record('definition_slug', $key)",
            vec![("key", format!("{}-{slug}", kind.as_str()).into())],
        )
        .await
    }

    /// Every definition of a kind (current bodies), by slug.
    pub async fn definitions(&self, kind: DefinitionKind) -> Result<Vec<String>, StoreError> {
        self.rows(
            "SELECT VALUE body FROM definition WHERE kind = $kind ORDER BY slug",
            vec![("kind", kind.as_str().into())],
        )
        .await
    }

    /// One saved version.
    pub async fn definition_version(
        &self,
        id: &str,
        version: u32,
    ) -> Result<Option<StoredVersion>, StoreError> {
        let rec: Option<VersionRecord> = self
            .row(
                "SELECT * FROM type::record('definition_version', $key)",
                vec![("key", format!("{id}-{version}").into())],
            )
            .await?;
        rec.map(VersionRecord::into_version).transpose()
    }

    /// Every saved version, newest first.
    pub async fn definition_versions(&self, id: &str) -> Result<Vec<StoredVersion>, StoreError> {
        let recs: Vec<VersionRecord> = self
            .rows(
                "SELECT * FROM definition_version WHERE definition = $id ORDER BY version DESC",
                vec![("id", id.into())],
            )
            .await?;
        recs.into_iter().map(VersionRecord::into_version).collect()
    }

    /// Writes a demand step in one transaction: the demand (created on submission, otherwise
    /// only if still at the version the step was based on), its new history entries, its
    /// tracking code, mails and jobs.
    pub async fn write_demand_step(
        &self,
        step: &Step,
        writes: &StepWrites,
    ) -> Result<(), StoreError> {
        self.write_demand_steps(&[(step, writes)]).await
    }

    /// Writes the steps of one demand change (a step and the demands it creates) durably, all
    /// or none, together with the changes of other demands waiting at the same moment: one
    /// transaction and one disk sync for all of them (group commit). When a shared transaction
    /// fails, each change is written again on its own, so one refused change (a stale version)
    /// fails only its own caller.
    pub async fn commit_demand_steps(
        &self,
        steps: Vec<(Step, StepWrites)>,
    ) -> Result<(), StoreError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.demand_commits
            .send(PendingSteps { steps, reply })
            .map_err(|_| StoreError::Database("the demand commit queue is closed".into()))?;
        answer.await.map_err(|_| StoreError::Database("the demand commit queue stopped".into()))?
    }

    /// Writes several demand steps in one transaction (a step and the demands it created):
    /// all of them or none.
    pub async fn write_demand_steps(
        &self,
        steps: &[(&Step, &StepWrites)],
    ) -> Result<(), StoreError> {
        let now = Timestamp::now();
        let mut rows = Vec::with_capacity(steps.len());
        let mut mails = Vec::new();
        let mut jobs = Vec::new();
        let mut notifications = Vec::new();
        for (step, writes) in steps {
            for n in &writes.web_notifications {
                notifications.push(json(n)?);
            }
            let d = &step.demand;
            let history: Vec<Value> = step
                .history
                .iter()
                .map(|h| {
                    Ok(serde_json::json!({
                        "key": history_key(d.id, h.seq),
                        "demand": d.id.to_string(),
                        "seq": h.seq,
                        "entry": encode(h)?,
                    }))
                })
                .collect::<Result<_, StoreError>>()?;
            for m in &writes.mails {
                mails.push(json(&OutboxRecord::queued(m, now))?);
            }
            jobs.extend(writes.jobs.iter().map(|j| super::jobs::job_row(j, now)));
            rows.push(serde_json::json!({
                "id": d.id.to_string(),
                "create": d.version == 1,
                "expected": d.version - 1,
                "record": {
                    "form": d.form_id.to_string(),
                    "status": d.status,
                    "submitter": d.submitter.map(|a| a.to_string()),
                    "digest": d.digest,
                    "version": d.version,
                    "created_us": to_micros(d.created_at),
                    "updated_us": to_micros(d.updated_at),
                    "state": encode(d)?,
                },
                "history": history,
                "tracking": writes.tracking_hash,
                "draft": writes.submitted_draft.map(|d| d.to_string()),
                "uploads": writes.claimed_uploads,
            }));
        }
        // One upload, one demand: claiming an upload already claimed fails the whole write.
        let mut query = String::from(
            "BEGIN TRANSACTION;
             FOR $s IN $steps {
                IF $s.create {
                    CREATE type::record('demand', $s.id) CONTENT $s.record RETURN NONE;
                } ELSE {
                    LET $r = (UPDATE type::record('demand', $s.id) CONTENT $s.record WHERE version = $s.expected RETURN VALUE version);
                    IF array::len($r) == 0 { THROW 'stale demand ' + $s.id };
                };
                FOR $h IN $s.history {
                    CREATE type::record('demand_history', $h.key) CONTENT { demand: $h.demand, seq: $h.seq, entry: $h.entry } RETURN NONE;
                };
                IF $s.tracking { CREATE type::record('tracking_code', $s.tracking) SET demand = $s.id RETURN NONE; };
                FOR $u IN $s.uploads {
                    LET $c = (UPDATE type::record('upload', $u) SET demand = $s.id WHERE demand = NONE OR demand = NULL RETURN VALUE id);
                    IF array::len($c) == 0 { THROW 'stale upload ' + $u + ': attached already' };
                };
                IF $s.draft { DELETE type::record('draft', $s.draft) RETURN NONE; };
             };\n",
        );
        if !mails.is_empty() {
            query.push_str("INSERT INTO outbox $mails RETURN NONE;\n");
        }
        if !notifications.is_empty() {
            query.push_str(
                "FOR $n IN $notifications { CREATE type::record('notification', $n.id) CONTENT $n RETURN NONE; };\n",
            );
        }
        if !jobs.is_empty() {
            query.push_str(super::jobs::UPSERT_JOBS);
        }
        query.push_str("COMMIT TRANSACTION;");
        let has_jobs = !jobs.is_empty();
        self.write(
            &query,
            vec![
                ("notifications", Value::Array(notifications)),
                ("steps", Value::Array(rows)),
                ("mails", Value::Array(mails)),
                ("jobs", Value::Array(jobs)),
            ],
        )
        .await?;
        if has_jobs {
            self.wake_scheduler();
        }
        Ok(())
    }

    /// A demand's state.
    pub async fn demand(&self, id: DemandId) -> Result<Option<Demand>, StoreError> {
        let rec: Option<DemandRecord> = self
            .row(
                "SELECT state FROM type::record('demand', $id)",
                vec![("id", id.to_string().into())],
            )
            .await?;
        rec.map(|r| decode_str(&r.state)).transpose()
    }

    /// A page of a demand's history: entries from `from`, at most `limit`.
    pub async fn demand_history(
        &self,
        id: DemandId,
        from: u64,
        limit: u32,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        let recs: Vec<HistoryRecord> = self
            .rows(
                "SELECT entry, seq FROM demand_history WHERE demand = $id AND seq >= $from ORDER BY seq LIMIT $limit",
                vec![
                    ("id", id.to_string().into()),
                    ("from", from.into()),
                    ("limit", limit.into()),
                ],
            )
            .await?;
        recs.iter().map(|r| decode_str(&r.entry)).collect()
    }

    /// The demand a tracking code (by hash) opens.
    pub async fn demand_by_tracking_hash(
        &self,
        hash: &str,
    ) -> Result<Option<DemandId>, StoreError> {
        let id: Option<String> = self
            .row(
                "SELECT VALUE demand FROM type::record('tracking_code', $hash)",
                vec![("hash", hash.into())],
            )
            .await?;
        id.as_deref().map(parse_id).transpose()
    }

    /// The cards of a card model (its demands) as choices: id and digest, by digest.
    pub async fn cards_of_model(
        &self,
        model: FormId,
        limit: u32,
    ) -> Result<Vec<(DemandId, String)>, StoreError> {
        #[derive(Deserialize)]
        struct Card {
            id: String,
            #[serde(default)]
            digest: Option<String>,
        }
        let recs: Vec<Card> = self
            .rows(
                "SELECT meta::id(id) AS id, digest FROM demand WHERE form = $form ORDER BY digest LIMIT $limit",
                vec![("form", model.to_string().into()), ("limit", limit.into())],
            )
            .await?;
        recs.into_iter().map(|c| Ok((parse_id(&c.id)?, c.digest.unwrap_or_default()))).collect()
    }

    /// The demands of a form (the cards of a card model), by digest.
    pub async fn demands_of_form(
        &self,
        form: FormId,
        limit: u32,
    ) -> Result<Vec<Demand>, StoreError> {
        let recs: Vec<DemandRecord> = self
            .rows(
                "SELECT state, digest FROM demand WHERE form = $form ORDER BY digest LIMIT $limit",
                vec![("form", form.to_string().into()), ("limit", limit.into())],
            )
            .await?;
        recs.iter().map(|r| decode_str(&r.state)).collect()
    }

    /// The newest card of a card model linked to an account.
    pub async fn card_of(
        &self,
        model: FormId,
        account: AccountId,
    ) -> Result<Option<Demand>, StoreError> {
        let recs: Vec<DemandRecord> = self
            .rows(
                "SELECT state, created_us FROM demand WHERE submitter = $account AND form = $form ORDER BY created_us DESC LIMIT 1",
                vec![
                    ("account", account.to_string().into()),
                    ("form", model.to_string().into()),
                ],
            )
            .await?;
        recs.first().map(|r| decode_str(&r.state)).transpose()
    }

    /// The demands of an account, newest first.
    pub async fn demands_of(
        &self,
        account: AccountId,
        limit: u32,
    ) -> Result<Vec<Demand>, StoreError> {
        let recs: Vec<DemandRecord> = self
            .rows(
                "SELECT state, created_us FROM demand WHERE submitter = $account ORDER BY created_us DESC LIMIT $limit",
                vec![("account", account.to_string().into()), ("limit", limit.into())],
            )
            .await?;
        recs.iter().map(|r| decode_str(&r.state)).collect()
    }

    /// The accounts holding an agent role (the recipients of a notification to a function),
    /// each with the channel it prefers (`email` when it did not say): one query per role.
    pub async fn accounts_with_role(
        &self,
        role: &str,
    ) -> Result<Vec<(AccountId, String)>, StoreError> {
        #[derive(Deserialize)]
        struct Row {
            id: String,
            #[serde(default)]
            notify_by: Option<String>,
        }
        let rows: Vec<Row> = self
            .rows(
                "SELECT record::id(id) AS id, notify_by FROM account WHERE agent_roles CONTAINS $role",
                vec![("role", role.into())],
            )
            .await?;
        rows.into_iter()
            .map(|r| Ok((parse_id(&r.id)?, r.notify_by.unwrap_or_else(|| "email".into()))))
            .collect()
    }

    /// Saves a draft, and forgets its owner's oldest drafts of the form beyond the limit.
    pub async fn save_draft(&self, d: &Draft) -> Result<(), StoreError> {
        self.write(
            "BEGIN TRANSACTION;
             UPSERT type::record('draft', $rec.id) CONTENT $rec RETURN NONE;
             LET $old = (SELECT VALUE id FROM draft WHERE account = $rec.account AND form = $rec.form
                ORDER BY updated_us DESC START $keep);
             FOR $o IN $old { DELETE $o RETURN NONE; };
             COMMIT TRANSACTION;",
            vec![("rec", json(&DraftRecord::of(d)?)?), ("keep", MAX_DRAFTS_PER_FORM.into())],
        )
        .await
        .map(drop)
    }

    /// A draft, while it has not expired.
    pub async fn draft(&self, id: DraftId, now: Timestamp) -> Result<Option<Draft>, StoreError> {
        let rec: Option<DraftRecord> = self
            .row(
                "SELECT *, record::id(id) AS id FROM type::record('draft', $id) WHERE expires_us > $now",
                vec![("id", id.to_string().into()), ("now", to_micros(now).into())],
            )
            .await?;
        rec.map(DraftRecord::into_draft).transpose()
    }

    /// The drafts of an account not expired, latest first.
    pub async fn drafts_of(
        &self,
        account: AccountId,
        now: Timestamp,
    ) -> Result<Vec<Draft>, StoreError> {
        let recs: Vec<DraftRecord> = self
            .rows(
                "SELECT *, record::id(id) AS id FROM draft WHERE account = $account AND expires_us > $now ORDER BY updated_us DESC",
                vec![("account", account.to_string().into()), ("now", to_micros(now).into())],
            )
            .await?;
        recs.into_iter().map(DraftRecord::into_draft).collect()
    }

    /// Deletes a draft of `account`; false when there was none.
    pub async fn delete_draft(&self, id: DraftId, account: AccountId) -> Result<bool, StoreError> {
        let deleted: Vec<serde_json::Value> = self
            .rows(
                "DELETE type::record('draft', $id) WHERE account = $account RETURN BEFORE",
                vec![("id", id.to_string().into()), ("account", account.to_string().into())],
            )
            .await?;
        Ok(!deleted.is_empty())
    }

    /// Deletes the drafts expired at `now`; returns how many.
    pub async fn purge_drafts(&self, now: Timestamp) -> Result<usize, StoreError> {
        let deleted: Vec<serde_json::Value> = self
            .rows(
                "DELETE draft WHERE expires_us <= $now RETURN BEFORE",
                vec![("now", to_micros(now).into())],
            )
            .await?;
        Ok(deleted.len())
    }

    /// Records an upload whose file is written.
    pub async fn create_upload(&self, u: &Upload) -> Result<(), StoreError> {
        let rec = serde_json::json!({
            "owner": u.owner.map(|a| a.to_string()),
            "filename": u.filename,
            "content_type": u.content_type,
            "size": u.size,
            "created_us": to_micros(u.created_at),
        });
        self.write(
            "CREATE type::record('upload', $id) CONTENT $rec RETURN NONE",
            vec![("id", u.id.clone().into()), ("rec", rec)],
        )
        .await
        .map(drop)
    }

    /// The uploads among `ids` that exist.
    pub async fn uploads(&self, ids: &[String]) -> Result<Vec<Upload>, StoreError> {
        // Point lookups: a submission names a few files.
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let rec: Option<UploadRecord> = self
                .row(
                    "SELECT *, record::id(id) AS id FROM type::record('upload', $id)",
                    vec![("id", id.clone().into())],
                )
                .await?;
            if let Some(rec) = rec {
                out.push(rec.into_upload()?);
            }
        }
        Ok(out)
    }

    /// Deletes the records of uploads never attached and created before `before`; returns
    /// their ids, whose files the caller removes.
    pub async fn purge_unclaimed_uploads(
        &self,
        before: Timestamp,
    ) -> Result<Vec<String>, StoreError> {
        self.rows(
            "SELECT VALUE record::id(id) FROM (DELETE upload WHERE (demand = NONE OR demand = NULL) AND created_us < $before RETURN BEFORE)",
            vec![("before", to_micros(before).into())],
        )
        .await
    }

    /// How each account prefers to be notified (`email` when it did not say).
    pub async fn notification_channels(
        &self,
        accounts: &[AccountId],
    ) -> Result<Vec<(AccountId, String)>, StoreError> {
        let mut out = Vec::with_capacity(accounts.len());
        for a in accounts {
            if let Some(rec) = self.account(*a).await? {
                out.push((*a, rec.notify_by.unwrap_or_else(|| "email".into())));
            }
        }
        Ok(out)
    }

    /// Sets how an account prefers to be notified.
    pub async fn set_notification_channel(
        &self,
        account: AccountId,
        channel: &str,
    ) -> Result<(), StoreError> {
        self.write(
            "UPDATE type::record('account', $id) SET notify_by = $channel WHERE id != NONE RETURN NONE",
            vec![("id", account.to_string().into()), ("channel", channel.into())],
        )
        .await
        .map(drop)
    }

    /// An account's in-app notifications, newest first.
    pub async fn web_notifications(
        &self,
        account: AccountId,
        unread_only: bool,
        limit: u32,
    ) -> Result<Vec<WebNotification>, StoreError> {
        self.rows(
            "SELECT *, record::id(id) AS id FROM notification WHERE account = $account AND (!$unread OR read = false) ORDER BY created_us DESC LIMIT $limit",
            vec![
                ("account", account.to_string().into()),
                ("unread", unread_only.into()),
                ("limit", limit.into()),
            ],
        )
        .await
    }

    /// Marks notifications of an account read; returns how many changed.
    pub async fn mark_notifications_read(
        &self,
        account: AccountId,
        ids: &[String],
    ) -> Result<usize, StoreError> {
        let mut changed = 0;
        for id in ids {
            let rows: Vec<Value> = self
                .rows(
                    "UPDATE type::record('notification', $id) SET read = true WHERE account = $account AND read = false RETURN id",
                    vec![("id", id.clone().into()), ("account", account.to_string().into())],
                )
                .await?;
            changed += rows.len();
        }
        Ok(changed)
    }
}

/// One change waiting in the demand commit queue.
#[derive(Debug)]
pub(super) struct PendingSteps {
    steps: Vec<(Step, StepWrites)>,
    reply: tokio::sync::oneshot::Sender<Result<(), StoreError>>,
}

/// Most changes written in one shared transaction.
const MAX_GROUP: usize = 256;

/// The writer of the demand commit queue: takes every change waiting, writes them in one
/// transaction, answers each caller; runs until the store is dropped.
pub(super) async fn commit_demand_steps(
    store: Store,
    mut pending: tokio::sync::mpsc::UnboundedReceiver<PendingSteps>,
) {
    while let Some(first) = pending.recv().await {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match pending.try_recv() {
                Ok(p) => group.push(p),
                Err(_) => break,
            }
        }
        let all: Vec<(&Step, &StepWrites)> =
            group.iter().flat_map(|p| p.steps.iter().map(|(s, w)| (s, w))).collect();
        let shared = store.write_demand_steps(&all).await;
        if shared.is_ok() || group.len() == 1 {
            for p in group {
                let _ = p.reply.send(shared.clone());
            }
            continue;
        }
        // Nothing of the shared transaction was written: find out whose change is refused.
        for p in group {
            let own: Vec<(&Step, &StepWrites)> = p.steps.iter().map(|(s, w)| (s, w)).collect();
            let _ = p.reply.send(store.write_demand_steps(&own).await);
        }
    }
}
