//! Meetings agendas in the store: meeting types, desks, opening periods, exceptions, meetings, and
//! the desk cells that make the database itself refuse two meetings on one desk at once.
//!
//! A meeting that occupies a desk (booked, or held until a deadline) claims one `desk_cell`
//! record per five-minute cell it covers, keyed by desk and cell. Two transactions claiming the
//! same cell write the same key, so one of them fails with a write conflict whatever process it
//! comes from; a claim also refuses, inside the transaction, a cell that another meeting still
//! occupies. Cancelling deletes the meeting's cells; a lapsed hold's cells are simply taken over.

use jiff::Timestamp;
use jiff::civil::{Date, Time, Weekday};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json as j};

use super::{Store, StoreError, json, parse_id};
use crate::ids::{AgendaId, MeetingId};
use crate::meetings::model::{
    CELL_MINUTES, Desk, Meeting, MeetingStatus, MeetingType, OpeningPeriod, PeriodRule,
    TimeException, slugify,
};
use crate::meetings::virtual_agenda::Exclusion;
use crate::scheduler::{JobKind, ScheduledJob};
use crate::time::{from_micros, to_micros};

/// The stored configuration of a meetings agenda.
#[derive(Debug, Default)]
pub struct MeetingsConfig {
    /// Meeting types.
    pub types: Vec<MeetingType>,
    /// Desks.
    pub desks: Vec<Desk>,
    /// Opening periods.
    pub periods: Vec<OpeningPeriod>,
    /// Exceptions.
    pub exceptions: Vec<TimeException>,
}

#[derive(Debug, Serialize, Deserialize)]
struct MeetingTypeRecord {
    id: String,
    agenda: String,
    /// Absent from records written before slugs: derived from the label then.
    #[serde(default)]
    slug: String,
    label: String,
    duration_minutes: u32,
    created_us: i64,
}

#[derive(Debug, Serialize, Deserialize)]
struct DeskRecord {
    id: String,
    agenda: String,
    label: String,
    created_us: i64,
}

#[derive(Debug, Serialize, Deserialize)]
struct PeriodRecord {
    id: String,
    agenda: String,
    desk: String,
    /// `weekly`, `monthly` or `date`.
    rule: String,
    /// ISO weekday, Monday = 1.
    weekday: Option<i8>,
    nths: Vec<i8>,
    date: Option<String>,
    start: String,
    end: String,
    created_us: i64,
}

#[derive(Debug, Serialize, Deserialize)]
struct ExceptionRecord {
    id: String,
    agenda: String,
    desks: Vec<String>,
    starts_us: i64,
    ends_us: i64,
    label: String,
    created_us: i64,
}

#[derive(Debug, Serialize, Deserialize)]
struct MeetingRecord {
    id: String,
    agenda: String,
    desk: String,
    meeting_type: String,
    starts_us: i64,
    ends_us: i64,
    account: Option<String>,
    booked_by: Option<String>,
    status: String,
    lock_code: Option<String>,
    hold_until_us: Option<i64>,
    created_us: i64,
    updated_us: i64,
}

impl MeetingRecord {
    fn of(m: &Meeting, now: Timestamp) -> Self {
        Self {
            id: m.id.to_string(),
            agenda: m.agenda_id.to_string(),
            desk: m.desk_id.to_string(),
            meeting_type: m.meeting_type_id.to_string(),
            starts_us: to_micros(m.starts_at),
            ends_us: to_micros(m.ends_at),
            account: m.account_id.map(|a| a.to_string()),
            booked_by: m.booked_by.map(|a| a.to_string()),
            status: m.status.as_str().into(),
            lock_code: m.lock_code.clone(),
            hold_until_us: m.hold_until.map(to_micros),
            created_us: to_micros(m.created_at),
            updated_us: to_micros(now),
        }
    }

    fn into_meeting(self) -> Result<Meeting, StoreError> {
        Ok(Meeting {
            id: parse_id(&self.id)?,
            agenda_id: parse_id(&self.agenda)?,
            desk_id: parse_id(&self.desk)?,
            meeting_type_id: parse_id(&self.meeting_type)?,
            starts_at: from_micros(self.starts_us),
            ends_at: from_micros(self.ends_us),
            account_id: self.account.as_deref().map(parse_id).transpose()?,
            booked_by: self.booked_by.as_deref().map(parse_id).transpose()?,
            status: MeetingStatus::parse(&self.status)
                .ok_or_else(|| StoreError::Corrupt(format!("meeting status {:?}", self.status)))?,
            lock_code: self.lock_code,
            hold_until: self.hold_until_us.map(from_micros),
            created_at: from_micros(self.created_us),
        })
    }
}

fn weekday_number(w: Weekday) -> i8 {
    w.to_monday_one_offset()
}

fn weekday_of(n: Option<i8>) -> Result<Weekday, StoreError> {
    n.and_then(|n| Weekday::from_monday_one_offset(n).ok())
        .ok_or_else(|| StoreError::Corrupt(format!("weekday {n:?}")))
}

fn parse_civil<T: std::str::FromStr>(s: &str) -> Result<T, StoreError> {
    s.parse().map_err(|_| StoreError::Corrupt(format!("civil value {s:?}")))
}

impl PeriodRecord {
    fn of(p: &OpeningPeriod, agenda: AgendaId, now: Timestamp) -> Self {
        let (rule, weekday, nths, date) = match &p.rule {
            PeriodRule::Weekly(w) => ("weekly", Some(weekday_number(*w)), vec![], None),
            PeriodRule::MonthlyNth { weekday, nths } => {
                ("monthly", Some(weekday_number(*weekday)), nths.clone(), None)
            }
            PeriodRule::Date(d) => ("date", None, vec![], Some(d.to_string())),
        };
        Self {
            id: p.id.to_string(),
            agenda: agenda.to_string(),
            desk: p.desk_id.to_string(),
            rule: rule.into(),
            weekday,
            nths,
            date,
            start: p.start.strftime("%H:%M").to_string(),
            end: p.end.strftime("%H:%M").to_string(),
            created_us: to_micros(now),
        }
    }

    fn into_period(self) -> Result<OpeningPeriod, StoreError> {
        let rule = match self.rule.as_str() {
            "weekly" => PeriodRule::Weekly(weekday_of(self.weekday)?),
            "monthly" => {
                PeriodRule::MonthlyNth { weekday: weekday_of(self.weekday)?, nths: self.nths }
            }
            "date" => PeriodRule::Date(parse_civil::<Date>(self.date.as_deref().unwrap_or(""))?),
            other => return Err(StoreError::Corrupt(format!("period rule {other:?}"))),
        };
        Ok(OpeningPeriod {
            id: parse_id(&self.id)?,
            desk_id: parse_id(&self.desk)?,
            rule,
            start: parse_civil::<Time>(&self.start)?,
            end: parse_civil::<Time>(&self.end)?,
        })
    }
}

/// The cells a meeting covers on its desk.
fn cells(m: &Meeting) -> impl Iterator<Item = String> + '_ {
    let cell_us = CELL_MINUTES * 60 * 1_000_000;
    let first = to_micros(m.starts_at).div_euclid(cell_us);
    let last = (to_micros(m.ends_at) - 1).div_euclid(cell_us);
    (first..=last).map(move |n| format!("{}_{n}", m.desk_id))
}

/// A booking's cells never lapse; a hold's lapse with it.
const NEVER: i64 = i64::MAX;

impl Store {
    /// Stores a meeting type.
    pub async fn create_meeting_type(
        &self,
        agenda: AgendaId,
        t: &MeetingType,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let rec = MeetingTypeRecord {
            id: t.id.to_string(),
            agenda: agenda.to_string(),
            slug: t.slug.clone(),
            label: t.label.clone(),
            duration_minutes: t.duration_minutes,
            created_us: to_micros(now),
        };
        self.write(
            "CREATE type::record('meeting_type', $rec.id) CONTENT $rec",
            vec![("rec", json(&rec)?)],
        )
        .await
        .map(drop)
    }

    /// Stores a desk.
    pub async fn create_desk(
        &self,
        agenda: AgendaId,
        d: &Desk,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let rec = DeskRecord {
            id: d.id.to_string(),
            agenda: agenda.to_string(),
            label: d.label.clone(),
            created_us: to_micros(now),
        };
        self.write("CREATE type::record('desk', $rec.id) CONTENT $rec", vec![("rec", json(&rec)?)])
            .await
            .map(drop)
    }

    /// Stores opening periods, all or none.
    pub async fn create_periods(
        &self,
        agenda: AgendaId,
        periods: &[OpeningPeriod],
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let recs: Vec<PeriodRecord> =
            periods.iter().map(|p| PeriodRecord::of(p, agenda, now)).collect();
        self.write(
            "BEGIN TRANSACTION; INSERT INTO opening_period $recs RETURN NONE; COMMIT TRANSACTION;",
            vec![("recs", json(&recs)?)],
        )
        .await
        .map(drop)
    }

    /// Stores an exception.
    pub async fn create_exception(
        &self,
        agenda: AgendaId,
        e: &TimeException,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let rec = ExceptionRecord {
            id: e.id.to_string(),
            agenda: agenda.to_string(),
            desks: e.desk_ids.iter().map(ToString::to_string).collect(),
            starts_us: to_micros(e.starts_at),
            ends_us: to_micros(e.ends_at),
            label: e.label.clone(),
            created_us: to_micros(now),
        };
        self.write(
            "CREATE type::record('time_exception', $rec.id) CONTENT $rec",
            vec![("rec", json(&rec)?)],
        )
        .await
        .map(drop)
    }

    /// The configuration of a meetings agenda, each part in creation order.
    pub async fn meetings_config(&self, agenda: AgendaId) -> Result<MeetingsConfig, StoreError> {
        let a = || vec![("a", Value::from(agenda.to_string()))];
        let types: Vec<MeetingTypeRecord> = self
            .rows("SELECT *, record::id(id) AS id FROM meeting_type WHERE agenda = $a ORDER BY created_us", a())
            .await?;
        let desks: Vec<DeskRecord> = self
            .rows(
                "SELECT *, record::id(id) AS id FROM desk WHERE agenda = $a ORDER BY created_us",
                a(),
            )
            .await?;
        let periods: Vec<PeriodRecord> = self
            .rows("SELECT *, record::id(id) AS id FROM opening_period WHERE agenda = $a ORDER BY created_us", a())
            .await?;
        let exceptions: Vec<ExceptionRecord> = self
            .rows("SELECT *, record::id(id) AS id FROM time_exception WHERE agenda = $a ORDER BY created_us", a())
            .await?;
        Ok(MeetingsConfig {
            types: types
                .into_iter()
                .map(|t| {
                    Ok(MeetingType {
                        id: parse_id(&t.id)?,
                        slug: if t.slug.is_empty() { slugify(&t.label) } else { t.slug },
                        label: t.label,
                        duration_minutes: t.duration_minutes,
                    })
                })
                .collect::<Result<_, StoreError>>()?,
            desks: desks
                .into_iter()
                .map(|d| Ok(Desk { id: parse_id(&d.id)?, label: d.label }))
                .collect::<Result<_, StoreError>>()?,
            periods: periods
                .into_iter()
                .map(PeriodRecord::into_period)
                .collect::<Result<_, _>>()?,
            exceptions: exceptions
                .into_iter()
                .map(|e| {
                    Ok(TimeException {
                        id: parse_id(&e.id)?,
                        desk_ids: e.desks.iter().map(|d| parse_id(d)).collect::<Result<_, _>>()?,
                        starts_at: from_micros(e.starts_us),
                        ends_at: from_micros(e.ends_us),
                        label: e.label,
                    })
                })
                .collect::<Result<_, StoreError>>()?,
        })
    }

    /// The meetings of an agenda that end after `after` and still occupy their desk at `now`.
    pub async fn active_meetings(
        &self,
        agenda: AgendaId,
        after: Timestamp,
        now: Timestamp,
    ) -> Result<Vec<Meeting>, StoreError> {
        let recs: Vec<MeetingRecord> = self
            .rows(
                "SELECT *, record::id(id) AS id FROM meeting WHERE agenda = $a AND ends_us > $after
                 AND (status = 'confirmed' OR (status = 'held' AND hold_until_us > $now))",
                vec![
                    ("a", agenda.to_string().into()),
                    ("after", to_micros(after).into()),
                    ("now", to_micros(now).into()),
                ],
            )
            .await?;
        recs.into_iter().map(MeetingRecord::into_meeting).collect()
    }

    /// One meeting as stored.
    pub async fn meeting(&self, id: MeetingId) -> Result<Option<Meeting>, StoreError> {
        let rec: Option<MeetingRecord> = self
            .row(
                "SELECT *, record::id(id) AS id FROM type::record('meeting', $id)",
                vec![("id", id.to_string().into())],
            )
            .await?;
        rec.map(MeetingRecord::into_meeting).transpose()
    }

    /// The meetings booked by or for an account, newest first.
    pub async fn account_meetings(
        &self,
        account: crate::ids::AccountId,
        include_cancelled: bool,
        limit: u32,
    ) -> Result<Vec<Meeting>, StoreError> {
        let recs: Vec<MeetingRecord> = self
            .rows(
                "SELECT *, record::id(id) AS id FROM meeting WHERE account = $a
                 AND ($all OR status = 'confirmed') ORDER BY starts_us DESC LIMIT $limit",
                vec![
                    ("a", account.to_string().into()),
                    ("all", include_cancelled.into()),
                    ("limit", limit.into()),
                ],
            )
            .await?;
        recs.into_iter().map(MeetingRecord::into_meeting).collect()
    }

    /// Writes a batch of meeting changes as one transaction: every meeting that occupies its
    /// desk claims its cells (refused when another meeting occupies one, or when another writer
    /// claims one at the same time), every cancelled one frees its own.
    pub async fn commit_meetings(
        &self,
        meetings: &[Meeting],
        resources: &[crate::ids::ResourceId],
        mails: &[crate::mail::OutgoingMail],
        scheduled: &[ScheduledJob],
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mails: Vec<Value> = mails
            .iter()
            .map(|m| json(&super::records::OutboxRecord::queued(m, now)))
            .collect::<Result<_, _>>()?;
        // The agenda's resources are held by each meeting (a hold until it lapses) and released
        // when it is cancelled.
        let reserve: Vec<Value> = if resources.is_empty() {
            Vec::new()
        } else {
            meetings
                .iter()
                .map(|m| {
                    let owner = super::meeting_owner(m.id);
                    match m.status {
                        MeetingStatus::Cancelled => {
                            super::resources::reserve_row(&owner, &[], m.starts_at, m.ends_at, None)
                        }
                        MeetingStatus::Held => super::resources::reserve_row(
                            &owner,
                            resources,
                            m.starts_at,
                            m.ends_at,
                            m.hold_until,
                        ),
                        _ => super::resources::reserve_row(
                            &owner,
                            resources,
                            m.starts_at,
                            m.ends_at,
                            None,
                        ),
                    }
                })
                .collect()
        };
        let mut claims = Vec::new();
        let mut releases = Vec::new();
        for m in meetings {
            if m.status == MeetingStatus::Cancelled {
                releases.extend(cells(m).map(|key| j!({ "key": key, "owner": m.id.to_string() })));
            } else {
                let until = match m.status {
                    MeetingStatus::Held => m.hold_until.map_or(0, to_micros),
                    _ => NEVER,
                };
                claims.extend(
                    cells(m)
                        .map(|key| j!({ "key": key, "owner": m.id.to_string(), "until": until })),
                );
            }
        }
        let records = meetings
            .iter()
            .map(|m| json(&MeetingRecord::of(m, now)))
            .collect::<Result<Vec<_>, _>>()?;
        // Each new hold schedules its expiry, so that subscribers see the slot free again then.
        let jobs: Vec<Value> = meetings
            .iter()
            .filter(|m| m.status == MeetingStatus::Held)
            .filter_map(|m| {
                let job = ScheduledJob {
                    kind: JobKind::HoldExpiry { agenda: m.agenda_id, meeting: m.id },
                    due_at: m.hold_until?,
                };
                Some(super::jobs::job_row(&job, now))
            })
            .chain(scheduled.iter().map(|j| super::jobs::job_row(j, now)))
            .collect();
        let has_jobs = !jobs.is_empty();
        self.write(
            &[
                "BEGIN TRANSACTION;
             FOR $r IN $releases {
                DELETE type::record('desk_cell', $r.key) WHERE owner = $r.owner RETURN NONE;
             };
             FOR $c IN $claims {
                LET $cur = (SELECT owner, until_us FROM type::record('desk_cell', $c.key))[0];
                IF $cur != NONE AND $cur.owner != $c.owner AND $cur.until_us > $now {
                    THROW 'stale desk cell ' + $c.key;
                };
                UPSERT type::record('desk_cell', $c.key) CONTENT { owner: $c.owner, until_us: $c.until } RETURN NONE;
             };
             FOR $m IN $meetings {
                UPSERT type::record('meeting', $m.id) CONTENT $m RETURN NONE;
             };
             FOR $j IN $jobs { UPSERT type::record('job', $j.key) CONTENT $j RETURN NONE; };
             IF array::len($mails) > 0 { INSERT INTO outbox $mails RETURN NONE; };\n",
                super::resources::RESERVE,
                "COMMIT TRANSACTION;",
            ]
            .concat(),
            vec![
                ("reserve", Value::Array(reserve)),
                ("mails", Value::Array(mails)),
                ("jobs", Value::Array(jobs)),
                ("releases", Value::Array(releases)),
                ("claims", Value::Array(claims)),
                ("meetings", Value::Array(records)),
                ("now", to_micros(now).into()),
            ],
        )
        .await?;
        if has_jobs {
            self.wake_scheduler();
        }
        Ok(())
    }
}

impl Store {
    /// Adds a member to a virtual agenda; `Duplicate` when it is one already.
    pub async fn add_virtual_member(
        &self,
        virtual_agenda: AgendaId,
        member: AgendaId,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.write(
            "CREATE type::record('virtual_member', $key) CONTENT { virtual: $v, member: $m, created_us: $now }",
            vec![
                ("key", format!("{virtual_agenda}_{member}").into()),
                ("v", virtual_agenda.to_string().into()),
                ("m", member.to_string().into()),
                ("now", to_micros(now).into()),
            ],
        )
        .await
        .map(drop)
    }

    /// Stores an exclusion period of a virtual agenda.
    pub async fn create_exclusion(
        &self,
        virtual_agenda: AgendaId,
        e: &Exclusion,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        // Same shape as an opening period; the desk field names the virtual agenda itself.
        let as_period = OpeningPeriod {
            id: e.id,
            desk_id: crate::ids::DeskId(virtual_agenda.0),
            rule: e.rule.clone(),
            start: e.start,
            end: e.end,
        };
        let rec = PeriodRecord::of(&as_period, virtual_agenda, now);
        self.write(
            "CREATE type::record('virtual_exclusion', $rec.id) CONTENT $rec",
            vec![("rec", json(&rec)?)],
        )
        .await
        .map(drop)
    }

    /// The members (in the order they were added) and exclusion periods of a virtual agenda.
    pub async fn virtual_config(
        &self,
        virtual_agenda: AgendaId,
    ) -> Result<(Vec<AgendaId>, Vec<Exclusion>), StoreError> {
        let v = || vec![("v", Value::from(virtual_agenda.to_string()))];
        let members: Vec<String> = self
            .rows(
                "SELECT VALUE member FROM virtual_member WHERE virtual = $v ORDER BY created_us",
                v(),
            )
            .await?;
        let exclusions: Vec<PeriodRecord> = self
            .rows(
                "SELECT *, record::id(id) AS id FROM virtual_exclusion WHERE agenda = $v ORDER BY created_us",
                v(),
            )
            .await?;
        Ok((
            members.iter().map(|m| parse_id(m)).collect::<Result<_, _>>()?,
            exclusions
                .into_iter()
                .map(|r| {
                    r.into_period().map(|p| Exclusion {
                        id: p.id,
                        rule: p.rule,
                        start: p.start,
                        end: p.end,
                    })
                })
                .collect::<Result<_, _>>()?,
        ))
    }
}
